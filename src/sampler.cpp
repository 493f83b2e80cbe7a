#include "siamese/sampler.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "siamese/error.h"

namespace siamese {

std::vector<std::vector<int64_t>> indices_by_class(const std::vector<int64_t>& labels) {
  std::vector<std::vector<int64_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto c = labels[i];
    if (c < 0) throw Error("negative label " + std::to_string(c) + " at item " + std::to_string(i));
    if (static_cast<size_t>(c) >= by_class.size()) by_class.resize(c + 1);
    by_class[c].push_back(static_cast<int64_t>(i));
  }
  return by_class;
}

SamplerKind parse_sampler(const std::string& name) {
  if (name == "pairs") return SamplerKind::Pairs;
  if (name == "triplets") return SamplerKind::Triplets;
  if (name == "pk") return SamplerKind::PK;
  throw Error("unknown sampler '" + name + "' (expected pairs, triplets or pk)");
}

std::string to_string(SamplerKind sampler) {
  switch (sampler) {
    case SamplerKind::Pairs: return "pairs";
    case SamplerKind::Triplets: return "triplets";
    case SamplerKind::PK: return "pk";
  }
  return "?";
}

Sampler::Sampler(std::vector<int64_t> labels, SamplerOptions options)
    : labels_(std::move(labels)), options_(options), by_class_(indices_by_class(labels_)) {
  int64_t classes = 0;
  for (size_t c = 0; c < by_class_.size(); ++c) {
    if (!by_class_[c].empty()) ++classes;
    if (by_class_[c].size() >= 2) pair_classes_.push_back(static_cast<int64_t>(c));
  }
  if (classes < 2) throw Error("sampler: need at least 2 classes, found " + std::to_string(classes));
  if (pair_classes_.empty()) throw Error("sampler: no class has 2 items, so there is no positive pair");
  if (options_.pos_fraction < 0 || options_.pos_fraction > 1) {
    throw Error("sampler: pos-fraction must be in [0, 1], got " + std::to_string(options_.pos_fraction));
  }
  if (options_.batch_size < 1) throw Error("sampler: batch size must be >= 1");
  if (options_.kind == SamplerKind::PK) {
    if (options_.p < 2 || options_.k < 2) throw Error("sampler: pk needs P >= 2 and K >= 2");
    if (options_.p > static_cast<int64_t>(pair_classes_.size())) {
      throw Error("sampler: P = " + std::to_string(options_.p) + " but only " +
                  std::to_string(pair_classes_.size()) + " classes have 2 or more items");
    }
  }
}

int64_t Sampler::images_per_batch() const {
  switch (options_.kind) {
    case SamplerKind::Pairs: return 2 * options_.batch_size;
    case SamplerKind::Triplets: return 3 * options_.batch_size;
    case SamplerKind::PK: return options_.p * options_.k;
  }
  return 0;
}

std::vector<BatchPlan> Sampler::plan_epoch(int64_t epoch) const {
  std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
  auto uniform = [&rng](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const int64_t n = static_cast<int64_t>(labels_.size());
  const int64_t batches = std::max<int64_t>(1, n / images_per_batch());
  // Anchors: every item with a partner in its class, in a fresh order each epoch.
  std::vector<int64_t> anchors;
  for (auto c : pair_classes_) anchors.insert(anchors.end(), by_class_[c].begin(), by_class_[c].end());
  std::shuffle(anchors.begin(), anchors.end(), rng);
  size_t next_anchor = 0;
  auto anchor = [&]() {
    if (next_anchor == anchors.size()) {
      std::shuffle(anchors.begin(), anchors.end(), rng);
      next_anchor = 0;
    }
    return anchors[next_anchor++];
  };
  auto positive_of = [&](int64_t a) {
    const auto& same = by_class_[labels_[a]];
    int64_t p = a;
    while (p == a) p = same[uniform(same.size())];
    return p;
  };
  auto negative_of = [&](int64_t a) {
    int64_t x = a;
    while (labels_[x] == labels_[a]) x = uniform(labels_.size());
    return x;
  };

  std::vector<BatchPlan> plan(batches);
  for (auto& batch : plan) {
    const int64_t m = options_.batch_size;
    if (options_.kind == SamplerKind::Pairs) {
      const auto positives = static_cast<int64_t>(std::llround(options_.pos_fraction * m));
      std::vector<int64_t> a(m), b(m);
      batch.similar.assign(m, 0.0f);
      for (int64_t i = 0; i < m; ++i) {
        a[i] = anchor();
        const bool pos = i < positives;
        b[i] = pos ? positive_of(a[i]) : negative_of(a[i]);
        batch.similar[i] = pos ? 1.0f : 0.0f;
      }
      batch.indices = a;
      batch.indices.insert(batch.indices.end(), b.begin(), b.end());
    } else if (options_.kind == SamplerKind::Triplets) {
      std::vector<int64_t> a(m), p(m), q(m);
      for (int64_t i = 0; i < m; ++i) {
        a[i] = anchor();
        p[i] = positive_of(a[i]);
        q[i] = negative_of(a[i]);
      }
      batch.indices = a;
      batch.indices.insert(batch.indices.end(), p.begin(), p.end());
      batch.indices.insert(batch.indices.end(), q.begin(), q.end());
    } else {
      std::vector<int64_t> classes = pair_classes_;
      std::shuffle(classes.begin(), classes.end(), rng);
      for (int64_t c = 0; c < options_.p; ++c) {
        auto items = by_class_[classes[c]];
        if (static_cast<int64_t>(items.size()) >= options_.k) {
          std::shuffle(items.begin(), items.end(), rng);  // K distinct items
          batch.indices.insert(batch.indices.end(), items.begin(), items.begin() + options_.k);
        } else {
          for (int64_t j = 0; j < options_.k; ++j) batch.indices.push_back(items[uniform(items.size())]);
        }
      }
    }
  }
  return plan;
}

}  // namespace siamese
