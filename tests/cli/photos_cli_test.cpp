// Photographs of any size through the CLI: train with --image-size on a folder of JPEGs of mixed
// sizes, then verify, eval and embed with the model alone (its view is in the model file); a
// list: data set with a bad file skipped.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "siamese/core/atomic_file.h"
#include "siamese/data/data.h"
#include "siamese/model/model_file.h"
#include "siamese/model/weights.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::last_json_line;
using siamese::testing::run;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

/// Fashion-MNIST images as RGB JPEGs of random sides in 40..90 px under root/SPLIT/classN/;
/// returns "path,label,split" rows for a list file.
std::string write_photos(const fs::path& root, const ImageDataset& d, const std::string& split, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> side(40, 90);
  std::string rows;
  for (int64_t i = 0; i < count; ++i) {
    const auto cls = "class" + std::to_string(d.labels()[i]);
    fs::create_directories(root / split / cls);
    auto img = d.images()[i][0].contiguous();
    cv::Mat grey(28, 28, CV_8UC1, img.data_ptr<uint8_t>()), big, colour;
    cv::resize(grey, big, cv::Size(side(rng), side(rng)), 0, 0, cv::INTER_LINEAR);
    cv::cvtColor(big, colour, cv::COLOR_GRAY2BGR);
    const auto file = split + "/" + cls + "/" + std::to_string(i) + ".jpg";
    cv::imwrite((root / file).string(), colour);
    rows += file + "," + cls + "," + split + "\n";
  }
  return rows;
}

}  // namespace

TEST(PhotosCli, TrainsOnPhotosOfMixedSizesAndTheModelReadsAnySize) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  const auto dir = temp_dir("photos_cli");
  const auto root = dir / "photos";
  auto source = open_data("fashion-mnist");
  const auto rows = write_photos(root, source.train, "train", 500, 1) + write_photos(root, source.test, "test", 150, 2);
  const auto out = dir / "run";
  auto r = run("train --json --data folder:" + root.string() + " --image-size 32 --epochs 1 --conv-channels 8,16 "
               "--hidden 0 --p 5 --k 4 --workers 2 --quiet --no-report --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(last_json_line(r.out)["test_images"].get<int64_t>(), 150);
  const auto model = load_model((out / "model.pt").string());
  EXPECT_EQ(model.network->options.image_view().size, 32);
  EXPECT_EQ(model.network->options.cnn().in_channels(), 3);

  // Two images of other sizes and formats than any trained on: no flag needed.
  cv::imwrite((dir / "wide.png").string(), cv::Mat(150, 200, CV_8UC3, cv::Scalar(10, 200, 30)));
  cv::imwrite((dir / "tall.jpg").string(), cv::Mat(47, 33, CV_8UC1, cv::Scalar(90)));
  auto v = run("verify --json --model " + out.string() + " " + (dir / "wide.png").string() + " " + (dir / "tall.jpg").string());
  ASSERT_EQ(v.code, 0) << v.out;
  EXPECT_GE(last_json_line(v.out)["distance"].get<double>(), 0.0);

  auto e = run("eval --json --model " + out.string());  // the folder it trained on, through its view
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_EQ(last_json_line(e.out)["test_images"].get<int64_t>(), 150);

  auto embed = run("embed --model " + out.string() + " --data folder:" + root.string() + " --split test --out " +
                   (dir / "test.npy").string());
  ASSERT_EQ(embed.code, 0) << embed.out;
  EXPECT_TRUE(fs::exists(dir / "test.npy"));

  // The same photos as a list file, with one truncated image left out by --on-bad-image skip.
  std::ofstream(root / "list.csv") << "path,label,split\n" << rows << "train/class0/bad.jpg,class0,train\n";
  const auto some = fs::directory_iterator(root / "train/class0")->path().string();
  std::ofstream(root / "train/class0/bad.jpg") << read_file(some).substr(0, 100);
  auto failed = run("train --data list:" + (root / "list.csv").string() + " --image-size 32 --epochs 1 --quiet --out " +
                    (dir / "list_fail").string());
  EXPECT_EQ(failed.code, 1) << failed.out;
  EXPECT_NE(failed.out.find("bad.jpg: truncated JPEG"), std::string::npos) << failed.out;
  EXPECT_FALSE(fs::exists(dir / "list_fail" / "model.pt"));
  auto skipped = run("train --json --data list:" + (root / "list.csv").string() + " --image-size 32 --on-bad-image skip "
                     "--epochs 1 --conv-channels 8 --hidden 0 --p 5 --k 4 --no-report --out " + (dir / "list_run").string());
  ASSERT_EQ(skipped.code, 0) << skipped.out;
  EXPECT_NE(skipped.out.find("skipped 1 of 651 image files"), std::string::npos) << skipped.out;
  EXPECT_EQ(last_json_line(skipped.out)["test_images"].get<int64_t>(), 150);
}

