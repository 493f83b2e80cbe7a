#include "siamese/train/trainer.h"

#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace siamese {

TrainOptions image_recipe(TrainOptions o) {
  o.miner = MinerKind::BatchHard;
  o.augment = parse_augment("rotate=15,scale=0.15,translate=0.1,crop=0.3,flip=0.5,noise=0.05@0.5,contrast=0.3");
  o.sampler.views = 2;
  o.sampler.k = 8;
  o.instance_weight = 10;
  o.schedule = Schedule::Plateau;
  return o;
}

std::string to_json(const TrainOptions& o) {
  nlohmann::ordered_json j;
  j["data"] = o.data;
  j["protocol"] = to_string(o.split.protocol());
  j["unseen_classes"] = o.split.unseen_classes();
  j["validation_size"] = o.split.validation_size();
  j["subset"] = o.split.subset();
  j["imbalance"] = to_string(o.split.imbalance());
  j["max_length"] = o.max_length;
  j["network"] = nlohmann::json::parse(to_json(o.network));
  j["augment"] = to_string(o.augment);
  j["sampler"] = to_string(o.sampler.kind);
  j["batch_size"] = o.sampler.batch_size;
  j["pos_fraction"] = o.sampler.pos_fraction;
  j["balance"] = o.sampler.balance;
  j["p"] = o.sampler.p;
  j["k"] = o.sampler.k;
  j["views"] = o.sampler.views;
  j["class_rotations"] = o.class_rotations;
  j["instance_weight"] = o.instance_weight;
  j["loss"] = to_string(o.loss);
  j["miner"] = to_string(o.miner);
  j["margin"] = o.margin;
  j["temperature"] = o.temperature;
  j["optimizer"] = o.optimizer;
  j["lr"] = o.lr;
  j["weight_decay"] = o.weight_decay;
  j["schedule"] = to_string(o.schedule);
  j["warmup_steps"] = o.warmup_steps;
  j["step_size"] = o.step_size;
  j["gamma"] = o.gamma;
  j["patience"] = o.patience;
  j["early_stop"] = o.early_stop;
  j["select_by"] = o.select_by;
  j["offline_mining_every"] = o.offline_mining_every;
  j["offline_negatives"] = o.offline_negatives;
  j["epochs"] = o.epochs;
  j["seed"] = o.seed;
  j["threads"] = o.threads;
  j["workers"] = o.workers;
  j["out"] = o.out;
  return j.dump(2);
}

TrainOptions train_options_from_json(const std::string& text) {
  try {
    auto j = nlohmann::json::parse(text);
    TrainOptions o;
    o.data = j.at("data");
    o.split.protocol(parse_protocol(j.at("protocol")))
        .unseen_classes(j.at("unseen_classes").get<std::vector<int64_t>>())
        .validation_size(j.at("validation_size"))
        .subset(j.at("subset"))
        .imbalance(parse_imbalance(j.value("imbalance", "")));
    o.max_length = j.value("max_length", int64_t{0});
    o.network = network_options_from_json(j.at("network").dump());
    o.augment = parse_augment(j.value("augment", "none"));
    o.sampler.kind = parse_sampler(j.at("sampler"));
    o.sampler.batch_size = j.at("batch_size");
    o.sampler.pos_fraction = j.at("pos_fraction");
    o.sampler.balance = j.value("balance", true);
    o.sampler.p = j.at("p");
    o.sampler.k = j.at("k");
    o.sampler.views = j.value("views", 1);
    o.class_rotations = j.value("class_rotations", 1);
    o.instance_weight = j.value("instance_weight", 0.0);
    o.loss = parse_loss(j.at("loss"));
    o.miner = parse_miner(j.value("miner", "all"));
    o.margin = j.at("margin");
    o.temperature = j.value("temperature", o.temperature);
    o.optimizer = j.at("optimizer");
    o.lr = j.at("lr");
    o.weight_decay = j.at("weight_decay");
    o.schedule = parse_schedule(j.at("schedule"));
    o.warmup_steps = j.at("warmup_steps");
    o.step_size = j.at("step_size");
    o.gamma = j.at("gamma");
    o.patience = j.value("patience", o.patience);
    o.early_stop = j.value("early_stop", o.early_stop);
    o.select_by = j.value("select_by", o.select_by);
    o.offline_mining_every = j.value("offline_mining_every", o.offline_mining_every);
    o.offline_negatives = j.value("offline_negatives", o.offline_negatives);
    o.epochs = j.at("epochs");
    o.seed = j.at("seed");
    o.sampler.seed = o.seed;
    o.threads = j.at("threads");
    o.workers = j.at("workers");
    o.out = j.at("out");
    return o;
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corruption, std::string("bad training configuration: ") + e.what());
  }
}

