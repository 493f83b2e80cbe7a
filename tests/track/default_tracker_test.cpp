// The tracker siamese ships (models/tracker.pt, scripts/tracking) on real image content moving
// 4.5 px a frame: a 64 × 64 square of four whole Fashion-MNIST product photographs over a smooth
// background, and the same size of square inside a mosaic of 300 products that moves as a whole,
// as under a panning camera. The issue asks for 1 px; the shipped model is not that precise: its
// score map is trained with a 16 px positive radius, and on 90 frames of each kind (docs/tracking.md)
// its centre is 1.3-1.5 px off on average, 2.7 px at worst (radius 8: 1.0-1.1 px, but it tracks
// worse on two of the three evaluation sets). What is asserted is under 2.5 px on average and under
// 4 px in every frame: half a score cell. Measured here: see the lines the tests print.
// Also: `siamese track` without --model uses the shipped model.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <sstream>

#include "siamese/data/data.h"
#include "siamese/track/tracker.h"
#include "siamese/track/training.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

/// 240 × 320 frames cut from a 480 × 640 mosaic of the first 300 test products (32 × 32 each,
/// randomly tinted) so that its four tiles at (192, 160) have their top-left corner at each
/// position: the square moves together with its surroundings, as under a panning camera.
std::vector<torch::Tensor> frames_of_a_pan(const std::vector<std::array<int64_t, 2>>& positions) {
  namespace F = torch::nn::functional;
  torch::manual_seed(12);
  const auto products = open_data("fashion-mnist").test.images().slice(0, 0, 300).to(torch::kFloat32);
  const auto small = F::interpolate(products, F::InterpolateFuncOptions().size(std::vector<int64_t>{32, 32}).mode(torch::kBilinear)
                                                  .align_corners(false));  // [300, 1, 32, 32]
  const auto tiles = small * (torch::rand({300, 3, 1, 1}) * 0.8 + 0.2);
  const auto mosaic = tiles.view({15, 20, 3, 32, 32}).permute({2, 0, 3, 1, 4}).reshape({3, 480, 640});
  std::vector<torch::Tensor> frames;
  for (const auto& p : positions) {
    const int64_t left = 192 - p[0], top = 160 - p[1];
    frames.push_back(mosaic.slice(1, top, top + 240).slice(2, left, left + 320).round().to(torch::kUInt8).contiguous());
  }
  return frames;
}

/// The shipped tracker from a 64 × 64 box at positions[0] through the other frames: the centre
/// error of each frame is under 4 px, the mean under 2.5 px and the width within 10 %.
void expect_followed(const std::vector<torch::Tensor>& frames, const std::vector<std::array<int64_t, 2>>& positions) {
  Tracker tracker(load_tracker(SIAMESE_TRACKER_MODEL));
  tracker.init(frames[0], {static_cast<double>(positions[0][0]), static_cast<double>(positions[0][1]), 64, 64});
  double worst = 0, sum = 0;
  for (size_t f = 1; f < frames.size(); ++f) {
    const auto r = tracker.update(frames[f]);
    const auto c = centre_of(r.box);
    const double error = std::hypot(c[0] - (positions[f][0] + 31.5), c[1] - (positions[f][1] + 31.5));
    EXPECT_LT(error, 4.0) << "frame " << f;
    EXPECT_NEAR(r.box.w, 64, 6.4) << "frame " << f;
    worst = std::max(worst, error), sum += error;
  }
  const double mean = sum / static_cast<double>(frames.size() - 1);
  EXPECT_LT(mean, 2.5);
  std::printf("centre error: mean %.2f px, largest %.2f px\n", mean, worst);
}

