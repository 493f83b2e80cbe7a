#pragma once
/// \file metrics.h  (Thread safety: the metric functions are pure and may run concurrently; the
/// functions that embed (evaluate, calibrate_on) may run concurrently on one
/// network in eval mode, which they require and never change.)
/// Evaluation: retrieval (Recall@K, MAP@R), verification (ROC, AUC, EER,
/// TAR@FAR, calibrated threshold), N-way K-shot episodes, and the protocol report.

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "siamese/data/data.h"
#include "siamese/core/distance.h"
#include "siamese/model/network.h"

namespace siamese {

/// Leave-one-out retrieval: each item queries all the others.
struct RetrievalMetrics {
  double recall_at_1 = 0;  ///< fraction of queries whose nearest neighbour shares their class
  double recall_at_5 = 0;  ///< ... with a same-class item among the 5 nearest
  double map_at_r = 0;     ///< MAP@R of Musgrave et al. 2020, R = number of other same-class items
  std::vector<double> recall_at_1_by_class;  ///< Recall@1 of each label's queries (0 for absent labels)
};
/// embeddings [N, D], labels [N]. Queries go in blocks, so memory is O(block · N).
RetrievalMetrics retrieval_metrics(const torch::Tensor& embeddings, const std::vector<int64_t>& labels,
                                   Distance distance);

/// Pairs of items, `same[i]` = 1 when a[i] and b[i] share a class.
struct Pairs {
  std::vector<int64_t> a, b;
  std::vector<uint8_t> same;
};
/// count/2 positive then count/2 negative pairs, drawn uniformly with the seed (std::mt19937_64):
/// a positive picks a random item and another item of its class; a negative, two items of
/// different classes. Throws siamese::Error when no class has 2 items.
Pairs balanced_pairs(const std::vector<int64_t>& labels, int64_t count, uint64_t seed);
/// Distances of the pairs: [pairs.a.size()].
std::vector<double> pair_distances(const torch::Tensor& embeddings, const Pairs& pairs, Distance distance);

/// A pair is called "same" when its distance is <= threshold.
struct Roc {
  std::vector<double> threshold;  ///< ascending distances at which the decision changes
  std::vector<double> fpr;        ///< false accept rate at each threshold
  std::vector<double> tpr;        ///< true accept rate at each threshold
};
Roc roc_curve(const std::vector<double>& distance, const std::vector<uint8_t>& same);
/// Area under the ROC curve, ties counted half (the Mann–Whitney statistic).
double roc_auc(const std::vector<double>& distance, const std::vector<uint8_t>& same);
/// Equal error rate: where the false accept rate equals the false reject rate (interpolated).
double equal_error_rate(const std::vector<double>& distance, const std::vector<uint8_t>& same);
/// Largest true accept rate whose false accept rate is <= far.
double tar_at_far(const std::vector<double>& distance, const std::vector<uint8_t>& same, double far);
/// True when every pair lies at one distance (within a millionth of it): the embeddings carry no
/// information, as when a network has collapsed to a single point.
bool all_at_one_distance(const std::vector<double>& distance);
/// The threshold with the best accuracy: midway between the two distances it separates.
double calibrate_threshold(const std::vector<double>& distance, const std::vector<uint8_t>& same);
double accuracy_at(const std::vector<double>& distance, const std::vector<uint8_t>& same, double threshold);

/// N-way K-shot episodes: each picks N classes, K support items and one query per class, and
/// classifies each query by its nearest class mean of support embeddings. Returns the fraction of
/// queries classified right over `episodes` episodes (N · episodes queries).
double few_shot_accuracy(const torch::Tensor& embeddings, const std::vector<int64_t>& labels,
                         Distance distance, int64_t n_way, int64_t k_shot, int64_t episodes, uint64_t seed);

/// Verification accuracy cross-validated over folds (the LFW protocol): for each fold, the
/// threshold is calibrated on all other folds and the accuracy measured on that fold.
struct CrossValidation {
  std::vector<double> fold_accuracy, fold_threshold;  ///< by fold, 0..max(fold)
  double accuracy_mean = 0, accuracy_std = 0;         ///< over folds (std with divisor folds)
};
/// distance, same and fold: one entry per pair. Throws siamese::Error on fewer than 2 folds or a
/// fold without pairs.
CrossValidation cross_validate(const std::vector<double>& distance, const std::vector<uint8_t>& same,
                               const std::vector<int64_t>& fold);

/// How a query is matched to the support set of one-shot classification.
enum class SupportRule {
  ClassMean,  ///< distance to the mean support embedding of each class (prototypes)
  Nearest     ///< distance to the nearest single support embedding of each class
};
SupportRule parse_support_rule(const std::string& name);  ///< "mean" | "nearest"

/// One query's answer: the support class chosen, or -1 ("none of these") when even the best
/// distance is above the threshold; `distance` is that best distance either way.
struct SupportMatch {
  int64_t label = -1;
  double distance = 0;
};
/// Classifies queries [Q, D] against support embeddings [S, D] with labels [S] (>= 2 classes).
/// threshold < 0 never answers "none". Throws siamese::Error on fewer than 2 support classes or
/// mismatched shapes.
std::vector<SupportMatch> classify_by_support(const torch::Tensor& queries, const torch::Tensor& support,
                                              const std::vector<int64_t>& support_labels, Distance distance,
                                              SupportRule rule, double threshold);

/// Everything `siamese eval` prints. Fields not computed stay negative.
struct EvalReport {
  std::string protocol;
  double recall_at_1 = -1, recall_at_5 = -1, map_at_r = -1;
  double verification_accuracy = -1, threshold = -1, roc_auc = -1, eer = -1, tar_at_far_1e_3 = -1;
  double oneshot_5way_1shot = -1, oneshot_5way_5shot = -1, oneshot_20way_1shot = -1;
  std::map<int64_t, double> recall_at_1_by_class;  ///< label -> Recall@1 of its test queries
  int64_t test_images = 0, test_pairs = 0;
};
/// One JSON object with the fields of DESIGN §6 (negative fields left out).
/// by_class: include recall_at_1_by_class (consoles leave it out of long class lists).
std::string to_json(const EvalReport& report, bool by_class = true);

struct EvalOptions {
  TORCH_ARG(int64_t, test_pairs) = 10000;    ///< balanced test pairs, drawn with pair_seed
  TORCH_ARG(uint64_t, pair_seed) = 0;        ///< DESIGN §6: seed 0
  TORCH_ARG(int64_t, episodes) = 1000;       ///< N-way K-shot episodes (unseen protocol)
  TORCH_ARG(bool, few_shot) = false;         ///< run 5-way 1- and 5-shot, and 20-way 1-shot, episodes where the classes allow
};

/// The protocol's metrics on `test`, at `threshold` (calibrated on validation pairs beforehand);
/// the test items embedded are counted to `logger`.
EvalReport evaluate(SiameseNetwork& network, const Dataset& test, double threshold, const EvalOptions& options,
                    Logger& logger = silent_logger());

/// evaluate() on given embeddings [N, D] of items with these labels (N of them), e.g. features
/// that no network made. Throws siamese::Error on NaN/inf embeddings or a size mismatch.
EvalReport evaluate_embeddings(const torch::Tensor& embeddings, const std::vector<int64_t>& labels, Distance distance,
                               double threshold, const EvalOptions& options);

/// The protocol's non-learned reference for image data: raw pixels (scaled to [0, 1], flattened)
/// compared by Euclidean distance, the threshold calibrated on balanced pairs of `validation`
/// (seed 1, as calibrate_on), then evaluate_embeddings on `test`. nullopt when the data sets
/// are not ImageDatasets (sequences have no such reference).
std::optional<EvalReport> raw_pixel_reference(const Dataset& test, const Dataset& validation, const EvalOptions& options,
                                              int64_t calibration_pairs = 10000);

/// Calibrates the same/different threshold on balanced pairs of `validation` (seed 1).
double calibrate_on(SiameseNetwork& network, const Dataset& validation, int64_t pairs = 10000);

}  // namespace siamese