LoopOptions loop_options(const TrainOptions& o) {
  LoopOptions l;
  l.epochs = o.epochs;
  l.optimizer = o.optimizer;
  l.lr = o.lr;
  l.weight_decay = o.weight_decay;
  l.schedule = o.schedule;
  l.warmup_steps = o.warmup_steps;
  l.step_size = o.step_size;
  l.gamma = o.gamma;
  l.patience = o.patience;
  l.early_stop = o.early_stop;
  l.select_by = o.select_by;
  l.seed = o.seed;
  l.out = o.out;
  return l;
}

double learning_rate(const TrainOptions& o, int64_t step, int64_t steps_per_epoch) {
  return learning_rate(loop_options(o), step, steps_per_epoch);
}

Standing standing(const std::vector<EpochRecord>& history, const TrainOptions& o) {
  return standing(history, loop_options(o));
}

namespace {

void validate(const TrainOptions& o) {
  if (o.epochs < 1) throw Error(ErrorCode::InvalidArgument, "epochs must be >= 1");
  if (!(o.lr > 0)) throw Error(ErrorCode::InvalidArgument, "lr must be > 0");
  if (o.margin < 0) throw Error(ErrorCode::InvalidArgument, "margin must be >= 0");
  if (o.optimizer != "adam" && o.optimizer != "sgd") {
    throw Error(ErrorCode::InvalidArgument, "unknown optimizer '" + o.optimizer + "' (expected adam or sgd)");
  }
  if (o.loss == LossKind::Triplet && o.sampler.kind == SamplerKind::Pairs) {
    throw Error(ErrorCode::InvalidArgument, "the triplet loss needs --sampler triplets or pk, not pairs");
  }
  if (o.loss == LossKind::NTXent && (o.sampler.kind != SamplerKind::PK || o.miner != MinerKind::All)) {
    throw Error(ErrorCode::InvalidArgument,
                "the ntxent loss needs --sampler pk and --miner all: it weighs every pair of the batch itself");
  }
  if (!(o.temperature > 0)) throw Error(ErrorCode::InvalidArgument, "temperature must be > 0");
  if (o.workers < 1) throw Error(ErrorCode::InvalidArgument, "workers must be >= 1");
  select_metric(EpochRecord{}, o.select_by);  // throws on an unknown name
  if (o.patience < 1) throw Error(ErrorCode::InvalidArgument, "patience must be >= 1");
  if (o.early_stop < 0) throw Error(ErrorCode::InvalidArgument, "early-stop must be >= 0");
  if (o.offline_mining_every < 0) throw Error(ErrorCode::InvalidArgument, "offline-mining-every must be >= 0");
  if (o.offline_mining_every > 0 && o.offline_negatives < 1) {
    throw Error(ErrorCode::InvalidArgument, "offline-negatives must be >= 1");
  }
  if (o.instance_weight < 0) throw Error(ErrorCode::InvalidArgument, "instance weight must be >= 0");
  if (o.instance_weight > 0 && (o.sampler.views < 2 || !o.augment.any())) {
    throw Error(ErrorCode::InvalidArgument,
                "the instance term needs --views 2 or more and --augment: its positives are views of one image");
  }
  if (o.miner != MinerKind::All && o.sampler.kind != SamplerKind::PK) {
    throw Error(ErrorCode::InvalidArgument,
                "miners work on labelled batches: --miner " + to_string(o.miner) + " needs --sampler pk");
  }
}

/// Loss of one planned batch, according to the sampler's layout (active counts for pk only).
StepLoss batch_loss_of(const TrainOptions& o, SiameseNetwork& net, const Batch& batch, const BatchPlan& plan,
                       int64_t step) {
  const auto distance = o.network.distance();
  auto e = net->embed(batch.inputs);
  if (o.sampler.kind == SamplerKind::PK) {
    auto loss_of = [&](const torch::Tensor& labels, uint64_t seed) {
      return mined_loss(o.loss, o.miner, e, labels, distance, o.margin, seed, o.temperature);
    };
    auto r = loss_of(batch.labels, o.seed * 1000003 + step);
    if (o.instance_weight > 0) {
      auto inst = loss_of(torch::tensor(batch.indices, torch::kInt64), o.seed * 1000003 + step + 7);
      r.loss = r.loss + o.instance_weight * inst.loss;
    }
    return {r.loss, r.active, r.selected};
  }
  if (o.sampler.kind == SamplerKind::Pairs) {
    const auto n = e.size(0) / 2;
    auto d = paired_distance(e.slice(0, 0, n), e.slice(0, n), distance);
    return {contrastive_loss(d, torch::tensor(plan.similar), o.margin)};
  }
  const auto n = e.size(0) / 3;
  auto a = e.slice(0, 0, n);
  auto d_ap = paired_distance(a, e.slice(0, n, 2 * n), distance);
  auto d_an = paired_distance(a, e.slice(0, 2 * n), distance);
  return {o.loss == LossKind::Triplet ? triplet_loss(d_ap, d_an, o.margin)
                                      : contrastive_loss(torch::cat({d_ap, d_an}),
                                                         torch::cat({torch::ones({n}), torch::zeros({n})}), o.margin)};
}

torch::Tensor to_tensor(const HardNegatives& hard) {
  return torch::tensor(hard.items, torch::kInt64).reshape({-1, hard.per_item});
}

HardNegatives from_tensor(const torch::Tensor& t) {
  HardNegatives hard;
  hard.per_item = t.size(1);
  auto c = t.contiguous();
  hard.items.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
  return hard;
}

/// LibTorch parallelises with OpenMP. A multi-threaded OpenBLAS underneath keeps a second pool
/// whose threads spin (sched_yield) against the first around every small matrix product, and an
/// LSTM makes thousands of them per batch: one OpenBLAS thread leaves the cores to OpenMP (2.3x
/// faster LSTM training on 2 cores, CNN training unchanged).
void set_threads(int threads) {
  at::set_num_threads(threads);
  using SetThreads = void (*)(int);
  if (auto openblas = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) openblas(1);
}

/// The splits a run trains, validates and tests on. Images may be wrapped (RotatedClasses), so
/// the base data sets are kept alive here too.
struct TrainingData {
  std::shared_ptr<const Dataset> train, validation, test;
  std::shared_ptr<const ImageDataset> images;  ///< image runs: the training split before rotations
};

/// Opens the data and fits the network options to it: input shape, normalisation, vocabulary.
TrainingData open_training_data(TrainOptions& o, Logger& logger) {
  TrainingData d;
  const bool sequences = o.network.encoder() == "lstm" || o.network.encoder() == "gru";
  if (is_sequence_spec(o.data)) {
    if (!sequences) {
      throw Error(ErrorCode::InvalidArgument, o.data + " is sequence data: train it with --encoder lstm or gru");
    }
    if (o.augment.any() || o.class_rotations > 1) {
      throw Error(ErrorCode::InvalidArgument,
                  "--augment and --class-rotations transform images; " + o.data + " holds sequences");
    }
    auto s = open_sequences(o.data, o.split.validation_size(), o.max_length, o.network.tokens(), o.network.vocabulary());
    logger.info("sequences: " + std::to_string(s.train.size()) + " train, " + std::to_string(s.validation.size()) +
                " validation, " + std::to_string(s.test.size()) + " test (" + s.summary.to_string() + ")");
    auto r = o.network.rnn();
    if (s.train.tokens()) {
      r.vocab_size(static_cast<int64_t>(s.vocabulary.size()));
    } else {
      r.vocab_size(0).features(s.train.features());
    }
    auto [mean, std] = s.train.feature_stats();
    o.network.rnn(r).tokens(s.tokens).vocabulary(s.vocabulary).input_mean(mean).input_std(std);
    d.train = std::make_shared<SequenceDataset>(std::move(s.train));
    d.validation = std::make_shared<SequenceDataset>(std::move(s.validation));
    d.test = std::make_shared<SequenceDataset>(std::move(s.test));
    return d;
  }
  if (sequences) {
    throw Error(ErrorCode::InvalidArgument, o.data + " holds images: train it with --encoder cnn or hybrid");
  }
  auto splits = make_splits(open_data(o.data), o.split);
  auto [mean, std] = splits.train.channel_stats();
  const auto& shape = splits.train.images().sizes();
  o.network.input_mean(mean).input_std(std);
  o.network.cnn(o.network.cnn().in_channels(shape[1]).height(shape[2]).width(shape[3]));
  d.images = std::make_shared<ImageDataset>(std::move(splits.train));
  d.train = o.class_rotations > 1 ? std::static_pointer_cast<const Dataset>(std::make_shared<RotatedClasses>(*d.images, o.class_rotations))
                                  : d.images;
  d.validation = std::make_shared<ImageDataset>(std::move(splits.validation));
  d.test = std::make_shared<ImageDataset>(std::move(splits.test));
  return d;
}

/// Fewer classes than P (e.g. fmnist-unseen keeps 5): take them all, same images per batch.
void fit_pk_to_classes(TrainOptions& o, const Dataset& train_set, Logger& logger) {
  if (o.sampler.kind != SamplerKind::PK) return;
  int64_t classes = 0;
  for (const auto& items : indices_by_class(train_set.labels())) classes += items.size() >= 2 ? 1 : 0;
  if (classes < 2 || classes >= o.sampler.p) return;
  const int64_t images = o.sampler.p * o.sampler.k;
  o.sampler.p = classes;
  o.sampler.k = std::max<int64_t>(2, images / classes);
  logger.info("pk sampler: the training split has " + std::to_string(classes) + " classes; using P = " +
              std::to_string(o.sampler.p) + ", K = " + std::to_string(o.sampler.k));
}

std::string percent(double share) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * share);
  return buf;
}

