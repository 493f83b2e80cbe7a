#include "siamese/train/trainer.h"
#include "siamese/model/weights.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "siamese/core/system.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/model/quantize.h"
#include "siamese/train/distributed.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace siamese {

TrainOptions image_recipe(TrainOptions o, const std::function<bool(const std::string&)>& keep) {
  auto kept = [&keep](const char* key) { return keep && keep(key); };
  if (!kept("augment")) {
    o.data.augment = parse_augment("rotate=15,scale=0.15,translate=0.1,crop=0.3,flip=0.5,noise=0.05@0.5,contrast=0.3");
  }
  if (!kept("schedule")) o.optim.schedule = Schedule::Plateau;
  if (o.sampler.kind != SamplerKind::PK) return o;  // mining and views work on pk batches
  if (!kept("miner") && o.loss.kind != LossKind::NTXent) o.loss.miner = MinerKind::BatchHard;
  if (!o.data.augment.any()) return o;  // views of one image differ only when augmented
  if (!kept("views")) o.sampler.views = 2;
  if (!kept("k")) o.sampler.k = 8;
  if (!kept("instance_weight") && o.sampler.views >= 2) o.loss.instance_weight = 10;
  return o;
}

namespace {

using Json = nlohmann::ordered_json;

/// One key of config.json: how to read it from the options and write it back. `optional`: a
/// config written by an older version may lack it (the default stays).
struct Field {
  const char* key;
  std::function<Json(const TrainOptions&)> get;
  std::function<void(TrainOptions&, const Json&)> set;
  bool optional = false;
};

/// A plain field: `member` of the group `group` of TrainOptions.
template <typename Group, typename T>
Field plain(const char* key, Group TrainOptions::*group, T Group::*member, bool optional = false) {
  return {key, [=](const TrainOptions& o) { return Json((o.*group).*member); },
          [=](TrainOptions& o, const Json& j) { (o.*group).*member = j.get<T>(); }, optional};
}

/// An enum (or any value with to_string and a parser) kept as its name.
template <typename Group, typename T>
Field named(const char* key, Group TrainOptions::*group, T Group::*member, T (*parse)(const std::string&),
            bool optional = false) {
  return {key, [=](const TrainOptions& o) { return Json(to_string((o.*group).*member)); },
          [=](TrainOptions& o, const Json& j) { (o.*group).*member = parse(j.get<std::string>()); }, optional};
}

/// A TORCH_ARG field of the split options.
template <typename T>
Field split(const char* key, const T& (SplitOptions::*get)() const, SplitOptions& (SplitOptions::*set)(const T&),
            bool optional = false) {
  return {key, [=](const TrainOptions& o) { return Json((o.data.split.*get)()); },
          [=](TrainOptions& o, const Json& j) { (o.data.split.*set)(j.get<T>()); }, optional};
}

/// A field of the image view (DataOptions::images.view), optional in config.json.
template <typename V>
Field image(const char* key, V ImageView::*member) {
  return {key, [=](const TrainOptions& o) { return Json(o.data.images.view.*member); },
          [=](TrainOptions& o, const Json& j) { o.data.images.view.*member = j.get<V>(); }, true};
}

/// Every field of TrainOptions, in config.json's order.
const std::vector<Field>& fields() {
  using T = TrainOptions;
  static const std::vector<Field> table = {
      plain("data", &T::data, &DataOptions::spec),
      {"protocol", [](const T& o) { return Json(to_string(o.data.split.protocol())); },
       [](T& o, const Json& j) { o.data.split.protocol(parse_protocol(j.get<std::string>())); }},
      split<std::vector<int64_t>>("unseen_classes", &SplitOptions::unseen_classes, &SplitOptions::unseen_classes),
      split<int64_t>("validation_size", &SplitOptions::validation_size, &SplitOptions::validation_size),
      split<int64_t>("subset", &SplitOptions::subset, &SplitOptions::subset),
      {"imbalance", [](const T& o) { return Json(to_string(o.data.split.imbalance())); },
       [](T& o, const Json& j) { o.data.split.imbalance(parse_imbalance(j.get<std::string>())); }, true},
      plain("max_length", &T::data, &DataOptions::max_length, true),
      {"network", [](const T& o) { return Json::parse(to_json(o.network)); },
       [](T& o, const Json& j) { o.network = network_options_from_json(j.dump()); }},
      named("augment", &T::data, &DataOptions::augment, parse_augment, true),
      image("image_size", &ImageView::size),
      image("channels", &ImageView::channels),
      image("eval_resize", &ImageView::eval_resize),
      image("crop_min", &ImageView::crop_min),
      image("crop_max", &ImageView::crop_max),
      {"cache_mb", [](const T& o) { return Json(o.data.images.cache_bytes >> 20); },
       [](T& o, const Json& j) { o.data.images.cache_bytes = j.get<size_t>() << 20; }, true},
      {"on_bad_image", [](const T& o) { return Json(to_string(o.data.images.on_bad_image)); },
       [](T& o, const Json& j) { o.data.images.on_bad_image = parse_bad_image_policy(j.get<std::string>()); }, true},
      {"max_pixels", [](const T& o) { return Json(o.data.images.max_pixels); },
       [](T& o, const Json& j) { o.data.images.max_pixels = j.get<uint64_t>(); }, true},
      plain("mean", &T::data, &DataOptions::mean, true),
      plain("init_weights", &T::init, &InitOptions::weights, true),
      plain("init_from", &T::init, &InitOptions::from, true),
      plain("freeze", &T::init, &InitOptions::freeze, true),
      plain("freeze_until", &T::init, &InitOptions::freeze_until, true),
      plain("std", &T::data, &DataOptions::std, true),
      named("sampler", &T::sampler, &SamplerOptions::kind, parse_sampler),
      plain("batch_size", &T::sampler, &SamplerOptions::batch_size),
      plain("pos_fraction", &T::sampler, &SamplerOptions::pos_fraction),
      plain("balance", &T::sampler, &SamplerOptions::balance, true),
      plain("p", &T::sampler, &SamplerOptions::p),
      plain("k", &T::sampler, &SamplerOptions::k),
      plain("views", &T::sampler, &SamplerOptions::views, true),
      plain("class_rotations", &T::data, &DataOptions::class_rotations, true),
      plain("instance_weight", &T::loss, &LossOptions::instance_weight, true),
      plain("label_weight", &T::loss, &LossOptions::label_weight, true),
      named("loss", &T::loss, &LossOptions::kind, parse_loss),
      named("miner", &T::loss, &LossOptions::miner, parse_miner, true),
      plain("margin", &T::loss, &LossOptions::margin),
      plain("temperature", &T::loss, &LossOptions::temperature, true),
      named("optimizer", &T::optim, &OptimOptions::optimizer, parse_optimizer),
      plain("lr", &T::optim, &OptimOptions::lr),
      plain("weight_decay", &T::optim, &OptimOptions::weight_decay),
      named("schedule", &T::optim, &OptimOptions::schedule, parse_schedule),
      plain("warmup_steps", &T::optim, &OptimOptions::warmup_steps),
      plain("step_size", &T::optim, &OptimOptions::step_size),
      plain("gamma", &T::optim, &OptimOptions::gamma),
      plain("patience", &T::optim, &OptimOptions::patience, true),
      plain("early_stop", &T::optim, &OptimOptions::early_stop, true),
      named("select_by", &T::optim, &OptimOptions::select_by, parse_select_by, true),
      plain("offline_mining_every", &T::loss, &LossOptions::offline_mining_every, true),
      plain("offline_negatives", &T::loss, &LossOptions::offline_negatives, true),
      plain("epochs", &T::optim, &OptimOptions::epochs),
      plain("seed", &T::runtime, &RuntimeOptions::seed),
      plain("threads", &T::runtime, &RuntimeOptions::threads),
      plain("workers", &T::runtime, &RuntimeOptions::workers),
      plain("amp", &T::runtime, &RuntimeOptions::amp, true),
      plain("out", &T::runtime, &RuntimeOptions::out),
  };
  return table;
}

}  // namespace

