#pragma once
/// \file pairs_protocol.h  The LFW pairs protocol (`siamese verify --pairs`): a pairs file's images
/// embedded once each, the distance of every pair, and verification accuracy cross-validated over
/// the file's folds, beside ROC AUC, EER and TAR@FAR.
/// Thread safety: run_pairs_protocol only reads the model (in eval mode, which it requires) and
/// the files; calls may run concurrently, on one model too.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "siamese/data/data.h"
#include "siamese/eval/metrics.h"
#include "siamese/model/model_file.h"

namespace siamese {

/// Everything the protocol measures. Per-pair vectors are in the order of the pairs given.
struct PairsProtocolResult {
  int64_t pairs = 0;   ///< pairs in the file
  int64_t images = 0;  ///< distinct images among them (each embedded once)
  int64_t folds = 0;   ///< folds of the file: its largest fold number + 1
  /// Accuracy cross-validated over the folds (cross_validate: each fold's threshold calibrated on
  /// the other folds); none when the file has a single fold.
  std::optional<CrossValidation> cross_validation;
  double model_threshold = 0;              ///< the model file's calibrated threshold
  double accuracy_at_model_threshold = 0;  ///< accuracy of "same when distance <= model_threshold"
  double roc_auc = 0;                      ///< roc_auc of the pairs' distances
  double eer = 0;                          ///< equal_error_rate
  double tar_at_far_1e_3 = 0;              ///< tar_at_far(1e-3)
  Roc roc;                                 ///< roc_curve of the pairs' distances
  std::vector<double> distance;            ///< [pairs] in the model's Distance
  std::vector<uint8_t> same;               ///< [pairs] 1 for a same pair
  std::vector<int64_t> fold;               ///< [pairs] the fold of each pair
};

/// Runs the protocol on pairs read by read_pairs_file: each distinct image is read at the model's
/// input shape (read_files) and embedded once (embed_inputs); a pair's distance is
/// paired_distance of its two embeddings in the model's Distance. Requires an image model in eval
/// mode. Throws siamese::Error: Unsupported for a sequence model, InvalidArgument for no pairs,
/// and as read_files, embed_inputs and cross_validate do (an image missing, a fold without pairs).
PairsProtocolResult run_pairs_protocol(SavedModel& model, const std::vector<FilePair>& pairs);

/// read_pairs_file(pairs_path, root) (images root/name/name_%04d.EXT), then the above. Throws
/// siamese::Error naming the pairs file and line on a malformed file.
PairsProtocolResult run_pairs_protocol(SavedModel& model, const std::string& pairs_path, const std::string& root);

}  // namespace siamese
