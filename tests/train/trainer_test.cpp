#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "siamese/core/error.h"
#include "siamese/model/device.h"
#include "siamese/train/trainer.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

/// A quick run: 600 Fashion-MNIST training images, small CNN, one thread (bit-reproducible).
TrainOptions quick(const fs::path& out) {
  TrainOptions o;
  o.runtime.out = out.string();
  o.data.split.subset(600).validation_size(5000);
  o.network.cnn(CnnEncoderOptions().conv_channels({8, 16}).hidden(32).embedding_dim(16).normalize(true));
  o.sampler.p = 5;
  o.sampler.k = 8;
  o.optim.epochs = 3;
  o.optim.warmup_steps = 5;
  o.runtime.threads = 1;
  o.runtime.workers = 2;
  return o;
}

/// Stops a run after epoch 2, as if it were killed there.
class StopAfterTwo : public TrainObserver {
 public:
  bool on_epoch_end(const EpochRecord& r) override { return r.epoch < 2; }
};

}  // namespace

TEST(Schedule, WarmupCosineAndStepByHand) {
  TrainOptions o;
  o.optim.lr = 0.1;
  o.optim.epochs = 4;
  o.optim.warmup_steps = 10;
  o.optim.schedule = Schedule::None;
  EXPECT_DOUBLE_EQ(learning_rate(o.optim, 0, 25), 0.01);
  EXPECT_DOUBLE_EQ(learning_rate(o.optim, 4, 25), 0.05);
  EXPECT_DOUBLE_EQ(learning_rate(o.optim, 50, 25), 0.1);
  o.optim.schedule = Schedule::Cosine;
  EXPECT_NEAR(learning_rate(o.optim, 50, 25), 0.05, 1e-12);  // half way: cos(π/2) = 0
  EXPECT_NEAR(learning_rate(o.optim, 100, 25), 0.0, 1e-12);
  o.optim.schedule = Schedule::Step;
  o.optim.step_size = 2;
  o.optim.gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(o.optim, 49, 25), 0.1);   // epoch 1
  EXPECT_DOUBLE_EQ(learning_rate(o.optim, 50, 25), 0.05);  // epoch 2: first drop
  EXPECT_THROW(parse_schedule("linear"), Error);
}

