// Approximate indexes against exact search: Recall@10 of each FAISS spec against Flat, and
// queries per second, on embeddings of real images repeated with noise up to each size.
//
//   siamese_index_bench --base train.bin --queries test.bin [--sizes 100000,1000000]
//       [--specs "Flat;IVF1024,Flat;HNSW32;IVF1024,PQ16"] [--queries-used 1000] [--k 10] [--seed 0]
//
// base/queries: files written by `siamese embed --out FILE.bin`. Prints a Markdown table; speed is
// also given as a ratio to Flat measured in the same run on the same machine.
#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "siamese/core/embeddings_file.h"
#include "siamese/core/error.h"
#include "siamese/index/index.h"

using namespace siamese;

namespace {

/// The embeddings of a `siamese embed --out FILE.bin` file (labels unused).
torch::Tensor read_embeddings(const std::string& path) { return read_embeddings_bin(path).embeddings; }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, sep);) {
    if (!x.empty()) out.push_back(x);
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string base_path, query_path, sizes = "100000,1000000", specs = "Flat;IVF1024,Flat;HNSW32;IVF1024,PQ16";
  int64_t queries_used = 1000, k = 10;
  uint64_t seed = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--base") base_path = v;
    else if (a == "--queries") query_path = v;
    else if (a == "--sizes") sizes = v;
    else if (a == "--specs") specs = v;
    else if (a == "--queries-used") queries_used = std::stoll(v);
    else if (a == "--k") k = std::stoll(v);
    else if (a == "--seed") seed = std::stoull(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  try {
    auto real = read_embeddings(base_path);
    auto queries = read_embeddings(query_path).slice(0, 0, queries_used).contiguous();
    const auto noise = 0.05 * real.std().item<double>();
    std::printf("| embeddings | index | build s | queries/s | speed vs Flat | Recall@%lld vs Flat |\n| ---: | --- | ---: | ---: | ---: | ---: |\n",
                static_cast<long long>(k));
    for (const auto& size_text : split(sizes, ',')) {
      const int64_t n = std::stoll(size_text);
      torch::manual_seed(seed);
      // Real embeddings, repeated and each copy moved by Gaussian noise (5% of their spread).
      auto rows = torch::arange(n, torch::kInt64).remainder(real.size(0));
      auto base = (real.index_select(0, rows) + noise * torch::randn({n, real.size(1)})).contiguous();
      std::vector<std::string> keys(static_cast<size_t>(n));
      std::vector<int64_t> labels(static_cast<size_t>(n), -1);
      std::vector<std::set<int64_t>> exact;
      double flat_qps = 0;
      for (const auto& spec : split(specs, ';')) {
        std::fprintf(stderr, "index_bench: %s on %lld embeddings...\n", spec.c_str(), static_cast<long long>(n));
        auto t0 = std::chrono::steady_clock::now();
        EmbeddingIndex index(IndexOptions(real.size(1)).spec(spec).distance(Distance::Euclidean));
        index.add(base, keys, labels);
        const double build = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        auto hits = index.search(queries, k);
        const double qps = static_cast<double>(queries.size(0)) / seconds_since(t0);
        double recall = 0;
        if (exact.empty()) {  // the first spec is the reference (Flat)
          for (const auto& h : hits) {
            std::set<int64_t> ids;
            for (const auto& x : h) ids.insert(x.item.id);
            exact.push_back(ids);
          }
          flat_qps = qps;
        }
        for (size_t q = 0; q < hits.size(); ++q) {
          int64_t found = 0;
          for (const auto& x : hits[q]) found += exact[q].count(x.item.id);
          recall += static_cast<double>(found) / static_cast<double>(k * static_cast<int64_t>(hits.size()));
        }
        std::printf("| %lld | %s | %.1f | %.0f | %.2f | %.3f |\n", static_cast<long long>(n), spec.c_str(), build, qps,
                    qps / flat_qps, recall);
        std::fflush(stdout);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "siamese_index_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
