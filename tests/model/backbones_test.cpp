// Backbones against PyTorch: torchvision's ResNet-18 weights imported into the native ResNet, and
// the same network as a TorchScript module, give PyTorch's own outputs (scripts/torch-reference
// writes them; the CTest fixture model/torch-reference runs it), in eval and train mode; the
// ResNet-34 and -50 trunks have torchvision's names and shapes; bad weights and bad modules are
// refused with one clear line.
#include "siamese/model/backbones.h"

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/model/model_file.h"
#include "siamese/model/weights.h"
#include "test_util.h"

using namespace siamese;
namespace fs = std::filesystem;

namespace {

/// The folder scripts/torch-reference wrote (CTest sets SIAMESE_TORCH_REFERENCE).
fs::path reference() {
  const char* dir = std::getenv("SIAMESE_TORCH_REFERENCE");
  if (!dir || !fs::exists(fs::path(dir) / "done")) {
    ADD_FAILURE() << "no reference files: run through CTest (the model/torch-reference fixture), or run "
                     "scripts/torch-reference DIR and set SIAMESE_TORCH_REFERENCE=DIR";
    return {};
  }
  return dir;
}

std::map<std::string, torch::Tensor> io() {
  std::map<std::string, torch::Tensor> m;
  for (auto& [name, t] : read_state_dict((reference() / "resnet18_io.pt").string())) m[name] = t;
  return m;
}

SiameseNetworkOptions image_network(EncoderKind kind, int64_t size = 64) {
  return SiameseNetworkOptions()
      .encoder(kind)
      .cnn(CnnEncoderOptions().in_channels(3).height(size).width(size).conv_channels({8, 16}).hidden(0).embedding_dim(16))
      .input_mean({0.0})
      .input_std({1.0});
}

torch::Tensor pooled(const torch::Tensor& maps) { return maps.mean({2, 3}); }

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  return (a - b).abs().max().item<double>();
}

void expect_error(const std::function<void()>& f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error (expected '" << words << "')";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

std::shared_ptr<const std::string> script_bytes(const std::string& name) {
  return std::make_shared<const std::string>(read_file((reference() / name).string()));
}

}  // namespace

TEST(ResnetParity, TorchvisionWeightsGiveTorchvisionsOutputs) {
  auto ref = io();
  SiameseNetwork net(image_network(EncoderKind::Resnet18));
  const auto file = (reference() / "resnet18_state.pt").string();
  EXPECT_EQ(load_trunk(*net, read_state_dict(file), file, {"fc."}), 120);  // torchvision's 122 tensors but fc's 2
  torch::NoGradGuard no_grad;
  net->eval();
  const auto maps = net->feature_maps(ref["input"]);
  EXPECT_LT(max_difference(maps, ref["maps"]), 1e-4);
  EXPECT_LT(max_difference(pooled(maps), ref["eval"]), 1e-4);
  net->train();  // batch statistics, and the running statistics move as PyTorch's did
  EXPECT_LT(max_difference(pooled(net->feature_maps(ref["input"])), ref["train"]), 1e-4);
  const auto encoder = std::dynamic_pointer_cast<ResnetEncoderImpl>(net->encoder);
  ASSERT_TRUE(encoder);
  EXPECT_LT(max_difference(encoder->bn1->running_mean, ref["running_mean"]), 1e-6);
}

TEST(ResnetParity, DeeperTrunksHaveTorchvisionsNamesAndShapes) {
  for (const auto& [kind, file] : std::vector<std::pair<EncoderKind, std::string>>{
           {EncoderKind::Resnet34, "resnet34_shapes.txt"}, {EncoderKind::Resnet50, "resnet50_shapes.txt"}}) {
    std::map<std::string, std::vector<int64_t>> want, got;
    std::ifstream in(reference() / file);
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      std::string name;
      words >> name;
      auto& shape = want[name];
      for (int64_t s; words >> s;) shape.push_back(s);
    }
    SiameseNetwork net(image_network(kind));
    for (const auto& [name, t] : trunk_tensors(*net)) got[name] = t.sizes().vec();
    EXPECT_FALSE(want.empty());
    EXPECT_EQ(got, want) << file;
  }
}

TEST(ResnetParity, WeightsThatDoNotFitAreListedAndNothingChanges) {
  SiameseNetwork net(image_network(EncoderKind::Resnet18));
  const auto file = (reference() / "resnet18_state.pt").string();
  auto tensors = read_state_dict(file);
  const auto before = net->encoder->named_parameters()["conv1.weight"].clone();
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [](const auto& e) { return e.first == "layer2.0.bn1.weight"; }),
                tensors.end());
  for (auto& [name, t] : tensors) {
    if (name == "layer3.1.conv2.weight") t = torch::zeros({3, 3});
  }
  tensors.emplace_back("extra.weight", torch::zeros({1}));
  expect_error([&] { load_trunk(*net, tensors, file, {"fc."}); }, "missing layer2.0.bn1.weight; misshapen layer3.1.conv2.weight [3, 3]");
  expect_error([&] { load_trunk(*net, tensors, file, {"fc."}); }, "not in the trunk extra.weight");
  EXPECT_TRUE(torch::equal(net->encoder->named_parameters()["conv1.weight"], before));
  // A torch.save'd plain dict reads too; entries that are not tensors are left out.
  const auto plain = read_state_dict((reference() / "plain.pt").string());
  ASSERT_EQ(plain.size(), 2u);
  EXPECT_TRUE(torch::equal(plain[0].second, torch::arange(6.0).reshape({2, 3})));
  expect_error([&] { read_state_dict((reference() / "resnet34_shapes.txt").string()); }, "not a zip archive");
}