TEST(Trainer, EveryOptionRoundTripsThroughJsonAndUnknownKeysAreRefused) {
  // Each field of TrainOptions is changed from its default by hand, here, independently of the
  // field table that to_json and train_options_from_json share: a field missing from the table
  // leaves config.json unchanged and comes back as its default, and the checks below fail.
  using Change = std::pair<const char*, std::function<void(TrainOptions&)>>;
  const std::vector<Change> changes = {
      {"data", [](TrainOptions& o) { o.data.spec = "idx:/x"; }},
      {"protocol", [](TrainOptions& o) { o.data.split.protocol(Protocol::Unseen); }},
      {"unseen_classes", [](TrainOptions& o) { o.data.split.unseen_classes({1, 2}); }},
      {"validation_size", [](TrainOptions& o) { o.data.split.validation_size(77); }},
      {"subset", [](TrainOptions& o) { o.data.split.subset(99); }},
      {"imbalance", [](TrainOptions& o) { o.data.split.imbalance({{3, 0.25}}); }},
      {"max_length", [](TrainOptions& o) { o.data.max_length = 12; }},
      {"augment", [](TrainOptions& o) { o.data.augment = parse_augment("rotate=5"); }},
      {"class_rotations", [](TrainOptions& o) { o.data.class_rotations = 4; }},
      {"image_size", [](TrainOptions& o) { o.data.images.view.size = 48; }},
      {"channels", [](TrainOptions& o) { o.data.images.view.channels = 1; }},
      {"eval_resize", [](TrainOptions& o) { o.data.images.view.eval_resize = 0.5; }},
      {"crop_min", [](TrainOptions& o) { o.data.images.view.crop_min = 0.2; }},
      {"crop_max", [](TrainOptions& o) { o.data.images.view.crop_max = 0.9; }},
      {"cache_mb", [](TrainOptions& o) { o.data.images.cache_bytes = size_t{64} << 20; }},
      {"on_bad_image", [](TrainOptions& o) { o.data.images.on_bad_image = BadImagePolicy::Skip; }},
      {"max_pixels", [](TrainOptions& o) { o.data.images.max_pixels = 1000; }},
      {"mean", [](TrainOptions& o) { o.data.mean = {0.5, 0.4, 0.3}; }},
      {"std", [](TrainOptions& o) { o.data.std = {0.2, 0.2, 0.2}; }},
      {"init_weights", [](TrainOptions& o) { o.init.weights = "w.pt"; }},
      {"init_from", [](TrainOptions& o) { o.init.from = "m.pt"; }},
      {"freeze", [](TrainOptions& o) { o.init.freeze = 3; }},
      {"freeze_until", [](TrainOptions& o) { o.init.freeze_until = "layer4"; }},
      {"network", [](TrainOptions& o) { o.network.cnn(o.network.cnn().hidden(17)); }},
      {"sampler", [](TrainOptions& o) { o.sampler.kind = SamplerKind::Pairs; }},
      {"batch_size", [](TrainOptions& o) { o.sampler.batch_size = 33; }},
      {"pos_fraction", [](TrainOptions& o) { o.sampler.pos_fraction = 0.25; }},
      {"balance", [](TrainOptions& o) { o.sampler.balance = false; }},
      {"p", [](TrainOptions& o) { o.sampler.p = 3; }},
      {"k", [](TrainOptions& o) { o.sampler.k = 5; }},
      {"views", [](TrainOptions& o) { o.sampler.views = 2; }},
      {"loss", [](TrainOptions& o) { o.loss.kind = LossKind::NTXent; }},
      {"miner", [](TrainOptions& o) { o.loss.miner = MinerKind::SemiHard; }},
      {"margin", [](TrainOptions& o) { o.loss.margin = 0.7; }},
      {"temperature", [](TrainOptions& o) { o.loss.temperature = 0.3; }},
      {"instance_weight", [](TrainOptions& o) { o.loss.instance_weight = 2; }},
      {"label_weight", [](TrainOptions& o) { o.loss.label_weight = 0.5; }},
      {"offline_mining_every", [](TrainOptions& o) { o.loss.offline_mining_every = 2; }},
      {"offline_negatives", [](TrainOptions& o) { o.loss.offline_negatives = 4; }},
      {"optimizer", [](TrainOptions& o) { o.optim.optimizer = OptimizerKind::Sgd; }},
      {"lr", [](TrainOptions& o) { o.optim.lr = 0.5; }},
      {"weight_decay", [](TrainOptions& o) { o.optim.weight_decay = 0.01; }},
      {"schedule", [](TrainOptions& o) { o.optim.schedule = Schedule::Step; }},
      {"warmup_steps", [](TrainOptions& o) { o.optim.warmup_steps = 7; }},
      {"step_size", [](TrainOptions& o) { o.optim.step_size = 9; }},
      {"gamma", [](TrainOptions& o) { o.optim.gamma = 0.9; }},
      {"patience", [](TrainOptions& o) { o.optim.patience = 3; }},
      {"early_stop", [](TrainOptions& o) { o.optim.early_stop = 2; }},
      {"select_by", [](TrainOptions& o) { o.optim.select_by = SelectBy::RocAuc; }},
      {"epochs", [](TrainOptions& o) { o.optim.epochs = 11; }},
      {"seed", [](TrainOptions& o) { o.runtime.seed = 5; }},
      {"threads", [](TrainOptions& o) { o.runtime.threads = 3; }},
      {"workers", [](TrainOptions& o) { o.runtime.workers = 4; }},
      {"amp", [](TrainOptions& o) { o.runtime.amp = true; }},
      {"out", [](TrainOptions& o) { o.runtime.out = "/tmp/elsewhere"; }},
  };
  const auto defaults = nlohmann::json::parse(to_json(TrainOptions{}));
  EXPECT_EQ(defaults.size(), changes.size());  // one key per field, none unlisted here
  TrainOptions all;
  for (const auto& [key, change] : changes) {
    TrainOptions one;
    change(one);
    change(all);
    const auto j = nlohmann::json::parse(to_json(one));
    for (const auto& [k, v] : defaults.items()) {
      if (k == key) {
        EXPECT_NE(j.at(k), v) << key << " does not reach config.json";
      } else {
        EXPECT_EQ(j.at(k), v) << "changing " << key << " changed " << k;
      }
    }
  }
  // Back from JSON: compared field by field, not through to_json.
  const auto back = train_options_from_json(to_json(all));
  EXPECT_EQ(back.data.spec, "idx:/x");
  EXPECT_EQ(back.data.split.protocol(), Protocol::Unseen);
  EXPECT_EQ(back.data.split.unseen_classes(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(back.data.split.validation_size(), 77);
  EXPECT_EQ(back.data.split.subset(), 99);
  EXPECT_EQ(back.data.split.imbalance(), (Imbalance{{3, 0.25}}));
  EXPECT_EQ(back.data.max_length, 12);
  EXPECT_EQ(to_string(back.data.augment), "rotate=5");
  EXPECT_EQ(back.data.class_rotations, 4);
  EXPECT_EQ(back.network.cnn().hidden(), 17);
  EXPECT_EQ(back.sampler.kind, SamplerKind::Pairs);
  EXPECT_EQ(back.sampler.batch_size, 33);
  EXPECT_DOUBLE_EQ(back.sampler.pos_fraction, 0.25);
  EXPECT_FALSE(back.sampler.balance);
  EXPECT_EQ(back.sampler.p, 3);
  EXPECT_EQ(back.sampler.k, 5);
  EXPECT_EQ(back.sampler.views, 2);
  EXPECT_EQ(back.loss.kind, LossKind::NTXent);
  EXPECT_EQ(back.loss.miner, MinerKind::SemiHard);
  EXPECT_DOUBLE_EQ(back.loss.margin, 0.7);
  EXPECT_DOUBLE_EQ(back.loss.temperature, 0.3);
  EXPECT_DOUBLE_EQ(back.loss.instance_weight, 2);
  EXPECT_DOUBLE_EQ(back.loss.label_weight, 0.5);
  EXPECT_EQ(back.loss.offline_mining_every, 2);
  EXPECT_EQ(back.loss.offline_negatives, 4);
  EXPECT_EQ(back.optim.optimizer, OptimizerKind::Sgd);
  EXPECT_DOUBLE_EQ(back.optim.lr, 0.5);
  EXPECT_DOUBLE_EQ(back.optim.weight_decay, 0.01);
  EXPECT_EQ(back.optim.schedule, Schedule::Step);
  EXPECT_EQ(back.optim.warmup_steps, 7);
  EXPECT_EQ(back.optim.step_size, 9);
  EXPECT_DOUBLE_EQ(back.optim.gamma, 0.9);
  EXPECT_EQ(back.optim.patience, 3);
  EXPECT_EQ(back.optim.early_stop, 2);
  EXPECT_EQ(back.optim.select_by, SelectBy::RocAuc);
  EXPECT_EQ(back.optim.epochs, 11);
  EXPECT_EQ(back.runtime.seed, 5u);
  EXPECT_EQ(back.sampler.seed, 5u);  // the sampler draws with the run's seed
  EXPECT_EQ(back.runtime.threads, 3);
  EXPECT_EQ(back.runtime.workers, 4);
  EXPECT_EQ(back.runtime.out, "/tmp/elsewhere");

  auto refused = [](const std::string& json, const std::string& key) {
    try {
      train_options_from_json(json);
      ADD_FAILURE() << "accepted " << json.substr(0, 80);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Corruption) << e.what();
      EXPECT_NE(std::string(e.what()).find("'" + key + "'"), std::string::npos) << e.what();
    }
  };
  auto with = nlohmann::json::parse(to_json(TrainOptions{}));
  with["learning_rate"] = 0.1;  // a typo of "lr" is not silently ignored
  refused(with.dump(), "learning_rate");
  auto without = nlohmann::json::parse(to_json(TrainOptions{}));
  without.erase("lr");  // a required key
  refused(without.dump(), "lr");
  auto bad = nlohmann::json::parse(to_json(TrainOptions{}));
  bad["loss"] = "hinge";
  refused(bad.dump(), "loss");
  refused("{\"data\": 3}", "data");
  // Keys an older config.json may lack keep their defaults.
  auto old = nlohmann::json::parse(to_json(TrainOptions{}));
  old.erase("select_by");
  old.erase("views");
  const auto from_old = train_options_from_json(old.dump());
  EXPECT_EQ(from_old.optim.select_by, SelectBy::MapAtR);
  EXPECT_EQ(from_old.sampler.views, 1);
}

TEST(Trainer, TheImageRecipeGivesValidOptionsWhateverTheSampler) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("recipe");
  auto o = quick(root / "pairs");
  o.sampler.kind = SamplerKind::Pairs;
  o.loss.kind = LossKind::Contrastive;
  o.optim.epochs = 1;
  auto r = image_recipe(o);
  EXPECT_EQ(r.loss.miner, MinerKind::All);  // miners and views need pk batches
  EXPECT_EQ(r.sampler.views, 1);
  EXPECT_EQ(r.loss.instance_weight, 0);
  EXPECT_TRUE(r.data.augment.any());
  EXPECT_EQ(r.optim.schedule, Schedule::Plateau);
  EXPECT_TRUE(train(r).finished);  // and the trainer accepts them
  auto base = quick(root / "pk");
  base.sampler.k = 6;
  auto pk = image_recipe(base, [](const std::string& key) { return key == "k" || key == "schedule"; });
  EXPECT_EQ(pk.loss.miner, MinerKind::BatchHard);
  EXPECT_EQ(pk.sampler.views, 2);
  EXPECT_EQ(pk.sampler.k, 6);                           // kept: the caller's K
  EXPECT_EQ(pk.optim.schedule, base.optim.schedule);  // kept
  EXPECT_EQ(pk.loss.instance_weight, 10);
}

