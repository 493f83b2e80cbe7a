#include <gtest/gtest.h>
#include <torch/torch.h>

#include <numeric>
#include <opencv2/imgcodecs.hpp>

#include "siamese/core/error.h"
#include "siamese/model/inputs.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::idx_bytes;
using siamese::testing::temp_dir;
using siamese::testing::write_bytes;
namespace fs = std::filesystem;

namespace {

SavedModel image_model(const std::string& info = "{}") {
  torch::manual_seed(3);
  SiameseNetwork net(SiameseNetworkOptions().cnn(
      CnnEncoderOptions().in_channels(1).height(12).width(12).conv_channels({4}).hidden(8).embedding_dim(4)));
  net->eval();
  return SavedModel{net, 0.5, info};
}

void write_png(const fs::path& path, int value) {
  fs::create_directories(path.parent_path());
  cv::imwrite(path.string(), cv::Mat(12, 12, CV_8UC1, cv::Scalar::all(value)));
}

/// idx:DIR with `train` training and `test` test images of 12×12, image i filled with i, label i % 10.
std::string write_idx_spec(const fs::path& dir, int train, int test) {
  fs::create_directories(dir);
  for (auto [prefix, n] : {std::pair<std::string, int>{"train", train}, {"t10k", test}}) {
    std::vector<uint8_t> pixels, labels;
    for (int i = 0; i < n; ++i) {
      pixels.insert(pixels.end(), 144, static_cast<uint8_t>(i));
      labels.push_back(static_cast<uint8_t>(i % 10));
    }
    write_bytes((dir / (prefix + "-images-idx3-ubyte")).string(), idx_bytes({static_cast<uint32_t>(n), 12, 12}, pixels), false);
    write_bytes((dir / (prefix + "-labels-idx1-ubyte")).string(), idx_bytes({static_cast<uint32_t>(n)}, labels), false);
  }
  return "idx:" + dir.string();
}

struct Collect : Logger {
  std::vector<std::pair<LogLevel, std::string>> lines;
  void log(LogLevel level, const std::string& message) override { lines.emplace_back(level, message); }
};

void expect_code(const std::function<void()>& f, ErrorCode code, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error (expected '" << words << "')";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(ModelInputs, AFolderIsLabelledByItsSubFoldersAndKeyedByPath) {
  auto dir = temp_dir("inputs_folder");
  write_png(dir / "b" / "y.png", 30);
  write_png(dir / "a" / "x2.png", 20);
  write_png(dir / "a" / "x1.png", 10);
  write_png(dir / "loose.png", 40);
  std::ofstream(dir / "notes.txt") << "not an image\n";
  auto model = image_model();
  auto in = read_inputs(dir.string(), model);
  EXPECT_EQ(in.keys, (std::vector<std::string>{(dir / "a" / "x1.png").string(), (dir / "a" / "x2.png").string(),
                                               (dir / "b" / "y.png").string(), (dir / "loose.png").string()}));
  EXPECT_EQ(in.labels, (std::vector<int64_t>{0, 0, 1, -1}));
  EXPECT_EQ(in.class_names, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(in.items->size(), 4);
  EXPECT_EQ(in.items->labels(), (std::vector<int64_t>{0, 0, 1, 0}));  // unknown reads as 0 in the data set
  auto x = in.items->gather({0, 3});
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 1, 12, 12}));
  EXPECT_NEAR(x[0].max().item<double>(), 10 / 255.0, 1e-6);
  EXPECT_NEAR(x[1].min().item<double>(), 40 / 255.0, 1e-6);

  auto one = read_inputs((dir / "b" / "y.png").string(), model);
  EXPECT_EQ(one.keys, (std::vector<std::string>{(dir / "b" / "y.png").string()}));
  EXPECT_EQ(one.labels, (std::vector<int64_t>{-1}));
  EXPECT_TRUE(one.class_names.empty());
  auto files = read_files({(dir / "loose.png").string(), (dir / "a" / "x1.png").string()}, model);
  EXPECT_EQ(files.labels, (std::vector<int64_t>{-1, -1}));
  EXPECT_NEAR(files.items->gather({1}).max().item<double>(), 10 / 255.0, 1e-6);

  fs::create_directories(dir / "empty");
  expect_code([&] { read_inputs((dir / "empty").string(), model); }, ErrorCode::NotFound, "no images");
  expect_code([&] { read_inputs((dir / "nothing").string(), model); }, ErrorCode::NotFound, "no such file or folder");
}

