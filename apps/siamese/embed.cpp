// siamese embed: embeddings of a data split, written as .npy or as the siamese binary format.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "inputs.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/model/model_file.h"

namespace siamese::cli {

namespace {

/// NumPy .npy version 1.0: magic, header dict padded to 64 bytes, little-endian C-order data.
void write_npy(const std::string& path, const torch::Tensor& t) {
  const bool is_float = t.scalar_type() == torch::kFloat32;
  std::string shape = "(" + std::to_string(t.size(0)) + (t.dim() == 1 ? "," : ", " + std::to_string(t.size(1))) + ")";
  std::string header = std::string("{'descr': '") + (is_float ? "<f4" : "<i8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    const uint16_t len = static_cast<uint16_t>(header.size());
    out.write("\x93NUMPY\x01\x00", 8);
    out.write(reinterpret_cast<const char*>(&len), 2);
    out << header;
    auto c = t.contiguous();
    out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
    if (!out) throw Error(ErrorCode::IOError, tmp, "cannot write");
  });
}

}  // namespace

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
    const std::string data = !f->data.empty() ? f->data : nlohmann::json::parse(model.info).value("data", "fashion-mnist");
    // A sequence spec's train split is the training file less its validation classes.
    const auto in = read_inputs(data, model, f->split);
    const auto e = embed_inputs(model, in).contiguous();
    const auto labels = torch::tensor(in.labels, torch::kInt64);
    const auto& out = f->out;
    if (out.size() > 4 && out.substr(out.size() - 4) == ".npy") {
      write_npy(out, e);
      write_npy(out.substr(0, out.size() - 4) + ".labels.npy", labels);
    } else {
      write_atomically(out, [&](const std::string& tmp) {
        std::ofstream s(tmp, std::ios::binary);
        const int64_t dims[2] = {e.size(0), e.size(1)};
        s.write("SIAMEMB1", 8);
        s.write(reinterpret_cast<const char*>(dims), sizeof dims);
        s.write(static_cast<const char*>(e.data_ptr()), static_cast<std::streamsize>(e.nbytes()));
        s.write(static_cast<const char*>(labels.data_ptr()), static_cast<std::streamsize>(labels.nbytes()));
        if (!s) throw Error(ErrorCode::IOError, tmp, "cannot write");
      });
    }
    std::fprintf(stderr, "wrote %lld embeddings of dimension %lld to %s\n", static_cast<long long>(e.size(0)),
                 static_cast<long long>(e.size(1)), out.c_str());
  });
}

}  // namespace siamese::cli