TEST(Trainer, DataSetsGivenDirectlyTrainLikeTheirSpec) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("given");
  auto o = quick(root / "spec");
  o.optim.epochs = 1;
  auto by_spec = train(o);
  auto splits = make_splits(open_data(o.data.spec), o.data.split);
  TrainingData given{std::make_shared<ImageDataset>(splits.train), std::make_shared<ImageDataset>(splits.validation),
                     std::make_shared<ImageDataset>(splits.test)};
  o.runtime.out = (root / "given").string();
  auto by_data = train(o, given);
  EXPECT_EQ(model_fingerprint(by_spec.model.network), model_fingerprint(by_data.model.network));
  EXPECT_DOUBLE_EQ(by_spec.test.recall_at_1, by_data.test.recall_at_1);
  TrainingData missing{given.train, given.validation, nullptr};
  o.runtime.out = (root / "missing").string();
  EXPECT_THROW(train(o, missing), Error);
}

TEST(Trainer, ResumeAfterInterruptionEqualsUninterruptedRun) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("resume");
  auto whole = train(quick(root / "whole"));
  ASSERT_TRUE(whole.finished);
  ASSERT_EQ(whole.history.size(), 3u);

  auto o = quick(root / "killed");
  StopAfterTwo stop;
  auto partial = train(o, silent_logger(), &stop);
  EXPECT_FALSE(partial.finished);
  EXPECT_FALSE(fs::exists(root / "killed" / "metrics.json"));
  auto resumed = resume((root / "killed").string());
  ASSERT_TRUE(resumed.finished);
  ASSERT_EQ(resumed.history.size(), 3u);

  auto a = whole.model.network->parameters(), b = resumed.model.network->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "parameter " << i;
  EXPECT_NEAR(whole.history.back().loss, resumed.history.back().loss, 1e-6);
  EXPECT_NEAR(whole.test.recall_at_1, resumed.test.recall_at_1, 1e-3);
  // Learned something: far above the 0.1 of chance on 10 classes.
  EXPECT_GT(whole.test.recall_at_1, 0.5);
  EXPECT_TRUE(fs::exists(root / "whole" / "history.csv"));
}

