#pragma once
/// \file training.h  Training a SiamFC network (siamfc.h) through the shared training loop
/// (loop.h): pairs of frames up to max_gap apart from sequences with ground truth, an exemplar
/// crop around the object in one and a search crop around it in the other, the logistic loss over
/// the score map with positives within positive_radius pixels of the object and class-balanced
/// weights (Bertinetto et al. 2016). Also the tracker's model file.
///
/// Thread safety: one training per `out` folder at a time; it sets LibTorch's thread count.

#include <string>
#include <vector>

#include "siamese/core/log.h"
#include "siamese/train/loop.h"
#include "siamese/track/siamfc.h"

namespace siamese {

struct TrackTrainOptions {
  /// Sequences in the OTB layout (sequences.h): "sequences:DIR" or DIR.
  std::string data = "sequences:data/tracking/composite-train";
  TrunkKind trunk = TrunkKind::Compact;
  int64_t pairs = 4000;                ///< training pairs an epoch
  int64_t batch_size = 8;              ///< pairs a step
  int64_t max_gap = 100;               ///< frames between the exemplar's and the search region's, at most
  int64_t validation_sequences = 0;    ///< the last N sequences (name order) validate; 0: a tenth, at least 1
  int64_t validation_pairs = 256;      ///< drawn once (seeded) from them
  int64_t exemplar_size = 127;         ///< exemplar crop, pixels
  int64_t search_size = 239;           ///< search crop while training, pixels (15 × 15 score maps)
  double context = 0.5;                ///< exemplar_side's context
  double positive_radius = 16;         ///< score cells within this many search-crop pixels of the object are positive
  double stretch = 0.05;               ///< each crop's side × U(1 − stretch, 1 + stretch)
  /// The search crop's centre moves by U(−shift, shift) crop pixels on each axis (the
  /// reference's 8; 32 was measured worse on every evaluation set, docs/tracking.md).
  double shift = 8;
  OptimOptions optim = default_optim();
  uint64_t seed = 0;
  int threads = 0;                     ///< intra-op threads; 0 = all cores
  std::string out = "runs/tracker";    ///< run folder (must not hold a run already)

  /// Adam, lr 1e-3 with 100 warm-up steps and the cosine schedule, weight decay 5e-4, 10 epochs,
  /// the best epoch by validation hit@16px.
  static OptimOptions default_optim();
};

/// The options as JSON (OUT/config.json) and back; an unknown or missing key or a bad value
/// throws Error(Corruption).
std::string to_json(const TrackTrainOptions& options);
TrackTrainOptions track_train_options_from_json(const std::string& json);

struct TrackTrainResult {
  SiamFC network{nullptr};          ///< the best epoch's, as OUT/model.pt holds it
  std::vector<EpochRecord> history; ///< val_recall_at_1 = hit@16px, val_map_at_r = hit@8px, val_roc_auc = cell AUC
  double pairs_per_second = 0, train_seconds = 0;
  bool finished = false;            ///< false when the observer stopped the run
};

/// Trains into options.out: config.json, checkpoint.pt and history.csv every epoch, model.pt
/// (the best epoch by options.optim.select_by). Validation: every validation pair's score map,
/// hit@16px / hit@8px = the share whose peak lies within 16 / 8 search-crop pixels of the object,
/// cell AUC = how well the scores rank positive cells above negative ones. Refuses an `out` that
/// holds a run, sequences too few to split (2 at least) or without a usable pair; throws
/// siamese::Error on bad data (sequences.h) or a non-finite loss.
TrackTrainResult train_tracker(const TrackTrainOptions& options, Logger& logger = silent_logger(),
                               TrainObserver* observer = nullptr);
/// Continues the run in `dir` from its last checkpoint with its own options (config.json).
TrackTrainResult resume_tracker(const std::string& dir, Logger& logger = silent_logger(), TrainObserver* observer = nullptr);

/// Writes a tracker model file atomically with a checksum (save_archive): format
/// "siamese-tracker", the trunk and score scale, the weights and free-form JSON `info`.
void save_tracker(const std::string& path, SiamFC& network, const std::string& info = "{}");
/// Loads a tracker model (a file, or DIR/model.pt), in eval mode. Throws Error naming the file
/// when it is missing, corrupt, a similarity model ("siamese train" without --task tracking) or
/// something else.
SiamFC load_tracker(const std::string& path);

}  // namespace siamese
