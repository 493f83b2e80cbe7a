#include "siamese/track/training.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "siamese/core/archive_file.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/track/sequences.h"

namespace fs = std::filesystem;

namespace siamese {

OptimOptions TrackTrainOptions::default_optim() {
  OptimOptions o;
  o.epochs = 10;
  o.optimizer = OptimizerKind::Adam;
  o.lr = 1e-3;
  o.weight_decay = 5e-4;
  o.schedule = Schedule::Cosine;
  o.warmup_steps = 100;
  o.select_by = SelectBy::RecallAt1;
  return o;
}

namespace {

/// One training pair: which frames, and the draws of its augmentation.
struct PairDraw {
  int64_t sequence = 0, exemplar = 0, search = 0;
  double exemplar_stretch = 1, search_stretch = 1, dx = 0, dy = 0;  ///< dx, dy: search-crop pixels
};

bool usable(const Box& b) { return b.w >= 1 && b.h >= 1; }

/// n pairs drawn from `sequences` (those with two usable frames), seeded.
std::vector<PairDraw> draw_pairs(const std::vector<Sequence>& sequences, int64_t n, const TrackTrainOptions& o, uint64_t seed) {
  std::vector<std::vector<int64_t>> frames(sequences.size());
  std::vector<int64_t> candidates;
  for (size_t s = 0; s < sequences.size(); ++s) {
    for (size_t f = 0; f < sequences[s].boxes.size(); ++f) {
      if (usable(sequences[s].boxes[f])) frames[s].push_back(static_cast<int64_t>(f));
    }
    if (frames[s].size() >= 2) candidates.push_back(static_cast<int64_t>(s));
  }
  if (candidates.empty()) throw Error(ErrorCode::InvalidArgument, "no sequence has two frames with a box of at least 1 × 1 pixel");
  std::mt19937_64 rng(seed);
  auto uniform = [&](double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); };
  auto pick = [&](size_t count) { return static_cast<int64_t>(std::uniform_int_distribution<size_t>(0, count - 1)(rng)); };
  std::vector<PairDraw> pairs;
  for (int64_t i = 0; i < n; ++i) {
    PairDraw d;
    d.sequence = candidates[pick(candidates.size())];
    const auto& usable_frames = frames[d.sequence];
    d.exemplar = usable_frames[pick(usable_frames.size())];
    std::vector<int64_t> near;
    for (int64_t f : usable_frames) {
      if (f != d.exemplar && std::abs(f - d.exemplar) <= o.max_gap) near.push_back(f);
    }
    d.search = near.empty() ? d.exemplar : near[pick(near.size())];
    d.exemplar_stretch = uniform(1 - o.stretch, 1 + o.stretch);
    d.search_stretch = uniform(1 - o.stretch, 1 + o.stretch);
    d.dx = uniform(-o.shift, o.shift), d.dy = uniform(-o.shift, o.shift);
    pairs.push_back(d);
  }
  return pairs;
}

std::array<double, 3> mean_colour(const torch::Tensor& frame) {
  const auto m = frame.to(torch::kFloat32).mean({1, 2});
  return {m[0].item<double>(), m[1].item<double>(), m[2].item<double>()};
}

int64_t map_side(const TrackTrainOptions& o) { return (o.search_size - o.exemplar_size) / kTotalStride + 1; }

/// The object's offset from score cell (i, j), in search-crop pixels.
double cell_distance(int64_t i, int64_t j, const PairDraw& d, int64_t side) {
  const double c = (static_cast<double>(side) - 1) / 2;
  return std::hypot((static_cast<double>(j) - c) * kTotalStride + d.dx, (static_cast<double>(i) - c) * kTotalStride + d.dy);
}

/// The crops of a batch of pairs: inputs = search regions, second = exemplars, targets = labels.
Batch make_batch(const std::vector<Sequence>& sequences, const std::vector<PairDraw>& pairs, int64_t first, int64_t count,
                 const TrackTrainOptions& o) {
  std::vector<torch::Tensor> z, x, y;
  const int64_t side = map_side(o);
  for (int64_t k = first; k < first + count; ++k) {
    const auto& d = pairs[k];
    const auto& s = sequences[d.sequence];
    const auto fz = read_frame(s.frames[d.exemplar]);
    const auto fx = d.search == d.exemplar ? fz : read_frame(s.frames[d.search]);
    const auto& bz = s.boxes[d.exemplar];
    const auto& bx = s.boxes[d.search];
    const auto cz = centre_of(bz), cx = centre_of(bx);
    z.push_back(crop_patch(fz, cz[0], cz[1], exemplar_side(bz.w, bz.h, o.context) * d.exemplar_stretch, o.exemplar_size,
                           mean_colour(fz)));
    const double x_side = exemplar_side(bx.w, bx.h, o.context) * static_cast<double>(o.search_size) / o.exemplar_size * d.search_stretch;
    const double to_frame = x_side / static_cast<double>(o.search_size);
    x.push_back(crop_patch(fx, cx[0] + d.dx * to_frame, cx[1] + d.dy * to_frame, x_side, o.search_size, mean_colour(fx)));
    auto label = torch::zeros({1, side, side});
    auto a = label.accessor<float, 3>();
    for (int64_t i = 0; i < side; ++i) {
      for (int64_t j = 0; j < side; ++j) a[0][i][j] = cell_distance(i, j, d, side) <= o.positive_radius ? 1.f : 0.f;
    }
    y.push_back(label);
  }
  Batch b;
  b.inputs = torch::stack(x);
  b.second = torch::stack(z);
  b.targets = torch::stack(y);
  b.labels = torch::arange(first, first + count, torch::kInt64);
  return b;
}

/// The class-balanced logistic loss over score maps (half the weight on the positives).
torch::Tensor balanced_logistic_loss(const torch::Tensor& scores, const torch::Tensor& labels) {
  const auto n = scores.size(0);
  const auto cells = static_cast<double>(labels[0].numel());
  const auto pos = labels.sum({1, 2, 3}, true), neg = cells - pos;
  const auto weight = torch::where(labels > 0.5, 0.5 / pos.clamp_min(1), 0.5 / neg.clamp_min(1));
  namespace F = torch::nn::functional;
  return F::binary_cross_entropy_with_logits(scores, labels,
                                             F::BinaryCrossEntropyWithLogitsFuncOptions().weight(weight).reduction(torch::kSum)) /
         static_cast<double>(n);
}

/// The probability that a positive cell scores above a negative one (Mann-Whitney; ties count
/// by position), or 0.5 when either kind is missing.
double ranking_auc(const torch::Tensor& scores, const torch::Tensor& positive) {
  const auto npos = positive.sum().item<double>(), nneg = static_cast<double>(positive.numel()) - npos;
  if (npos == 0 || nneg == 0) return 0.5;
  const auto ranks = scores.argsort().argsort().to(torch::kFloat64) + 1;
  return (ranks.masked_select(positive).sum().item<double>() - npos * (npos + 1) / 2) / (npos * nneg);
}

class TrackingTask : public TrainingTask {
 public:
  TrackingTask(SiamFC net, std::vector<Sequence> train, std::vector<Sequence> validation, const TrackTrainOptions& o)
      : net_(std::move(net)), train_(std::move(train)), validation_(std::move(validation)), o_(o),
        validation_pairs_(draw_pairs(validation_, o.validation_pairs, o, o.seed ^ 0x5eed5eedULL)) {}