TEST(Trainer, RefusesAFolderThatHoldsARunAndTouchesNothing) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("refuse");
  std::ofstream((root / "model.pt").string()) << "precious";
  try {
    train(quick(root));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("already holds a run"), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::file_size(root / "model.pt"), 8u);
  EXPECT_FALSE(fs::exists(root / "config.json"));
  EXPECT_THROW(resume((root / "nothing").string()), Error);
  try {
    resume((root / "nothing").string());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound) << e.what();
    EXPECT_EQ(e.path(), (root / "nothing" / "config.json").string());
  }
}

TEST(Trainer, DivergenceIsAClearErrorAndLeavesNoModel) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("nan");
  auto o = quick(root / "run");
  o.optim.optimizer = OptimizerKind::Sgd;
  o.optim.lr = 1e30;
  o.optim.warmup_steps = 0;
  o.network.cnn(o.network.cnn().normalize(false));
  try {
    train(o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("training diverged"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root / "run" / "model.pt"));
}

TEST(Trainer, RejectsBadOptions) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("opts");
  auto o = quick(root / "a");
  o.loss.kind = LossKind::Triplet;
  o.sampler.kind = SamplerKind::Pairs;
  EXPECT_THROW(train(o), Error);
  EXPECT_THROW(parse_optimizer("rmsprop"), Error);
  o = quick(root / "c");
  o.data.spec = "idx:/nonexistent";
  EXPECT_THROW(train(o), Error);
}

