#include "siamese/model/model_file.h"


#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "siamese/core/archive_file.h"
#include "siamese/core/checksum.h"
#include "siamese/core/error.h"

namespace fs = std::filesystem;

namespace siamese {

std::string model_fingerprint(SiameseNetwork& network) {
  const std::string config = to_json(network->options);
  uint64_t h = fnv1a(config.data(), config.size());
  if (network->int8()) h = fnv1a("int8", 4, h);  // --int8 embeds differently: its own fingerprint
  auto tensors = network->named_parameters();
  for (const auto& b : network->named_buffers()) tensors.insert(b.key(), b.value());
  for (const auto& t : tensors) {
    h = fnv1a(t.key().data(), t.key().size(), h);
    auto c = t.value().detach().to(torch::kCPU).contiguous();
    h = fnv1a(c.data_ptr(), c.nbytes(), h);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

std::string to_json(const SiameseNetworkOptions& o) {
  nlohmann::ordered_json j;
  j["encoder"] = to_string(o.encoder());
  j["in_channels"] = o.cnn().in_channels();
  j["height"] = o.cnn().height();
  j["width"] = o.cnn().width();
  j["conv_channels"] = o.cnn().conv_channels();
  j["hidden"] = o.cnn().hidden();
  j["embedding_dim"] = o.cnn().embedding_dim();
  j["normalize"] = o.cnn().normalize();
  j["distance"] = to_string(o.distance());
  if (o.encoder() == EncoderKind::Lstm || o.encoder() == EncoderKind::Gru || o.encoder() == EncoderKind::Hybrid) {
    const auto& r = o.rnn();
    j["rnn"] = {{"cell", to_string(r.cell())},
                {"vocab_size", r.vocab_size()},
                {"token_dim", r.token_dim()},
                {"features", r.features()},
                {"conv_channels", r.conv_channels()},
                {"conv_kernel", r.conv_kernel()},
                {"conv_stride", r.conv_stride()},
                {"conv_pool", r.conv_pool()},
                {"hidden", r.hidden()},
                {"layers", r.layers()},
                {"bidirectional", r.bidirectional()},
                {"dropout", r.dropout()},
                {"pooling", to_string(r.pooling())},
                {"embedding_dim", r.embedding_dim()},
                {"normalize", r.normalize()}};
    j["frames"] = o.frames();
    j["tokens"] = o.tokens();
    j["vocabulary"] = o.vocabulary();
  }
  j["input_mean"] = o.input_mean();
  j["input_std"] = o.input_std();
  if (o.encoder() == EncoderKind::TorchScript) j["backbone_source"] = o.backbone_source();
  if (!o.int8_ranges().empty()) j["int8_ranges"] = o.int8_ranges();
  if (o.image_view().size > 0) {
    const auto& v = o.image_view();
    j["image_view"] = {{"size", v.size}, {"channels", v.channels}, {"eval_resize", v.eval_resize},
                       {"crop_min", v.crop_min}, {"crop_max", v.crop_max}};
  }
  try {
    return j.dump();
  } catch (const nlohmann::json::exception& e) {  // a vocabulary token that is not valid UTF-8
    throw Error(ErrorCode::InvalidArgument,
                std::string("network configuration: cannot write as JSON (") + e.what() + ")");
  }
}

SiameseNetworkOptions network_options_from_json(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    SiameseNetworkOptions o;
    o.encoder(parse_encoder(j.at("encoder").get<std::string>()));
    o.cnn(CnnEncoderOptions()
              .in_channels(j.at("in_channels"))
              .height(j.at("height"))
              .width(j.at("width"))
              .conv_channels(j.at("conv_channels").get<std::vector<int64_t>>())
              .hidden(j.at("hidden"))
              .embedding_dim(j.at("embedding_dim"))
              .normalize(j.at("normalize")));
    o.distance(parse_distance(j.at("distance")));
    if (j.contains("rnn")) {
      const auto& r = j.at("rnn");
      o.rnn(RnnEncoderOptions()
                .cell(parse_cell(r.at("cell").get<std::string>()))
                .vocab_size(r.at("vocab_size"))
                .token_dim(r.at("token_dim"))
                .features(r.at("features"))
                .conv_channels(r.at("conv_channels"))
                .conv_kernel(r.at("conv_kernel"))
                .conv_stride(r.at("conv_stride"))
                .conv_pool(r.value("conv_pool", int64_t{1}))
                .hidden(r.at("hidden"))
                .layers(r.at("layers"))
                .bidirectional(r.at("bidirectional"))
                .dropout(r.at("dropout"))
                .pooling(parse_pooling(r.at("pooling").get<std::string>()))
                .embedding_dim(r.at("embedding_dim"))
                .normalize(r.at("normalize")));
      o.frames(j.at("frames"));
      o.tokens(j.at("tokens"));
      o.vocabulary(j.at("vocabulary").get<std::vector<std::string>>());
    }
    o.input_mean(j.at("input_mean").get<std::vector<double>>());
    o.input_std(j.at("input_std").get<std::vector<double>>());
    o.backbone_source(j.value("backbone_source", ""));
    o.int8_ranges(j.value("int8_ranges", std::vector<double>{}));
    for (double r : o.int8_ranges()) {
      if (!std::isfinite(r) || r < 0 || r > 1e30) {
        throw Error(ErrorCode::Corruption, "bad network configuration: an int8 range is not a finite value >= 0");
      }
    }
    if (j.contains("image_view")) {
      const auto& v = j.at("image_view");
      ImageView view;
      view.size = v.at("size");
      view.channels = v.at("channels");
      view.eval_resize = v.at("eval_resize");
      view.crop_min = v.at("crop_min");
      view.crop_max = v.at("crop_max");
      view.check();
      if (view.size == 0 || view.size != o.cnn().height() || view.size != o.cnn().width() || view.channels != o.cnn().in_channels()) {
        throw Error(ErrorCode::Corruption, "bad network configuration: its image view is not its input shape");
      }
      o.image_view(view);
    }
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corruption, std::string("bad network configuration: ") + e.what());
  }
}

void save_model(const std::string& path, SiameseNetwork& network, double threshold, const std::string& info) {
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string("siamese-model")));
  archive.write("version", c10::IValue(kModelFormatVersion));
  archive.write("config", c10::IValue(to_json(network->options)));
  archive.write("threshold", c10::IValue(threshold));
  archive.write("info", c10::IValue(info));
  if (network->options.backbone()) archive.write("backbone", c10::IValue(*network->options.backbone()));
  torch::serialize::OutputArchive weights;
  network->save(weights);
  archive.write("network", weights);
  save_archive(archive, path);  // with its checksum, serialised in memory, written atomically
}