  torch::nn::Module& module() override { return *net_; }

  int64_t begin_epoch(int64_t epoch, EpochRecord&) override {
    pairs_ = draw_pairs(train_, o_.pairs, o_, o_.seed + 1000003ULL * static_cast<uint64_t>(epoch + 1));
    next_ = 0;
    return (o_.pairs + o_.batch_size - 1) / o_.batch_size;
  }

  std::optional<Batch> next_batch() override {
    const auto total = static_cast<int64_t>(pairs_.size());
    if (next_ >= total) return std::nullopt;
    const auto count = std::min(o_.batch_size, total - next_);
    auto b = make_batch(train_, pairs_, next_, count, o_);
    b.number = next_ / o_.batch_size;
    next_ += count;
    return b;
  }

  StepLoss loss(const Batch& batch, int64_t) override {
    return {balanced_logistic_loss(net_->forward(batch.second, batch.inputs), batch.targets)};
  }

  void validate(EpochRecord& record) override;

  std::array<std::string, 3> metric_names() const override { return {"hit@16px", "hit@8px", "cell AUC"}; }
  std::string epoch_note() const override { return note_; }

  void keep_best(const EpochRecord& record) override {
    nlohmann::json info{{"task", "tracking"}, {"trunk", to_string(o_.trunk)}, {"epoch", record.epoch},
                        {"val_hit_16px", record.val_recall_at_1}, {"val_hit_8px", record.val_map_at_r},
                        {"val_cell_auc", record.val_roc_auc}, {"data", o_.data}};
    save_tracker((fs::path(o_.out) / "model.pt").string(), net_, info.dump());
  }

