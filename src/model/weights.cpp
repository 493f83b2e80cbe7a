#include "siamese/model/weights.h"

#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "siamese/core/archive_file.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"

namespace siamese {

namespace {

/// A state_dict pickle (torch.save: protocol 2, an OrderedDict, its items, then its `_metadata`
/// attribute set with SETITEM and BUILD) rewritten as the plain dict LibTorch 1.13's unpickler reads:
/// the OrderedDict call becomes an empty dict (the OrderedDict class stays in memo 0, where the
/// tensors' backward hooks refer to it, as the value of an extra entry "_" that is not a tensor),
/// and the pickle stops after the items. "" when the pickle is not laid out so.
std::string as_plain_dict(const std::string& pickle) {
  static constexpr char kHead[] = "\x80\x02" "ccollections\nOrderedDict\nq\x00)Rq\x01(";
  static constexpr char kPlainHead[] = "\x80\x02}q\x01(X\x01\x00\x00\x00_ccollections\nOrderedDict\nq\x00";
  static constexpr char kMetadata[] = "X\x09\x00\x00\x00_metadata";
  static const std::string head(kHead, sizeof kHead - 1), plain_head(kPlainHead, sizeof kPlainHead - 1),
      metadata(kMetadata, sizeof kMetadata - 1);
  if (pickle.compare(0, head.size(), head) != 0) return "";
  const auto at = pickle.rfind(metadata);
  if (at == std::string::npos || at < head.size() + 8) return "";
  // ... SETITEMS `u`, EMPTY_DICT `}`, a memo put (BINPUT `q` n or LONG_BINPUT `r` nnnn), "_metadata".
  size_t end = 0;
  if (pickle[at - 2] == 'q' && pickle[at - 3] == '}' && pickle[at - 4] == 'u') end = at - 3;
  if (pickle[at - 5] == 'r' && pickle[at - 6] == '}' && pickle[at - 7] == 'u') end = at - 6;
  if (end == 0) return "";
  return plain_head + pickle.substr(head.size(), end - head.size()) + ".";
}

/// The torch.save file `bytes` with its pickle replaced by `pickle`, as PyTorchStreamWriter writes it.
std::string with_pickle(const std::string& bytes, const std::string& pickle) {
  caffe2::serialize::PyTorchStreamReader reader(
      std::make_shared<caffe2::serialize::MemoryReadAdapter>(bytes.data(), static_cast<off_t>(bytes.size())));
  std::string out;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t size) {
      out.append(static_cast<const char*>(data), size);
      return size;
    });
    for (const auto& name : reader.getAllRecords()) {
      if (name == "version" || name == ".data/version") continue;  // the writer writes its own
      if (name == "data.pkl") {
        writer.writeRecord(name, pickle.data(), pickle.size());
        continue;
      }
      auto [data, size] = reader.getRecord(name);
      writer.writeRecord(name, data.get(), size);
    }
    writer.writeEndOfFile();
  }
  return out;
}

c10::IValue unpickle(const std::string& bytes) { return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())); }

/// Whether `name` starts with one of `prefixes`.
bool starts_with_any(const std::string& name, const std::vector<std::string>& prefixes) {
  return std::any_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) { return name.rfind(p, 0) == 0; });
}

std::string listed(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < std::min<size_t>(8, names.size()); ++i) s += (i ? ", " : "") + names[i];
  return names.size() > 8 ? s + ", ... (" + std::to_string(names.size()) + ")" : s;
}

}  // namespace

