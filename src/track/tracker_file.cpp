// The tracker's run configuration (config.json) and model file.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "siamese/core/archive_file.h"
#include "siamese/core/error.h"
#include "siamese/track/training.h"

namespace fs = std::filesystem;

namespace siamese {

namespace {

constexpr int64_t kTrackerFormatVersion = 1;

/// One table of config.json's keys: how each reads and writes its field.
template <typename F>
void for_each_field(TrackTrainOptions& o, F&& f) {
  f("data", o.data), f("pairs", o.pairs), f("batch_size", o.batch_size), f("max_gap", o.max_gap);
  f("validation_sequences", o.validation_sequences), f("validation_pairs", o.validation_pairs);
  f("exemplar_size", o.exemplar_size), f("search_size", o.search_size), f("context", o.context);
  f("positive_radius", o.positive_radius), f("stretch", o.stretch), f("shift", o.shift);
  f("epochs", o.optim.epochs), f("lr", o.optim.lr), f("weight_decay", o.optim.weight_decay);
  f("warmup_steps", o.optim.warmup_steps), f("step_size", o.optim.step_size), f("gamma", o.optim.gamma);
  f("patience", o.optim.patience), f("early_stop", o.optim.early_stop), f("seed", o.seed), f("threads", o.threads);
}

}  // namespace

std::string to_json(const TrackTrainOptions& options) {
  auto o = options;
  nlohmann::json j{{"task", "tracking"}, {"trunk", to_string(o.trunk)}, {"optimizer", to_string(o.optim.optimizer)},
                   {"schedule", to_string(o.optim.schedule)}, {"select_by", to_string(o.optim.select_by)}};
  for_each_field(o, [&](const char* key, auto& field) { j[key] = field; });
  return j.dump(2) + "\n";
}

TrackTrainOptions track_train_options_from_json(const std::string& text) {
  TrackTrainOptions o;
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.value("task", "") != "tracking") throw Error(ErrorCode::Corruption, "config.json: not a tracking run (no \"task\": \"tracking\")");
    size_t known = 5;
    o.trunk = parse_trunk(j.at("trunk").get<std::string>());
    o.optim.optimizer = parse_optimizer(j.at("optimizer").get<std::string>());
    o.optim.schedule = parse_schedule(j.at("schedule").get<std::string>());
    o.optim.select_by = parse_select_by(j.at("select_by").get<std::string>());
    for_each_field(o, [&](const char* key, auto& field) {
      field = j.at(key).get<std::decay_t<decltype(field)>>();
      ++known;
    });
    if (j.size() != known) throw Error(ErrorCode::Corruption, "config.json: unknown keys in a tracking run's configuration");
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corruption, std::string("config.json: bad tracking configuration (") + e.what() + ")");
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Corruption) throw;
    throw Error(ErrorCode::Corruption, std::string("config.json: ") + e.what());
  }
  return o;
}

void save_tracker(const std::string& path, SiamFC& network, const std::string& info) {
  torch::serialize::OutputArchive archive, weights;
  archive.write("format", c10::IValue(std::string("siamese-tracker")));
  archive.write("version", c10::IValue(kTrackerFormatVersion));
  const nlohmann::json config{{"trunk", to_string(network->options.trunk())}, {"score_scale", network->options.score_scale()}};
  archive.write("config", c10::IValue(config.dump()));
  archive.write("info", c10::IValue(info));
  network->save(weights);
  archive.write("network", weights);
  save_archive(archive, path);
}

SiamFC load_tracker(const std::string& path_in) {
  std::string path = path_in;
  if (fs::is_directory(path)) path = (fs::path(path) / "model.pt").string();
  if (!fs::exists(path)) throw Error(ErrorCode::NotFound, path, "no such tracker model file");
  torch::serialize::InputArchive archive;
  load_archive(archive, path, "tracker model file");
  c10::IValue v;
  if (!archive.try_read("format", v) || !v.isString()) throw Error(ErrorCode::Corruption, path, "not a siamese tracker model file");
  if (v.toStringRef() == "siamese-model") {
    throw Error(ErrorCode::InvalidArgument, path,
                "a similarity model (siamese train), not a tracking one (siamese train --task tracking)");
  }
  if (v.toStringRef() != "siamese-tracker") throw Error(ErrorCode::Corruption, path, "not a siamese tracker model file");
  archive.read("version", v);
  if (v.toInt() != kTrackerFormatVersion) {
    throw Error(ErrorCode::Unsupported, path, "tracker format version " + std::to_string(v.toInt()) + ", this build reads version " +
                                                  std::to_string(kTrackerFormatVersion));
  }
  try {
    archive.read("config", v);
    const auto config = nlohmann::json::parse(v.toStringRef());
    SiamFC net(SiamFCOptions().trunk(parse_trunk(config.at("trunk").get<std::string>())).score_scale(config.at("score_scale").get<double>()));
    torch::serialize::InputArchive weights;
    archive.read("network", weights);
    net->load(weights);
    net->eval();
    return net;
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::Corruption, path, std::string("corrupt tracker model file (") + e.what() + ")");
  }
}

}  // namespace siamese