 private:
  SiamFC net_;
  std::vector<Sequence> train_, validation_;
  TrackTrainOptions o_;
  std::vector<PairDraw> pairs_, validation_pairs_;
  int64_t next_ = 0;
  std::string note_;
};

void TrackingTask::validate(EpochRecord& record) {
  torch::NoGradGuard no_grad;
  net_->eval();
  const int64_t side = map_side(o_), n = static_cast<int64_t>(validation_pairs_.size());
  double loss = 0, hit16 = 0, hit8 = 0, error = 0;
  std::vector<torch::Tensor> cell_scores, cell_labels;
  for (int64_t first = 0; first < n; first += o_.batch_size) {
    const auto count = std::min(o_.batch_size, n - first);
    const auto b = make_batch(validation_, validation_pairs_, first, count, o_);
    const auto scores = net_->forward(b.second, b.inputs);
    loss += balanced_logistic_loss(scores, b.targets).item<double>() * static_cast<double>(count);
    const auto flat = scores.reshape({count, -1}), labels = b.targets.reshape({count, -1});
    const auto peaks = flat.argmax(1);
    for (int64_t k = 0; k < count; ++k) {
      const auto at = peaks[k].item<int64_t>();
      const double e = cell_distance(at / side, at % side, validation_pairs_[first + k], side);
      hit16 += e <= 16, hit8 += e <= 8, error += e;
    }
    cell_scores.push_back(flat.reshape(-1).to(torch::kFloat64));
    cell_labels.push_back(labels.reshape(-1));
  }
  net_->train();
  record.val_recall_at_1 = hit16 / static_cast<double>(n);
  record.val_map_at_r = hit8 / static_cast<double>(n);
  record.val_roc_auc = ranking_auc(torch::cat(cell_scores), torch::cat(cell_labels) > 0.5);
  char line[200];
  std::snprintf(line, sizeof line, "validation: %lld pairs, loss %.4f, peak %.1f px from the object on average",
                static_cast<long long>(n), loss / static_cast<double>(n), error / static_cast<double>(n));
  note_ = line;
}

void check_options(const TrackTrainOptions& o) {
  auto bad = [](const std::string& what) { throw Error(ErrorCode::InvalidArgument, "tracking training: " + what); };
  if (o.pairs < 1 || o.batch_size < 2) bad("--pairs must be >= 1 and --batch-size >= 2 (batch norm needs 2)");
  if (o.max_gap < 1 || o.validation_sequences < 0 || o.validation_pairs < 1) bad("--max-gap and --validation-pairs must be >= 1");
  if (o.exemplar_size < 87 || o.search_size < o.exemplar_size + kTotalStride) bad("crops: exemplar >= 87 px, search >= exemplar + 8 px");
  if (!(o.context >= 0) || !(o.positive_radius > 0) || !(o.stretch >= 0 && o.stretch < 1) || !(o.shift >= 0)) {
    bad("context >= 0, positive radius > 0, stretch in [0, 1), shift >= 0");
  }
}

/// The sequences of o.data, split: all but the last N train, the last N validate.
std::pair<std::vector<Sequence>, std::vector<Sequence>> split_sequences(const TrackTrainOptions& o) {
  auto all = read_sequences(o.data);
  if (all.size() < 2) throw Error(ErrorCode::InvalidArgument, o.data, "tracking training needs 2 sequences at least (training and validation)");
  const auto nval = o.validation_sequences > 0 ? o.validation_sequences : std::max<int64_t>(1, static_cast<int64_t>(all.size()) / 10);
  if (nval >= static_cast<int64_t>(all.size())) {
    throw Error(ErrorCode::InvalidArgument, o.data, std::to_string(nval) + " validation sequences of " + std::to_string(all.size()) + " leave none to train");
  }
  std::vector<Sequence> validation(all.end() - nval, all.end());
  all.resize(all.size() - nval);
  return {std::move(all), std::move(validation)};
}

TrackTrainResult run(const TrackTrainOptions& o, bool resume, Logger& logger, TrainObserver* observer) {
  check_options(o);
  auto [all, validation] = split_sequences(o);
  const auto nval = static_cast<int64_t>(validation.size());
  int64_t frames = 0;
  for (const auto& s : all) frames += static_cast<int64_t>(s.frames.size());
  if (o.threads > 0) torch::set_num_threads(o.threads);
  logger.info("tracking: " + std::to_string(all.size()) + " training sequences (" + std::to_string(frames) + " frames), " +
              std::to_string(nval) + " validation sequences; " + to_string(o.trunk) + " trunk, " + std::to_string(o.pairs) +
              " pairs an epoch");
  torch::manual_seed(o.seed);
  SiamFC net(SiamFCOptions().trunk(o.trunk));
  TrackingTask task(net, std::move(all), std::move(validation), o);
  LoopOptions loop;
  loop.optim = o.optim, loop.seed = o.seed, loop.out = o.out;
  const auto r = run_training_loop(task, loop, resume, logger, observer);
  TrackTrainResult result;
  result.network = load_tracker(o.out);
  result.history = r.history;
  result.pairs_per_second = r.images_per_second, result.train_seconds = r.train_seconds;
  result.finished = r.finished;
  return result;
}

}  // namespace

TrackTrainResult train_tracker(const TrackTrainOptions& o, Logger& logger, TrainObserver* observer) {
  const auto out = fs::path(o.out);
  if (fs::exists(out / "config.json") || fs::exists(out / "checkpoint.pt")) {
    throw Error(ErrorCode::InvalidArgument, o.out, "holds a run already (continue it with --resume, or choose another --out)");
  }
  check_options(o);
  split_sequences(o);  // bad data stops the run before anything is written
  fs::create_directories(out);
  write_text_atomically((out / "config.json").string(), to_json(o));
  return run(o, false, logger, observer);
}

TrackTrainResult resume_tracker(const std::string& dir, Logger& logger, TrainObserver* observer) {
  const auto config = (fs::path(dir) / "config.json").string();
  if (!fs::exists(config)) throw Error(ErrorCode::NotFound, config, "no run to resume (no config.json)");
  auto o = track_train_options_from_json(read_file(config));
  o.out = dir;
  return run(o, true, logger, observer);
}

}  // namespace siamese