TEST(ModelInputs, ASpecIsKeyedByItemAndEmbeddedInOrder) {
  auto dir = temp_dir("inputs_spec");
  const auto spec = write_idx_spec(dir / "idx", 30, 12);
  auto model = image_model();
  auto in = read_inputs(spec, model, "test");
  ASSERT_EQ(in.keys.size(), 12u);
  EXPECT_EQ(in.keys[3], spec + ":test#3");
  EXPECT_EQ(in.labels[3], 3);
  expect_code([&] { read_inputs(spec, model, "validation"); }, ErrorCode::InvalidArgument, "unknown split");

  auto e = embed_inputs(model, in);
  torch::Tensor expected;
  {
    torch::NoGradGuard no_grad;
    std::vector<int64_t> all(12);
    std::iota(all.begin(), all.end(), 0);
    expected = model.network->embed(in.items->gather(all));
  }
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{12, 4}));
  EXPECT_TRUE(torch::allclose(e, expected, 1e-5, 1e-6));
  model.network->train();
  expect_code([&] { embed_inputs(model, in); }, ErrorCode::InvalidArgument, "training mode");
}

TEST(ModelInputs, TextsWithNoKnownTokenAreWarnedOfThroughTheLogger) {
  SiameseNetwork net(SiameseNetworkOptions()
                         .encoder(EncoderKind::Gru)
                         .rnn(RnnEncoderOptions().token_dim(4).hidden(5).embedding_dim(3))
                         .tokens("word")
                         .vocabulary({"<unk>", "the", "lord", "god"}));
  net->eval();
  SavedModel model{net, 0.5, "{}"};
  Collect logger;
  auto known = read_inputs("the lord god", model, "train", logger);
  EXPECT_TRUE(logger.lines.empty());
  EXPECT_EQ(known.keys.size(), 1u);
  EXPECT_EQ(known.labels, (std::vector<int64_t>{-1}));
  auto unknown = read_inputs("xyzzy plugh", model, "train", logger);
  ASSERT_EQ(logger.lines.size(), 1u);
  EXPECT_EQ(logger.lines[0].first, LogLevel::Warning);
  EXPECT_NE(logger.lines[0].second.find("'xyzzy plugh' has no token the model knows"), std::string::npos)
      << logger.lines[0].second;
  EXPECT_EQ(embed_inputs(model, unknown).sizes(), (std::vector<int64_t>{1, 3}));
  auto dir = temp_dir("inputs_text");
  std::ofstream(dir / "texts.txt") << "the lord\n\nqqq rrr\n";
  auto lines = read_inputs((dir / "texts.txt").string(), model, "train", logger);
  EXPECT_EQ(lines.keys.size(), 2u);
  ASSERT_EQ(logger.lines.size(), 2u);
  EXPECT_NE(logger.lines[1].second.find("1 of 2 items have no token"), std::string::npos) << logger.lines[1].second;
}

TEST(OpenDataAsTrained, ReopensTheSplitsTheModelFileDescribes) {
  auto dir = temp_dir("as_trained");
  const auto spec = write_idx_spec(dir / "idx", 60, 30);
  nlohmann::json info{{"data", spec}, {"protocol", "fmnist-unseen"}, {"unseen_classes", {7, 8, 9}}, {"validation_size", 10}};
  auto model = image_model(info.dump());
  EXPECT_EQ(trained_data_spec(model), spec);
  EXPECT_EQ(trained_data_spec(image_model()), "fashion-mnist");

  auto data = open_data_as_trained(model);
  EXPECT_EQ(data.spec, spec);
  EXPECT_FALSE(data.sequences);
  EXPECT_EQ(data.protocol, Protocol::Unseen);
  const auto expected = make_splits(open_data(spec), SplitOptions()
                                                         .protocol(Protocol::Unseen)
                                                         .unseen_classes({7, 8, 9})
                                                         .validation_size(10));
  EXPECT_EQ(data.train->labels(), expected.train.labels());
  EXPECT_EQ(data.validation->labels(), expected.validation.labels());
  EXPECT_EQ(data.test->labels(), expected.test.labels());
  for (auto l : data.test->labels()) EXPECT_GE(l, 7);
  const auto& test = dynamic_cast<const ImageDataset&>(*data.test);
  EXPECT_TRUE(torch::equal(test.images(), expected.test.images()));

  // The caller's choices win over the model file's.
  auto seen = open_data_as_trained(model, TrainedDataOptions().protocol(Protocol::Seen).subset(5));
  EXPECT_EQ(seen.protocol, Protocol::Seen);
  EXPECT_EQ(seen.test->size(), 5);
  EXPECT_EQ(seen.test->labels(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  auto other = open_data_as_trained(model, TrainedDataOptions().unseen_classes({0, 1}));
  for (auto l : other.test->labels()) EXPECT_LE(l, 1);
  expect_code([&] { open_data_as_trained(image_model("not json")); }, ErrorCode::Corruption, "not JSON");
}
