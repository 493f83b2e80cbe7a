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
  /// pk: copies of every planned item, side by side in the batch (P·K·views images); with
  /// augmentation each copy is a different view of the image. Default 1.
  int64_t views = 1;
  /// Class-balanced sampling: anchors and negatives pick a class uniformly, then an item, and pk
  /// picks its P classes uniformly, whatever the class sizes. false: items are drawn uniformly, so
  /// classes appear in proportion to their size (pk: P classes drawn by size). Default true.
  bool balance = true;
  uint64_t seed = 0;
};

/// Offline mining's result: for every item, its `per_item` nearest items of other classes,
/// row-major (items[i * per_item + j]). Empty: no mining.
struct HardNegatives {
  int64_t per_item = 0;
  std::vector<int64_t> items;
  bool empty() const { return per_item == 0; }
};

/// What a plan actually samples: the share of the images of each class and of positive pairs
/// (pairs: planned positives; triplets: 1 in 2; pk: same-class pairs among the batch's pairs).
struct PlanBalance {
  std::vector<double> class_share;  ///< by label, up to the largest of `labels`; classes never sampled get 0
  /// Over the classes that have items in `labels`, drawn or not: smallest and largest share, how many
  /// classes, how many of them the plan draws.
  double min_class_share = 0, max_class_share = 0;
  int64_t classes = 0, classes_drawn = 0;
  double positive_share = 0;
};
PlanBalance plan_balance(const std::vector<BatchPlan>& plan, SamplerKind kind, const std::vector<int64_t>& labels);

/// Plans batches over a labelled set. Classes with a single item never give positives.
/// Thread safety: plan_epoch() is const and depends only on (seed, epoch): calls may run concurrently.
class Sampler {
 public:
  /// labels: class of every item (values >= 0). Throws siamese::Error when the labels cannot give
  /// what the options ask for (fewer than 2 classes, no class with 2 items, P above the classes).
  Sampler(std::vector<int64_t> labels, SamplerOptions options);

  /// The batches of epoch `epoch`: enough to show about every item once. With hard negatives
  /// (offline mining), pairs and triplets draw each anchor's negative among its mined ones, and a
  /// pk batch fills half of each class's K places with mined negatives of the other half's items.
  std::vector<BatchPlan> plan_epoch(int64_t epoch, const HardNegatives& hard = {}) const;
  /// Images one batch feeds the encoder (2n pairs, 3n triplets, P·K·views).
  int64_t images_per_batch() const;
  const SamplerOptions& options() const { return options_; }

 private:
  std::vector<int64_t> labels_;
  SamplerOptions options_;
  std::vector<std::vector<int64_t>> by_class_;
  std::vector<int64_t> classes_;       ///< classes with at least 1 item
  std::vector<int64_t> pair_classes_;  ///< classes with at least 2 items
};

}  // namespace siamese
