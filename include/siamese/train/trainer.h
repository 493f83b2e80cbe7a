#pragma once
/// \file trainer.h  Training a Siamese network end to end: data, sampler, loss, optimiser, LR
/// schedule, per-epoch validation, best-model keeping, atomic checkpoints and resume.

#include <functional>
#include <limits>
#include <memory>
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

/// What trains, validates and tests.
struct DataOptions {
  /// Data specification: an image spec (open_data) or a sequence spec (is_sequence_spec).
  /// Default "fashion-mnist".
  std::string spec = "fashion-mnist";
  /// Image data: which images train / validate / test. Sequence data: only validation_size
  /// counts (whole classes held out of the training file). A validation_size of 0 is resolved
  /// by train() (and so stored in config.json): a fifth of the training images, at most 5000;
  /// 5000 for sequences.
  SplitOptions split;
  /// Sequence data: cut longer items to this many steps (0 = no limit); counted in the load
  /// summary. Default 0.
  int64_t max_length = 0;
  /// Transforms applied to every training image in the loader threads (augment.h). Default none.
  AugmentOptions augment;
  /// Class augmentation: 4 (or 2) adds every training image rotated by 90°, 180°, 270° (or 180°)
  /// as new classes (RotatedClasses); an epoch then covers the rotated images too. Default 1 (off).
  int64_t class_rotations = 1;
  /// How image data are read: photographs of any size through a view (--image-size and the rest),
  /// the cache, bad files, the pixel limit (photos.h). Default: images as they are, in memory.
  ImageReadOptions images;
  /// Per-channel input mean and standard deviation (e.g. ImageNet's); empty (default): computed on
  /// the training images.
  std::vector<double> mean, std;
};

/// The loss and which pairs or triplets count.
struct LossOptions {
  LossKind kind = LossKind::Triplet;  ///< default triplet
  /// Which pairs/triplets of a pk batch count (see miner.h). Default all.
  MinerKind miner = MinerKind::All;
  /// Loss margin. Default 0.2 (suits unit-length embeddings with the Euclidean distance).
  double margin = 0.2;
  /// ntxent loss: the temperature dividing cosine similarities. Default 0.1.
  double temperature = 0.1;
  /// Weight of an instance term added to the loss: the same loss and miner over the batch with
  /// only the views of one image as positives (needs sampler.views >= 2 and augmentation). It keeps
  /// the features that tell images apart within a class, which classes never seen in training
  /// need. Default 0 (off).
  double instance_weight = 0;
  /// Weight of the loss whose positives are the images of one class (the labels). 0, with an
  /// instance term: instance discrimination, the loss never sees a label (the pk sampler still
  /// draws class-balanced batches, and validation still scores with labels). Default 1.
  double label_weight = 1;
  /// Offline hard-negative mining: every N epochs (0 = never) embed the training set and find
  /// each image's `offline_negatives` nearest images of other classes; later batches draw their
  /// negatives among them (Sampler::plan_epoch). Defaults 0 and 10.
  int64_t offline_mining_every = 0;
  int64_t offline_negatives = 10;
};

/// Where and with what a run computes.
struct RuntimeOptions {
  uint64_t seed = 0;               ///< weights, sampling, augmentation and pairs; default 0
  int threads = 0;                 ///< intra-op threads; 0 = all cores
  int workers = 1;                 ///< loader threads; default 1
  std::string out = "runs/latest"; ///< run folder (must not hold a run already)
  /// Processes that train together (distributed.h; not in config.json), or none. Every rank draws
  /// the epoch's seeded plan and takes its share of each batch; the embeddings of the whole batch
  /// are all-gathered so that the miner and the loss see every rank's items, gradients flow
  /// through the local ones, and summed over the ranks they are those of one process with the
  /// combined batch (batch-norm statistics aside: each rank normalises its share). Validation
  /// embeds a share per rank and gathers them; only rank 0 writes files and scores the test
  /// split. With threads 0, the cores are shared among the group's processes on this machine.
  std::shared_ptr<ProcessGroup> group;
  /// Where the network trains (device.h: CPU or a CUDA GPU; not in config.json, so that a run
  /// started on a GPU resumes on any machine). Batches are moved there per step; the miners run
  /// on the CPU. Model files and checkpoints load on any device. Default the CPU.
  c10::Device device = c10::kCPU;
  /// Mixed precision: forward passes under bfloat16 autocast (AutocastGuard), losses and the
  /// optimiser in float32. Default false.
  bool amp = false;
};