TEST(Trainer, LabelWeightZeroLeavesOnlyTheInstanceTerm) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("instance");
  auto options = [&root](const std::string& name, double instance_weight) {
    auto o = quick(root / name);
    o.optim.epochs = 2;
    o.data.augment = parse_augment("rotate=10,translate=0.1,noise=0.05@0.5");
    o.sampler.views = 2;
    o.sampler.k = 4;
    o.loss.miner = MinerKind::BatchHard;
    o.loss.label_weight = 0;
    o.loss.instance_weight = instance_weight;
    return o;
  };
  // Adam takes the same steps for a loss scaled by a constant (up to its epsilon): twice the
  // instance weight gives twice the loss at every epoch only if no label term is added to it.
  const auto once = train(options("once", 1)), twice = train(options("twice", 2));
  ASSERT_EQ(once.history.size(), 2u);
  for (size_t e = 0; e < once.history.size(); ++e) {
    EXPECT_NEAR(twice.history[e].loss, 2 * once.history[e].loss, 1e-3 * once.history[e].loss) << "epoch " << e;
  }
  auto with_labels = options("labels", 1);
  with_labels.loss.label_weight = 1;
  EXPECT_GT(std::abs(train(with_labels).history[0].loss - once.history[0].loss), 1e-3);
  auto alone = options("alone", 0);  // no label term and no instance term: nothing to learn from
  EXPECT_THROW(train(alone), Error);
  EXPECT_FALSE(fs::exists(root / "alone" / "config.json"));
}

TEST(Trainer, UnseenProtocolAdaptsPToTheTrainingClassesAndReportsFewShot) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("unseen");
  auto o = quick(root / "run");
  o.data.split.protocol(Protocol::Unseen);
  o.sampler.p = 10;  // only classes 0–4 train
  o.optim.epochs = 1;
  auto result = train(o);
  std::ifstream config((root / "run" / "config.json").string());
  auto saved = train_options_from_json(std::string(std::istreambuf_iterator<char>(config), {}));
  EXPECT_EQ(saved.sampler.p, 5);   // the 5 training classes
  EXPECT_EQ(saved.sampler.k, 16);  // the same 10 × 8 = 80 images per batch
  EXPECT_GE(result.test.oneshot_5way_5shot, result.test.oneshot_5way_1shot - 0.05);
  EXPECT_GT(result.test.oneshot_5way_1shot, 0.3);  // chance: 0.2
}

TEST(Trainer, MinersTrainAndReportTheActiveFraction) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("miners");
  for (auto miner : {MinerKind::BatchHard, MinerKind::SemiHard}) {
    auto o = quick(root / to_string(miner));
    o.loss.miner = miner;
    o.optim.epochs = 1;
    auto r = train(o);
    ASSERT_EQ(r.history.size(), 1u);
    EXPECT_GT(r.history[0].active_fraction, 0.0) << to_string(miner);
    EXPECT_LE(r.history[0].active_fraction, 1.0) << to_string(miner);
    EXPECT_GT(r.test.recall_at_1, 0.3) << to_string(miner);  // chance: 0.1
  }
  auto o = quick(root / "pairs");
  o.loss.miner = MinerKind::BatchHard;
  o.sampler.kind = SamplerKind::Pairs;
  EXPECT_THROW(train(o), Error);
}

