// --int8 (quantize.h): calibration ranges against the float network's own activations, int8
// embeddings against float32 ones, the ranges through a model file, and every refusal.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "siamese/core/error.h"
#include "siamese/model/model_file.h"
#include "siamese/model/network.h"
#include "siamese/model/quantize.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;

namespace {

/// A small "cnn" network whose batch norms hold running statistics of their own (a few training
/// passes), in eval mode.
SiameseNetwork trained_looking_network(bool hidden = true) {
  torch::manual_seed(21);
  SiameseNetwork net(SiameseNetworkOptions()
                         .cnn(CnnEncoderOptions().height(16).width(16).conv_channels({8, 16}).hidden(hidden ? 32 : 0)
                                  .embedding_dim(8).normalize(true))
                         .input_mean({0.3})
                         .input_std({0.2}));
  net->train();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : net->named_parameters()) {  // batch-norm scales and shifts of their own, to fold
      if (p.key().find("features.1.") != std::string::npos || p.key().find("features.5.") != std::string::npos) {
        p.value().uniform_(p.key().find("weight") != std::string::npos ? 0.5 : -0.3, p.key().find("weight") != std::string::npos ? 1.5 : 0.3);
      }
    }
    for (int i = 0; i < 5; ++i) net->embed(torch::rand({32, 1, 16, 16}));
  }
  net->eval();
  return net;
}

/// The code of the siamese::Error that f throws; -1 when it throws none.
int code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return static_cast<int>(e.code());
  }
  return -1;
}

}  // namespace

TEST(Int8, RangesAreTheFloatNetworksLargestActivations) {
  auto net = trained_looking_network();
  const auto images = torch::rand({40, 1, 16, 16});
  const auto ranges = int8_ranges(*net, images);
  ASSERT_EQ(ranges.size(), 3u);  // two conv blocks, the hidden layer
  auto cnn = std::dynamic_pointer_cast<CnnEncoderImpl>(net->encoder);
  torch::NoGradGuard no_grad;
  const auto features = cnn->features->forward((images - 0.3) / 0.2);  // the whole trunk: after the last block
  EXPECT_NEAR(ranges[1], features.max().item<double>(), 1e-6);
  const auto hidden = cnn->head[2]->as<torch::nn::ReLUImpl>()->forward(cnn->head[1]->as<torch::nn::LinearImpl>()->forward(features.flatten(1)));
  EXPECT_NEAR(ranges[2], hidden.max().item<double>(), 1e-6);
  EXPECT_GT(ranges[0], 0.0);
}

TEST(Int8, EmbeddingsStayCloseToFloat32) {
  for (bool hidden : {true, false}) {
    auto net = trained_looking_network(hidden);
    net->options.int8_ranges(int8_ranges(*net, torch::rand({64, 1, 16, 16})));
    const auto x = torch::rand({24, 1, 16, 16});
    torch::NoGradGuard no_grad;
    const auto exact = net->embed(x);
    net->use_int8(true);
    ASSERT_TRUE(net->int8());
    const auto quantized = net->embed(x);
    ASSERT_EQ(quantized.sizes(), exact.sizes());
    EXPECT_EQ(quantized.scalar_type(), torch::kFloat32);
    const auto gap = (quantized - exact).norm(2, 1);  // unit vectors
    EXPECT_GT(gap.max().item<double>(), 0.0) << "int8 changed nothing";
    EXPECT_LT(gap.mean().item<double>(), 0.05) << "hidden layer " << hidden;
    EXPECT_LT(gap.max().item<double>(), 0.15) << "hidden layer " << hidden;
    net->use_int8(false);
    EXPECT_TRUE(torch::equal(net->embed(x), exact));
    EXPECT_EQ(code_of([&] { net->use_int8(true), net->embed(torch::rand({2, 1, 8, 8})); }), static_cast<int>(ErrorCode::InvalidArgument));
  }
}

TEST(Int8, RangesTravelInTheModelFileAndBadOnesAreRefused) {
  auto net = trained_looking_network();
  net->options.int8_ranges(int8_ranges(*net, torch::rand({16, 1, 16, 16})));
  const auto path = (temp_dir("int8_model") / "model.pt").string();
  save_model(path, net, 1.0);
  auto loaded = load_model(path);
  EXPECT_EQ(loaded.network->options.int8_ranges(), net->options.int8_ranges());
  const auto x = torch::rand({4, 1, 16, 16});
  net->use_int8(true);
  loaded.network->use_int8(true);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(loaded.network->embed(x), net->embed(x)));  // one model file, one quantization

  auto json = to_json(net->options);
  const auto at = json.find("\"int8_ranges\":[");
  ASSERT_NE(at, std::string::npos);
  auto hostile = json;
  hostile.insert(at + 15, "-1,");
  EXPECT_EQ(code_of([&] { network_options_from_json(hostile); }), static_cast<int>(ErrorCode::Corruption));
}

TEST(Int8, RefusesWhatItCannotQuantize) {
  auto plain = trained_looking_network();  // no ranges: saved before calibration
  try {
    plain->use_int8(true);
    FAIL() << "no calibration accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(e.what()).find("no int8 calibration"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(plain->int8());
  plain->options.int8_ranges({1.0, 2.0});  // three needed
  EXPECT_EQ(code_of([&] { plain->use_int8(true); }), static_cast<int>(ErrorCode::InvalidArgument));
  plain->options.int8_ranges({1.0, 2.0, 3.0});
  plain->place(c10::kCPU, /*amp=*/true);
  EXPECT_EQ(code_of([&] { plain->use_int8(true); }), static_cast<int>(ErrorCode::InvalidArgument));  // not with --amp
  plain->place(c10::kCPU, false);
  plain->use_int8(true);
  EXPECT_EQ(code_of([&] { plain->place(c10::kCPU, true); }), static_cast<int>(ErrorCode::InvalidArgument));

  SiameseNetwork lstm(SiameseNetworkOptions().encoder(EncoderKind::Lstm).rnn(RnnEncoderOptions().features(2)));
  EXPECT_FALSE(int8_supported(*lstm));
  EXPECT_EQ(code_of([&] { lstm->use_int8(true); }), static_cast<int>(ErrorCode::Unsupported));
  EXPECT_EQ(code_of([&] { int8_ranges(*lstm, torch::rand({2, 1, 16, 16})); }), static_cast<int>(ErrorCode::Unsupported));
  EXPECT_EQ(code_of([&] { int8_ranges(*plain, torch::rand({0, 1, 16, 16})); }), static_cast<int>(ErrorCode::InvalidArgument));
  plain->train();
  EXPECT_EQ(code_of([&] { int8_ranges(*plain, torch::rand({4, 1, 16, 16})); }), static_cast<int>(ErrorCode::InvalidArgument));
}
