#include "siamese/data/sampler.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"

namespace siamese {

std::vector<std::vector<int64_t>> indices_by_class(const std::vector<int64_t>& labels) {
  std::vector<std::vector<int64_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto c = labels[i];
    if (c < 0) {
      throw Error(ErrorCode::InvalidArgument, "negative label " + std::to_string(c) + " at item " + std::to_string(i));
    }
    if (static_cast<size_t>(c) >= by_class.size()) by_class.resize(c + 1);
    by_class[c].push_back(static_cast<int64_t>(i));
  }
  return by_class;
}

constexpr EnumNames<SamplerKind, 3> kSamplerKindNames{{{SamplerKind::Pairs, "pairs"}, {SamplerKind::Triplets, "triplets"}, {SamplerKind::PK, "pk"}}};

SamplerKind parse_sampler(const std::string& name) { return parse_enum(kSamplerKindNames, name, "sampler"); }

std::string to_string(SamplerKind sampler) { return enum_name(kSamplerKindNames, sampler); }

Sampler::Sampler(std::vector<int64_t> labels, SamplerOptions options)
    : labels_(std::move(labels)), options_(options), by_class_(indices_by_class(labels_)) {
  for (size_t c = 0; c < by_class_.size(); ++c) {
    if (!by_class_[c].empty()) classes_.push_back(static_cast<int64_t>(c));
    if (by_class_[c].size() >= 2) pair_classes_.push_back(static_cast<int64_t>(c));
  }
  if (classes_.size() < 2) {
    throw Error(ErrorCode::InvalidArgument,
                "sampler: need at least 2 classes, found " + std::to_string(classes_.size()));
  }
  if (pair_classes_.empty()) {
    throw Error(ErrorCode::InvalidArgument, "sampler: no class has 2 items, so there is no positive pair");
  }
  if (options_.pos_fraction < 0 || options_.pos_fraction > 1) {
    throw Error(ErrorCode::InvalidArgument,
                "sampler: pos-fraction must be in [0, 1], got " + std::to_string(options_.pos_fraction));
  }
  if (options_.batch_size < 1) throw Error(ErrorCode::InvalidArgument, "sampler: batch size must be >= 1");
  if (options_.views != 1 && options_.kind != SamplerKind::PK) {
    throw Error(ErrorCode::InvalidArgument, "sampler: views need the pk sampler");
  }
  if (options_.kind == SamplerKind::PK) {
    if (options_.p < 2 || options_.k < 2) {
      throw Error(ErrorCode::InvalidArgument, "sampler: pk needs P >= 2 and K >= 2");
    }
    if (options_.views < 1) throw Error(ErrorCode::InvalidArgument, "sampler: views must be >= 1");
    if (options_.p > static_cast<int64_t>(pair_classes_.size())) {
      throw Error(ErrorCode::InvalidArgument,
                  "sampler: P = " + std::to_string(options_.p) + " but only " +
                      std::to_string(pair_classes_.size()) + " classes have 2 or more items");
    }
  }
}

int64_t Sampler::images_per_batch() const {
  switch (options_.kind) {
    case SamplerKind::Pairs: return 2 * options_.batch_size;
    case SamplerKind::Triplets: return 3 * options_.batch_size;
    case SamplerKind::PK: return options_.p * options_.k * options_.views;
  }
  return 0;
}