/// Training an embedding on labelled items: sampler plans, loader batches, (mined) pair/triplet
/// losses, validation by retrieval and verification metrics, model.pt for the best epoch.
class EmbeddingTask : public TrainingTask {
 public:
  EmbeddingTask(const TrainOptions& o, SiameseNetwork net, const TrainingData& data, Logger& logger)
      : o_(o), net_(std::move(net)), train_(*data.train), validation_(*data.validation),
        sampler_(train_.labels(), o.sampler), logger_(logger) {}

  torch::nn::Module& module() override { return *net_; }

  int64_t begin_epoch(int64_t epoch, EpochRecord& record) override {
    if (o_.offline_mining_every > 0 && epoch > 0 && epoch % o_.offline_mining_every == 0) mine(epoch);
    plan_ = sampler_.plan_epoch(epoch, hard_);
    const auto balance = plan_balance(plan_, o_.sampler.kind, train_.labels());
    record.min_class_share = balance.min_class_share;
    record.max_class_share = balance.max_class_share;
    record.positive_share = balance.positive_share;
    sampled_ = "  sampled: " + std::to_string(balance.classes_drawn) + " of " + std::to_string(balance.classes) +
               " classes, " + percent(balance.min_class_share) + "-" + percent(balance.max_class_share) +
               " of the images each; " + percent(balance.positive_share) + " of pairs positive";
    std::vector<std::vector<int64_t>> indices;
    for (const auto& b : plan_) indices.push_back(b.indices);
    Loader::Transform transform;
    if (o_.augment.any()) {
      transform = [this, epoch](const torch::Tensor& inputs, int64_t number) {
        return augment(inputs, o_.augment, o_.seed, (static_cast<uint64_t>(epoch) << 32) + number);
      };
    }
    loader_.reset();  // the previous epoch's workers end before the new ones start
    loader_ = std::make_unique<Loader>(train_, indices, o_.workers, 4, transform);
    return static_cast<int64_t>(plan_.size());
  }

