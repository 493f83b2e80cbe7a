// Training a SiamFC tracker through the shared loop on tiny synthetic sequences: the run's files,
// resume equal to an uninterrupted run, refusals, and the model file's kind checks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "siamese/core/error.h"
#include "siamese/model/model_file.h"
#include "siamese/track/training.h"
#include "test_util.h"
#include "track/tracking_test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

TrackTrainOptions tiny(const fs::path& data, const fs::path& out) {
  TrackTrainOptions o;
  o.data = "sequences:" + data.string();
  o.pairs = 12, o.batch_size = 4, o.validation_pairs = 8, o.validation_sequences = 1;
  o.optim.epochs = 2, o.optim.warmup_steps = 0;
  o.threads = 2, o.out = out.string();
  return o;
}

/// Stops the run after its first epoch, as a kill there would.
struct StopAfterFirst : TrainObserver {
  bool on_epoch_end(const EpochRecord&) override { return false; }
};

}  // namespace

TEST(TrackTraining, WritesItsRunAndResumesToTheSameResult) {
  const auto dir = temp_dir("track-train");
  write_square_sequences(dir / "data");
  const auto whole = train_tracker(tiny(dir / "data", dir / "whole"));
  ASSERT_EQ(whole.history.size(), 2u);
  for (const char* file : {"config.json", "checkpoint.pt", "history.csv", "model.pt"}) {
    EXPECT_TRUE(fs::exists(dir / "whole" / file)) << file;
  }
  for (const auto& r : whole.history) {
    EXPECT_TRUE(std::isfinite(r.loss) && r.loss > 0) << r.loss;
    EXPECT_GE(r.val_recall_at_1, r.val_map_at_r);  // within 16 px includes within 8
    EXPECT_GE(r.val_roc_auc, 0);
    EXPECT_LE(r.val_roc_auc, 1);
  }
  // The options round-trip through config.json.
  const auto back = track_train_options_from_json(to_json(tiny(dir / "data", dir / "whole")));
  EXPECT_EQ(to_json(back), to_json(tiny(dir / "data", dir / "whole")));

  StopAfterFirst stop;
  const auto first = train_tracker(tiny(dir / "data", dir / "parts"), silent_logger(), &stop);
  EXPECT_FALSE(first.finished);
  ASSERT_EQ(first.history.size(), 1u);
  const auto rest = resume_tracker((dir / "parts").string());
  ASSERT_EQ(rest.history.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_NEAR(rest.history[e].loss, whole.history[e].loss, 1e-6 * whole.history[e].loss) << e;
    EXPECT_NEAR(rest.history[e].val_roc_auc, whole.history[e].val_roc_auc, 1e-9) << e;
  }
  const auto a = whole.network->parameters(), b = rest.network->parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-5, 1e-6)) << i;
}

TEST(TrackTraining, RefusesBadRunsAndTheWrongKindOfModel) {
  const auto dir = temp_dir("track-train-bad");
  write_square_sequences(dir / "data");
  const auto used = dir / "used";
  fs::create_directories(used);
  std::ofstream(used / "config.json") << "{}";
  EXPECT_THROW(train_tracker(tiny(dir / "data", used)), Error);
  EXPECT_EQ(siamese::testing::read_file(used / "config.json"), "{}");  // nothing there is touched

  write_moving_square(dir / "one" / "a", 5, 10, 10, 1, 1, 4);
  try {
    train_tracker(tiny(dir / "one", dir / "out-one"));
    FAIL() << "one sequence trained";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("needs 2 sequences"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "out-one" / "config.json"));

  auto o = tiny(dir / "data", dir / "out-batch");
  o.batch_size = 1;
  EXPECT_THROW(train_tracker(o), Error);

  // A similarity model is not a tracker, and says so.
  SiameseNetwork similarity(SiameseNetworkOptions{});
  save_model((dir / "similarity.pt").string(), similarity, 0.5);
  try {
    load_tracker((dir / "similarity.pt").string());
    FAIL() << "a similarity model loaded as a tracker";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("a similarity model (siamese train), not a tracking one"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_tracker((dir / "missing.pt").string()), Error);
  // And a tracker saved, loaded, scores the same.
  torch::manual_seed(5);
  SiamFC net;
  net->eval();
  save_tracker((dir / "tracker.pt").string(), net);
  auto loaded = load_tracker((dir / "tracker.pt").string());
  const auto z = torch::rand({1, 3, 127, 127}) * 255, x = torch::rand({1, 3, 255, 255}) * 255;
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(net->forward(z, x), loaded->forward(z, x)));
}