PlanBalance plan_balance(const std::vector<BatchPlan>& plan, SamplerKind kind, const std::vector<int64_t>& labels) {
  PlanBalance b;
  double images = 0, positives = 0, pairs = 0;
  for (const auto& batch : plan) {
    std::vector<int64_t> per_class;
    for (auto i : batch.indices) {
      const auto c = labels.at(i);
      if (static_cast<size_t>(c) >= b.class_share.size()) b.class_share.resize(c + 1, 0.0);
      b.class_share[c] += 1;
      if (static_cast<size_t>(c) >= per_class.size()) per_class.resize(c + 1, 0);
      ++per_class[c];
      images += 1;
    }
    if (kind == SamplerKind::Pairs) {
      for (auto y : batch.similar) positives += y;
      pairs += static_cast<double>(batch.similar.size());
    } else if (kind == SamplerKind::Triplets) {
      positives += static_cast<double>(batch.indices.size()) / 3;
      pairs += 2.0 * static_cast<double>(batch.indices.size()) / 3;
    } else {
      const auto n = static_cast<double>(batch.indices.size());
      for (auto m : per_class) positives += m * (m - 1) / 2.0;
      pairs += n * (n - 1) / 2;
    }
  }
  for (auto& share : b.class_share) share /= std::max(1.0, images);
  b.positive_share = positives / std::max(1.0, pairs);
  std::vector<bool> has_items;
  for (auto c : labels) {
    if (static_cast<size_t>(c) >= has_items.size()) has_items.resize(c + 1, false);
    has_items[c] = true;
  }
  b.class_share.resize(std::max(b.class_share.size(), has_items.size()), 0.0);
  b.min_class_share = 1;
  for (size_t c = 0; c < has_items.size(); ++c) {
    if (!has_items[c]) continue;
    const double share = b.class_share[c];
    b.min_class_share = std::min(b.min_class_share, share), b.max_class_share = std::max(b.max_class_share, share);
    ++b.classes, b.classes_drawn += share > 0;
  }
  if (b.classes == 0) b.min_class_share = 0;
  return b;
}

std::vector<BatchPlan> Sampler::plan_epoch(int64_t epoch, const HardNegatives& hard) const {
  std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
  auto uniform = [&rng](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  const int64_t n = static_cast<int64_t>(labels_.size());
  const int64_t batches = std::max<int64_t>(1, n / (images_per_batch() / std::max<int64_t>(1, options_.views)));
  // Anchors: every item with a partner in its class, in a fresh order each epoch.
  std::vector<int64_t> anchors;
  for (auto c : pair_classes_) anchors.insert(anchors.end(), by_class_[c].begin(), by_class_[c].end());
  std::shuffle(anchors.begin(), anchors.end(), rng);
  size_t next_anchor = 0;
  auto anchor = [&]() {
    if (options_.balance) {  // a class uniformly, then one of its items
      const auto& items = by_class_[pair_classes_[uniform(pair_classes_.size())]];
      return items[uniform(items.size())];
    }
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
    if (!hard.empty()) return hard.items[a * hard.per_item + uniform(hard.per_item)];
    if (options_.balance) {
      int64_t c = labels_[a];
      while (c == labels_[a]) c = classes_[uniform(classes_.size())];
      const auto& items = by_class_[c];
      return items[uniform(items.size())];
    }
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
      if (options_.balance) {
        std::shuffle(classes.begin(), classes.end(), rng);
      } else {  // P classes drawn without replacement with weights = class sizes
        std::vector<std::pair<double, int64_t>> keys;
        for (auto c : classes) {
          const double u = std::uniform_real_distribution<double>(1e-12, 1)(rng);
          keys.emplace_back(-std::log(u) / static_cast<double>(by_class_[c].size()), c);
        }
        std::sort(keys.begin(), keys.end());
        for (size_t i = 0; i < keys.size(); ++i) classes[i] = keys[i].second;
      }
      // With hard negatives, half of each class's places go to mined negatives of the other half.
      const int64_t own = hard.empty() ? options_.k : (options_.k + 1) / 2;
      std::vector<int64_t> anchors_here;
      for (int64_t c = 0; c < options_.p; ++c) {
        auto items = by_class_[classes[c]];
        if (static_cast<int64_t>(items.size()) >= own) {
          std::shuffle(items.begin(), items.end(), rng);  // distinct items
          anchors_here.insert(anchors_here.end(), items.begin(), items.begin() + own);
        } else {
          for (int64_t j = 0; j < own; ++j) anchors_here.push_back(items[uniform(items.size())]);
        }
      }
      batch.indices = anchors_here;
      if (!hard.empty()) {
        for (int64_t j = 0; j < options_.p * options_.k - static_cast<int64_t>(anchors_here.size()); ++j) {
          batch.indices.push_back(negative_of(anchors_here[j]));
        }
      }
      if (options_.views > 1) {
        std::vector<int64_t> copies;
        for (auto i : batch.indices) copies.insert(copies.end(), options_.views, i);
        batch.indices = std::move(copies);
      }
    }
  }
  return plan;
}

}  // namespace siamese
