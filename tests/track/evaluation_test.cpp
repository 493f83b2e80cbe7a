// The OTB evaluation against values computed another way (IoU by counting pixels, the curves of a
// hand-computed 3-frame case), and the reading of sequences and frames, bad files included.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>

#include <fstream>
#include <random>

#include "siamese/core/error.h"
#include "siamese/track/evaluation.h"
#include "siamese/track/sequences.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

/// A sequence folder of `sizes.size()` PNG frames (w × h each, grey ramps) and its ground truth.
fs::path write_sequence(const fs::path& dir, const std::vector<std::pair<int, int>>& sizes, const std::string& truth) {
  fs::create_directories(dir / "img");
  for (size_t i = 0; i < sizes.size(); ++i) {
    cv::Mat image(sizes[i].second, sizes[i].first, CV_8UC3, cv::Scalar(10 * i, 20, 30));
    char name[16];
    std::snprintf(name, sizeof name, "%04zu.png", i + 1);
    cv::imwrite((dir / "img" / name).string(), image);
  }
  write_text(dir / "groundtruth_rect.txt", truth);
  return dir;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TrackEvaluation, IouEqualsCountedPixelsOfIntegerBoxes) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> pos(0, 30), size(0, 12);
  for (int trial = 0; trial < 300; ++trial) {
    const Box a{double(pos(rng)), double(pos(rng)), double(size(rng)), double(size(rng))};
    const Box b{double(pos(rng)), double(pos(rng)), double(size(rng)), double(size(rng))};
    int inter = 0, uni = 0;
    for (int y = 0; y < 45; ++y) {
      for (int x = 0; x < 45; ++x) {
        const bool in_a = x >= a.x && x < a.x + a.w && y >= a.y && y < a.y + a.h;
        const bool in_b = x >= b.x && x < b.x + b.w && y >= b.y && y < b.y + b.h;
        inter += in_a && in_b, uni += in_a || in_b;
      }
    }
    EXPECT_NEAR(iou(a, b), uni == 0 ? 0.0 : double(inter) / uni, 1e-12) << trial;
  }
}

