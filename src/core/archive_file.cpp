#include "siamese/core/archive_file.h"

#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <zip.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <set>
#include <memory>
#include <vector>
#include <cstdio>
#include <sstream>

#include "siamese/core/atomic_file.h"
#include "siamese/core/checksum.h"
#include "siamese/core/error.h"

namespace siamese {

namespace {

uint64_t hash_string(const std::string& s, uint64_t h) {
  const uint64_t size = s.size();
  h = fnv1a(&size, sizeof size, h);
  return fnv1a(s.data(), s.size(), h);
}

template <typename T>
uint64_t hash_value(T value, uint64_t h) {
  return fnv1a(&value, sizeof value, h);
}

uint64_t hash_ivalue(const c10::IValue& v, uint64_t h) {
  h = hash_string(v.tagKind(), h);
  if (v.isTensor()) {
    const auto& t = v.toTensor();
    if (!t.defined()) return hash_string("undefined", h);
    h = hash_string(std::string(c10::toString(t.scalar_type())), h);
    for (auto size : t.sizes()) h = hash_value<int64_t>(size, h);
    auto c = t.detach().to(torch::kCPU).contiguous();
    return fnv1a(c.data_ptr(), c.nbytes(), h);
  }
  if (v.isString()) return hash_string(v.toStringRef(), h);
  if (v.isInt()) return hash_value<int64_t>(v.toInt(), h);
  if (v.isDouble()) return hash_value<double>(v.toDouble(), h);
  if (v.isBool()) return hash_value<uint8_t>(v.toBool() ? 1 : 0, h);
  if (v.isObject()) {  // a nested archive (module), or a class object: its attributes in order
    const auto object = v.toObject();
    const auto type = object->type();
    for (size_t i = 0; i < object->slots().size(); ++i) {
      h = hash_string(type->getAttributeName(i), h);
      h = hash_ivalue(object->getSlot(i), h);
    }
    return h;
  }
  if (v.isList()) {
    for (const auto& e : v.toListRef()) h = hash_ivalue(e, h);
    return h;
  }
  if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) h = hash_ivalue(e, h);
    return h;
  }
  if (v.isGenericDict()) {
    for (const auto& entry : v.toGenericDict()) h = hash_ivalue(entry.value(), hash_ivalue(entry.key(), h));
    return h;
  }
  return h;  // None and kinds archives do not hold: their kind alone
}

/// The most bytes a compressed entry may expand to (LibTorch compresses only its small code and
/// debug entries; tensors are stored): a bound on what a hostile file can make us inflate.
constexpr zip_uint64_t kMaxInflatedEntry = 64ull << 20;

using ZipPtr = std::unique_ptr<zip_t, void (*)(zip_t*)>;

/// The archive in `bytes` opened by libzip, which checks each entry's CRC-32 as it is read
/// (LibTorch's own reader, miniz built without CRC checks, does not).
ZipPtr open_zip(const std::string& bytes, const std::function<Error(const std::string&)>& corrupt) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
  zip_t* zip = source ? zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error) : nullptr;
  if (!zip) {
    const std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    if (source) zip_source_free(source);
    throw corrupt(why == "Not a zip archive" ? "not a zip archive" : "not a readable zip archive: " + why);
  }
  return ZipPtr(zip, [](zip_t* z) { zip_discard(z); });
}

/// Entry `i` of `zip` read whole, its size and CRC-32 checked against the zip directory.
std::string read_entry(zip_t* zip, zip_int64_t i, size_t file_size, const std::function<Error(const std::string&)>& corrupt) {
  zip_stat_t stat;
  if (zip_stat_index(zip, i, 0, &stat) != 0) throw corrupt(zip_strerror(zip));
  const std::string name = (stat.valid & ZIP_STAT_NAME) ? stat.name : "entry " + std::to_string(i);
  const bool stored = stat.comp_method == ZIP_CM_STORE;
  if (!stored && stat.comp_method != ZIP_CM_DEFLATE) throw corrupt(name + ": unknown compression method");
  if (stat.size > (stored ? file_size : kMaxInflatedEntry)) {
    throw corrupt(name + ": claims " + std::to_string(stat.size) + " bytes");
  }
  zip_file_t* file = zip_fopen_index(zip, i, 0);
  if (!file) throw corrupt(name + ": " + zip_strerror(zip));
  std::string data;
  std::vector<char> buffer(1 << 16);
  zip_int64_t n;
  while ((n = zip_fread(file, buffer.data(), buffer.size())) > 0 && data.size() + n <= stat.size) {
    data.append(buffer.data(), static_cast<size_t>(n));
  }
  const std::string why = n < 0 ? zip_file_strerror(file)
                          : n > 0 || data.size() != stat.size ? "holds other than the " + std::to_string(stat.size) + " bytes it claims"
                                                              : "";
  zip_fclose(file);
  if (!why.empty()) throw corrupt(name + ": " + why);
  return data;
}

