#pragma once
/// \file loop.h  The training loop every kind of training shares: epochs, optimiser, learning-rate
/// schedule (warm-up, step, cosine, plateau), early stopping, atomic checkpoints and resume,
/// history.csv, progress. What varies by task (making a batch, its loss, validating, keeping the
/// best model) sits behind TrainingTask; train() in trainer.h is the embedding task, and a tracker
/// (frame pairs, score maps) or a multi-process trainer plugs in the same way.
///
/// Thread safety: one loop runs on the calling thread; a task is driven by one loop at a time.

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "siamese/core/log.h"
#include "siamese/data/data.h"

namespace siamese {

class ProcessGroup;  // distributed.h

enum class Schedule { None, Step, Cosine, Plateau };
Schedule parse_schedule(const std::string& name);  ///< "none" | "step" | "cosine" | "plateau"
std::string to_string(Schedule schedule);

/// One row of history.csv.
struct EpochRecord {
  int64_t epoch = 0;
  double loss = 0, lr = 0;
  double val_recall_at_1 = 0, val_map_at_r = 0, val_roc_auc = 0;
  double images_per_second = 0, seconds = 0;
  double data_wait_seconds = 0;  ///< time the training loop spent waiting for the loader
  double active_fraction = 0;    ///< pairs/triplets with non-zero loss among those used (pk sampler)
  /// What the epoch's plan sampled (plan_balance): smallest and largest share of the images of a
  /// training class, and the share of positive pairs.
  double min_class_share = 0, max_class_share = 0, positive_share = 0;
};

/// The validation metric that picks the best epoch (and drives plateau and early stopping):
/// "map_at_r", "recall_at_1" or "roc_auc".
enum class SelectBy { MapAtR, RecallAt1, RocAuc };
SelectBy parse_select_by(const std::string& name);
std::string to_string(SelectBy select_by);
double select_metric(const EpochRecord& record, SelectBy select_by);

/// "adam" or "sgd" (momentum 0.9).
enum class OptimizerKind { Adam, Sgd };
OptimizerKind parse_optimizer(const std::string& name);
std::string to_string(OptimizerKind optimizer);

/// Optimisation: how many epochs, the optimiser, the learning-rate schedule, how epochs are ranked.
struct OptimOptions {
  int64_t epochs = 8;
  OptimizerKind optimizer = OptimizerKind::Adam;
  double lr = 2e-3;  ///< peak learning rate
  double weight_decay = 0;
  Schedule schedule = Schedule::Cosine;
  int64_t warmup_steps = 100;  ///< linear warm-up from lr/warmup_steps to lr
  int64_t step_size = 3;       ///< step schedule: multiply the LR by gamma every step_size epochs
  double gamma = 0.1;          ///< step and plateau schedules: LR factor at each drop
  int64_t patience = 1;        ///< plateau: epochs without a better metric before the LR drops
  int64_t early_stop = 0;      ///< stop after this many epochs without a better metric (0 = never)
  SelectBy select_by = SelectBy::MapAtR;
};

/// The loop's settings.
struct LoopOptions {
  OptimOptions optim;
  uint64_t seed = 0;  ///< epoch e seeds torch with seed + 1000003·(e + 1)
  std::string out;    ///< run folder: checkpoint.pt and history.csv
  /// Processes that train together (distributed.h), or none: one process alone. With a group,
  /// the loop broadcasts rank 0's weights at the start and after every epoch (batch-norm
  /// statistics are each rank's own within an epoch, as in PyTorch's DDP), sums the gradients
  /// over the ranks between backward and step (the task's loss must make each rank's gradient
  /// its share of the combined batch's), and only rank 0 logs, writes files, keeps the best
  /// model and tells the observer; an observer's stop on rank 0 stops every rank.
  std::shared_ptr<ProcessGroup> group;
  /// Where the task's module is (device.h): a checkpoint's weights and optimiser state are
  /// loaded there. Default the CPU.
  c10::Device device = c10::kCPU;
};

/// The learning rate at a global step (warm-up, then the schedule over epochs · steps_per_epoch).
/// The plateau schedule's drops depend on validation results; the loop multiplies them in.
double learning_rate(const OptimOptions& options, int64_t step, int64_t steps_per_epoch);

/// Where a run stands after the epochs in `history`, by options.select_by: the best validation
/// metric, the plateau schedule's LR factor (× gamma after each `patience` epochs without a new
/// best) and the epochs since the last new best (early stopping).
struct Standing {
  double best = -std::numeric_limits<double>::infinity();
  double lr_scale = 1;
  int64_t since_best = 0;
};
Standing standing(const std::vector<EpochRecord>& history, const OptimOptions& options);

/// The loss of one batch and, for mined losses, how many of the pairs/triplets it weighed were
/// active (non-zero) among those selected.
struct StepLoss {
  torch::Tensor loss;  ///< scalar, requires grad
  int64_t active = 0, selected = 0;
};

/// What one kind of training supplies to the loop.
class TrainingTask {
 public:
  virtual ~TrainingTask() = default;
  /// The module whose parameters the loop optimises and checkpoints.
  virtual torch::nn::Module& module() = 0;
  /// Before epoch `epoch` (0-based): plans its batches (in `record`, the plan's statistics) and
  /// returns how many there are.
  virtual int64_t begin_epoch(int64_t epoch, EpochRecord& record) = 0;
  /// The epoch's next batch, or nullopt after its last. The loop times this call as data wait.
  virtual std::optional<Batch> next_batch() = 0;
  /// The loss of a batch at global step `step` (module in training mode).
  virtual StepLoss loss(const Batch& batch, int64_t step) = 0;
  /// After the epoch's steps: fills `record`'s validation metrics.
  virtual void validate(EpochRecord& record) = 0;
  /// What the epoch summary calls EpochRecord's val_recall_at_1, val_map_at_r and val_roc_auc.
  virtual std::array<std::string, 3> metric_names() const { return {"R@1", "MAP@R", "AUC"}; }
  /// A line the loop logs (LogLevel::Progress) under the epoch's summary, or "" for none.
  virtual std::string epoch_note() const { return ""; }
  /// `record` is the best epoch so far (by select_by): keep the model (e.g. write model.pt).
  virtual void keep_best(const EpochRecord& record) = 0;
  /// State a checkpoint holds besides weights, optimiser, step and history (e.g. mined negatives).
  virtual void save_state(torch::serialize::OutputArchive& archive) const { (void)archive; }
  virtual void load_state(torch::serialize::InputArchive& archive) { (void)archive; }
};

/// Where a step stands, for progress displays.
struct StepProgress {
  int64_t epoch = 0, epochs = 0;  ///< 1-based epoch of epochs
  int64_t step = 0, steps = 0;    ///< 1-based step of the epoch's steps
  double mean_loss = 0;           ///< over the epoch so far
  double images_per_second = 0;   ///< over the epoch so far
  double eta_seconds = 0;         ///< to the end of the last epoch
};

/// Told what the loop is doing. Every method has a do-nothing default.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  /// After every training step.
  virtual void on_step(const StepProgress& progress) { (void)progress; }
  /// After each epoch's checkpoint is written; return false to stop (as if killed there).
  virtual bool on_epoch_end(const EpochRecord& record) { (void)record; return true; }
};

struct LoopResult {
  std::vector<EpochRecord> history;
  double images_per_second = 0;  ///< training throughput over every epoch (forward, backward, step)
  double train_seconds = 0;
  bool finished = false;       ///< false when an observer stopped the run
  bool stopped_early = false;  ///< early stopping ended training before options.epochs
};

/// Runs epochs until options.epochs, early stopping or an observer's stop. With resume, continues
/// from options.out/checkpoint.pt when it exists (weights, optimiser, step, history, task state);
/// with the same seed the result equals an uninterrupted run's. Writes checkpoint.pt and
/// history.csv atomically after every epoch, and logs one summary line per epoch (Progress). Throws siamese::Error on a non-finite loss (the last
/// checkpoint stays intact), a corrupt checkpoint (Corruption; its checksum is checked, a checkpoint
/// written before checkpoints carried one is read unchecked) or a failed checkpoint write (IOError).
LoopResult run_training_loop(TrainingTask& task, const LoopOptions& options, bool resume,
                             Logger& logger = silent_logger(), TrainObserver* observer = nullptr);

}  // namespace siamese