TEST(TrackEvaluation, CurvesOfAHandComputedThreeFrameCase) {
  const std::vector<Box> truth{{0, 0, 10, 10}, {10, 10, 10, 10}, {0, 0, 20, 10}};
  // IoU 1, 1/3 (half the width overlaps), 1/2; centre errors 0, 5, 5 px.
  const std::vector<Box> predicted{{0, 0, 10, 10}, {15, 10, 10, 10}, {0, 0, 10, 10}};
  const auto c = sequence_curves(predicted, truth);
  ASSERT_EQ(c.success.size(), 21u);
  ASSERT_EQ(c.precision.size(), 51u);
  for (int i = 0; i <= 6; ++i) EXPECT_DOUBLE_EQ(c.success[i], 1.0) << i;        // t <= 0.30 < 1/3
  for (int i = 7; i <= 9; ++i) EXPECT_DOUBLE_EQ(c.success[i], 2.0 / 3) << i;    // 0.35 .. 0.45
  for (int i = 10; i <= 19; ++i) EXPECT_DOUBLE_EQ(c.success[i], 1.0 / 3) << i;  // 0.5 is not > 0.5
  EXPECT_DOUBLE_EQ(c.success[20], 0.0);                                          // 1 is not > 1
  EXPECT_NEAR(c.success_auc, (7 + 3 * 2.0 / 3 + 10 / 3.0) / 21, 1e-12);
  for (int t = 0; t < 5; ++t) EXPECT_DOUBLE_EQ(c.precision[t], 1.0 / 3) << t;
  for (int t = 5; t <= 50; ++t) EXPECT_DOUBLE_EQ(c.precision[t], 1.0) << t;
  EXPECT_DOUBLE_EQ(c.precision_20, 1.0);
  // Averaged over sequences point by point.
  const auto same = sequence_curves(truth, truth);
  const auto mean = mean_curves({c, same});
  EXPECT_NEAR(mean.success_auc, (c.success_auc + 20.0 / 21) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(mean.precision[4], (1.0 / 3 + 1) / 2);
  EXPECT_THROW(sequence_curves(predicted, {truth[0]}), Error);
}

TEST(TrackEvaluation, TheFixedBoxScoresWhatTheGroundTruthGives) {
  const auto dir = temp_dir("track-eval-fixed");
  const auto seq = write_sequence(dir / "a", {{64, 48}, {64, 48}, {64, 48}}, "1,2,10,10\n3,2,10,10\n1 2 10 10\n");
  const auto s = read_sequence(seq.string());
  auto fixed = make_baseline("fixed");
  const auto run = run_sequence(*fixed, s);
  ASSERT_EQ(run.boxes.size(), 3u);
  const std::vector<Box> same(3, Box{1, 2, 10, 10});
  EXPECT_DOUBLE_EQ(run.curves.success_auc, sequence_curves(same, s.boxes).success_auc);
  // Frame 1: IoU 8·10 / (200 − 80) = 2/3, centre 2 px away.
  EXPECT_NEAR(iou(same[1], s.boxes[1]), 2.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(run.curves.precision[1], 2.0 / 3);
  EXPECT_DOUBLE_EQ(run.curves.precision[2], 1.0);
  EXPECT_THROW(make_baseline("goturn"), Error);
}

TEST(TrackSequences, BadGroundTruthAndFramesGiveOneClearError) {
  const auto dir = temp_dir("track-sequences-bad");
  const std::vector<std::pair<int, int>> three{{32, 24}, {32, 24}, {32, 24}};
  auto e = error_of([&] { read_sequence(write_sequence(dir / "short", three, "1,1,5,5\n1,1,5,5\n").string()); });
  EXPECT_NE(e.find("2 boxes for 3 frames"), std::string::npos) << e;
  e = error_of([&] { read_sequence(write_sequence(dir / "malformed", three, "1,1,5,5\n1,1,x,5\n1,1,5,5\n").string()); });
  EXPECT_NE(e.find("line 2"), std::string::npos) << e;
  e = error_of([&] { read_sequence(write_sequence(dir / "nan", three, "1,1,5,5\n1,1,5,5\nnan,1,5,5\n").string()); });
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;
  e = error_of([&] { read_sequence(write_sequence(dir / "negative", three, "1,1,5,5\n1,1,-5,5\n1,1,5,5\n").string()); });
  EXPECT_NE(e.find("negative"), std::string::npos) << e;
  e = error_of([&] { read_sequence(write_sequence(dir / "extra", three, "1,1,5,5,9\n1,1,5,5\n1,1,5,5\n").string()); });
  EXPECT_NE(e.find("line 1"), std::string::npos) << e;
  // Tabs, spaces and a blank last line are fine.
  const auto ok = read_sequence(write_sequence(dir / "ok", three, "1\t1\t5\t5\n1 1 5 5\n1,1,5,5\n\n").string());
  EXPECT_EQ(ok.boxes.size(), 3u);
  e = error_of([&] { read_sequences((dir / "none").string()); });
  EXPECT_NE(e.find("no such folder"), std::string::npos) << e;

  // Frames: one of another size, one unreadable in the middle, a file that is no video.
  const auto sizes = write_sequence(dir / "sizes", {{32, 24}, {32, 24}, {40, 24}}, "");
  FrameSource source((sizes / "img").string());
  EXPECT_TRUE(source.next().has_value());
  EXPECT_TRUE(source.next().has_value());
  e = error_of([&] { source.next(); });
  EXPECT_NE(e.find("frame 2 is 40 × 24, frame 0 32 × 24"), std::string::npos) << e;
  const auto broken = write_sequence(dir / "broken", three, "1,1,5,5\n1,1,5,5\n1,1,5,5\n");
  write_text(broken / "img" / "0002.png", "not a png");
  FrameSource frames((broken / "img").string());
  frames.next();
  e = error_of([&] { frames.next(); });
  EXPECT_NE(e.find("0002.png: frame 1"), std::string::npos) << e;
  auto fixed = make_baseline("fixed");
  e = error_of([&] { run_sequence(*fixed, read_sequence(broken.string())); });
  EXPECT_NE(e.find("frame 1 of broken"), std::string::npos) << e;
  write_text(dir / "clip.mp4", "not a video");
  e = error_of([&] { FrameSource video((dir / "clip.mp4").string()); });
  EXPECT_NE(e.find("cannot open this file as a video"), std::string::npos) << e;
}
