// siamese verify (alias compare): distance between two images and the same/different decision.
#include <cstdio>

#include "commands.h"
#include "siamese/data.h"
#include "siamese/model_file.h"

namespace siamese::cli {

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("verify", "same or different? distance between two images against the calibrated threshold");
  cmd->alias("compare");
  struct Flags {
    std::string model, a, b;
    bool json = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "model file or run folder")->required();
  cmd->add_option("first", f->a, "first image")->required();
  cmd->add_option("second", f->b, "second image")->required();
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->callback([f]() {
    auto model = load_model(f->model);
    const auto& c = model.network->options.cnn();
    auto a = read_image(f->a, c.in_channels(), c.height(), c.width());
    auto b = read_image(f->b, c.in_channels(), c.height(), c.width());
    torch::NoGradGuard no_grad;
    const double d = model.network->forward(a, b).item<double>();
    const bool same = d <= model.threshold;
    if (f->json) {
      std::printf("{\"distance\": %.9g, \"threshold\": %.9g, \"same\": %s}\n", d, model.threshold,
                  same ? "true" : "false");
    } else {
      std::printf("distance %.9g threshold %.9g %s\n", d, model.threshold, same ? "same" : "different");
    }
  });
}

}  // namespace siamese::cli