TEST(TorchScriptBackbone, GivesPyTorchsOutputsInEvalAndTrainMode) {
  auto ref = io();
  auto options = image_network(EncoderKind::TorchScript).backbone(script_bytes("resnet18_script.pt")).backbone_source("resnet18_script.pt");
  SiameseNetwork net(options);
  auto encoder = std::dynamic_pointer_cast<TorchScriptEncoderImpl>(net->encoder);
  ASSERT_TRUE(encoder);
  torch::NoGradGuard no_grad;
  net->eval();
  EXPECT_LT(max_difference(encoder->module->forward({ref["input"]}).toTensor(), ref["eval"]), 1e-4);
  EXPECT_EQ(net->embed(ref["input"]).sizes(), (std::vector<int64_t>{2, 16}));
  net->train();
  EXPECT_LT(max_difference(encoder->module->forward({ref["input"]}).toTensor(), ref["train"]), 1e-4);
}

TEST(TorchScriptBackbone, GradientsReachTheModuleAndTheModelFileKeepsIt) {
  auto options = image_network(EncoderKind::TorchScript).backbone(script_bytes("resnet18_script.pt")).backbone_source("resnet18_script.pt");
  torch::manual_seed(1);
  SiameseNetwork net(options);
  auto params = net->encoder->named_parameters();
  auto frozen = params["script_conv1_weight"];
  frozen.set_requires_grad(false);
  const auto frozen_before = frozen.clone();
  const auto trained_before = params["script_layer4_1_conv2_weight"].clone();
  torch::optim::SGD sgd(net->parameters(), torch::optim::SGDOptions(0.1));
  net->train();
  const auto x = torch::rand({4, 3, 64, 64});
  sgd.zero_grad();
  net->embed(x).pow(2).sum().backward();
  sgd.step();
  EXPECT_TRUE(torch::equal(frozen, frozen_before));  // bit for bit
  EXPECT_FALSE(torch::equal(params["script_layer4_1_conv2_weight"], trained_before));
  auto encoder = std::dynamic_pointer_cast<TorchScriptEncoderImpl>(net->encoder);
  EXPECT_TRUE(torch::equal(encoder->module->attr("layer4").toModule().attr("1").toModule().attr("conv2").toModule().attr("weight").toTensor(),
                           params["script_layer4_1_conv2_weight"]));  // the module's own tensor, trained
  // Saved and loaded: the module travels in the model file; the embeddings are the same.
  const auto file = (siamese::testing::temp_dir("script_model") / "model.pt").string();
  net->eval();
  save_model(file, net, 0.5);
  auto loaded = load_model(file);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(loaded.network->embed(x), net->embed(x), 1e-5, 1e-6));
}

TEST(TorchScriptBackbone, ModulesThatCannotServeAreRefused) {
  expect_error([&] { SiameseNetwork(image_network(EncoderKind::TorchScript).backbone(script_bytes("plain.pt")).backbone_source("plain.pt")); },
               "not a TorchScript module");
  expect_error([&] { SiameseNetwork(image_network(EncoderKind::TorchScript).backbone(script_bytes("script_bad_output.pt"))); },
               "must be [N, F] (features) or [N, C, h, w]");
  auto grey = image_network(EncoderKind::TorchScript).backbone(script_bytes("resnet18_script.pt"));
  grey.cnn(grey.cnn().in_channels(1));
  expect_error([&] { SiameseNetwork net(grey); }, "the TorchScript module fails on input [2, 1, 64, 64]");
  expect_error([&] { SiameseNetwork(image_network(EncoderKind::TorchScript)); }, "needs its module");
}

TEST(FreeSizeEncoders, TakeAnyInputSizeAndShowTheirFeatureMaps) {
  torch::NoGradGuard no_grad;
  SiameseNetwork convnet(image_network(EncoderKind::Convnet));
  convnet->eval();
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{40, 40}, {64, 97}}) {
    const auto x = torch::rand({3, 3, h, w});
    EXPECT_EQ(convnet->embed(x).sizes(), (std::vector<int64_t>{3, 16}));
    EXPECT_EQ(convnet->feature_maps(x).sizes(), (std::vector<int64_t>{3, 16, h / 4, w / 4}));
  }
  SiameseNetwork resnet(image_network(EncoderKind::Resnet18));
  resnet->eval();
  EXPECT_EQ(resnet->feature_maps(torch::rand({1, 3, 96, 64})).sizes(), (std::vector<int64_t>{1, 512, 3, 2}));
  expect_error([&] { resnet->embed(torch::rand({1, 3, 16, 16})); }, "H >= 32");
  SiameseNetwork cnn(image_network(EncoderKind::Cnn));
  expect_error([&] { cnn->feature_maps(torch::rand({1, 3, 64, 64})); }, "only the resnet and convnet encoders");
}