SavedModel load_model(const std::string& path_in) {
  std::string path = path_in;
  if (fs::is_directory(path)) path = (fs::path(path) / "model.pt").string();
  if (!fs::exists(path)) throw Error(ErrorCode::NotFound, path, "no such model file");
  try {
    // The checksum (of every entry) is checked here. A file without one was written before model
    // files carried it (same format version): accepted as it is, since refusing would strand every
    // model trained earlier for no gain in safety over what LibTorch's own checks give it.
    torch::serialize::InputArchive archive;
    load_archive(archive, path, "model file");
    c10::IValue v;
    if (!archive.try_read("format", v) || !v.isString() || v.toStringRef() != "siamese-model") {
      throw Error(ErrorCode::Corruption, path, "not a siamese model file");
    }
    archive.read("version", v);
    if (v.toInt() != kModelFormatVersion) {
      throw Error(ErrorCode::Unsupported, path,
                  "model format version " + std::to_string(v.toInt()) + ", this build reads version " +
                      std::to_string(kModelFormatVersion));
    }
    SavedModel model;
    archive.read("config", v);
    auto options = network_options_from_json(v.toStringRef());
    if (archive.try_read("backbone", v) && v.isString()) options.backbone(std::make_shared<const std::string>(v.toStringRef()));
    model.network = SiameseNetwork(options);
    archive.read("threshold", v);
    model.threshold = v.toDouble();
    archive.read("info", v);
    model.info = v.toStringRef();
    torch::serialize::InputArchive weights;
    archive.read("network", weights);
    model.network->load(weights);
    model.network->eval();
    return model;
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Corruption, path,
                std::string("corrupt or unreadable model file (") + e.what_without_backtrace() + ")");
  } catch (const Error& e) {
    // Errors naming the file pass as they are; others (a bad configuration inside it) gain its name.
    // A configuration this build rejects as an argument makes the file corrupt.
    if (std::string(e.what()).rfind(path, 0) == 0) throw;
    throw Error(e.code() == ErrorCode::InvalidArgument ? ErrorCode::Corruption : e.code(), path, e.what());
  }
}

}  // namespace siamese
