// --device and --amp: parsing, autocast, and a network placed on a device (CUDA cases skip
// without a GPU, as on Debian's CPU-only LibTorch).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/autocast_mode.h>

#include <numeric>

#include "siamese/core/error.h"
#include "siamese/data/data.h"
#include "siamese/model/device.h"
#include "siamese/model/model_file.h"
#include "siamese/model/network.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;

namespace {

#define SIAMESE_SKIP_WITHOUT_CUDA() \
  if (!siamese::cuda_available()) GTEST_SKIP() << "needs a CUDA GPU and a LibTorch built with CUDA"

SiameseNetwork device_test_network() {
  torch::manual_seed(11);
  auto net = SiameseNetwork(SiameseNetworkOptions()
                                .cnn(CnnEncoderOptions().height(16).width(16).conv_channels({8, 16}).hidden(32)
                                         .embedding_dim(8).normalize(true))
                                .input_mean({0.4})
                                .input_std({0.25}));
  net->eval();
  return net;
}

/// The error parse_device throws for `spec`, or "" when it throws none.
std::string device_error(const std::string& spec, ErrorCode* code = nullptr) {
  try {
    parse_device(spec);
  } catch (const Error& e) {
    if (code) *code = e.code();
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Device, ParsesCpuAutoAndRefusesWhatIsNotThere) {
  EXPECT_TRUE(parse_device("cpu").is_cpu());
  EXPECT_EQ(parse_device("auto").is_cuda(), cuda_available());
  EXPECT_EQ(to_string(parse_device("cpu")), "cpu");
  ErrorCode code = ErrorCode::Internal;
  for (const char* bad : {"gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:123456789", ""}) {
    EXPECT_NE(device_error(bad, &code).find("unknown device"), std::string::npos) << bad;
    EXPECT_EQ(code, ErrorCode::InvalidArgument) << bad;
  }
  if (cuda_available()) {
    EXPECT_EQ(to_string(parse_device("cuda")), "cuda:0");
    EXPECT_NE(device_error("cuda:99", &code).find("cuda:99"), std::string::npos);
    EXPECT_EQ(code, ErrorCode::Unsupported);
  } else {
    const auto message = device_error("cuda", &code);
    EXPECT_EQ(code, ErrorCode::Unsupported);
    EXPECT_NE(message.find("--device cuda: no CUDA GPU here"), std::string::npos) << message;
    EXPECT_NE(device_error("cuda:1").find("--device cuda:1"), std::string::npos);
  }
}

TEST(Device, AutocastGuardRunsMatrixProductsInBfloat16AndRestoresTheState) {
  auto a = torch::rand({4, 8}), b = torch::rand({8, 3});
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat32);
  {
    AutocastGuard on(c10::kCPU, true);
    EXPECT_TRUE(at::autocast::is_cpu_enabled());
    EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    EXPECT_EQ(torch::mm(a, b).sum().scalar_type(), torch::kBFloat16);  // reductions keep their input's type
    {
      AutocastGuard off(c10::kCPU, false);  // disabled: changes nothing
      EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
      AutocastGuard nested(c10::kCPU, true);
      EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kBFloat16);
    }
    EXPECT_TRUE(at::autocast::is_cpu_enabled());  // the nested guard gave back the state before it
  }
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
  EXPECT_EQ(at::autocast::get_autocast_cpu_dtype(), torch::kBFloat16);  // LibTorch's own default, unchanged
  EXPECT_EQ(torch::mm(a, b).scalar_type(), torch::kFloat32);
}

TEST(Device, AmpEmbeddingsAreFloat32AndCloseToFloat32Ones) {
  auto net = device_test_network();
  torch::manual_seed(3);
  auto x = torch::rand({32, 1, 16, 16});
  torch::NoGradGuard no_grad;
  const auto exact = net->embed(x);
  net->place(c10::kCPU, true);
  EXPECT_TRUE(net->amp());
  const auto mixed = net->embed(x);
  EXPECT_EQ(mixed.scalar_type(), torch::kFloat32);
  ASSERT_EQ(mixed.sizes(), exact.sizes());
  const double error = (mixed - exact).abs().max().item<double>();
  // Unit-length embeddings through bfloat16 (8 bits of mantissa): close, but not bit-equal.
  EXPECT_LT(error, 0.05);
  EXPECT_GT(error, 0.0) << "the amp embeddings equal the float32 ones: autocast did not run";
  net->place(c10::kCPU, false);
  EXPECT_TRUE(torch::equal(net->embed(x), exact));
}

TEST(DeviceCuda, EmbeddingsOnTheGpuMatchTheCpuAndComeBackOnTheCpu) {
  SIAMESE_SKIP_WITHOUT_CUDA();
  auto net = device_test_network();
  torch::manual_seed(5);
  ImageDataset data(torch::randint(0, 256, {64, 1, 16, 16}, torch::kUInt8), std::vector<int64_t>(64, 0), "device test images");
  std::vector<int64_t> all_items(64);
  std::iota(all_items.begin(), all_items.end(), 0);
  const auto x = data.gather(all_items);
  torch::NoGradGuard no_grad;
  const auto on_cpu = net->embed(x);
  net->place(parse_device("cuda"));
  EXPECT_TRUE(net->device().is_cuda());
  const auto on_gpu = net->embed(x);  // a CPU input is moved to the network's device
  EXPECT_TRUE(on_gpu.is_cuda());
  EXPECT_TRUE(torch::allclose(on_gpu.cpu(), on_cpu, 1e-4, 1e-5));
  const auto all = embed_dataset(net, data, 16);
  EXPECT_TRUE(all.is_cpu());
  EXPECT_TRUE(torch::allclose(all, on_cpu, 1e-4, 1e-5));
  net->place(parse_device("cuda"), true);
  const auto mixed = net->embed(x);
  EXPECT_EQ(mixed.scalar_type(), torch::kFloat32);
  EXPECT_LT((mixed.cpu() - on_cpu).abs().max().item<double>(), 0.05);
}

TEST(DeviceCuda, AModelSavedFromTheGpuLoadsOnTheCpu) {
  SIAMESE_SKIP_WITHOUT_CUDA();
  auto net = device_test_network();
  torch::manual_seed(6);
  auto x = torch::rand({8, 1, 16, 16});
  torch::NoGradGuard no_grad;
  const auto expected = net->embed(x);
  net->place(parse_device("cuda"));
  const auto path = (temp_dir("device_model") / "model.pt").string();
  save_model(path, net, 0.5, "{}");
  auto loaded = load_model(path);
  EXPECT_TRUE(loaded.network->device().is_cpu());
  EXPECT_TRUE(torch::allclose(loaded.network->embed(x), expected, 1e-5, 1e-6));
}