  std::optional<Batch> next_batch() override { return loader_->next(); }

  StepLoss loss(const Batch& batch, int64_t step) override {
    return batch_loss_of(o_, net_, batch, plan_[batch.number], step);
  }

  /// Retrieval on the validation split, ROC AUC on its balanced pairs.
  void validate(EpochRecord& record) override {
    loader_.reset();
    net_->eval();
    auto e = embed_dataset(net_, validation_);
    auto retrieval = retrieval_metrics(e, validation_.labels(), o_.network.distance());
    pairs_ = balanced_pairs(validation_.labels(), 10000, 1);
    distances_ = pair_distances(e, pairs_, o_.network.distance());
    if (all_at_one_distance(distances_)) {
      logger_.warning("epoch " + std::to_string(record.epoch) + ": every validation pair is at the same distance, so "
                      "the embeddings carry no information: the network has collapsed to one point and rarely "
                      "recovers. Start again with a lower --lr, --normalize true or another --miner.");
    }
    record.val_recall_at_1 = retrieval.recall_at_1;
    record.val_map_at_r = retrieval.map_at_r;
    record.val_roc_auc = roc_auc(distances_, pairs_.same);
  }

  std::string epoch_note() const override { return sampled_; }

  void keep_best(const EpochRecord& record) override {
    nlohmann::ordered_json info;
    info["data"] = o_.data;
    info["protocol"] = is_sequence_spec(o_.data) ? "sequences" : to_string(o_.split.protocol());
    info["max_length"] = o_.max_length;
    info["unseen_classes"] = o_.split.unseen_classes();
    info["validation_size"] = o_.split.validation_size();
    info["epoch"] = record.epoch;
    info["select_by"] = o_.select_by;
    info["val_" + o_.select_by] = select_metric(record, o_.select_by);
    save_model((fs::path(o_.out) / "model.pt").string(), net_, calibrate_threshold(distances_, pairs_.same),
               info.dump());
  }

