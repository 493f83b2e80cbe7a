#include "siamese/trainer.h"

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

#include "detail/atomic_file.h"
#include "siamese/error.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace siamese {

Schedule parse_schedule(const std::string& name) {
  if (name == "none") return Schedule::None;
  if (name == "step") return Schedule::Step;
  if (name == "cosine") return Schedule::Cosine;
  if (name == "plateau") return Schedule::Plateau;
  throw Error("unknown schedule '" + name + "' (expected none, step, cosine or plateau)");
}

std::string to_string(Schedule schedule) {
  switch (schedule) {
    case Schedule::None: return "none";
    case Schedule::Step: return "step";
    case Schedule::Cosine: return "cosine";
    case Schedule::Plateau: return "plateau";
  }
  return "?";
}

double select_metric(const EpochRecord& r, const std::string& name) {
  if (name == "map_at_r") return r.val_map_at_r;
  if (name == "recall_at_1") return r.val_recall_at_1;
  if (name == "roc_auc") return r.val_roc_auc;
  throw Error("unknown --select-by '" + name + "' (expected map_at_r, recall_at_1 or roc_auc)");
}

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
    throw Error(std::string("bad training configuration: ") + e.what());
  }
}

double learning_rate(const TrainOptions& o, int64_t step, int64_t steps_per_epoch) {
  double lr = o.lr;
  if (o.warmup_steps > 0 && step < o.warmup_steps) lr *= static_cast<double>(step + 1) / o.warmup_steps;
  const int64_t total = std::max<int64_t>(1, o.epochs * steps_per_epoch);
  if (o.schedule == Schedule::Step) {
    lr *= std::pow(o.gamma, static_cast<double>(step / steps_per_epoch / std::max<int64_t>(1, o.step_size)));
  } else if (o.schedule == Schedule::Cosine) {
    lr *= 0.5 * (1 + std::cos(M_PI * static_cast<double>(std::min(step, total)) / total));
  }
  return lr;
}