/// Everything a training run takes, in groups. config.json holds it as one flat object, one key
/// per field (to_json), so a run folder describes itself.
/// Where a new run's weights start (weights.h); both empty (default): initialised afresh.
struct InitOptions {
  /// A state_dict saved by Python's torch.save (e.g. torchvision's ResNet weights) for the
  /// encoder's trunk; torchvision's classifier "fc." is ignored.
  std::string weights;
  /// Another siamese model (file or run folder): its trunk, and its head when of the same shape.
  std::string from;
  /// Trunk parameters kept as they start (fine-tune the rest): the first `freeze` in the trunk's
  /// order (trunk_tensors), or every one before the first whose name starts with `freeze_until`.
  /// Default 0 and "": none.
  int64_t freeze = 0;
  std::string freeze_until;
};

struct TrainOptions {
  DataOptions data;
  /// Network; input_mean / input_std are replaced by the training split's pixel (or numeric step
  /// feature) statistics, input shapes and the vocabulary by those of the data.
  SiameseNetworkOptions network = SiameseNetworkOptions().cnn(CnnEncoderOptions().normalize(true));
  InitOptions init;
  SamplerOptions sampler;
  LossOptions loss;
  OptimOptions optim;
  RuntimeOptions runtime;
};

/// `options` with the configuration that recognised classes never seen in training best in
/// docs/ablation.md (scripts/ablation, fmnist-unseen, 3 seeds): batch-hard mining; rotation, scale,
/// translation, crop, flip, noise and contrast augmentation; 2 views of every image in a pk batch
/// with the instance term (weight 10) and K = 8; the plateau schedule. `siamese train --protocol
/// fmnist-unseen` starts from it (flags given override it). The defaults above stay for the rest:
/// on classes seen in training the recipe does worse (docs/ablation.md), and sequences cannot be
/// augmented.
/// Each part applies where `keep` (a config.json key: "augment", "schedule", "miner", "views",
/// "k", "instance_weight") does not say the caller chose it, and where the other options allow
/// it (miner, views and the instance term only on pk batches; views only with augmentation; no
/// miner with ntxent), so the result is valid whatever the sampler.
TrainOptions image_recipe(TrainOptions options, const std::function<bool(const std::string& key)>& keep = {});

/// The options as JSON (written to OUT/config.json) and back, through one table of fields (key,
/// field, whether an older config may lack it). An unknown key, a missing required key or a bad
/// value throws Error(Corruption).
std::string to_json(const TrainOptions& options);
TrainOptions train_options_from_json(const std::string& json);

struct TrainResult {
  SavedModel model;                 ///< best model by the select_by metric, threshold calibrated (rank 0 only)
  std::vector<EpochRecord> history;
  EvalReport test;                  ///< the protocol's metrics on the test split (rank 0 only)
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

/// Data given to train() directly instead of options.data.spec: any Dataset implementations.
/// An ImageDataset or SequenceDataset fits the network's input shape and normalisation as a spec
/// would (a token SequenceDataset needs options.network.tokens() and vocabulary() set to its
/// own); for other Dataset types set options.network's input options yourself. config.json
/// still records options.data.spec, so resume() of such a run needs the spec to reopen them.
struct TrainingData {
  std::shared_ptr<const Dataset> train, validation, test;
};
TrainResult train(const TrainOptions& options, const TrainingData& data, Logger& logger = silent_logger(),
                  TrainObserver* observer = nullptr);

/// Continues the run in `dir` from its last complete checkpoint, with the options it started with.
/// With the same seed the result equals that of an uninterrupted run.
/// With a group, every rank resumes from the same folder (on a shared file system across machines).
/// It trains on `device` (RuntimeOptions::device), whichever the run started on.
TrainResult resume(const std::string& dir, Logger& logger = silent_logger(), TrainObserver* observer = nullptr,
                   std::shared_ptr<ProcessGroup> group = nullptr, c10::Device device = c10::kCPU);

/// The loop's part of the options (optim, seed, out).
LoopOptions loop_options(const TrainOptions& options);

}  // namespace siamese