TEST(Schedule, PlateauAndEarlyStoppingFollowTheSelectedMetric) {
  TrainOptions o;
  o.optim.schedule = Schedule::Plateau;
  o.optim.patience = 2;
  o.optim.gamma = 0.5;
  o.optim.select_by = SelectBy::RecallAt1;
  std::vector<EpochRecord> h;
  auto add = [&h](double r1, double map) {
    EpochRecord r;
    r.epoch = static_cast<int64_t>(h.size()) + 1;
    r.val_recall_at_1 = r1;
    r.val_map_at_r = map;
    h.push_back(r);
  };
  add(0.5, 0.9);
  add(0.6, 0.1);
  EXPECT_DOUBLE_EQ(standing(h, o.optim).best, 0.6);
  EXPECT_EQ(standing(h, o.optim).since_best, 0);
  add(0.6, 0.1);  // equal is not better
  add(0.55, 0.1);
  EXPECT_EQ(standing(h, o.optim).since_best, 2);
  EXPECT_DOUBLE_EQ(standing(h, o.optim).lr_scale, 0.5);  // 2 flat epochs: one drop
  add(0.59, 0.1);
  EXPECT_DOUBLE_EQ(standing(h, o.optim).lr_scale, 0.5);
  add(0.58, 0.1);
  EXPECT_DOUBLE_EQ(standing(h, o.optim).lr_scale, 0.25);
  add(0.7, 0.1);
  EXPECT_EQ(standing(h, o.optim).since_best, 0);
  o.optim.select_by = SelectBy::MapAtR;
  EXPECT_DOUBLE_EQ(standing(h, o.optim).best, 0.9);
  EXPECT_EQ(standing(h, o.optim).since_best, 6);
  o.optim.schedule = Schedule::Cosine;
  EXPECT_DOUBLE_EQ(standing(h, o.optim).lr_scale, 1.0);
  EXPECT_THROW(parse_select_by("accuracy"), Error);
}

TEST(Trainer, EarlyStoppingEndsTheRunAndKeepsTheBestModel) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("early");
  auto o = quick(root / "run");
  o.optim.epochs = 6;
  o.optim.early_stop = 1;
  o.optim.lr = 1e-9;  // nothing learned: no epoch beats the first by much, some do not beat it at all
  o.optim.warmup_steps = 0;
  o.optim.schedule = Schedule::None;
  auto r = train(o);
  ASSERT_TRUE(r.finished);
  const auto s = standing(r.history, o.optim);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_LT(r.history.size(), 6u);
  EXPECT_EQ(s.since_best, 1);  // stopped right after the first epoch without a new best
  double best = 0;
  for (const auto& h : r.history) best = std::max(best, h.val_map_at_r);
  EXPECT_DOUBLE_EQ(s.best, best);
}

TEST(Trainer, AugmentationViewsOfflineMiningAndImbalanceTrainAndResume) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  auto root = temp_dir("strategies");
  auto options = [&root](const std::string& name) {
    auto o = quick(root / name);
    o.data.augment = parse_augment("rotate=10,translate=0.1,noise=0.05@0.5");
    o.sampler.views = 2;
    o.sampler.k = 4;
    o.loss.instance_weight = 0.5;
    o.loss.offline_mining_every = 1;
    o.loss.offline_negatives = 5;
    o.data.split.imbalance({{0, 0.2}});
    o.loss.miner = MinerKind::BatchHard;
    return o;
  };
  auto whole = train(options("whole"));
  ASSERT_EQ(whole.history.size(), 3u);
  for (const auto& h : whole.history) {
    // Class 0, cut to 2% of the images, still fills about half its fair share: half of each batch
    // is sampled class-balanced (1 in 10), the other half are mined negatives.
    EXPECT_GT(h.min_class_share, 0.025);
    EXPECT_GT(h.positive_share, 0.0);
  }
  EXPECT_GT(whole.test.recall_at_1, 0.4);

  auto o = options("killed");
  StopAfterTwo stop;
  train(o, silent_logger(), &stop);
  auto resumed = resume((root / "killed").string());
  ASSERT_EQ(resumed.history.size(), 3u);
  EXPECT_NEAR(whole.history.back().loss, resumed.history.back().loss, 1e-6);
  auto a = whole.model.network->parameters(), b = resumed.model.network->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << "parameter " << i;
}

