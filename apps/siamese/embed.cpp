// siamese embed: embeddings of a data split, written as .npy or as the siamese binary format.
#include <cstdio>

#include "commands.h"
#include "siamese/core/embeddings_file.h"
#include "siamese/core/log.h"
#include "siamese/model/inputs.h"
#include "siamese/model/model_file.h"

namespace siamese::cli {

void add_embed(CLI::App& app) {
  auto* cmd = app.add_subcommand("embed", "write the embeddings (and labels) of a data split");
  struct Flags {
    std::string model, data, split = "test", out;
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
  cmd->callback([f]() {
    auto model = load_model(f->model);
    const std::string data = !f->data.empty() ? f->data : trained_data_spec(model);
    // A sequence spec's train split is the training file less its validation classes.
    StderrLogger logger;
    const auto in = read_inputs(data, model, f->split, logger);
    const auto e = embed_inputs(model, in);
    const auto& out = f->out;
    write_embeddings(out, e, in.labels);
    std::fprintf(stderr, "wrote %lld embeddings of dimension %lld to %s\n", static_cast<long long>(e.size(0)),
                 static_cast<long long>(e.size(1)), out.c_str());
  });
}

}  // namespace siamese::cli