/// 240 × 320 frames: a smooth random background and, with its top-left corner at each position, a
/// 64 × 64 mosaic of the first four test products (32 × 32 each, tinted differently), pasted
/// whole: a rectangular patch of real photographs.
std::vector<torch::Tensor> frames_with_patch(const std::vector<std::array<int64_t, 2>>& positions) {
  namespace F = torch::nn::functional;
  torch::manual_seed(11);
  const auto background = F::interpolate(torch::rand({1, 3, 12, 16}), F::InterpolateFuncOptions().size(std::vector<int64_t>{240, 320})
                                                                           .mode(torch::kBicubic).align_corners(false))[0] * 100 + 60;
  const auto products = open_data("fashion-mnist").test.images().slice(0, 0, 4).to(torch::kFloat32);  // [4, 1, 28, 28]
  const auto small = F::interpolate(products, F::InterpolateFuncOptions().size(std::vector<int64_t>{32, 32}).mode(torch::kBilinear)
                                                  .align_corners(false));  // [4, 1, 32, 32]
  const auto tints = torch::tensor({1.0f, 0.55f, 0.25f, 0.3f, 0.8f, 1.0f, 0.9f, 0.9f, 0.3f, 0.5f, 1.0f, 0.5f}).view({4, 3, 1, 1});
  const auto tiles = small * tints;  // [4, 3, 32, 32]
  const auto patch = torch::cat({torch::cat({tiles[0], tiles[1]}, 2), torch::cat({tiles[2], tiles[3]}, 2)}, 1);
  std::vector<torch::Tensor> frames;
  for (const auto& p : positions) {
    auto frame = background.clone();
    auto region = frame.slice(1, p[1], p[1] + 64).slice(2, p[0], p[0] + 64);
    region.copy_(patch);
    frames.push_back(frame.clamp(0, 255).round().to(torch::kUInt8));
  }
  return frames;
}

/// 10 frames, the patch moving (+4, +2) px a frame: 36 px right and 18 down in all.
std::vector<std::array<int64_t, 2>> positions() {
  std::vector<std::array<int64_t, 2>> p;
  for (int64_t f = 0; f < 10; ++f) p.push_back({100 + 4 * f, 80 + 2 * f});
  return p;
}
const auto kPositions = positions();

}  // namespace

TEST(DefaultTracker, FollowsAMovingRealPatchWithinHalfAScoreCell) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  expect_followed(frames_with_patch(kPositions), kPositions);
}

TEST(DefaultTracker, FollowsAPanWithinHalfAScoreCell) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  expect_followed(frames_of_a_pan(kPositions), kPositions);
}

TEST(DefaultTracker, TrackWithoutAModelUsesTheShippedOne) {
  SIAMESE_SKIP_WITHOUT_FASHION_MNIST();
  const auto dir = temp_dir("default-tracker");
  const auto frames = frames_with_patch(kPositions);
  fs::create_directories(dir / "img");
  for (size_t f = 0; f < frames.size(); ++f) {
    const auto hwc = frames[f].permute({1, 2, 0}).contiguous();
    cv::Mat rgb(240, 320, CV_8UC3, hwc.data_ptr<uint8_t>()), bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    cv::imwrite((dir / "img" / ("f" + std::to_string(f) + ".png")).string(), bgr);
  }
  const auto r = siamese::testing::run("track --frames " + (dir / "img").string() + " --init 100,80,64,64 --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  // Against the library with the shipped model on the same (PNG-exact) frames.
  Tracker tracker(load_tracker(SIAMESE_TRACKER_MODEL));
  tracker.init(frames[0], {100, 80, 64, 64});
  // The rows on stdout; stderr's closing line ("tracked 5 frames at ...") is left out.
  std::istringstream out(r.out);
  std::vector<std::string> rows;
  for (std::string line; std::getline(out, line);) {
    if (line.rfind("tracked ", 0) != 0) rows.push_back(line);
  }
  ASSERT_EQ(rows.size(), frames.size() + 1) << r.out;
  EXPECT_EQ(rows[0], "frame,x,y,w,h,score");
  for (size_t f = 1; f < frames.size(); ++f) {
    const auto& line = rows[f + 1];
    const auto b = tracker.update(frames[f]).box;
    double v[5];
    ASSERT_EQ(std::sscanf(line.c_str(), "%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3], &v[4]), 5) << line;
    EXPECT_NEAR(v[1], b.x, 0.01) << line;
    EXPECT_NEAR(v[2], b.y, 0.01) << line;
    EXPECT_NEAR(v[3], b.w, 0.01) << line;
  }
}
