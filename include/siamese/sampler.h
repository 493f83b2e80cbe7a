#pragma once
/// \file sampler.h  Seeded batch samplers: balanced pairs, triplets and P×K class-balanced batches.
///
/// A sampler plans one epoch at a time from the labels alone. The plan of epoch e depends only on
/// (seed, e), so a resumed run replays exactly the batches an uninterrupted one would have seen.

#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

/// The item indices of each class: result[c] lists, in order, the items labelled c (empty for a
/// label that does not occur). Throws siamese::Error on a negative label.
std::vector<std::vector<int64_t>> indices_by_class(const std::vector<int64_t>& labels);

enum class SamplerKind { Pairs, Triplets, PK };
/// Parses "pairs", "triplets" or "pk"; throws siamese::Error otherwise.
SamplerKind parse_sampler(const std::string& name);
std::string to_string(SamplerKind sampler);

/// One planned batch. The meaning of `indices` depends on the sampler:
///   Pairs:    [a_1..a_n, b_1..b_n], similar[i] = 1 when (a_i, b_i) share a class;
///   Triplets: [a_1..a_n, p_1..p_n, n_1..n_n], similar empty;
///   PK:       P classes × K items, grouped by class, similar empty.
struct BatchPlan {
  std::vector<int64_t> indices;
  std::vector<float> similar;
};

struct SamplerOptions {
  SamplerKind kind = SamplerKind::PK;
  /// Pairs per batch (pairs), triplets per batch (triplets); ignored by pk. Default 128.
  int64_t batch_size = 128;
  /// Fraction of positive pairs in each batch, honoured exactly up to rounding. Default 0.5.
  double pos_fraction = 0.5;
  /// pk: classes per batch (P) and images per class (K). Default 10 × 16.
  int64_t p = 10;
  int64_t k = 16;
  uint64_t seed = 0;
};

/// Plans batches over a labelled set. Classes with a single item never give positives.
class Sampler {
 public:
  /// labels: class of every item (values >= 0). Throws siamese::Error when the labels cannot give
  /// what the options ask for (fewer than 2 classes, no class with 2 items, P above the classes).
  Sampler(std::vector<int64_t> labels, SamplerOptions options);

  /// The batches of epoch `epoch`: enough to show about every item once.
  std::vector<BatchPlan> plan_epoch(int64_t epoch) const;
  /// Distinct images one batch feeds the encoder (2n pairs, 3n triplets, P·K).
  int64_t images_per_batch() const;
  const SamplerOptions& options() const { return options_; }

 private:
  std::vector<int64_t> labels_;
  SamplerOptions options_;
  std::vector<std::vector<int64_t>> by_class_;
  std::vector<int64_t> pair_classes_;  ///< classes with at least 2 items
};

}  // namespace siamese