std::string to_json(const TrainOptions& o) {
  Json j;
  for (const auto& f : fields()) j[f.key] = f.get(o);
  return j.dump(2);
}

TrainOptions train_options_from_json(const std::string& text) {
  TrainOptions o;
  const char* key = "";
  try {
    auto j = nlohmann::json::parse(text);
    if (!j.is_object()) throw Error(ErrorCode::Corruption, "bad training configuration: not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      const auto& table = fields();
      if (std::none_of(table.begin(), table.end(), [&](const Field& f) { return it.key() == f.key; })) {
        throw Error(ErrorCode::Corruption, "bad training configuration: unknown key '" + it.key() + "'");
      }
    }
    for (const auto& f : fields()) {
      key = f.key;
      if (j.contains(f.key)) {
        f.set(o, j.at(f.key));
      } else if (!f.optional) {
        throw Error(ErrorCode::Corruption, std::string("bad training configuration: missing key '") + f.key + "'");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corruption, std::string("bad training configuration: ") +
                                           (*key ? std::string("key '") + key + "': " : std::string()) + e.what());
  } catch (const Error& e) {
    if (e.code() != ErrorCode::InvalidArgument) throw;
    throw Error(ErrorCode::Corruption, std::string("bad training configuration: key '") + key + "': " + e.what());
  }
  o.sampler.seed = o.runtime.seed;
  return o;
}

LoopOptions loop_options(const TrainOptions& o) {
  LoopOptions l;
  l.optim = o.optim;
  l.seed = o.runtime.seed;
  l.out = o.runtime.out;
  l.group = o.runtime.group;
  l.device = o.runtime.device;
  return l;
}

namespace {

/// The image reading options: a valid view; --mean and --std given together, one value per channel
/// of the view (any count without one), finite, standard deviations > 0.
void validate_images(const DataOptions& d) {
  d.images.view.check();
  if (d.mean.size() != d.std.size()) throw Error(ErrorCode::InvalidArgument, "--mean and --std go together, with one value per channel each");
  if (!d.mean.empty() && d.images.view.size > 0 && static_cast<int64_t>(d.mean.size()) != d.images.view.channels) {
    throw Error(ErrorCode::InvalidArgument, "--mean and --std need " + std::to_string(d.images.view.channels) +
                                                " values, one per channel (--channels)");
  }
  for (size_t i = 0; i < d.mean.size(); ++i) {
    if (!std::isfinite(d.mean[i]) || !(d.std[i] > 0) || !std::isfinite(d.std[i])) {
      throw Error(ErrorCode::InvalidArgument, "--mean must be finite and --std finite and > 0");
    }
  }
  if (d.images.cache_bytes > (size_t{1} << 50)) throw Error(ErrorCode::InvalidArgument, "--cache-mb is larger than any memory");
}

void validate(const TrainOptions& o) {
  validate_images(o.data);
  if (!o.init.weights.empty() && !o.init.from.empty()) {
    throw Error(ErrorCode::InvalidArgument, "--init-weights and --init-from both set the trunk's weights: give one");
  }
  if (o.optim.epochs < 1) throw Error(ErrorCode::InvalidArgument, "epochs must be >= 1");
  if (!(o.optim.lr > 0)) throw Error(ErrorCode::InvalidArgument, "lr must be > 0");
  if (o.loss.margin < 0) throw Error(ErrorCode::InvalidArgument, "margin must be >= 0");
  if (o.loss.kind == LossKind::Triplet && o.sampler.kind == SamplerKind::Pairs) {
    throw Error(ErrorCode::InvalidArgument, "the triplet loss needs --sampler triplets or pk, not pairs");
  }
  if (o.loss.kind == LossKind::NTXent && (o.sampler.kind != SamplerKind::PK || o.loss.miner != MinerKind::All)) {
    throw Error(ErrorCode::InvalidArgument,
                "the ntxent loss needs --sampler pk and --miner all: it weighs every pair of the batch itself");
  }
  if (!(o.loss.temperature > 0)) throw Error(ErrorCode::InvalidArgument, "temperature must be > 0");
  if (o.runtime.workers < 1) throw Error(ErrorCode::InvalidArgument, "workers must be >= 1");
  if (o.runtime.device.is_cuda()) parse_device(to_string(o.runtime.device));  // Unsupported where there is no such GPU
  if (o.runtime.group && !o.runtime.device.is_cpu()) {
    throw Error(ErrorCode::Unsupported, "training in several processes runs on the CPU only (Gloo): use --device cpu, "
                                        "or one process on " + to_string(o.runtime.device));
  }
  if (o.optim.patience < 1) throw Error(ErrorCode::InvalidArgument, "patience must be >= 1");
  if (o.optim.early_stop < 0) throw Error(ErrorCode::InvalidArgument, "early-stop must be >= 0");
  if (o.loss.offline_mining_every < 0) throw Error(ErrorCode::InvalidArgument, "offline-mining-every must be >= 0");
  if (o.loss.offline_mining_every > 0 && o.loss.offline_negatives < 1) {
    throw Error(ErrorCode::InvalidArgument, "offline-negatives must be >= 1");
  }
  if (o.loss.instance_weight < 0) throw Error(ErrorCode::InvalidArgument, "instance weight must be >= 0");
  if (!(o.loss.label_weight >= 0)) throw Error(ErrorCode::InvalidArgument, "label weight must be >= 0");
  if (o.loss.label_weight == 0 && !(o.loss.instance_weight > 0 && o.sampler.kind == SamplerKind::PK)) {
    throw Error(ErrorCode::InvalidArgument,
                "--label-weight 0 leaves only the instance term: it needs --sampler pk and --instance-weight > 0");
  }
  if (o.loss.instance_weight > 0 && (o.sampler.views < 2 || !o.data.augment.any())) {
    throw Error(ErrorCode::InvalidArgument,
                "the instance term needs --views 2 or more and --augment: its positives are views of one image");
  }
  if (o.loss.miner != MinerKind::All && o.sampler.kind != SamplerKind::PK) {
    throw Error(ErrorCode::InvalidArgument,
                "miners work on labelled batches: --miner " + to_string(o.loss.miner) + " needs --sampler pk");
  }
}

/// Loss of one planned batch from its embeddings `e` (in the plan's order), its labels and item
/// indices, according to the sampler's layout (active counts for pk only).
StepLoss batch_loss_of(const TrainOptions& o, const torch::Tensor& e, const torch::Tensor& labels,
                       const std::vector<int64_t>& indices, const BatchPlan& plan, int64_t step) {
  const auto distance = o.network.distance();
  if (o.sampler.kind == SamplerKind::PK) {
    auto loss_of = [&](const torch::Tensor& classes, uint64_t seed) {
      return mined_loss(o.loss.kind, o.loss.miner, e, classes, distance, o.loss.margin, seed, o.loss.temperature);
    };
    const auto instance_seed = o.runtime.seed * 1000003 + step + 7;
    auto instances = [&] { return loss_of(torch::tensor(indices, torch::kInt64).to(e.device()), instance_seed); };
    if (o.loss.label_weight == 0) {  // instance discrimination: no label reaches the loss
      auto inst = instances();
      return {o.loss.instance_weight * inst.loss, inst.active, inst.selected};
    }
    auto r = loss_of(labels.to(e.device()), o.runtime.seed * 1000003 + step);
    r.loss = o.loss.label_weight * r.loss;  // exact at the default 1: the same loss and gradients
    if (o.loss.instance_weight > 0) r.loss = r.loss + o.loss.instance_weight * instances().loss;
    return {r.loss, r.active, r.selected};
  }
  if (o.sampler.kind == SamplerKind::Pairs) {
    const auto n = e.size(0) / 2;
    auto d = paired_distance(e.slice(0, 0, n), e.slice(0, n), distance);
    return {contrastive_loss(d, torch::tensor(plan.similar).to(d.device()), o.loss.margin)};
  }
  const auto n = e.size(0) / 3;
  auto a = e.slice(0, 0, n);
  auto d_ap = paired_distance(a, e.slice(0, n, 2 * n), distance);
  auto d_an = paired_distance(a, e.slice(0, 2 * n), distance);
  return {o.loss.kind == LossKind::Triplet ? triplet_loss(d_ap, d_an, o.loss.margin)
                                      : contrastive_loss(torch::cat({d_ap, d_an}),
                                                         torch::cat({torch::ones({n}, d_ap.options()), torch::zeros({n}, d_ap.options())}),
                                                         o.loss.margin)};
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
/// Fits the network options to the data: input shape and normalisation of an ImageDataset, the
/// features or vocabulary size and normalisation of a SequenceDataset (other data sets: as given).
void fit_network(TrainOptions& o, const Dataset& train) {
  if (const auto* s = dynamic_cast<const SequenceDataset*>(&train)) {
    auto r = o.network.rnn();
    if (s->tokens()) {
      r.vocab_size(static_cast<int64_t>(o.network.vocabulary().size()));
    } else {
      r.vocab_size(0).features(s->features());
    }
    auto [mean, std] = s->feature_stats();
    o.network.rnn(r).input_mean(mean).input_std(std);
  } else if (const auto* images = dynamic_cast<const ImageDataset*>(&train)) {
    auto [mean, std] = images->channel_stats();
    const auto shape = images->input_shape();
    if (!o.data.mean.empty() && static_cast<int64_t>(o.data.mean.size()) != shape[0]) {
      throw Error(ErrorCode::InvalidArgument, images->source(), "--mean and --std need " + std::to_string(shape[0]) + " values, one per channel");
    }
    if (!o.data.mean.empty()) std::tie(mean, std) = std::make_pair(o.data.mean, o.data.std);
    o.network.input_mean(mean).input_std(std);
    o.network.cnn(o.network.cnn().in_channels(shape[0]).height(shape[1]).width(shape[2]));
    o.network.image_view(images->in_memory() ? ImageView{} : images->files()->view());
  }
}

/// Class augmentation: the training images with their rotations as new classes (RotatedClasses),
/// the wrapper owning the images it rotates.
std::shared_ptr<const Dataset> with_rotations(const std::shared_ptr<const Dataset>& train, int64_t rotations) {
  if (rotations <= 1) return train;
  auto images = std::dynamic_pointer_cast<const ImageDataset>(train);
  if (!images) throw Error(ErrorCode::InvalidArgument, "--class-rotations needs an ImageDataset to train on");
  using Holder = std::pair<std::shared_ptr<const ImageDataset>, RotatedClasses>;
  auto holder = std::make_shared<Holder>(std::piecewise_construct, std::forward_as_tuple(images),
                                         std::forward_as_tuple(*images, rotations));
  return std::shared_ptr<const Dataset>(holder, &holder->second);
}

/// --init-weights and --init-from.
void initialise_weights(SiameseNetworkImpl& net, const InitOptions& init, Logger& logger) {
  if (!init.weights.empty()) {
    const auto n = load_trunk(net, read_state_dict(init.weights), init.weights, {"fc."});
    logger.info("initialised the encoder's trunk from " + init.weights + " (" + std::to_string(n) + " tensors)");
  }
  if (!init.from.empty()) {
    auto from = load_model(init.from);
    const bool head = init_from_model(net, *from.network, init.from);
    logger.info("initialised the encoder's trunk" + std::string(head ? " and head" : "") + " from " + init.from +
                (head ? "" : " (a new head: the embedding differs)"));
  }
}

/// --freeze and --freeze-until: those trunk parameters stop taking gradients (the optimiser then
/// leaves them as they are). Applied to new and resumed runs alike.
void freeze_trunk(SiameseNetworkImpl& net, const InitOptions& init, Logger& logger) {
  if (init.freeze == 0 && init.freeze_until.empty()) return;
  const auto trunk = encoder_parameters(net, false);
  std::vector<std::string> names;
  for (const auto& p : trunk) names.push_back(p.first);
  size_t count = static_cast<size_t>(std::max<int64_t>(0, init.freeze));
  if (!init.freeze_until.empty()) {
    const auto until = std::find_if(names.begin(), names.end(), [&](const std::string& n) { return n.rfind(init.freeze_until, 0) == 0; });
    if (until == names.end()) throw Error(ErrorCode::InvalidArgument, "--freeze-until " + init.freeze_until + ": no trunk parameter is named so");
    count = static_cast<size_t>(until - names.begin());
  }
  if (count > trunk.size()) {
    throw Error(ErrorCode::InvalidArgument, "--freeze " + std::to_string(count) + ": the trunk has " + std::to_string(trunk.size()) + " parameters");
  }
  for (size_t i = 0; i < count; ++i) trunk[i].second.set_requires_grad(false);
  logger.info("froze " + std::to_string(count) + " of the trunk's " + std::to_string(trunk.size()) + " parameters" +
              (count > 0 ? " (" + names[0] + " .. " + names[count - 1] + ")" : ""));
}

/// Opens options.data.spec, split by its protocol.
TrainingData open_training_data(TrainOptions& o, Logger& logger) {
  TrainingData d;
  const bool sequences = o.network.encoder() == EncoderKind::Lstm || o.network.encoder() == EncoderKind::Gru;
  if (is_sequence_spec(o.data.spec)) {
    if (o.data.split.validation_size() == 0) o.data.split.validation_size(5000);
    if (!sequences) {
      throw Error(ErrorCode::InvalidArgument, o.data.spec + " is sequence data: train it with --encoder lstm or gru");
    }
    auto s = open_sequences(o.data.spec, o.data.split.validation_size(), o.data.max_length, o.network.tokens(),
                            o.network.vocabulary());
    logger.info("sequences: " + std::to_string(s.train.size()) + " train, " + std::to_string(s.validation.size()) +
                " validation, " + std::to_string(s.test.size()) + " test (" + s.summary.to_string() + ")");
    o.network.tokens(s.tokens).vocabulary(s.vocabulary);
    d.train = std::make_shared<SequenceDataset>(std::move(s.train));
    d.validation = std::make_shared<SequenceDataset>(std::move(s.validation));
    d.test = std::make_shared<SequenceDataset>(std::move(s.test));
    return d;
  }
  if (sequences) {
    throw Error(ErrorCode::InvalidArgument, o.data.spec + " holds images: train it with --encoder cnn, hybrid, resnet18, resnet34, resnet50 or convnet");
  }
  const auto source = open_data(o.data.spec, logger, o.data.images);
  if (o.data.split.validation_size() == 0) {
    o.data.split.validation_size(std::min<int64_t>(5000, std::max<int64_t>(1, source.train.size() / 5)));
  }
  auto splits = make_splits(source, o.data.split);
  d.train = std::make_shared<ImageDataset>(splits.train.with_random_crops(o.runtime.seed));
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

/// Items [begin, end) of a data set, as a data set of their own: one rank's share to embed.
class Share : public Dataset {
 public:
  Share(const Dataset& data, int64_t begin, int64_t end)
      : data_(data), begin_(begin), labels_(data.labels().begin() + begin, data.labels().begin() + end) {}
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const std::vector<int64_t>& labels() const override { return labels_; }
  torch::Tensor gather(const std::vector<int64_t>& indices) const override {
    auto shifted = indices;
    for (auto& i : shifted) i += begin_;
    return data_.gather(shifted);
  }
  std::string source() const override { return data_.source(); }

 private:
  const Dataset& data_;
  int64_t begin_;
  std::vector<int64_t> labels_;
};

/// Whether training draws random views of image files (ImageDataset::with_random_crops).
bool random_views(const Dataset& train) {
  const auto* images = dynamic_cast<const ImageDataset*>(&train);
  return images && !images->in_memory();
}

/// Rank `rank`'s share of n items among `size`: [n·rank/size, n·(rank+1)/size).
std::pair<int64_t, int64_t> share_of(int64_t n, int rank, int size) { return {n * rank / size, n * (rank + 1) / size}; }

/// Training an embedding on labelled items: sampler plans, loader batches, (mined) pair/triplet
/// losses, validation by retrieval and verification metrics, model.pt for the best epoch.
class EmbeddingTask : public TrainingTask {
 public:
  EmbeddingTask(const TrainOptions& o, SiameseNetwork net, const TrainingData& data, Logger& logger)
      : o_(o), net_(std::move(net)), train_(*data.train), validation_(*data.validation),
        sampler_(train_.labels(), o.sampler), logger_(logger), group_(o.runtime.group.get()),
        whole_batches_(group_ && (o.data.augment.any() || random_views(train_))) {}

  torch::nn::Module& module() override { return *net_; }

  int64_t begin_epoch(int64_t epoch, EpochRecord& record) override {
    if (o_.loss.offline_mining_every > 0 && epoch > 0 && epoch % o_.loss.offline_mining_every == 0) mine(epoch);
    plan_ = sampler_.plan_epoch(epoch, hard_);
    const auto balance = plan_balance(plan_, o_.sampler.kind, train_.labels());
    record.min_class_share = balance.min_class_share;
    record.max_class_share = balance.max_class_share;
    record.positive_share = balance.positive_share;
    sampled_ = "  sampled: " + std::to_string(balance.classes_drawn) + " of " + std::to_string(balance.classes) +
               " classes, " + percent(balance.min_class_share) + "-" + percent(balance.max_class_share) +
               " of the images each; " + percent(balance.positive_share) + " of pairs positive";
    std::vector<std::vector<int64_t>> indices;  // with a group, this rank's share of each batch
    for (const auto& b : plan_) {
      const auto n = static_cast<int64_t>(b.indices.size());
      if (group_ && n < 2 * group_->size()) {
        throw Error(ErrorCode::InvalidArgument, "a batch of " + std::to_string(n) + " items cannot be shared among " +
                                                    std::to_string(group_->size()) + " processes (each needs 2 or more): "
                                                    "use fewer processes or larger batches");
      }
      const auto [begin, end] = group_ && !whole_batches_ ? share_of(n, group_->rank(), group_->size()) : share_of(n, 0, 1);
      indices.emplace_back(b.indices.begin() + begin, b.indices.begin() + end);
    }
    Loader::Transform transform;
    if (o_.data.augment.any()) {
      transform = [this, epoch](const torch::Tensor& inputs, int64_t number) {
        return augment(inputs, o_.data.augment, o_.runtime.seed, (static_cast<uint64_t>(epoch) << 32) + number);
      };
    }
    loader_.reset();  // the previous epoch's workers end before the new ones start
    loader_ = std::make_unique<Loader>(train_, indices, o_.runtime.workers, 4, transform, static_cast<uint64_t>(epoch) << 32);
    return static_cast<int64_t>(plan_.size());
  }

  std::optional<Batch> next_batch() override { return loader_->next(); }

  StepLoss loss(const Batch& batch, int64_t step) override {
    if (!group_) return batch_loss_of(o_, net_->embed(batch.inputs), batch.labels, batch.indices, plan_[batch.number], step);
    const auto& plan = plan_[batch.number];  // the whole batch, every rank's share in rank order
    auto inputs = batch.inputs;
    if (whole_batches_) {
      const auto [begin, end] = share_of(inputs.size(0), group_->rank(), group_->size());
      inputs = inputs.slice(0, begin, end);
    }
    auto e = net_->embed(inputs);
    std::vector<int64_t> labels;
    for (auto i : plan.indices) labels.push_back(train_.labels()[i]);
    return batch_loss_of(o_, group_->all_gather_rows(e), torch::tensor(labels, torch::kInt64), plan.indices, plan, step);
  }

  /// Retrieval on the validation split, ROC AUC on its balanced pairs.
  void validate(EpochRecord& record) override {
    loader_.reset();
    net_->eval();
    auto e = embed_shared(validation_);
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
    info["data"] = o_.data.spec;
    info["protocol"] = is_sequence_spec(o_.data.spec) ? "sequences" : to_string(o_.data.split.protocol());
    info["max_length"] = o_.data.max_length;
    info["on_bad_image"] = to_string(o_.data.images.on_bad_image);
    info["unseen_classes"] = o_.data.split.unseen_classes();
    info["validation_size"] = o_.data.split.validation_size();
    info["epoch"] = record.epoch;
    info["select_by"] = to_string(o_.optim.select_by);
    info["val_" + to_string(o_.optim.select_by)] = select_metric(record, o_.optim.select_by);
    if (int8_supported(*net_) && validation_.size() > 0) {  // the activation ranges --int8 quantizes with,
      const int64_t n = std::min<int64_t>(512, validation_.size());  // on validation items spread over the set
      std::vector<int64_t> spread(n);
      for (int64_t i = 0; i < n; ++i) spread[i] = i * validation_.size() / n;
      try {
        net_->options.int8_ranges(int8_ranges(*net_, validation_.gather(spread)));
      } catch (const Error& e) {
        net_->options.int8_ranges({});
        logger_.warning(std::string("epoch ") + std::to_string(record.epoch) + ": no int8 calibration saved (" + e.what() + ")");
      }
    }
    save_model((fs::path(o_.runtime.out) / "model.pt").string(), net_, calibrate_threshold(distances_, pairs_.same),
               info.dump());
  }

  void save_state(torch::serialize::OutputArchive& archive) const override {
    if (!hard_.empty()) archive.write("hard_negatives", to_tensor(hard_));
  }

  void load_state(torch::serialize::InputArchive& archive) override {
    c10::IValue v;
    if (o_.loss.offline_mining_every > 0 && archive.try_read("hard_negatives", v)) hard_ = from_tensor(v.toTensor());
  }

 private:
  /// Every item's embedding; with a group, each rank embeds its share and they are gathered.
  torch::Tensor embed_shared(const Dataset& data) {
    if (!group_ || data.size() < group_->size()) return embed_dataset(net_, data);
    const auto [begin, end] = share_of(data.size(), group_->rank(), group_->size());
    return group_->all_gather_rows(embed_dataset(net_, Share(data, begin, end)));
  }

  void mine(int64_t) {
    const auto start = Clock::now();
    net_->eval();
    hard_ = mine_hard_negatives(embed_shared(train_), train_.labels(), o_.network.distance(),
                                o_.loss.offline_negatives);
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
  ProcessGroup* group_;  ///< none: one process alone
  /// Each rank prepares the whole batch and embeds its share: augmentation and random crops draw
  /// by an item's place in the batch, so that the draws are one process's.
  bool whole_batches_;
};

/// A fresh run refuses a folder that already holds one (nothing there is touched).
void start_run_folder(const TrainOptions& o) {
  const fs::path out(o.runtime.out);
  for (const char* name : {"config.json", "checkpoint.pt", "model.pt"}) {
    if (fs::exists(out / name)) {
      throw Error(ErrorCode::InvalidArgument,
                  (out / name).string() + " exists: " + o.runtime.out + " already holds a run; continue it with --resume " +
                      o.runtime.out + " or choose another --out");
    }
  }
  try {
    fs::create_directories(out);
  } catch (const fs::filesystem_error& e) {
    throw Error(ErrorCode::IOError, o.runtime.out, std::string("cannot create the run folder (") + e.what() + ")");
  }
  write_text_atomically((out / "config.json").string(), to_json(o));
}

/// The best model on the test split: the protocol's metrics, also written to metrics.json.
EvalReport finish(const TrainOptions& o, TrainResult& result, const Dataset& test, Logger& logger) {
  EvalOptions eval;
  eval.few_shot(o.data.split.protocol() == Protocol::Unseen || is_sequence_spec(o.data.spec));
  logger.progress("scoring the best model on the " + std::to_string(test.size()) + " test items");
  auto report = evaluate(result.model.network, test, result.model.threshold, eval, logger);
  report.protocol = is_sequence_spec(o.data.spec) ? "sequences" : to_string(o.data.split.protocol());
  auto metrics = nlohmann::ordered_json::parse(to_json(report));
  metrics["train_images_per_second"] = result.images_per_second;
  metrics["train_seconds"] = result.train_seconds;
  metrics["epochs"] = static_cast<int64_t>(result.history.size());
  metrics["stopped_early"] = result.stopped_early;
  metrics["threads"] = at::get_num_threads();
  metrics["peak_memory_mb"] = std::round(peak_memory_mb());
  metrics["machine"] = machine_description();
  if (!build_commit().empty()) metrics["commit"] = build_commit();
  write_text_atomically((fs::path(o.runtime.out) / "metrics.json").string(), metrics.dump(2) + "\n");
  return report;
}

TrainResult run(TrainOptions o, bool resuming, const TrainingData* given, Logger& logger, TrainObserver* observer) {
  validate(o);
  const bool lead = !o.runtime.group || o.runtime.group->rank() == 0;
  const int local = o.runtime.group ? o.runtime.group->options().local_size : 1;
  set_compute_threads(o.runtime.threads > 0 || local == 1
                          ? o.runtime.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / local));
  auto data = given ? *given : open_training_data(o, logger);
  if (!data.train || !data.validation || !data.test) {
    throw Error(ErrorCode::InvalidArgument, "train: the given data needs train, validation and test sets");
  }
  const bool sequences = dynamic_cast<const SequenceDataset*>(data.train.get()) != nullptr;
  if (sequences && (o.data.augment.any() || o.data.class_rotations > 1)) {
    throw Error(ErrorCode::InvalidArgument,
                "--augment and --class-rotations transform images; " + data.train->source() + " holds sequences");
  }
  fit_network(o, *data.train);
  data.train = with_rotations(data.train, o.data.class_rotations);
  o.sampler.seed = o.runtime.seed;
  fit_pk_to_classes(o, *data.train, logger);
  if (o.network.encoder() == EncoderKind::TorchScript && !o.network.backbone()) {  // a resumed run: its file again
    o.network.backbone(std::make_shared<const std::string>(read_file(o.network.backbone_source())));
  }
  torch::manual_seed(o.runtime.seed);
  SiameseNetwork net(o.network);
  if (!resuming) initialise_weights(*net, o.init, logger);  // a resumed run's weights are its checkpoint's
  freeze_trunk(*net, o.init, logger);
  net->place(o.runtime.device, o.runtime.amp);
  EmbeddingTask task(o, net, data, logger);
  if (!resuming && lead) start_run_folder(o);
  logger.info("training on " + std::to_string(data.train->size()) + " items (" + data.train->source() +
              "), validating on " + std::to_string(data.validation->size()) + ", " + std::to_string(o.optim.epochs) +
              " epochs");
  auto loop = run_training_loop(task, loop_options(o), resuming, logger, observer);

  TrainResult result;
  result.history = loop.history;
  result.train_seconds = loop.train_seconds;
  result.images_per_second = loop.images_per_second;
  result.finished = loop.finished;
  result.stopped_early = loop.stopped_early;
  if (!lead) return result;  // rank 0 keeps the model and scores it
  result.model = load_model((fs::path(o.runtime.out) / "model.pt").string());
  result.model.network->place(o.runtime.device, o.runtime.amp);
  if (result.finished) result.test = finish(o, result, *data.test, logger);
  return result;
}

}  // namespace

TrainResult train(const TrainOptions& options, Logger& logger, TrainObserver* observer) {
  return run(options, false, nullptr, logger, observer);
}

TrainResult train(const TrainOptions& options, const TrainingData& data, Logger& logger, TrainObserver* observer) {
  return run(options, false, &data, logger, observer);
}

TrainResult resume(const std::string& dir, Logger& logger, TrainObserver* observer, std::shared_ptr<ProcessGroup> group,
                   c10::Device device) {
  const auto config = fs::path(dir) / "config.json";
  if (!fs::exists(config)) throw Error(ErrorCode::NotFound, config.string(), "no such file; is " + dir + " a training run folder?");
  const std::string text = read_file(config.string());
  TrainOptions options;
  try {
    options = train_options_from_json(text);
  } catch (const Error& e) {  // a bad config.json: name the file
    if (!e.path().empty()) throw;
    throw Error(e.code() == ErrorCode::InvalidArgument ? ErrorCode::Corruption : e.code(), config.string(), e.what());
  }
  options.runtime.out = dir;
  options.runtime.group = std::move(group);
  options.runtime.device = device;
  return run(options, true, nullptr, logger, observer);
}

}  // namespace siamese
