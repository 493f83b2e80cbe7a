// Build a similarity-search index of Fashion-MNIST test images with a trained model, then search it.
//   index_search MODEL [INDEX_FILE]
// MODEL is a model file or a run folder (its model.pt). The index is saved to INDEX_FILE
// (default fmnist.db), loaded back and queried with the first three test images.
#include <cstdio>
#include <string>

#include "siamese/core/error.h"
#include "siamese/data/data.h"
#include "siamese/eval/metrics.h"
#include "siamese/index/index.h"
#include "siamese/model/model_file.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [INDEX_FILE]\n", argv[0]);
    return 2;
  }
  const std::string index_file = argc > 2 ? argv[2] : "fmnist.db";
  try {
    siamese::SavedModel model = siamese::load_model(argv[1]);
    siamese::ImageDataset test = siamese::open_data("fashion-mnist").test;
    torch::Tensor embeddings = siamese::embed_dataset(model.network, test);  // [10000, D]

    // A FAISS index chosen by its factory string; the fingerprint ties it to this model.
    const std::string fingerprint = siamese::model_fingerprint(model.network);
    siamese::EmbeddingIndex index(siamese::IndexOptions(embeddings.size(1))
                                      .spec("HNSW32")
                                      .distance(model.network->options.distance())
                                      .fingerprint(fingerprint));
    std::vector<std::string> keys;
    for (int64_t i = 0; i < test.size(); ++i) keys.push_back("test#" + std::to_string(i));
    index.add(embeddings, keys, test.labels(), fingerprint);  // refused if another model made them
    index.save(index_file);  // one SQLite file, written atomically

    siamese::EmbeddingIndex loaded = siamese::EmbeddingIndex::load(index_file);
    // 3 queries, 5 nearest each; the index refuses queries embedded by another model.
    auto hits = loaded.search(embeddings.slice(0, 0, 3), 5, fingerprint);
    for (size_t q = 0; q < hits.size(); ++q) {
      std::printf("query test#%zu (class %lld):", q, static_cast<long long>(test.labels()[q]));
      for (const auto& hit : hits[q]) {
        std::printf("  %s class %lld d=%.3f", hit.item.key.c_str(), static_cast<long long>(hit.item.label),
                    hit.distance);
      }
      std::printf("\n");
    }
    std::printf("%lld items in %s\n", static_cast<long long>(loaded.size()), index_file.c_str());
  } catch (const siamese::Error& e) {
    std::fprintf(stderr, "error (%s): %s\n", siamese::to_string(e.code()), e.what());
    return 1;
  }
  return 0;
}
