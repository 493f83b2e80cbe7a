// siamese embed: embeddings of a data split, written as .npy or as the siamese binary format.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "commands.h"
#include "console.h"
#include "siamese/core/embeddings_file.h"
#include "siamese/core/error.h"
#include "siamese/core/log.h"
#include "siamese/model/inputs.h"
#include "siamese/model/model_file.h"

namespace fs = std::filesystem;

namespace siamese::cli {

namespace {

/// Refuses to write the embeddings (and, for .npy, the labels file) over the model or an input
/// file, ever, or over an existing file without --force.
void check_outputs(const std::string& out, const std::string& model, const std::string& data, bool force) {
  const std::string model_file = fs::is_directory(model) ? (fs::path(model) / "model.pt").string() : model;
  std::vector<std::string> outputs{out};
  if (out.size() > 4 && out.substr(out.size() - 4) == ".npy") outputs.push_back(labels_npy_path(out));
  for (const auto& o : outputs) check_output(o, /*force=*/true, {model_file, data});  // inputs first, whatever --force says
  for (const auto& o : outputs) check_output(o, force);
}

}  // namespace

void add_embed(CLI::App& app) {
  auto* cmd = app.add_subcommand("embed", "write the embeddings (and labels) of a data split");
  struct Flags {
    std::string model, data, split = "test", out;
    bool force = false;
    DeviceFlags device;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "model file or run folder")->required();
  cmd->add_option("--data", f->data, "data set spec, or files and folders as index build --data takes them "
                                     "(default: the data set the model was trained on)");
  cmd->add_option("--split", f->split, "train | test")->capture_default_str();
  cmd->add_option("--out", f->out,
                  "FILE.npy (float32 [N, D], labels in FILE.labels.npy as int64 [N], -1 = unlabelled) or FILE.bin: "
                  "'SIAMEMB1', int64 N, int64 D, N*D float32, N int64 labels (little-endian)")
      ->required();
  cmd->add_flag("--force", f->force, "replace an existing --out file (never the model or an input)");
  add_device_flags(cmd, f->device);
  cmd->callback([f]() {
    check_outputs(f->out, f->model, f->data, f->force);
    auto model = load_model(f->model);
    place_model(model, f->device);
    const std::string data = !f->data.empty() ? f->data : trained_data_spec(model);
    // A sequence spec's train split is the training file less its validation classes.
    Console logger(false);
    const auto in = read_inputs(data, model, f->split, logger);
    const auto start = std::chrono::steady_clock::now();
    const auto e = embed_inputs(model, in, logger);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto& out = f->out;
    write_embeddings(out, e, in.labels);
    // The embedding time alone (decoding included, reading the model and the data set not): what
    // bench/compare sets beside PyTorch's inference loop.
    std::fprintf(stderr, "wrote %lld embeddings of dimension %lld to %s (embedded in %.3f s, %.0f images/s)\n",
                 static_cast<long long>(e.size(0)), static_cast<long long>(e.size(1)), out.c_str(), seconds,
                 static_cast<double>(e.size(0)) / std::max(seconds, 1e-9));
  });
}

}  // namespace siamese::cli