namespace {

void validate(const TrainOptions& o) {
  if (o.epochs < 1) throw Error("epochs must be >= 1");
  if (!(o.lr > 0)) throw Error("lr must be > 0");
  if (o.margin < 0) throw Error("margin must be >= 0");
  if (o.optimizer != "adam" && o.optimizer != "sgd") {
    throw Error("unknown optimizer '" + o.optimizer + "' (expected adam or sgd)");
  }
  if (o.loss == LossKind::Triplet && o.sampler.kind == SamplerKind::Pairs) {
    throw Error("the triplet loss needs --sampler triplets or pk, not pairs");
  }
  if (o.loss == LossKind::NTXent && (o.sampler.kind != SamplerKind::PK || o.miner != MinerKind::All)) {
    throw Error("the ntxent loss needs --sampler pk and --miner all: it weighs every pair of the batch itself");
  }
  if (!(o.temperature > 0)) throw Error("temperature must be > 0");
  if (o.workers < 1) throw Error("workers must be >= 1");
  select_metric(EpochRecord{}, o.select_by);  // throws on an unknown name
  if (o.patience < 1) throw Error("patience must be >= 1");
  if (o.early_stop < 0) throw Error("early-stop must be >= 0");
  if (o.offline_mining_every < 0) throw Error("offline-mining-every must be >= 0");
  if (o.offline_mining_every > 0 && o.offline_negatives < 1) throw Error("offline-negatives must be >= 1");
  if (o.instance_weight < 0) throw Error("instance weight must be >= 0");
  if (o.instance_weight > 0 && (o.sampler.views < 2 || !o.augment.any())) {
    throw Error("the instance term needs --views 2 or more and --augment: its positives are views of one image");
  }
  if (o.miner != MinerKind::All && o.sampler.kind != SamplerKind::PK) {
    throw Error("miners work on labelled batches: --miner " + to_string(o.miner) + " needs --sampler pk");
  }
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainOptions& o, SiameseNetwork& net) {
  if (o.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(
        net->parameters(), torch::optim::SGDOptions(o.lr).momentum(0.9).weight_decay(o.weight_decay));
  }
  return std::make_unique<torch::optim::Adam>(net->parameters(),
                                              torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
}

std::string history_csv(const std::vector<EpochRecord>& history) {
  std::ostringstream s;
  s << "epoch,loss,lr,val_recall_at_1,val_map_at_r,val_roc_auc,images_per_second,seconds,data_wait_seconds,"
       "active_fraction,min_class_share,max_class_share,positive_share\n";
  for (const auto& r : history) {
    s << r.epoch << ',' << r.loss << ',' << r.lr << ',' << r.val_recall_at_1 << ',' << r.val_map_at_r << ','
      << r.val_roc_auc << ',' << r.images_per_second << ',' << r.seconds << ',' << r.data_wait_seconds << ','
      << r.active_fraction << ',' << r.min_class_share << ',' << r.max_class_share << ',' << r.positive_share << '\n';
  }
  return s.str();
}

nlohmann::json history_json(const std::vector<EpochRecord>& history) {
  auto j = nlohmann::json::array();
  for (const auto& r : history) {
    j.push_back({r.epoch, r.loss, r.lr, r.val_recall_at_1, r.val_map_at_r, r.val_roc_auc, r.images_per_second,
                 r.seconds, r.data_wait_seconds, r.active_fraction, r.min_class_share, r.max_class_share,
                 r.positive_share});
  }
  return j;
}

std::vector<EpochRecord> history_from_json(const nlohmann::json& j) {
  std::vector<EpochRecord> h;
  for (const auto& r : j) {
    EpochRecord e{r[0].get<int64_t>(), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]};
    if (r.size() >= 13) e.min_class_share = r[10], e.max_class_share = r[11], e.positive_share = r[12];
    h.push_back(e);
  }
  return h;
}

std::string duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

/// Single-line progress on a terminal; one line per epoch elsewhere.
void show_progress(int64_t epoch, int64_t epochs, int64_t done, int64_t total, double loss, double ips,
                   double eta) {
  static const bool tty = ::isatty(2) != 0;
  if (!tty) return;
  const int width = 24;
  const int filled = static_cast<int>(width * done / std::max<int64_t>(1, total));
  std::fprintf(stderr, "\repoch %lld/%lld [%s%s] %lld/%lld loss %.4f %6.0f img/s ETA %s  ",
               static_cast<long long>(epoch), static_cast<long long>(epochs), std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<long long>(done),
               static_cast<long long>(total), loss, ips, duration(eta).c_str());
}

/// Loss of one planned batch, according to the sampler's layout (active counts for pk only).
MinedLoss batch_loss_of(const TrainOptions& o, SiameseNetwork& net, const Batch& batch, const BatchPlan& plan,
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
    return r;
  }
  MinedLoss r;
  if (o.sampler.kind == SamplerKind::Pairs) {
    const auto n = e.size(0) / 2;
    auto d = paired_distance(e.slice(0, 0, n), e.slice(0, n), distance);
    r.loss = contrastive_loss(d, torch::tensor(plan.similar), o.margin);
    return r;
  }
  const auto n = e.size(0) / 3;
  auto a = e.slice(0, 0, n);
  auto d_ap = paired_distance(a, e.slice(0, n, 2 * n), distance);
  auto d_an = paired_distance(a, e.slice(0, 2 * n), distance);
  r.loss = o.loss == LossKind::Triplet ? triplet_loss(d_ap, d_an, o.margin)
                                       : contrastive_loss(torch::cat({d_ap, d_an}),
                                                          torch::cat({torch::ones({n}), torch::zeros({n})}), o.margin);
  return r;
}

}  // namespace

Standing standing(const std::vector<EpochRecord>& history, const TrainOptions& o) {
  Standing s;
  int64_t flat = 0;
  for (const auto& r : history) {
    const double m = select_metric(r, o.select_by);
    if (m > s.best) {
      s.best = m;
      s.since_best = flat = 0;
    } else {
      ++s.since_best;
      if (o.schedule == Schedule::Plateau && ++flat >= o.patience) {
        s.lr_scale *= o.gamma;
        flat = 0;
      }
    }
  }
  return s;
}

