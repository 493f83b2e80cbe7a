// siamese oneshot: classify images into the classes of a support folder, one (or K) example each.
#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "console.h"
#include "siamese/core/error.h"
#include "siamese/core/log.h"
#include "siamese/eval/metrics.h"
#include "siamese/model/inputs.h"

namespace siamese::cli {

void add_oneshot(CLI::App& app) {
  auto* cmd = app.add_subcommand("oneshot", "classify query images by their nearest support class");
  struct Flags {
    std::string model, support, query, rule = "mean";
    int64_t k_shot = 0;
    double threshold = -2;
    bool json = false;
    DeviceFlags device;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "model file or run folder")->required();
  cmd->add_option("--support", f->support, "folder with one sub-folder of example images per class (sequence models: a labelled file or spec)")->required();
  cmd->add_option("--query", f->query, "image file or folder of images (sequence models: see search --query)")->required();
  cmd->add_option("--k-shot", f->k_shot, "use the first K images (by name) of each class (0 = all)")->capture_default_str()->check(in_range(0, 1e9));
  cmd->add_option("--rule", f->rule, "mean: nearest class mean | nearest: nearest single example")->capture_default_str();
  cmd->add_option("--threshold", f->threshold,
                  "answer 'none' above this distance (default: the model's calibrated threshold; -1 = never)")
      ->check(CLI::Validator([](std::string& s) {
                               return s == "-1" || in_range(0, 1e12)(s).empty()
                                          ? std::string()
                                          : s + " is not a distance >= 0, or -1 (never)";
                             },
                             "a distance >= 0, or -1"));
  cmd->add_flag("--json", f->json, "print one JSON object per query");
  add_device_flags(cmd, f->device);
  cmd->callback([f]() {
    auto model = load_model(f->model);
    place_model(model, f->device);
    Console logger(false);
    auto support = read_inputs(f->support, model, "train", logger);
    if (support.class_names.size() < 2) {
      throw Error(ErrorCode::InvalidArgument, f->support,
                  "needs labelled examples of at least 2 classes (images: one sub-folder per class), found " +
                      std::to_string(support.class_names.size()));
    }
    std::vector<int64_t> rows;
    std::map<int64_t, int64_t> taken;
    for (size_t i = 0; i < support.labels.size(); ++i) {
      const auto label = support.labels[i];
      if (label < 0) {
        throw Error(ErrorCode::InvalidArgument, support.keys[i],
                    "support examples need a class (images: a class sub-folder)");
      }
      if (f->k_shot <= 0 || taken[label]++ < f->k_shot) rows.push_back(static_cast<int64_t>(i));
    }
    std::vector<int64_t> labels;
    for (auto r : rows) labels.push_back(support.labels[static_cast<size_t>(r)]);
    auto support_e = embed_inputs(model, support, logger).index_select(0, torch::tensor(rows, torch::kInt64));
    auto queries = read_inputs(f->query, model, "train", logger);
    const double threshold = f->threshold < -1.5 ? model.threshold : f->threshold;
    auto matches = classify_by_support(embed_inputs(model, queries, logger), support_e, labels,
                                       model.network->options.distance(), parse_support_rule(f->rule), threshold);
    for (size_t i = 0; i < matches.size(); ++i) {
      const std::string cls = matches[i].label < 0 ? "none" : support.class_names[static_cast<size_t>(matches[i].label)];
      if (f->json) {
        nlohmann::ordered_json j{{"query", queries.keys[i]}, {"class", cls}, {"distance", matches[i].distance}, {"threshold", threshold}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\t%s\t%.6f\n", queries.keys[i].c_str(), cls.c_str(), matches[i].distance);
      }
    }
  });
}

}  // namespace siamese::cli
