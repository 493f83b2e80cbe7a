// siamese eval: a trained model's protocol metrics on a data set's test split.
#include <cstdio>
#include <numeric>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "inputs.h"
#include "siamese/data/data.h"
#include "siamese/eval/metrics.h"
#include "siamese/model/model_file.h"

namespace siamese::cli {

namespace {

std::vector<int64_t> first(int64_t n, int64_t size) {
  std::vector<int64_t> idx(static_cast<size_t>(std::min(n, size)));
  std::iota(idx.begin(), idx.end(), 0);
  return idx;
}

}  // namespace

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "evaluate a model on a protocol's test split");
  struct Flags {
    std::string model, data, protocol;
    std::vector<int64_t> unseen;
    int64_t subset = 0, pairs = 10000, episodes = 1000;
    bool json = false, few_shot = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "model file or run folder")->required();
  cmd->add_option("--data", f->data, "data set (default: the one the model was trained on)");
  cmd->add_option("--protocol", f->protocol, "fmnist-seen | fmnist-unseen (default: the training protocol)");
  cmd->add_option("--unseen-classes", f->unseen, "test classes under fmnist-unseen (default: the training ones)")
      ->delimiter(',');
  cmd->add_option("--subset", f->subset, "keep only the first N test images (0 = all)")->capture_default_str();
  cmd->add_option("--pairs", f->pairs, "balanced test pairs (seed 0)")->capture_default_str();
  cmd->add_option("--episodes", f->episodes, "few-shot episodes")->capture_default_str();
  cmd->add_flag("--few-shot", f->few_shot, "run N-way K-shot episodes on the test classes (always on under fmnist-unseen)");
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->callback([f]() {
    auto model = load_model(f->model);
    auto info = nlohmann::json::parse(model.info);
    const std::string data = !f->data.empty() ? f->data : info.value("data", "fashion-mnist");
    const auto options = EvalOptions().test_pairs(f->pairs).episodes(f->episodes);
    EvalReport report;
    if (is_sequence_spec(data)) {  // test = the test file, whose classes training never saw
      auto splits = open_model_sequences(model, data);
      auto test = f->subset > 0 ? splits.test.subset(first(f->subset, splits.test.size()), "subset") : splits.test;
      report = evaluate(model.network, test, model.threshold, EvalOptions(options).few_shot(true));
      report.protocol = "sequences";
    } else {
      const auto protocol = parse_protocol(!f->protocol.empty() ? f->protocol : info.value("protocol", "fmnist-seen"));
      if (f->unseen.empty()) f->unseen = info.value("unseen_classes", std::vector<int64_t>{5, 6, 7, 8, 9});
      auto splits = make_splits(open_data(data), SplitOptions().protocol(protocol).unseen_classes(f->unseen)
                                                     .validation_size(info.value("validation_size", int64_t{5000}))
                                                     .subset(f->subset));
      report = evaluate(model.network, splits.test, model.threshold,
                        EvalOptions(options).few_shot(f->few_shot || protocol == Protocol::Unseen));
      report.protocol = to_string(protocol);
    }
    if (f->json) {
      std::printf("%s\n", to_json(report).c_str());
      return;
    }
    auto j = nlohmann::ordered_json::parse(to_json(report, report.recall_at_1_by_class.size() <= 20));
    std::printf("%s on %s\n", report.protocol.c_str(), data.c_str());
    for (auto& [key, value] : j.items()) {
      if (key != "protocol") std::printf("  %-24s %s\n", key.c_str(), value.dump().c_str());
    }
  });
}

}  // namespace siamese::cli
