#pragma once
/// \file trainer.h  Training a Siamese network end to end: data, sampler, loss, optimiser, LR
/// schedule, per-epoch validation, best-model keeping, atomic checkpoints and resume.

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "siamese/data/augment.h"
#include "siamese/data/data.h"
#include "siamese/train/loss.h"
#include "siamese/eval/metrics.h"
#include "siamese/train/loop.h"
#include "siamese/train/miner.h"
#include "siamese/model/model_file.h"
#include "siamese/model/network.h"
#include "siamese/data/sampler.h"
#include "siamese/data/sequence.h"

namespace siamese {

struct TrainOptions {
  /// Data specification (see open_data) and which images train / validate / test.
  std::string data = "fashion-mnist";
  /// Image data: which images train / validate / test. Sequence data (sequence.h specs): only
  /// validation_size counts (whole classes held out of the training file).
  SplitOptions split;
  /// Sequence data: cut longer items to this many steps (0 = no limit); counted in the load
  /// summary. Default 0.
  int64_t max_length = 0;
  /// Network; input_mean / input_std are replaced by the training split's pixel (or numeric step
  /// feature) statistics, input shapes and the vocabulary by those of the data.
  SiameseNetworkOptions network = SiameseNetworkOptions().cnn(CnnEncoderOptions().normalize(true));
  SamplerOptions sampler;
  /// Transforms applied to every training image in the loader threads (augment.h). Default none.
  AugmentOptions augment;
  LossKind loss = LossKind::Triplet;
  /// Which pairs/triplets of a pk batch count (see miner.h). Default all.
  MinerKind miner = MinerKind::All;
  /// Class augmentation: 4 (or 2) adds every training image rotated by 90°, 180°, 270° (or 180°)
  /// as new classes (RotatedClasses); an epoch then covers the rotated images too. Default 1 (off).
  int64_t class_rotations = 1;
  /// Weight of an instance term added to the loss: the same loss and miner over the batch with
  /// only the views of one image as positives (needs sampler.views >= 2 and augmentation). It keeps
  /// the features that tell images apart within a class, which classes never seen in training
  /// need. Default 0 (off).
  double instance_weight = 0;
  /// ntxent loss: the temperature dividing cosine similarities. Default 0.1.
  double temperature = 0.1;
  /// Loss margin. Default 0.2 (suits unit-length embeddings with the Euclidean distance).
  double margin = 0.2;
  std::string optimizer = "adam";  ///< "adam" | "sgd" (momentum 0.9)
  double lr = 2e-3;
  double weight_decay = 0;
  Schedule schedule = Schedule::Cosine;
  int64_t warmup_steps = 100;  ///< linear warm-up from lr/warmup_steps to lr
  int64_t step_size = 3;       ///< step schedule: multiply the LR by gamma every step_size epochs
  double gamma = 0.1;          ///< step and plateau schedules: LR factor at each drop
  /// plateau schedule: epochs without a better validation metric before the LR drops. Default 1.
  int64_t patience = 1;
  /// Stop after this many epochs without a better validation metric (0 = never). Default 0.
  int64_t early_stop = 0;
  /// Validation metric that picks the best model (and drives plateau and early stopping):
  /// "map_at_r" (default), "recall_at_1" or "roc_auc".
  std::string select_by = "map_at_r";
  /// Offline hard-negative mining: every N epochs (0 = never) embed the training set and find
  /// each image's `offline_negatives` nearest images of other classes; later batches draw their
  /// negatives among them (Sampler::plan_epoch). Defaults 0 and 10.
  int64_t offline_mining_every = 0;
  int64_t offline_negatives = 10;
  int64_t epochs = 8;
  uint64_t seed = 0;
  int threads = 0;        ///< intra-op threads; 0 = all cores
  int workers = 1;        ///< loader threads
  std::string out = "runs/latest";
};

/// `options` with the configuration that recognised classes never seen in training best in
/// docs/ablation.md (scripts/ablation, fmnist-unseen, 3 seeds): batch-hard mining; rotation, scale,
/// translation, crop, flip, noise and contrast augmentation; 2 views of every image in a pk batch
/// with the instance term (weight 10) and K = 8; the plateau schedule. `siamese train --protocol
/// fmnist-unseen` starts from it (flags given override it). The defaults above stay for the rest:
/// on classes seen in training the recipe does worse (docs/ablation.md), and sequences cannot be
/// augmented.
TrainOptions image_recipe(TrainOptions options);

/// The options as JSON (written to OUT/config.json) and back; unknown keys are an error.
std::string to_json(const TrainOptions& options);
TrainOptions train_options_from_json(const std::string& json);

struct TrainResult {
  SavedModel model;                 ///< best model by the select_by metric, threshold calibrated
  std::vector<EpochRecord> history;
  EvalReport test;                  ///< the protocol's metrics on the test split
  double images_per_second = 0;     ///< training throughput (forward + backward + step)
  double train_seconds = 0;
  bool finished = false;            ///< false when on_epoch_end stopped the run early
  bool stopped_early = false;       ///< early stopping ended training before options.epochs
};

/// Trains into options.out: config.json, checkpoint.pt (every epoch), model.pt (best so far),
/// history.csv and, at the end, metrics.json, through run_training_loop (loop.h). Refuses an `out`
/// folder that already holds a run (nothing there is touched). Messages go to `logger` (nothing is
/// printed otherwise); `observer` sees every step and epoch and may stop the run. Throws
/// siamese::Error on bad data or options, and on a NaN loss.
/// Thread safety: one call per `out` folder at a time; it sets LibTorch's global thread count.
TrainResult train(const TrainOptions& options, Logger& logger = silent_logger(), TrainObserver* observer = nullptr);

/// Continues the run in `dir` from its last complete checkpoint, with the options it started with.
/// With the same seed the result equals that of an uninterrupted run.
TrainResult resume(const std::string& dir, Logger& logger = silent_logger(), TrainObserver* observer = nullptr);

/// The loop's part of the options (epochs, optimiser, schedule, selection, seed, out).
LoopOptions loop_options(const TrainOptions& options);
/// standing() and learning_rate() of loop.h for these options.
Standing standing(const std::vector<EpochRecord>& history, const TrainOptions& options);
double learning_rate(const TrainOptions& options, int64_t step, int64_t steps_per_epoch);

}  // namespace siamese