  void save_state(torch::serialize::OutputArchive& archive) const override {
    if (!hard_.empty()) archive.write("hard_negatives", to_tensor(hard_));
  }

  void load_state(torch::serialize::InputArchive& archive) override {
    c10::IValue v;
    if (o_.offline_mining_every > 0 && archive.try_read("hard_negatives", v)) hard_ = from_tensor(v.toTensor());
  }

 private:
  void mine(int64_t) {
    const auto start = Clock::now();
    net_->eval();
    hard_ = mine_hard_negatives(embed_dataset(net_, train_), train_.labels(), o_.network.distance(),
                                o_.offline_negatives);
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f", std::chrono::duration<double>(Clock::now() - start).count());
    logger_.progress("offline mining: the " + std::to_string(hard_.per_item) + " nearest other-class images of each of " +
                 std::to_string(train_.size()) + " (" + seconds + " s)");
  }

  const TrainOptions& o_;
  SiameseNetwork net_;
  const Dataset& train_;
  const Dataset& validation_;
  Sampler sampler_;
  Logger& logger_;
  HardNegatives hard_;
  std::vector<BatchPlan> plan_;
  std::unique_ptr<Loader> loader_;
  std::string sampled_;
  Pairs pairs_;
  std::vector<double> distances_;
};

/// A fresh run refuses a folder that already holds one (nothing there is touched).
void start_run_folder(const TrainOptions& o) {
  const fs::path out(o.out);
  for (const char* name : {"config.json", "checkpoint.pt", "model.pt"}) {
    if (fs::exists(out / name)) {
      throw Error(ErrorCode::InvalidArgument,
                  (out / name).string() + " exists: " + o.out + " already holds a run; continue it with --resume " +
                      o.out + " or choose another --out");
    }
  }
  try {
    fs::create_directories(out);
  } catch (const fs::filesystem_error& e) {
    throw Error(ErrorCode::IOError, o.out, std::string("cannot create the run folder (") + e.what() + ")");
  }
  write_text_atomically((out / "config.json").string(), to_json(o));
}

