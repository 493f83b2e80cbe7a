// Fuzz target: the FAISS factory string of IndexOptions::spec (index/index.h, `--index SPEC`), as
// EmbeddingIndex's constructor hands it to FAISS, then a few embeddings added and searched when the
// index builds. Input: byte 0 picks the dimension (1..16) and the distance, the rest is the spec.
#include <string>

#include "fuzz_util.h"
#include "siamese/index/index.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int64_t dim = 1 + (data[0] & 15);
  const auto distance = (data[0] & 16) ? siamese::Distance::Cosine : siamese::Distance::Euclidean;
  const std::string spec(reinterpret_cast<const char*>(data + 1), size - 1);
  return siamese::fuzz::refuse_quietly([&] {
    siamese::EmbeddingIndex index(siamese::IndexOptions(dim).spec(spec).distance(distance));
    torch::manual_seed(0);
    const auto x = torch::rand({40, dim});
    std::vector<std::string> keys;
    for (int i = 0; i < 40; ++i) keys.push_back("k" + std::to_string(i));
    index.add(x, keys, std::vector<int64_t>(40, 0));
    index.search(x.slice(0, 0, 2), 3);
  });
}