namespace {

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
TrainingData open_training_data(TrainOptions& o) {
  TrainingData d;
  const bool sequences = o.network.encoder() == "lstm" || o.network.encoder() == "gru";
  if (is_sequence_spec(o.data)) {
    if (!sequences) throw Error(o.data + " is sequence data: train it with --encoder lstm or gru");
    if (o.augment.any() || o.class_rotations > 1) {
      throw Error("--augment and --class-rotations transform images; " + o.data + " holds sequences");
    }
    auto s = open_sequences(o.data, o.split.validation_size(), o.max_length, o.network.tokens(), o.network.vocabulary());
    std::fprintf(stderr, "sequences: %lld train, %lld validation, %lld test (%s)\n", static_cast<long long>(s.train.size()),
                 static_cast<long long>(s.validation.size()), static_cast<long long>(s.test.size()),
                 s.summary.to_string().c_str());
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
  if (sequences) throw Error(o.data + " holds images: train it with --encoder cnn or hybrid");
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

TrainResult run(TrainOptions o, bool resuming) {
  validate(o);
  const fs::path out(o.out);
  set_threads(o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));

  const auto data = open_training_data(o);
  const Dataset& train_set = *data.train;
  const Dataset& validation_set = *data.validation;
  o.sampler.seed = o.seed;

  torch::manual_seed(o.seed);
  SiameseNetwork net(o.network);
  auto optimizer = make_optimizer(o, net);
  if (o.sampler.kind == SamplerKind::PK) {
    // Fewer classes than P (e.g. fmnist-unseen keeps 5): take them all, same images per batch.
    int64_t classes = 0;
    for (const auto& items : indices_by_class(train_set.labels())) classes += items.size() >= 2 ? 1 : 0;
    if (classes >= 2 && classes < o.sampler.p) {
      const int64_t images = o.sampler.p * o.sampler.k;
      o.sampler.p = classes;
      o.sampler.k = std::max<int64_t>(2, images / classes);
      std::fprintf(stderr, "pk sampler: the training split has %lld classes; using P = %lld, K = %lld\n",
                   static_cast<long long>(classes), static_cast<long long>(o.sampler.p),
                   static_cast<long long>(o.sampler.k));
    }
  }
  Sampler sampler(train_set.labels(), o.sampler);

  int64_t first_epoch = 0, step = 0;
  std::vector<EpochRecord> history;
  HardNegatives hard;
  const std::string checkpoint = (out / "checkpoint.pt").string();
  if (resuming && fs::exists(checkpoint)) {
    try {
      torch::serialize::InputArchive archive;
      archive.load_from(checkpoint);
      c10::IValue v;
      archive.read("epoch", v);
      first_epoch = v.toInt();
      archive.read("step", v);
      step = v.toInt();
      archive.read("history", v);
      history = history_from_json(nlohmann::json::parse(v.toStringRef()));
      torch::serialize::InputArchive weights, state;
      archive.read("network", weights);
      net->load(weights);
      archive.read("optimizer", state);
      optimizer->load(state);
      if (o.offline_mining_every > 0 && archive.try_read("hard_negatives", v)) hard = from_tensor(v.toTensor());
    } catch (const c10::Error& e) {
      throw Error(checkpoint + ": corrupt or unreadable checkpoint (" + e.what_without_backtrace() + ")");
    }
    std::fprintf(stderr, "resuming %s after epoch %lld\n", o.out.c_str(), static_cast<long long>(first_epoch));
  } else if (!resuming) {
    for (const char* name : {"config.json", "checkpoint.pt", "model.pt"}) {
      if (fs::exists(out / name)) {
        throw Error((out / name).string() + " exists: " + o.out +
                    " already holds a run; continue it with --resume " + o.out + " or choose another --out");
      }
    }
    fs::create_directories(out);
    detail::write_text_atomically((out / "config.json").string(), to_json(o));
  }

  std::fprintf(stderr, "training on %lld items (%s), validating on %lld, %lld epochs\n",
               static_cast<long long>(train_set.size()), train_set.source().c_str(),
               static_cast<long long>(validation_set.size()), static_cast<long long>(o.epochs));
  TrainResult result;
  result.finished = true;
  double train_seconds = 0;
  int64_t train_images = 0;
  for (const auto& r : history) {
    train_seconds += r.seconds;
    train_images += static_cast<int64_t>(r.images_per_second * r.seconds);
  }
  for (int64_t epoch = first_epoch; epoch < o.epochs; ++epoch) {
    const auto stand = standing(history, o);
    if (o.early_stop > 0 && stand.since_best >= o.early_stop) {
      std::fprintf(stderr, "early stop: no better validation %s for %lld epochs; best %.4f\n", o.select_by.c_str(),
                   static_cast<long long>(stand.since_best), stand.best);
      result.stopped_early = true;
      break;
    }
    if (o.offline_mining_every > 0 && epoch > 0 && epoch % o.offline_mining_every == 0) {
      const auto mining = Clock::now();
      net->eval();
      hard = mine_hard_negatives(embed_dataset(net, train_set), train_set.labels(), o.network.distance(),
                                 o.offline_negatives);
      if (o.progress) {
        std::fprintf(stderr, "offline mining: the %lld nearest other-class images of each of %lld (%.1f s)\n",
                     static_cast<long long>(hard.per_item), static_cast<long long>(train_set.size()),
                     std::chrono::duration<double>(Clock::now() - mining).count());
      }
    }
    torch::manual_seed(o.seed + 1000003 * (epoch + 1));
    auto plan = sampler.plan_epoch(epoch, hard);
    const auto balance = plan_balance(plan, o.sampler.kind, train_set.labels());
    std::vector<std::vector<int64_t>> indices;
    for (const auto& b : plan) indices.push_back(b.indices);
    Loader::Transform transform;
    if (o.augment.any()) {
      transform = [&o, epoch](const torch::Tensor& inputs, int64_t number) {
        return augment(inputs, o.augment, o.seed, (static_cast<uint64_t>(epoch) << 32) + number);
      };
    }
    Loader loader(train_set, indices, o.workers, 4, transform);
    net->train();
    const auto start = Clock::now();
    double loss_sum = 0;
    int64_t images = 0;
    double lr = o.lr, wait = 0;
    int64_t active = 0, selected = 0;
    const auto steps = static_cast<int64_t>(plan.size());
    while (true) {
      const auto asked = Clock::now();
      auto batch = loader.next();
      wait += std::chrono::duration<double>(Clock::now() - asked).count();
      if (!batch) break;
      lr = learning_rate(o, step, steps) * stand.lr_scale;
      for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
      auto mined = batch_loss_of(o, net, *batch, plan[batch->number], step);
      auto& loss = mined.loss;
      active += mined.active;
      selected += mined.selected;
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        throw Error("loss is " + std::to_string(value) + " at epoch " + std::to_string(epoch + 1) + " step " +
                    std::to_string(batch->number + 1) + " (lr " + std::to_string(lr) +
                    "): training diverged; lower --lr. The last checkpoint in " + o.out + " is intact.");
      }
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      ++step;
      loss_sum += value;
      images += batch->inputs.size(0);
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const double ips = images / std::max(1e-9, elapsed);
      const double eta = (steps - batch->number - 1 + (o.epochs - epoch - 1) * steps) * elapsed /
                         static_cast<double>(batch->number + 1);
      if (o.progress) show_progress(epoch + 1, o.epochs, batch->number + 1, steps, loss_sum / (batch->number + 1), ips, eta);
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    train_seconds += seconds;
    train_images += images;

    // Validation: retrieval on the validation split, ROC AUC on its balanced pairs.
    auto e = embed_dataset(net, validation_set);
    auto retrieval = retrieval_metrics(e, validation_set.labels(), o.network.distance());
    auto pairs = balanced_pairs(validation_set.labels(), 10000, 1);
    auto d = pair_distances(e, pairs, o.network.distance());
    if (all_at_one_distance(d)) {
      std::fprintf(stderr, "%swarning: epoch %lld: every validation pair is at the same distance, so the embeddings carry "
                   "no information: the network has collapsed to one point and rarely recovers. Start again with a "
                   "lower --lr, --normalize true or another --miner.\n", ::isatty(2) ? "\n" : "",
                   static_cast<long long>(epoch + 1));
    }
    EpochRecord record{epoch + 1, loss_sum / std::max<int64_t>(1, steps), lr, retrieval.recall_at_1,
                       retrieval.map_at_r, roc_auc(d, pairs.same), images / seconds, seconds, wait,
                       selected > 0 ? static_cast<double>(active) / selected : 0.0};
    record.min_class_share = balance.min_class_share;
    record.max_class_share = balance.max_class_share;
    record.positive_share = balance.positive_share;
    history.push_back(record);
    if (o.progress) {
      std::fprintf(stderr, "%sepoch %lld/%lld loss %.4f lr %.2e val R@1 %.4f MAP@R %.4f AUC %.4f %.0f img/s %.1fs (data wait %.2fs, active %.3f)\n",
                   ::isatty(2) ? "\r" : "", static_cast<long long>(epoch + 1), static_cast<long long>(o.epochs),
                   record.loss, lr, record.val_recall_at_1, record.val_map_at_r, record.val_roc_auc,
                   record.images_per_second, seconds, wait, record.active_fraction);
      std::fprintf(stderr, "  sampled: %lld of %lld classes, %.1f%%-%.1f%% of the images each; %.1f%% of pairs positive\n",
                   static_cast<long long>(balance.classes_drawn), static_cast<long long>(balance.classes),
                   100 * balance.min_class_share, 100 * balance.max_class_share, 100 * balance.positive_share);
    }
    if (select_metric(record, o.select_by) > stand.best) {
      nlohmann::ordered_json info;
      info["data"] = o.data;
      info["protocol"] = is_sequence_spec(o.data) ? "sequences" : to_string(o.split.protocol());
      info["max_length"] = o.max_length;
      info["unseen_classes"] = o.split.unseen_classes();
      info["validation_size"] = o.split.validation_size();
      info["epoch"] = epoch + 1;
      info["select_by"] = o.select_by;
      info["val_" + o.select_by] = select_metric(record, o.select_by);
      save_model((out / "model.pt").string(), net, calibrate_threshold(d, pairs.same), info.dump());
    }
    detail::write_atomically(checkpoint, [&](const std::string& tmp) {
      torch::serialize::OutputArchive archive;
      archive.write("epoch", c10::IValue(epoch + 1));
      archive.write("step", c10::IValue(step));
      archive.write("history", c10::IValue(history_json(history).dump()));
      torch::serialize::OutputArchive weights, state;
      net->save(weights);
      archive.write("network", weights);
      optimizer->save(state);
      archive.write("optimizer", state);
      if (!hard.empty()) archive.write("hard_negatives", to_tensor(hard));
      archive.save_to(tmp);
    });
    detail::write_text_atomically((out / "history.csv").string(), history_csv(history));
    if (o.on_epoch_end && !o.on_epoch_end(record)) {
      result.finished = false;
      break;
    }
  }

  result.history = history;
  result.train_seconds = train_seconds;
  result.images_per_second = train_images / std::max(1e-9, train_seconds);
  result.model = load_model((out / "model.pt").string());
  if (!result.finished) return result;

  EvalOptions eval;
  eval.few_shot(o.split.protocol() == Protocol::Unseen || is_sequence_spec(o.data));
  result.test = evaluate(result.model.network, *data.test, result.model.threshold, eval);
  result.test.protocol = is_sequence_spec(o.data) ? "sequences" : to_string(o.split.protocol());
  auto metrics = nlohmann::ordered_json::parse(to_json(result.test));
  metrics["train_images_per_second"] = result.images_per_second;
  metrics["train_seconds"] = result.train_seconds;
  metrics["epochs"] = static_cast<int64_t>(result.history.size());
  metrics["stopped_early"] = result.stopped_early;
  metrics["threads"] = at::get_num_threads();
  detail::write_text_atomically((out / "metrics.json").string(), metrics.dump(2) + "\n");
  return result;
}

}  // namespace

TrainResult train(const TrainOptions& options) { return run(options, false); }

TrainResult resume(const std::string& dir) {
  const auto config = fs::path(dir) / "config.json";
  std::ifstream in(config);
  if (!in) throw Error(config.string() + ": cannot read; is " + dir + " a training run folder?");
  std::stringstream text;
  text << in.rdbuf();
  auto options = train_options_from_json(text.str());
  options.out = dir;
  return run(options, true);
}

}  // namespace siamese
