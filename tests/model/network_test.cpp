#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/data/data.h"
#include "siamese/model/model_file.h"
#include "siamese/model/network.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

SiameseNetwork small_network() {
  torch::manual_seed(7);
  return SiameseNetwork(SiameseNetworkOptions()
                            .cnn(CnnEncoderOptions().height(12).width(12).conv_channels({4, 8}).hidden(16).embedding_dim(5))
                            .input_mean({0.3})
                            .input_std({0.2}));
}

}  // namespace

TEST(Network, OneEncoderOneParameterSet) {
  auto net = small_network();
  EXPECT_EQ(net->parameters().size(), net->encoder->parameters().size());
  int64_t encoder_values = 0;
  for (const auto& p : net->encoder->parameters()) encoder_values += p.numel();
  int64_t all_values = 0;
  for (const auto& p : net->parameters()) all_values += p.numel();
  EXPECT_EQ(all_values, encoder_values);
}

TEST(Network, GradientsOfBothBranchesAccumulateInTheSharedWeights) {
  auto net = small_network();
  net->eval();  // fixed batch-norm statistics, so each branch can be taken alone
  auto a = torch::rand({3, 1, 12, 12}), b = torch::rand({3, 1, 12, 12});
  net->forward(a, b).sum().backward();
  std::vector<torch::Tensor> both;
  for (auto& p : net->parameters()) both.push_back(p.grad().clone());

  // The same distances with one branch frozen at a time: the gradients must add up.
  std::vector<torch::Tensor> sum(both.size());
  for (int branch = 0; branch < 2; ++branch) {
    net->zero_grad();
    auto ea = net->embed(a), eb = net->embed(b);
    paired_distance(branch == 0 ? ea : ea.detach(), branch == 0 ? eb.detach() : eb, Distance::Euclidean).sum().backward();
    auto params = net->parameters();
    for (size_t i = 0; i < params.size(); ++i) sum[i] = branch == 0 ? params[i].grad().clone() : sum[i] + params[i].grad();
  }
  for (size_t i = 0; i < both.size(); ++i) EXPECT_TRUE(torch::allclose(both[i], sum[i], 1e-4, 1e-6)) << i;
}

TEST(Network, ShapesAndTripletBranch) {
  auto net = small_network();
  auto x = torch::rand({4, 1, 12, 12});
  EXPECT_EQ(net->embed(x).sizes(), (std::vector<int64_t>{4, 5}));
  auto [dap, dan] = net->forward(x, x.flip({0}), x.flip({2}));
  EXPECT_EQ(dap.sizes(), (std::vector<int64_t>{4}));
  EXPECT_EQ(dan.sizes(), (std::vector<int64_t>{4}));
  EXPECT_THROW(net->embed(torch::rand({4, 3, 12, 12})), Error);
  EXPECT_THROW(net->embed(torch::rand({4, 1, 28, 28})), Error);
}

TEST(Network, NormalizedEmbeddingsHaveUnitLength) {
  torch::manual_seed(8);
  SiameseNetwork net(SiameseNetworkOptions().cnn(CnnEncoderOptions().normalize(true)));
  auto e = net->embed(torch::rand({6, 1, 28, 28}));
  EXPECT_TRUE(torch::allclose(e.norm(2, 1), torch::ones({6}), 1e-5, 1e-5));
}

TEST(ModelFile, SaveLoadGivesIdenticalOutputs) {
  auto dir = temp_dir("roundtrip");
  auto net = small_network();
  net->train();
  net->embed(torch::rand({8, 1, 12, 12}));  // moves the batch-norm running statistics
  net->eval();
  const auto path = (dir / "model.pt").string();
  save_model(path, net, 0.42, R"({"note":"x"})");
  auto loaded = load_model(dir.string());  // a folder means folder/model.pt
  auto x = torch::rand({5, 1, 12, 12});
  EXPECT_TRUE(torch::equal(net->embed(x), loaded.network->embed(x)));
  EXPECT_DOUBLE_EQ(loaded.threshold, 0.42);
  EXPECT_EQ(loaded.info, R"({"note":"x"})");
  EXPECT_EQ(loaded.network->options.cnn().conv_channels(), (std::vector<int64_t>{4, 8}));
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));
}

