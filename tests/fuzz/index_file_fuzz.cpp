// Fuzz target: EmbeddingIndex::load (index/index.h), the index file (SQLite database holding the
// FAISS index and the metadata) that search, index and oneshot read. When it loads, it is searched
// once with a query of its dimension, and its items listed. Input: the index file.
#include "fuzz_util.h"
#include "siamese/index/index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = siamese::fuzz::write_input("index.db", data, size);
  return siamese::fuzz::refuse_quietly([&] {
    auto index = siamese::EmbeddingIndex::load(path);
    index.items();
    if (index.size() > 0 && index.options().dim() <= 4096) index.search(torch::zeros({1, index.options().dim()}), 3);
  });
}