std::string serialize(torch::serialize::OutputArchive& archive) {
  std::ostringstream out;
  archive.save_to(out);
  return std::move(out).str();
}

}  // namespace

/// Every entry of the zip archive in `bytes` (a LibTorch archive is a zip file) must read whole,
/// with the size and CRC-32 that the zip directory records, before LibTorch parses any of it; and
/// LibTorch's own reader must see the very same entries with the very same bytes. Zip readers can
/// disagree on a crafted file (one finds no entries where another finds forty), and a check made
/// through one reader protects nothing read through another. A damaged or crafted file then gets
/// one Corruption error instead of reaching LibTorch's parsers, which can crash or allocate
/// without bound on bytes that are not what it wrote.
void check_archive_bytes(const std::string& bytes, const std::string& path, const std::string& what) {
  const std::function<Error(const std::string&)> corrupt = [&](const std::string& why) {
    return Error(ErrorCode::Corruption, path, "corrupt " + what + " (" + why + ")");
  };
  ZipPtr zip = open_zip(bytes, corrupt);
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::vector<std::string> records;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<caffe2::serialize::MemoryReadAdapter>(bytes.data(), static_cast<off_t>(bytes.size())));
    records = reader->getAllRecords();
  } catch (const c10::Error& e) {
    throw corrupt(std::string("unreadable: ") + e.what_without_backtrace());
  }
  const zip_int64_t entries = zip_get_num_entries(zip.get(), 0);
  if (entries <= 0 || static_cast<size_t>(entries) != records.size() ||
      std::set<std::string>(records.begin(), records.end()).size() != records.size()) {
    throw corrupt("its zip directory lists " + std::to_string(std::max<zip_int64_t>(entries, 0)) +
                  " entries, or " + std::to_string(records.size()) + " as LibTorch reads it");
  }
  for (zip_int64_t i = 0; i < entries; ++i) {
    const std::string data = read_entry(zip.get(), i, bytes.size(), corrupt);
    const std::string full = zip_get_name(zip.get(), i, 0);
    const std::string name = full.substr(full.find('/') + 1);  // records are named without the archive's folder
    try {
      if (full.find('/') == std::string::npos || !reader->hasRecord(name)) throw corrupt(full + ": read differently by LibTorch");
      const auto record = reader->getRecord(name);
      if (std::get<1>(record) != data.size() || std::memcmp(std::get<0>(record).get(), data.data(), data.size()) != 0) {
        throw corrupt(full + ": read differently by LibTorch");
      }
    } catch (const c10::Error& e) {
      throw corrupt(full + ": " + e.what_without_backtrace());
    }
  }
}

std::string archive_checksum(torch::serialize::InputArchive& archive) {
  auto keys = archive.keys();
  std::sort(keys.begin(), keys.end());
  uint64_t h = kFnv1aOffset;
  for (const auto& key : keys) {
    if (key == kArchiveChecksumKey) continue;
    c10::IValue v;
    archive.read(key, v);
    h = hash_ivalue(v, hash_string(key, h));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

void save_archive(torch::serialize::OutputArchive& archive, const std::string& path) {
  // In memory first: LibTorch's file writer throws from its destructor when the disk fills, which
  // ends the process; the bytes are then written by write_file_atomically, every write checked.
  std::string bytes;
  try {
    bytes = serialize(archive);
    torch::serialize::InputArchive saved;
    saved.load_from(bytes.data(), bytes.size());
    archive.write(kArchiveChecksumKey, c10::IValue(archive_checksum(saved)));
    bytes = serialize(archive);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Internal, path, std::string("cannot serialise (") + e.what_without_backtrace() + ")");
  }
  write_file_atomically(path, bytes);
}

bool load_archive(torch::serialize::InputArchive& archive, const std::string& path, const std::string& what,
                  c10::Device device) {
  c10::IValue stored;
  std::string actual;
  const std::string bytes = read_file(path);
  check_archive_bytes(bytes, path, what);
  try {
    archive.load_from(bytes.data(), bytes.size(), device);
    if (!archive.try_read(kArchiveChecksumKey, stored)) return false;  // written before checksums: accepted
    actual = archive_checksum(archive);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Corruption, path,
                "corrupt or unreadable " + what + " (" + e.what_without_backtrace() + ")");
  }
  if (!stored.isString() || stored.toStringRef() != actual) {
    throw Error(ErrorCode::Corruption, path, "corrupt " + what + " (checksum mismatch)");
  }
  return true;
}

}  // namespace siamese