NamedTensors read_state_dict(const std::string& path) {
  if (!std::filesystem::exists(path)) throw Error(ErrorCode::NotFound, path, "no such weights file");
  const std::string bytes = read_file(path);
  check_archive_bytes(bytes, path, "weights file (a torch.save file)");
  c10::IValue v;
  try {
    try {
      v = unpickle(bytes);
    } catch (const c10::Error&) {  // LibTorch 1.13 on an OrderedDict: fails, or reads None
    }
    if (!v.isGenericDict()) {
      caffe2::serialize::PyTorchStreamReader reader(
          std::make_shared<caffe2::serialize::MemoryReadAdapter>(bytes.data(), static_cast<off_t>(bytes.size())));
      auto [data, size] = reader.getRecord("data.pkl");
      const auto plain = as_plain_dict(std::string(static_cast<const char*>(data.get()), size));
      v = unpickle(plain.empty() ? bytes : with_pickle(bytes, plain));  // the first error again when not rewritten
    }
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Corruption, path, std::string("cannot read the weights (") + e.what_without_backtrace() + ")");
  }
  if (!v.isGenericDict()) {
    throw Error(ErrorCode::InvalidArgument, path, "holds no dict of tensors (save a state_dict: torch.save(model.state_dict(), FILE))");
  }
  NamedTensors out;
  for (const auto& entry : v.toGenericDict()) {
    if (entry.key().isString() && entry.value().isTensor()) out.emplace_back(entry.key().toStringRef(), entry.value().toTensor());
  }
  if (out.empty()) throw Error(ErrorCode::InvalidArgument, path, "holds no tensors");
  return out;
}

NamedTensors encoder_parameters(SiameseNetworkImpl& network, bool head) {
  NamedTensors out;
  for (const auto& p : network.encoder->named_parameters()) {
    if ((p.key().rfind("head.", 0) == 0) == head) out.emplace_back(p.key(), p.value());
  }
  return out;
}

NamedTensors trunk_tensors(SiameseNetworkImpl& network) {
  auto out = encoder_parameters(network, false);
  for (const auto& b : network.encoder->named_buffers()) {
    if (b.key().rfind("head.", 0) != 0) out.emplace_back(b.key(), b.value());
  }
  return out;
}

int64_t load_trunk(SiameseNetworkImpl& network, const NamedTensors& tensors, const std::string& source,
                   const std::vector<std::string>& ignored) {
  std::map<std::string, torch::Tensor> given;
  for (const auto& [name, t] : tensors) {
    if (!starts_with_any(name, ignored)) given[name] = t;
  }
  const auto trunk = trunk_tensors(network);
  std::vector<std::string> missing, misshapen, unexpected;
  std::map<std::string, bool> known;
  for (const auto& [name, t] : trunk) {
    known[name] = true;
    const auto found = given.find(name);
    if (found == given.end()) {
      missing.push_back(name);
    } else if (found->second.sizes() != t.sizes()) {
      misshapen.push_back(name + " " + c10::str(found->second.sizes()) + " (the trunk's is " + c10::str(t.sizes()) + ")");
    }
  }
  for (const auto& entry : given) {
    if (!known.count(entry.first)) unexpected.push_back(entry.first);
  }
  if (!missing.empty() || !misshapen.empty() || !unexpected.empty()) {
    std::string why;
    if (!missing.empty()) why += "missing " + listed(missing);
    if (!misshapen.empty()) why += (why.empty() ? "" : "; ") + std::string("misshapen ") + listed(misshapen);
    if (!unexpected.empty()) why += (why.empty() ? "" : "; ") + std::string("not in the trunk ") + listed(unexpected);
    throw Error(ErrorCode::InvalidArgument, source, "weights do not fit the encoder's trunk: " + why);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : trunk) t.copy_(given.at(name).to(t.scalar_type()));
  return static_cast<int64_t>(trunk.size());
}

bool init_from_model(SiameseNetworkImpl& network, SiameseNetworkImpl& from, const std::string& source) {
  if (network.options.encoder() != from.options.encoder()) {
    throw Error(ErrorCode::InvalidArgument, source,
                "has a " + to_string(from.options.encoder()) + " encoder, this network a " + to_string(network.options.encoder()));
  }
  load_trunk(network, trunk_tensors(from), source);
  auto mine = encoder_parameters(network, true);
  const auto theirs = encoder_parameters(from, true);
  bool same = mine.size() == theirs.size();
  for (size_t i = 0; same && i < mine.size(); ++i) same = mine[i].first == theirs[i].first && mine[i].second.sizes() == theirs[i].second.sizes();
  if (!same) return false;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < mine.size(); ++i) mine[i].second.copy_(theirs[i].second);
  return true;
}

}  // namespace siamese
