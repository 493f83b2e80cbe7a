#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "siamese/core/error.h"
#include "siamese/train/trainer.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

/// A quick run: 600 Fashion-MNIST training images, small CNN, one thread (bit-reproducible).
TrainOptions quick(const fs::path& out) {
  TrainOptions o;
  o.out = out.string();
  o.split.subset(600).validation_size(5000);
  o.network.cnn(CnnEncoderOptions().conv_channels({8, 16}).hidden(32).embedding_dim(16).normalize(true));
  o.sampler.p = 5;
  o.sampler.k = 8;
  o.epochs = 3;
  o.warmup_steps = 5;
  o.threads = 1;
  o.workers = 2;
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
  o.lr = 0.1;
  o.epochs = 4;
  o.warmup_steps = 10;
  o.schedule = Schedule::None;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0, 25), 0.01);
  EXPECT_DOUBLE_EQ(learning_rate(o, 4, 25), 0.05);
  EXPECT_DOUBLE_EQ(learning_rate(o, 50, 25), 0.1);
  o.schedule = Schedule::Cosine;
  EXPECT_NEAR(learning_rate(o, 50, 25), 0.05, 1e-12);  // half way: cos(π/2) = 0
  EXPECT_NEAR(learning_rate(o, 100, 25), 0.0, 1e-12);
  o.schedule = Schedule::Step;
  o.step_size = 2;
  o.gamma = 0.5;
  EXPECT_DOUBLE_EQ(learning_rate(o, 49, 25), 0.1);   // epoch 1
  EXPECT_DOUBLE_EQ(learning_rate(o, 50, 25), 0.05);  // epoch 2: first drop
  EXPECT_THROW(parse_schedule("linear"), Error);
}

TEST(Trainer, OptionsRoundTripThroughJson) {
  auto o = quick("/tmp/x");
  o.loss = LossKind::Triplet;
  o.margin = 0.3;
  o.split.protocol(Protocol::Unseen).unseen_classes({1, 2});
  auto back = train_options_from_json(to_json(o));
  EXPECT_EQ(to_json(back), to_json(o));
  EXPECT_THROW(train_options_from_json("{\"data\": 3}"), Error);
  try {
    train_options_from_json("{\"data\": 3}");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Corruption) << e.what();
  }
}

TEST(Trainer, ResumeAfterInterruptionEqualsUninterruptedRun) {
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
  auto root = temp_dir("nan");
  auto o = quick(root / "run");
  o.optimizer = "sgd";
  o.lr = 1e30;
  o.warmup_steps = 0;
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
  auto root = temp_dir("opts");
  auto o = quick(root / "a");
  o.loss = LossKind::Triplet;
  o.sampler.kind = SamplerKind::Pairs;
  EXPECT_THROW(train(o), Error);
  o = quick(root / "b");
  o.optimizer = "rmsprop";
  EXPECT_THROW(train(o), Error);
  o = quick(root / "c");
  o.data = "idx:/nonexistent";
  EXPECT_THROW(train(o), Error);
}

TEST(Trainer, UnseenProtocolAdaptsPToTheTrainingClassesAndReportsFewShot) {
  auto root = temp_dir("unseen");
  auto o = quick(root / "run");
  o.split.protocol(Protocol::Unseen);
  o.sampler.p = 10;  // only classes 0–4 train
  o.epochs = 1;
  auto result = train(o);
  std::ifstream config((root / "run" / "config.json").string());
  auto saved = train_options_from_json(std::string(std::istreambuf_iterator<char>(config), {}));
  EXPECT_EQ(saved.sampler.p, 5);   // the 5 training classes
  EXPECT_EQ(saved.sampler.k, 16);  // the same 10 × 8 = 80 images per batch
  EXPECT_GE(result.test.oneshot_5way_5shot, result.test.oneshot_5way_1shot - 0.05);
  EXPECT_GT(result.test.oneshot_5way_1shot, 0.3);  // chance: 0.2
}

