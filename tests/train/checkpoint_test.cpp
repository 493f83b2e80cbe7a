// The training loop's checkpoint under faults: a disk that fills during its save, and a flipped
// bit in its weights. A toy task (one linear layer pulled towards zero) keeps the loop fast.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "siamese/core/error.h"
#include "siamese/train/loop.h"
#include "test_util.h"

using namespace siamese;
namespace fs = std::filesystem;

namespace {

/// Set in the environment of the child FullDiskDuringACheckpointKeepsTheLastOne starts: the run folder.
constexpr const char* kCheckpointDiskVariable = "SIAMESE_TEST_CHECKPOINT_FULL_DISK_DIR";
constexpr rlim_t kFileSizeLimit = 64 * 1024;  // the checkpoint holds ~1 MB (weights and Adam moments)

/// Two steps an epoch of a linear layer [256 -> 256] trained to output zeros.
class ToyTask : public TrainingTask {
 public:
  ToyTask() : layer_(torch::nn::LinearOptions(256, 256)) {}
  torch::nn::Module& module() override { return *layer_; }
  int64_t begin_epoch(int64_t, EpochRecord&) override {
    left_ = 2;
    return 2;
  }
  std::optional<Batch> next_batch() override {
    if (left_ == 0) return std::nullopt;
    Batch b;
    b.number = 2 - left_--;
    b.inputs = torch::ones({4, 256});
    b.labels = torch::zeros({4}, torch::kInt64);
    return b;
  }
  StepLoss loss(const Batch& batch, int64_t) override { return {layer_(batch.inputs).pow(2).mean()}; }
  void validate(EpochRecord& record) override { record.val_map_at_r = 0.5; }
  void keep_best(const EpochRecord&) override {}
  torch::nn::Linear layer_;
  int64_t left_ = 0;
};

LoopOptions toy_options(const fs::path& out, int64_t epochs) {
  LoopOptions o;
  o.out = out.string();
  o.optim.epochs = epochs;
  o.optim.warmup_steps = 0;
  return o;
}

/// After the first epoch's checkpoint: keeps a copy of it, then limits the size of every file this
/// process writes to kFileSizeLimit (writes past it fail with EFBIG; SIGXFSZ is ignored).
class FillTheDiskAfterFirstEpoch : public TrainObserver {
 public:
  explicit FillTheDiskAfterFirstEpoch(fs::path dir) : dir_(std::move(dir)) {}
  bool on_epoch_end(const EpochRecord& record) override {
    if (record.epoch == 1) {
      fs::copy_file(dir_ / "checkpoint.pt", dir_ / "epoch1.copy");
      ::signal(SIGXFSZ, SIG_IGN);
      const rlimit limit{kFileSizeLimit, kFileSizeLimit};
      EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
    }
    return true;
  }
  fs::path dir_;
};

std::vector<std::string> temporary_files(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(e.path().string());
  }
  return found;
}

}  // namespace

// The child of FullDiskDuringACheckpointKeepsTheLastOne, in a process of its own. Skipped normally.
TEST(Checkpoint, FullDiskChildTrains) {
  const char* dir = std::getenv(kCheckpointDiskVariable);
  if (!dir) GTEST_SKIP() << "runs only as the child of FullDiskDuringACheckpointKeepsTheLastOne";
  ToyTask task;
  FillTheDiskAfterFirstEpoch observer{fs::path(dir)};
  const auto checkpoint = (fs::path(dir) / "checkpoint.pt").string();
  try {
    run_training_loop(task, toy_options(dir, 3), false, silent_logger(), &observer);
    ADD_FAILURE() << "the second checkpoint was written past the file size limit";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::IOError) << e.what();
    EXPECT_EQ(e.path(), checkpoint) << e.what();
    EXPECT_NE(std::string(e.what()).find("File too large"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, FullDiskDuringACheckpointKeepsTheLastOne) {
  const auto dir = siamese::testing::temp_dir("checkpoint_full_disk");
  const auto log = (fs::temp_directory_path() / ("siamese_checkpoint_full_disk_" + std::to_string(::getpid()) + ".log")).string();
  fs::remove(log);
  const pid_t child =
      siamese::testing::spawn_test_child("Checkpoint.FullDiskChildTrains", kCheckpointDiskVariable, dir.string(), log);
  ASSERT_GT(child, 0);
  EXPECT_EQ(siamese::testing::wait_for(child), 0) << "the training child failed or died; its output:\n"
                                                 << siamese::testing::read_file(log);
  EXPECT_TRUE(temporary_files(dir).empty()) << temporary_files(dir)[0];
  ASSERT_TRUE(fs::exists(dir / "epoch1.copy"));
  EXPECT_GT(fs::file_size(dir / "epoch1.copy"), 10 * kFileSizeLimit);
  EXPECT_TRUE(siamese::testing::read_file(dir / "checkpoint.pt") == siamese::testing::read_file(dir / "epoch1.copy"))
      << "the first epoch's checkpoint changed";
  // It still resumes: two more epochs after the first.
  ToyTask task;
  auto result = run_training_loop(task, toy_options(dir, 3), true);
  ASSERT_EQ(result.history.size(), 3u);
  EXPECT_EQ(result.history[2].epoch, 3);
  fs::remove(log);
}

TEST(Checkpoint, FlippedBitInTheWeightsIsRefused) {
  const auto dir = siamese::testing::temp_dir("checkpoint_flip");
  ToyTask task;
  run_training_loop(task, toy_options(dir, 1), false);
  const auto path = dir / "checkpoint.pt";
  auto good = siamese::testing::read_file(path);
  // A byte in the middle of the layer's weights, found in the file by the weights' own bytes.
  auto w = task.layer_->weight.detach().contiguous();
  const std::string needle(static_cast<const char*>(w.data_ptr()) + w.nbytes() / 2, 64);
  const size_t at = good.find(needle);
  ASSERT_NE(at, std::string::npos);
  ASSERT_EQ(good.find(needle, at + 1), std::string::npos);
  good[at + 2] = static_cast<char>(good[at + 2] ^ 0x10);
  {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << good;
  }
  ToyTask resumed;
  try {
    run_training_loop(resumed, toy_options(dir, 2), true);
    ADD_FAILURE() << "a checkpoint with a flipped bit was resumed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Corruption) << e.what();
    EXPECT_EQ(e.path(), path.string());
    EXPECT_NE(std::string(e.what()).find("corrupt checkpoint (archive/data/"), std::string::npos) << e.what();
  }
}
