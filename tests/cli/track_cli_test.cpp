// siamese train --task tracking -> track -> track-eval on tiny synthetic sequences, and the
// commands' bad input: one error line each, nothing written.
#include <gtest/gtest.h>

#include <fstream>

#include "siamese/model/model_file.h"
#include "siamese/track/evaluation.h"
#include "test_util.h"
#include "track/tracking_test_util.h"

using namespace siamese;
using siamese::testing::lines_of;
using siamese::testing::run;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

class TrackCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp_dir("track-cli"));
    write_square_sequences(*dir_ / "data");
    const auto r = run("train --task tracking --data sequences:" + (*dir_ / "data").string() +
                       " --pairs 8 --batch-size 4 --epochs 1 --validation-pairs 4 --warmup-steps 0 --threads 2 --positive-radius 12 --quiet --out " +
                       (*dir_ / "run").string());
    ASSERT_EQ(r.code, 0) << r.out;
    ASSERT_NE(r.out.find("best epoch 1: validation hit@16px"), std::string::npos) << r.out;
    const auto config = nlohmann::json::parse(siamese::testing::read_file(*dir_ / "run" / "config.json"));
    ASSERT_EQ(config.at("positive_radius").get<double>(), 12.0);
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path* dir_;
};
fs::path* TrackCli::dir_ = nullptr;

TEST_F(TrackCli, TracksAFolderAndEvaluatesAgainstTheGroundTruth) {
  const auto& d = *dir_;
  const auto csv = d / "boxes.csv";
  auto r = run("track --model " + (d / "run").string() + " --frames " + (d / "data" / "a" / "img").string() +
               " --init 10,20,20,20 --out " + csv.string() + " --render " + (d / "frames").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tracked 10 frames at"), std::string::npos) << r.out;
  const auto text = siamese::testing::read_file(csv);
  EXPECT_EQ(text.rfind("frame,x,y,w,h,score\n0,10.00,20.00,20.00,20.00,1.0000\n", 0), 0u) << text;
  EXPECT_EQ(lines_of(text), 11u);
  EXPECT_EQ(image_files((d / "frames").string()).size(), 10u);

  r = run("track-eval --model " + (d / "run").string() + " --sequences " + (d / "data").string() +
          " --trackers siamfc,fixed,kcf --json --quiet --plots " + (d / "plot").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = siamese::testing::last_json_line(r.out);
  ASSERT_EQ(j["sequences"].size(), 3u);
  // The fixed box's figures, computed here from the ground truth alone.
  std::vector<Curves> fixed;
  for (const char* name : {"a", "b", "c"}) {
    const auto s = read_sequence((d / "data" / name).string());
    fixed.push_back(sequence_curves(std::vector<Box>(s.boxes.size(), s.boxes[0]), s.boxes));
  }
  const auto mean = mean_curves(fixed);
  EXPECT_NEAR(j["overall"]["fixed"]["success_auc"].get<double>(), mean.success_auc, 1e-12);
  EXPECT_NEAR(j["overall"]["fixed"]["precision_20"].get<double>(), mean.precision_20, 1e-12);
  EXPECT_NEAR(j["sequences"][1]["fixed"]["success_auc"].get<double>(), fixed[1].success_auc, 1e-12);
  for (const char* t : {"siamfc", "kcf"}) {
    const double auc = j["overall"][t]["success_auc"].get<double>();
    EXPECT_GT(auc, 0) << t;
    EXPECT_LE(auc, 1) << t;
  }
  EXPECT_NE(siamese::testing::read_file(d / "plot-success.svg").find("<svg"), std::string::npos);
  EXPECT_NE(siamese::testing::read_file(d / "plot-precision.svg").find("siamfc"), std::string::npos);
}

TEST_F(TrackCli, BadInputGivesOneErrorLineAndWritesNothing) {
  const auto& d = *dir_;
  const auto model = (d / "run").string(), frames = (d / "data" / "a" / "img").string(), out = (d / "bad.csv").string();
  auto expect_error = [&](const std::string& args, const std::string& message) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_EQ(lines_of(r.out), 1u) << r.out;
    EXPECT_NE(r.out.find(message), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out)) << args;
  };
  const auto track = "track --model " + model + " --out " + out + " ";
  expect_error(track + "--frames " + frames + " --init 500,500,20,20", "outside the 128 × 96 frame");
  expect_error(track + "--frames " + frames + " --init 10,10,0,20", "at least 1 pixel");
  std::ofstream(d / "clip.mp4") << "not a video";
  expect_error(track + "--frames " + (d / "clip.mp4").string() + " --init 10,10,20,20", "cannot open this file as a video");
  // An unreadable frame in the middle, named with its index.
  fs::copy(d / "data" / "a", d / "broken", fs::copy_options::recursive);
  std::ofstream(d / "broken" / "img" / "0004.png") << "truncated";
  expect_error(track + "--frames " + (d / "broken" / "img").string() + " --init 10,20,20,20", "0004.png: frame 3");
  // Frames of another size.
  fs::copy(d / "data" / "a", d / "sizes", fs::copy_options::recursive);
  cv::imwrite((d / "sizes" / "img" / "0005.png").string(), cv::Mat(50, 60, CV_8UC3, cv::Scalar(1, 2, 3)));
  expect_error(track + "--frames " + (d / "sizes" / "img").string() + " --init 10,20,20,20", "frame 4 is 60 × 50");
  // A similarity model.
  SiameseNetwork similarity(SiameseNetworkOptions{});
  save_model((d / "similarity.pt").string(), similarity, 0.5);
  expect_error("track --model " + (d / "similarity.pt").string() + " --out " + out + " --frames " + frames + " --init 10,20,20,20",
               "a similarity model (siamese train), not a tracking one");
  // A ground-truth file with a malformed row.
  fs::copy(d / "data", d / "badtruth", fs::copy_options::recursive);
  std::ofstream(d / "badtruth" / "b" / "groundtruth_rect.txt") << "1,2,3,4\n1,2,3\n";
  expect_error("track-eval --model " + model + " --trackers fixed --sequences " + (d / "badtruth").string(), "groundtruth_rect.txt line 2");
  // A box of 3 numbers, a flag beside --resume and a positive radius of 0 (below) are usage errors
  // (exit 2); an unknown trunk exit 1.
  const std::vector<std::pair<std::string, int>> cases{
      {"track --model " + model + " --frames " + frames + " --init 1,2,3", 2},
      {"train --task tracking --resume " + model + " --epochs 3", 2},
      {"train --task=tracking --trunk vgg --out " + (d / "vgg").string(), 1}};
  for (const auto& [args, code] : cases) {
    const auto r = run(args);
    EXPECT_EQ(r.code, code) << args << "\n" << r.out;
    EXPECT_EQ(lines_of(r.out), 1u) << r.out;
  }
  EXPECT_FALSE(fs::exists(d / "vgg" / "config.json"));
  const auto radius = run("train --task tracking --positive-radius 0 --out " + (d / "radius").string());
  EXPECT_EQ(radius.code, 2) << radius.out;
  EXPECT_EQ(lines_of(radius.out), 1u) << radius.out;
  EXPECT_NE(radius.out.find("--positive-radius"), std::string::npos) << radius.out;
  EXPECT_FALSE(fs::exists(d / "radius"));
}