TEST(PhotosCli, BackbonesAndWeightsFromPyTorchTrainAndFreeze) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  const char* ref = std::getenv("SIAMESE_TORCH_REFERENCE");
  ASSERT_TRUE(ref && fs::exists(fs::path(ref) / "done")) << "run through CTest (fixture model/torch-reference)";
  const auto dir = temp_dir("photos_backbone");
  const auto root = dir / "photos";
  auto source = open_data("fashion-mnist");
  write_photos(root, source.train, "train", 200, 3);
  write_photos(root, source.test, "test", 60, 4);
  // A TorchScript module as the trunk, its first two tensors (conv 1's weight and bias) frozen.
  const auto script = (fs::path(ref) / "small_script.pt").string();
  auto r = run("train --json --data folder:" + root.string() + " --image-size 32 --backbone " + script +
               " --freeze 2 --hidden 0 --epochs 1 --p 5 --k 4 --no-report --out " + (dir / "script").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("froze 2 of the trunk's"), std::string::npos) << r.out;
  auto trained = load_model((dir / "script" / "model.pt").string());
  EXPECT_EQ(trained.network->options.encoder(), EncoderKind::TorchScript);
  auto fresh = SiameseNetwork(SiameseNetworkOptions(trained.network->options));  // the module as saved in Python
  auto before = fresh->encoder->named_parameters(), after = trained.network->encoder->named_parameters();
  EXPECT_TRUE(torch::equal(after["script_0_weight"], before["script_0_weight"]));  // frozen: bit for bit
  EXPECT_TRUE(torch::equal(after["script_0_bias"], before["script_0_bias"]));
  EXPECT_FALSE(torch::equal(after["script_3_weight"], before["script_3_weight"]));  // trained
  // verify needs nothing but the model file: the module travels in it.
  auto v = run("verify --model " + (dir / "script").string() + " " + fs::directory_iterator(root / "test/class0")->path().string() +
               " " + fs::directory_iterator(root / "test/class1")->path().string());
  EXPECT_EQ(v.code, 0) << v.out;

  // torchvision's ResNet-18 weights (a torch.save'd OrderedDict) into the native ResNet; the first
  // layers frozen up to layer4 stay exactly the imported ones.
  const auto weights = (fs::path(ref) / "resnet18_state.pt").string();
  auto w = run("train --json --data folder:" + root.string() + " --image-size 32 --encoder resnet18 --init-weights " +
               weights + " --freeze-until layer4 --hidden 0 --epochs 1 --p 5 --k 4 --no-report --out " + (dir / "resnet").string());
  ASSERT_EQ(w.code, 0) << w.out;
  auto resnet = load_model((dir / "resnet" / "model.pt").string());
  std::map<std::string, torch::Tensor> imported;
  for (auto& [name, t] : read_state_dict(weights)) imported[name] = t;
  auto params = resnet.network->encoder->named_parameters();
  EXPECT_TRUE(torch::equal(params["conv1.weight"], imported["conv1.weight"]));
  EXPECT_TRUE(torch::equal(params["layer3.1.conv2.weight"], imported["layer3.1.conv2.weight"]));
  EXPECT_FALSE(torch::equal(params["layer4.1.conv2.weight"], imported["layer4.1.conv2.weight"]));
  auto bad = run("train --data folder:" + root.string() + " --image-size 32 --encoder resnet34 --init-weights " + weights +
                 " --epochs 1 --out " + (dir / "bad").string());
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("weights do not fit the encoder's trunk: missing layer1.2."), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(dir / "bad" / "model.pt"));
}