TEST(Trainer, MinersTrainAndReportTheActiveFraction) {
  auto root = temp_dir("miners");
  for (auto miner : {MinerKind::BatchHard, MinerKind::SemiHard}) {
    auto o = quick(root / to_string(miner));
    o.miner = miner;
    o.epochs = 1;
    auto r = train(o);
    ASSERT_EQ(r.history.size(), 1u);
    EXPECT_GT(r.history[0].active_fraction, 0.0) << to_string(miner);
    EXPECT_LE(r.history[0].active_fraction, 1.0) << to_string(miner);
    EXPECT_GT(r.test.recall_at_1, 0.3) << to_string(miner);  // chance: 0.1
  }
  auto o = quick(root / "pairs");
  o.miner = MinerKind::BatchHard;
  o.sampler.kind = SamplerKind::Pairs;
  EXPECT_THROW(train(o), Error);
}

TEST(Schedule, PlateauAndEarlyStoppingFollowTheSelectedMetric) {
  TrainOptions o;
  o.schedule = Schedule::Plateau;
  o.patience = 2;
  o.gamma = 0.5;
  o.select_by = "recall_at_1";
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
  EXPECT_DOUBLE_EQ(standing(h, o).best, 0.6);
  EXPECT_EQ(standing(h, o).since_best, 0);
  add(0.6, 0.1);  // equal is not better
  add(0.55, 0.1);
  EXPECT_EQ(standing(h, o).since_best, 2);
  EXPECT_DOUBLE_EQ(standing(h, o).lr_scale, 0.5);  // 2 flat epochs: one drop
  add(0.59, 0.1);
  EXPECT_DOUBLE_EQ(standing(h, o).lr_scale, 0.5);
  add(0.58, 0.1);
  EXPECT_DOUBLE_EQ(standing(h, o).lr_scale, 0.25);
  add(0.7, 0.1);
  EXPECT_EQ(standing(h, o).since_best, 0);
  o.select_by = "map_at_r";
  EXPECT_DOUBLE_EQ(standing(h, o).best, 0.9);
  EXPECT_EQ(standing(h, o).since_best, 6);
  o.schedule = Schedule::Cosine;
  EXPECT_DOUBLE_EQ(standing(h, o).lr_scale, 1.0);
  o.select_by = "accuracy";
  EXPECT_THROW(standing(h, o), Error);
}

TEST(Trainer, EarlyStoppingEndsTheRunAndKeepsTheBestModel) {
  auto root = temp_dir("early");
  auto o = quick(root / "run");
  o.epochs = 6;
  o.early_stop = 1;
  o.lr = 1e-9;  // nothing learned: no epoch beats the first by much, some do not beat it at all
  o.warmup_steps = 0;
  o.schedule = Schedule::None;
  auto r = train(o);
  ASSERT_TRUE(r.finished);
  const auto s = standing(r.history, o);
  EXPECT_TRUE(r.stopped_early);
  EXPECT_LT(r.history.size(), 6u);
  EXPECT_EQ(s.since_best, 1);  // stopped right after the first epoch without a new best
  double best = 0;
  for (const auto& h : r.history) best = std::max(best, h.val_map_at_r);
  EXPECT_DOUBLE_EQ(s.best, best);
}

TEST(Trainer, AugmentationViewsOfflineMiningAndImbalanceTrainAndResume) {
  auto root = temp_dir("strategies");
  auto options = [&root](const std::string& name) {
    auto o = quick(root / name);
    o.augment = parse_augment("rotate=10,translate=0.1,noise=0.05@0.5");
    o.sampler.views = 2;
    o.sampler.k = 4;
    o.instance_weight = 0.5;
    o.offline_mining_every = 1;
    o.offline_negatives = 5;
    o.split.imbalance({{0, 0.2}});
    o.miner = MinerKind::BatchHard;
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
