// siamese verify: same or different? One pair of images, or a pairs file under the LFW protocol
// (10-fold cross-validated accuracy, ROC AUC, EER, TAR@FAR, ROC curve as CSV and SVG).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "console.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/core/log.h"
#include "siamese/data/data.h"
#include "siamese/eval/metrics.h"
#include "siamese/eval/pairs_protocol.h"
#include "siamese/model/inputs.h"
#include "siamese/model/model_file.h"
#include "siamese/report/plots.h"

namespace siamese::cli {

namespace {

std::string roc_csv(const Roc& roc) {
  std::string s = "threshold,false_accept_rate,true_accept_rate\n";
  char line[96];
  for (size_t i = 0; i < roc.threshold.size(); ++i) {
    std::snprintf(line, sizeof line, "%.9g,%.9g,%.9g\n", roc.threshold[i], roc.fpr[i], roc.tpr[i]);
    s += line;
  }
  return s;
}

/// The LFW protocol on a pairs file (run by the library), printed; the ROC curve written on request.
void verify_pairs(const std::string& model_path, const std::string& pairs_path, const std::string& root,
                  const std::string& roc_prefix, bool json) {
  auto model = load_model(model_path);
  const auto r = run_pairs_protocol(model, pairs_path, root);
  nlohmann::ordered_json j;
  j["pairs"] = r.pairs;
  j["images"] = r.images;
  j["folds"] = r.folds;
  if (r.cross_validation) {
    j["accuracy_mean"] = r.cross_validation->accuracy_mean;
    j["accuracy_std"] = r.cross_validation->accuracy_std;
    j["fold_accuracy"] = r.cross_validation->fold_accuracy;
  }
  j["accuracy_at_model_threshold"] = r.accuracy_at_model_threshold;
  j["model_threshold"] = r.model_threshold;
  j["roc_auc"] = r.roc_auc;
  j["eer"] = r.eer;
  j["tar_at_far_1e-3"] = r.tar_at_far_1e_3;
  if (!roc_prefix.empty()) {
    write_text_atomically(roc_prefix + ".csv", roc_csv(r.roc));
    write_text_atomically(roc_prefix + ".svg", roc_svg(r.roc, r.roc_auc));
    std::fprintf(stderr, "wrote %s.csv and %s.svg\n", roc_prefix.c_str(), roc_prefix.c_str());
  }
  if (json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    for (const auto& [k, v] : j.items()) std::printf("%-28s %s\n", k.c_str(), v.dump().c_str());
  }
}

}  // namespace

void add_verify(CLI::App& app) {
  auto* cmd = app.add_subcommand("verify", "same or different? two images, or a pairs file (LFW protocol)");
  cmd->alias("compare");
  struct Flags {
    std::string model, a, b, pairs, root, roc;
    bool json = false, force = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "model file or run folder")->required();
  cmd->add_option("first", f->a, "first image (sequence models: a file of one sequence, or a text)");
  cmd->add_option("second", f->b, "second image (or text)");
  cmd->add_option("--pairs", f->pairs, "pairs file in the LFW format (pairs.txt with folds), instead of two images");
  cmd->add_option("--root", f->root, "folder of the pairs file's images: ROOT/name/name_0001.png");
  cmd->add_option("--roc", f->roc, "with --pairs: write the ROC curve to PREFIX.csv and PREFIX.svg");
  cmd->add_flag("--json", f->json, "print one JSON object");
  cmd->add_flag("--force", f->force, "replace existing --roc files");
  cmd->callback([f, cmd]() {
    for (const auto* given : {"first", "second"}) {
      if (cmd->count(given) > 0 && (given[0] == 'f' ? f->a : f->b).empty()) {
        throw Error(ErrorCode::InvalidArgument, std::string("verify: the ") + given +
                                                    " input is an empty string; give an image file (text models: a "
                                                    "non-empty text or a file of one sequence)");
      }
    }
    if (!f->roc.empty()) {
      for (const char* ext : {".csv", ".svg"}) check_output(f->roc + ext, f->force, {f->pairs, f->model});
    }
    if (!f->pairs.empty()) {
      if (!f->a.empty()) throw Error(ErrorCode::InvalidArgument, "verify: give two images or --pairs, not both");
      verify_pairs(f->model, f->pairs, f->root.empty() ? "." : f->root, f->roc, f->json);
      return;
    }
    if (f->a.empty() || f->b.empty()) {
      throw Error(ErrorCode::InvalidArgument, "verify: give two images, or --pairs FILE --root DIR");
    }
    auto model = load_model(f->model);
    torch::Tensor a, b;
    if (model.network->takes_sequences()) {  // two texts, or two files of one sequence each
      auto one = [&](const std::string& what) {
        Console logger(false);
        auto in = read_inputs(what, model, "train", logger);
        if (in.keys.size() != 1) {
          throw Error(ErrorCode::InvalidArgument,
                      "verify: " + what + " holds " + std::to_string(in.keys.size()) + " sequences; give one each");
        }
        return in.items->gather({0});
      };
      a = one(f->a);
      b = one(f->b);
    } else {
      const auto in = read_files({f->a, f->b}, model);  // at the model's input shape, or through its image view
      a = in.items->gather({0});
      b = in.items->gather({1});
    }
    torch::NoGradGuard no_grad;
    const double d = model.network->forward(a, b).item<double>();
    const bool same = d <= model.threshold;
    if (f->json) {
      std::printf("{\"distance\": %.9g, \"threshold\": %.9g, \"same\": %s}\n", d, model.threshold, same ? "true" : "false");
    } else {
      std::printf("distance %.9g threshold %.9g %s\n", d, model.threshold, same ? "same" : "different");
    }
  });
}

}  // namespace siamese::cli