TEST(ModelFile, CorruptMissingAndForeignFilesAreClearErrors) {
  auto dir = temp_dir("bad");
  auto expect_error = [](const std::string& path, ErrorCode code, const std::string& words) {
    try {
      load_model(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << to_string(e.code()) << ": " << e.what();
      EXPECT_EQ(e.path(), path) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  expect_error((dir / "missing.pt").string(), ErrorCode::NotFound, "no such model file");

  auto net = small_network();
  const auto good = (dir / "good.pt").string();
  save_model(good, net, 1.0);
  const auto size = fs::file_size(good);
  fs::copy_file(good, dir / "truncated.pt");
  fs::resize_file(dir / "truncated.pt", size / 2);
  expect_error((dir / "truncated.pt").string(), ErrorCode::Corruption, "corrupt");

  std::ofstream((dir / "text.pt").string()) << "not a model";
  expect_error((dir / "text.pt").string(), ErrorCode::Corruption, "corrupt");

  torch::serialize::OutputArchive other;  // a valid archive, but not ours
  other.write("weights", torch::zeros({2}));
  other.save_to((dir / "other.pt").string());
  expect_error((dir / "other.pt").string(), ErrorCode::Corruption, "not a siamese model");

  torch::serialize::OutputArchive future;
  future.write("format", c10::IValue(std::string("siamese-model")));
  future.write("version", c10::IValue(int64_t{99}));
  future.save_to((dir / "future.pt").string());
  expect_error((dir / "future.pt").string(), ErrorCode::Unsupported, "version 99");
}

TEST(ModelFile, FailedWriteLeavesTheOldFileIntact) {
  auto dir = temp_dir("atomic");
  const auto path = (dir / "model.pt").string();
  auto net = small_network();
  save_model(path, net, 0.5);
  const auto before = fs::file_size(path);
  EXPECT_THROW(write_atomically(path, [](const std::string& tmp) {
                 std::ofstream(tmp) << "half";
                 throw Error(ErrorCode::IOError, tmp, "disk full");
               }),
               Error);
  EXPECT_EQ(fs::file_size(path), before);
  EXPECT_DOUBLE_EQ(load_model(path).threshold, 0.5);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // no temporary left
}

TEST(Embedding, ThreadsShareOneNetworkAndNeverSwitchItsMode) {
  torch::manual_seed(0);
  SiameseNetwork net(SiameseNetworkOptions().cnn(
      CnnEncoderOptions().in_channels(1).height(12).width(12).conv_channels({4}).hidden(8).embedding_dim(4)));
  ImageDataset data(torch::randint(0, 256, {40, 1, 12, 12}).to(torch::kUInt8), std::vector<int64_t>(40, 0), "random");
  try {  // a network in training mode is refused, not switched behind the caller's back
    embed_dataset(net, data);
    FAIL() << "embedded with a network in training mode";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
  }
  EXPECT_TRUE(net->is_training());
  net->eval();
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;  // one batch straight through the network, the other way round
    expected = net->embed(data.gather(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                           17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
                                                           32, 33, 34, 35, 36, 37, 38, 39}));
  }
  std::vector<torch::Tensor> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] { got[t] = embed_dataset(net, data, static_cast<int64_t>(3 + t)); });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_TRUE(torch::allclose(g, expected, 1e-5, 1e-6));
  EXPECT_FALSE(net->is_training());
}

TEST(Embedding, LargeImagesGoThroughInPassesWithTheSameEmbeddings) {
  // 1,100 x 1,100 px: over 2M values for two images, so embed_dataset forwards one at a time.
  torch::manual_seed(3);
  SiameseNetwork net(SiameseNetworkOptions()
                         .encoder(EncoderKind::Convnet)
                         .cnn(CnnEncoderOptions().in_channels(1).height(1100).width(1100).conv_channels({4}).hidden(0).embedding_dim(4))
                         .input_mean({0.0})
                         .input_std({1.0}));
  net->eval();
  ImageDataset data(torch::randint(0, 256, {3, 1, 1100, 1100}).to(torch::kUInt8), {0, 1, 2}, "large");
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    expected = net->embed(data.gather({0, 1, 2}));
  }
  const auto got = embed_dataset(net, data);
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-5)) << (got - expected).abs().max().item<double>();
}

namespace {
/// Keeps every line; count() reports at every call (interval 0).
class EveryCount : public Logger {
 public:
  EveryCount() { count_every = std::chrono::milliseconds(0); }
  void log(LogLevel, const std::string& message) override { lines.push_back(message); }
  std::vector<std::string> lines;
};
}  // namespace

TEST(EmbedDataset, CountsTheItemsEmbeddedToTheLogger) {
  torch::manual_seed(2);
  SiameseNetwork net(SiameseNetworkOptions().cnn(
      CnnEncoderOptions().in_channels(1).height(12).width(12).conv_channels({4}).hidden(8).embedding_dim(4)));
  net->eval();
  ImageDataset data(torch::randint(0, 256, {25, 1, 12, 12}).to(torch::kUInt8), std::vector<int64_t>(25, 0), "random");
  EveryCount logger;
  EXPECT_EQ(embed_dataset(net, data, 10, logger).size(0), 25);
  EXPECT_EQ(logger.lines, (std::vector<std::string>{"embedding: 10/25 (40%)", "embedding: 20/25 (80%)", "embedding: 25/25 (100%)"}));
}