// Training under --amp (bfloat16 autocast) and on a GPU (skipped without one): the run trains,
// config.json keeps amp, resume continues it, and a GPU run matches a CPU run.
TEST(DeviceTraining, AmpTrainsIsKeptInTheConfigAndResumes) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  const auto root = temp_dir("amp_training");
  const auto exact = train(quick(root / "float32"));
  auto o = quick(root / "amp");
  o.runtime.amp = true;
  const auto mixed = train(o);
  ASSERT_TRUE(mixed.finished);
  ASSERT_EQ(mixed.history.size(), 3u);
  const auto config = nlohmann::json::parse(siamese::testing::read_file(root / "amp" / "config.json"));
  EXPECT_TRUE(config.at("amp").get<bool>());
  // The same run in bfloat16: the losses move apart a little, the model learns as much.
  const double a = exact.history[0].loss, b = mixed.history[0].loss;
  EXPECT_NE(a, b) << "amp gave float32's loss exactly: autocast did not run";
  EXPECT_NEAR(a, b, 0.05 * a);
  EXPECT_GT(mixed.test.recall_at_1, 0.45);
  EXPECT_NEAR(mixed.test.recall_at_1, exact.test.recall_at_1, 0.08);

  auto stopped = quick(root / "amp_killed");
  stopped.runtime.amp = true;
  StopAfterTwo stop;
  ASSERT_FALSE(train(stopped, silent_logger(), &stop).finished);
  const auto resumed = resume((root / "amp_killed").string());
  ASSERT_TRUE(resumed.finished);
  EXPECT_NEAR(resumed.history.back().loss, mixed.history.back().loss, 1e-6);  // amp came back from config.json
}

TEST(DeviceTraining, AGpuThisMachineLacksIsRefusedBeforeAnythingIsWritten) {
  if (cuda_available()) GTEST_SKIP() << "this machine has a GPU";
  const auto root = temp_dir("no_gpu");
  auto o = quick(root / "run");
  o.runtime.device = c10::Device(c10::kCUDA, 0);  // as a library caller could pass it, without parse_device
  try {
    train(o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported) << e.what();
    EXPECT_NE(std::string(e.what()).find("no CUDA GPU here"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root / "run" / "config.json"));
}

TEST(DeviceTraining, AGpuRunMatchesACpuRunAndResumesOnTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "needs a CUDA GPU and a LibTorch built with CUDA";
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  const auto root = temp_dir("gpu_training");
  const auto cpu = train(quick(root / "cpu"));
  auto o = quick(root / "gpu");
  o.runtime.device = parse_device("cuda");
  const auto gpu = train(o);
  ASSERT_TRUE(gpu.finished);
  EXPECT_TRUE(gpu.model.network->device().is_cuda());
  EXPECT_NEAR(gpu.history[0].loss, cpu.history[0].loss, 0.02 * cpu.history[0].loss);
  EXPECT_NEAR(gpu.test.recall_at_1, cpu.test.recall_at_1, 0.05);

  auto stopped = quick(root / "gpu_killed");
  stopped.runtime.device = parse_device("cuda");
  StopAfterTwo stop;
  ASSERT_FALSE(train(stopped, silent_logger(), &stop).finished);
  const auto resumed = resume((root / "gpu_killed").string());  // on the CPU: the checkpoint maps there
  ASSERT_TRUE(resumed.finished);
  EXPECT_TRUE(resumed.model.network->device().is_cpu());
  EXPECT_NEAR(resumed.history.back().loss, gpu.history.back().loss, 0.02 * gpu.history.back().loss);
}
