#pragma once
/// \file trainer.h  Training a Siamese network end to end: data, sampler, loss, optimiser, LR
/// schedule, per-epoch validation, best-model keeping, atomic checkpoints and resume.

#include <functional>
#include <string>
#include <vector>

#include "siamese/data.h"
#include "siamese/loss.h"
#include "siamese/metrics.h"
#include "siamese/miner.h"
#include "siamese/model_file.h"
#include "siamese/network.h"
#include "siamese/sampler.h"

namespace siamese {

enum class Schedule { None, Step, Cosine };
Schedule parse_schedule(const std::string& name);  ///< "none" | "step" | "cosine"
std::string to_string(Schedule schedule);

/// One row of history.csv.
struct EpochRecord {
  int64_t epoch = 0;
  double loss = 0, lr = 0;
  double val_recall_at_1 = 0, val_map_at_r = 0, val_roc_auc = 0;
  double images_per_second = 0, seconds = 0;
  double data_wait_seconds = 0;  ///< time the training loop spent waiting for the loader
  double active_fraction = 0;    ///< pairs/triplets with non-zero loss among those used (pk sampler)
};

struct TrainOptions {
  /// Data specification (see open_data) and which images train / validate / test.
  std::string data = "fashion-mnist";
  SplitOptions split;
  /// Network; input_mean / input_std are replaced by the training split's pixel statistics.
  SiameseNetworkOptions network = SiameseNetworkOptions().cnn(CnnEncoderOptions().normalize(true));
  SamplerOptions sampler;
  LossKind loss = LossKind::Triplet;
  /// Which pairs/triplets of a pk batch count (see miner.h). Default all.
  MinerKind miner = MinerKind::All;
  /// Loss margin. Default 0.2 (suits unit-length embeddings with the Euclidean distance).
  double margin = 0.2;
  std::string optimizer = "adam";  ///< "adam" | "sgd" (momentum 0.9)
  double lr = 2e-3;
  double weight_decay = 0;
  Schedule schedule = Schedule::Cosine;
  int64_t warmup_steps = 100;  ///< linear warm-up from lr/warmup_steps to lr
  int64_t step_size = 3;       ///< step schedule: multiply the LR by gamma every step_size epochs
  double gamma = 0.1;
  int64_t epochs = 8;
  uint64_t seed = 0;
  int threads = 0;        ///< intra-op threads; 0 = all cores
  int workers = 1;        ///< loader threads
  bool progress = true;   ///< progress bar on stderr
  std::string out = "runs/latest";
  /// Called after each epoch's checkpoint is written; return false to stop (as if killed there).
  std::function<bool(const EpochRecord&)> on_epoch_end;
};

/// The options as JSON (written to OUT/config.json) and back; unknown keys are an error.
std::string to_json(const TrainOptions& options);
TrainOptions train_options_from_json(const std::string& json);

struct TrainResult {
  SavedModel model;                 ///< best model by validation MAP@R, threshold calibrated
  std::vector<EpochRecord> history;
  EvalReport test;                  ///< the protocol's metrics on the test split
  double images_per_second = 0;     ///< training throughput (forward + backward + step)
  double train_seconds = 0;
  bool finished = false;            ///< false when on_epoch_end stopped the run early
};

/// Trains into options.out: config.json, checkpoint.pt (every epoch), model.pt (best so far),
/// history.csv and, at the end, metrics.json. Refuses an `out` folder that already holds a run
/// (nothing there is touched). Throws siamese::Error on bad data or options, and on a NaN loss.
TrainResult train(const TrainOptions& options);

/// Continues the run in `dir` from its last complete checkpoint, with the options it started with.
/// With the same seed the result equals that of an uninterrupted run.
TrainResult resume(const std::string& dir);

/// The learning rate at a global step (warm-up, then the schedule over total_steps).
double learning_rate(const TrainOptions& options, int64_t step, int64_t steps_per_epoch);

}  // namespace siamese
