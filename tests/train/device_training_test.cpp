// Training under --amp (bfloat16 autocast) and on a GPU (skipped without one): the run trains,
// config.json keeps amp, resume continues it, and a GPU run matches a CPU run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "siamese/model/device.h"
#include "siamese/train/trainer.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

/// 400 Fashion-MNIST training images, a small CNN, one thread, 2 epochs.
TrainOptions device_run(const fs::path& out) {
  TrainOptions o;
  o.runtime.out = out.string();
  o.data.split.subset(400).validation_size(5000);
  o.network.cnn(CnnEncoderOptions().conv_channels({8, 16}).hidden(32).embedding_dim(16).normalize(true));
  o.sampler.p = 5;
  o.sampler.k = 8;
  o.optim.epochs = 2;
  o.optim.warmup_steps = 5;
  o.runtime.threads = 1;
  o.runtime.workers = 1;
  return o;
}

class StopAfterOne : public TrainObserver {
 public:
  bool on_epoch_end(const EpochRecord& r) override { return r.epoch < 1; }
};

}  // namespace

TEST(DeviceTraining, AmpTrainsIsKeptInTheConfigAndResumes) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  const auto root = temp_dir("amp_training");
  const auto exact = train(device_run(root / "float32"));
  auto o = device_run(root / "amp");
  o.runtime.amp = true;
  const auto mixed = train(o);
  ASSERT_TRUE(mixed.finished);
  ASSERT_EQ(mixed.history.size(), 2u);
  const auto config = nlohmann::json::parse(siamese::testing::read_file(root / "amp" / "config.json"));
  EXPECT_TRUE(config.at("amp").get<bool>());
  // The same run in bfloat16: the losses move apart a little, the model learns as much.
  const double a = exact.history[0].loss, b = mixed.history[0].loss;
  EXPECT_NE(a, b) << "amp gave float32's loss exactly: autocast did not run";
  EXPECT_NEAR(a, b, 0.05 * a);
  EXPECT_GT(mixed.test.recall_at_1, 0.45);
  EXPECT_NEAR(mixed.test.recall_at_1, exact.test.recall_at_1, 0.08);

  auto stopped = device_run(root / "amp_killed");
  stopped.runtime.amp = true;
  StopAfterOne stop;
  ASSERT_FALSE(train(stopped, silent_logger(), &stop).finished);
  const auto resumed = resume((root / "amp_killed").string());
  ASSERT_TRUE(resumed.finished);
  EXPECT_NEAR(resumed.history.back().loss, mixed.history.back().loss, 1e-6);  // amp came back from config.json
}

TEST(DeviceTraining, AGpuThisMachineLacksIsRefusedBeforeAnythingIsWritten) {
  if (cuda_available()) GTEST_SKIP() << "this machine has a GPU";
  const auto root = temp_dir("no_gpu");
  auto o = device_run(root / "run");
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
  const auto cpu = train(device_run(root / "cpu"));
  auto o = device_run(root / "gpu");
  o.runtime.device = parse_device("cuda");
  const auto gpu = train(o);
  ASSERT_TRUE(gpu.finished);
  EXPECT_TRUE(gpu.model.network->device().is_cuda());
  EXPECT_NEAR(gpu.history[0].loss, cpu.history[0].loss, 0.02 * cpu.history[0].loss);
  EXPECT_NEAR(gpu.test.recall_at_1, cpu.test.recall_at_1, 0.05);

  auto stopped = device_run(root / "gpu_killed");
  stopped.runtime.device = parse_device("cuda");
  StopAfterOne stop;
  ASSERT_FALSE(train(stopped, silent_logger(), &stop).finished);
  const auto resumed = resume((root / "gpu_killed").string());  // on the CPU: the checkpoint maps there
  ASSERT_TRUE(resumed.finished);
  EXPECT_TRUE(resumed.model.network->device().is_cpu());
  EXPECT_NEAR(resumed.history.back().loss, gpu.history.back().loss, 0.02 * gpu.history.back().loss);
}
