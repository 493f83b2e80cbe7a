// siamese eval: a trained model's protocol metrics on a data set's test split.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "console.h"
#include "siamese/data/data.h"
#include "siamese/eval/metrics.h"
#include "siamese/model/inputs.h"
#include "siamese/model/model_file.h"

namespace siamese::cli {

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "evaluate a model on a protocol's test split");
  struct Flags {
    std::string model, data, protocol;
    std::vector<int64_t> unseen;
    int64_t subset = 0, pairs = 10000, episodes = 1000;
    bool json = false, few_shot = false;
    DeviceFlags device;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "model file or run folder")->required();
  cmd->add_option("--data", f->data, "data set (default: the one the model was trained on)");
  cmd->add_option("--protocol", f->protocol, "fmnist-seen | fmnist-unseen (default: the training protocol)");
  cmd->add_option("--unseen-classes", f->unseen, "test classes under fmnist-unseen (default: the training ones)")
      ->delimiter(',')->check(in_range(0, 1e6));
  cmd->add_option("--subset", f->subset, "keep only the first N test images (0 = all)")->capture_default_str()->check(in_range(0, kMaxCount));
  cmd->add_option("--pairs", f->pairs, "balanced test pairs (seed 0)")->capture_default_str()->check(in_range(2, 1e9));
  cmd->add_option("--episodes", f->episodes, "few-shot episodes")->capture_default_str()->check(in_range(1, 1e9));
  cmd->add_flag("--few-shot", f->few_shot, "run N-way K-shot episodes on the test classes (always on under fmnist-unseen)");
  add_device_flags(cmd, f->device);
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->callback([f]() {
    auto model = load_model(f->model);
    place_model(model, f->device);
    auto data_options = TrainedDataOptions().data(f->data).unseen_classes(f->unseen).subset(f->subset);
    if (!f->protocol.empty()) data_options.protocol(parse_protocol(f->protocol));
    Console console(f->json);
    const auto data = open_data_as_trained(model, data_options, console);
    const auto options = EvalOptions().test_pairs(f->pairs).episodes(f->episodes);
    // Sequences: test = the test file, whose classes training never saw.
    const bool few_shot = data.sequences || f->few_shot || data.protocol == Protocol::Unseen;
    EvalReport report = evaluate(model.network, *data.test, model.threshold, EvalOptions(options).few_shot(few_shot), console);
    report.protocol = data.sequences ? "sequences" : to_string(data.protocol);
    if (f->json) {
      std::printf("%s\n", to_json(report).c_str());
      return;
    }
    const auto reference = raw_pixel_reference(*data.test, *data.validation, EvalOptions(options).few_shot(few_shot));
    print_summary(report, reference, data.spec);
    if (report.recall_at_1_by_class.size() <= 20) {
      std::printf("  Recall@1 by class:");
      for (const auto& [label, recall] : report.recall_at_1_by_class) std::printf(" %lld:%.4f", static_cast<long long>(label), recall);
      std::printf("\n");
    }
  });
}

}  // namespace siamese::cli
