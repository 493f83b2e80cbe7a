// Writes the seed inputs that only the library's own writers can make: model files, checkpoints
// and index files, into tests/fuzz/corpus/<target>/ (argument: the corpus folder). Run by
// `scripts/fuzz --seeds`; the other seeds (text and small binary formats) are written by the script.
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <string>

#include "siamese/index/index.h"
#include "siamese/model/model_file.h"
#include "tiny_task.h"

namespace fs = std::filesystem;

namespace {

/// Two small model files: a CNN on 8x8 grey images and an LSTM over characters.
void write_models(const fs::path& dir) {
  torch::manual_seed(1);
  siamese::SiameseNetworkOptions cnn;
  cnn.cnn(siamese::CnnEncoderOptions().height(8).width(8).conv_channels({2}).hidden(4).embedding_dim(3));
  siamese::SiameseNetwork a(cnn);
  siamese::save_model((dir / "cnn.pt").string(), a, 0.5, R"({"data":"folder:x"})");
  siamese::SiameseNetworkOptions rnn;
  rnn.encoder(siamese::EncoderKind::Lstm).tokens("char").vocabulary({"<unk>", "a", "b"});
  rnn.rnn(siamese::RnnEncoderOptions().vocab_size(3).token_dim(2).hidden(2).embedding_dim(2));
  siamese::SiameseNetwork b(rnn);
  siamese::save_model((dir / "lstm.pt").string(), b, 1.0);
}

/// A checkpoint after 1 epoch of TinyTask (with its checksum), and one after 2.
void write_checkpoints(const fs::path& dir) {
  const fs::path run = fs::temp_directory_path() / ("siamese-seeds-" + std::to_string(getpid()));
  for (int64_t epochs : {1, 2}) {
    fs::remove_all(run);
    fs::create_directories(run);  // the loop writes into an existing run folder
    siamese::LoopOptions options;
    options.out = run.string();
    options.optim.epochs = epochs;
    siamese::fuzz::TinyTask task;
    siamese::run_training_loop(task, options, false);
    fs::copy_file(run / "checkpoint.pt", dir / ("epoch" + std::to_string(epochs) + ".pt"),
                  fs::copy_options::overwrite_existing);
  }
  fs::remove_all(run);
}

/// Index files of three kinds, each holding a few labelled embeddings with class names.
void write_indexes(const fs::path& dir) {
  torch::manual_seed(2);
  for (const char* spec : {"Flat", "HNSW4", "IVF2,Flat"}) {
    siamese::EmbeddingIndex index(siamese::IndexOptions(4).spec(spec).fingerprint("f00d"));
    index.add(torch::rand({6, 4}), {"a.png", "b.png", "c.png", "d.png", "e.png", "f.png"}, {0, 0, 1, 1, -1, 1});
    std::string name = spec;
    for (auto& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    index.save((dir / (name + ".db")).string());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
    return 1;
  }
  const fs::path corpus = argv[1];
  for (const char* target : {"model_file", "checkpoint", "index_file"}) fs::create_directories(corpus / target);
  write_models(corpus / "model_file");
  write_checkpoints(corpus / "checkpoint");
  write_indexes(corpus / "index_file");
  return 0;
}