/// The best model on the test split: the protocol's metrics, also written to metrics.json.
EvalReport finish(const TrainOptions& o, TrainResult& result, const Dataset& test) {
  EvalOptions eval;
  eval.few_shot(o.split.protocol() == Protocol::Unseen || is_sequence_spec(o.data));
  auto report = evaluate(result.model.network, test, result.model.threshold, eval);
  report.protocol = is_sequence_spec(o.data) ? "sequences" : to_string(o.split.protocol());
  auto metrics = nlohmann::ordered_json::parse(to_json(report));
  metrics["train_images_per_second"] = result.images_per_second;
  metrics["train_seconds"] = result.train_seconds;
  metrics["epochs"] = static_cast<int64_t>(result.history.size());
  metrics["stopped_early"] = result.stopped_early;
  metrics["threads"] = at::get_num_threads();
  write_text_atomically((fs::path(o.out) / "metrics.json").string(), metrics.dump(2) + "\n");
  return report;
}

TrainResult run(TrainOptions o, bool resuming, Logger& logger, TrainObserver* observer) {
  validate(o);
  set_threads(o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const auto data = open_training_data(o, logger);
  o.sampler.seed = o.seed;
  fit_pk_to_classes(o, *data.train, logger);
  torch::manual_seed(o.seed);
  SiameseNetwork net(o.network);
  EmbeddingTask task(o, net, data, logger);
  if (!resuming) start_run_folder(o);
  logger.info("training on " + std::to_string(data.train->size()) + " items (" + data.train->source() +
              "), validating on " + std::to_string(data.validation->size()) + ", " + std::to_string(o.epochs) +
              " epochs");
  auto loop = run_training_loop(task, loop_options(o), resuming, logger, observer);

  TrainResult result;
  result.history = loop.history;
  result.train_seconds = loop.train_seconds;
  result.images_per_second = loop.images_per_second;
  result.finished = loop.finished;
  result.stopped_early = loop.stopped_early;
  result.model = load_model((fs::path(o.out) / "model.pt").string());
  if (result.finished) result.test = finish(o, result, *data.test);
  return result;
}

}  // namespace

TrainResult train(const TrainOptions& options, Logger& logger, TrainObserver* observer) {
  return run(options, false, logger, observer);
}

TrainResult resume(const std::string& dir, Logger& logger, TrainObserver* observer) {
  const auto config = fs::path(dir) / "config.json";
  std::ifstream in(config);
  if (!in) throw Error(ErrorCode::NotFound, config.string(), "cannot read; is " + dir + " a training run folder?");
  std::stringstream text;
  text << in.rdbuf();
  TrainOptions options;
  try {
    options = train_options_from_json(text.str());
  } catch (const Error& e) {  // a bad config.json: name the file
    if (!e.path().empty()) throw;
    throw Error(e.code() == ErrorCode::InvalidArgument ? ErrorCode::Corruption : e.code(), config.string(), e.what());
  }
  options.out = dir;
  return run(options, true, logger, observer);
}

}  // namespace siamese
