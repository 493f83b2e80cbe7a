// SiamFC's parts against values computed another way: the cross-correlation against a plain loop,
// the score map's peak on a shifted copy, the crop rule against hand-computed pixels (borders
// too), the network's map sizes, the tracker's refusals. (Following a moving patch needs a trained
// network: an untrained one's unnormalised correlation peaks off the object.)
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "siamese/core/error.h"
#include "siamese/track/siamfc.h"
#include "siamese/track/tracker.h"
#include "test_util.h"

using namespace siamese;

TEST(SiamFCParts, CrossCorrelationMatchesAPlainLoop) {
  torch::manual_seed(1);
  const auto z = torch::randn({2, 3, 4, 5}, torch::kFloat64), x = torch::randn({2, 3, 9, 8}, torch::kFloat64);
  const auto out = cross_correlation(z, x);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 1, 6, 4}));
  auto za = z.accessor<double, 4>(), xa = x.accessor<double, 4>();
  for (int n = 0; n < 2; ++n) {
    for (int i = 0; i < 6; ++i) {
      for (int j = 0; j < 4; ++j) {
        double sum = 0;
        for (int c = 0; c < 3; ++c) {
          for (int u = 0; u < 4; ++u) {
            for (int v = 0; v < 5; ++v) sum += za[n][c][u][v] * xa[n][c][i + u][j + v];
          }
        }
        EXPECT_NEAR(out[n][0][i][j].item<double>(), sum, 1e-9) << n << " " << i << " " << j;
      }
    }
  }
  // One exemplar against every search region: the same as repeating it.
  const auto one = cross_correlation(z.slice(0, 0, 1), x);
  EXPECT_TRUE(torch::allclose(one, cross_correlation(z.slice(0, 0, 1).repeat({2, 1, 1, 1}), x)));
  EXPECT_THROW(cross_correlation(z, x.slice(1, 0, 2)), Error);
}

TEST(SiamFCParts, TheScoreMapPeaksAtTheTrueOffsetOfAShiftedCopy) {
  torch::manual_seed(2);
  const auto x = torch::randn({1, 8, 30, 30});
  for (auto [row, col] : {std::pair<int64_t, int64_t>{7, 11}, {0, 0}, {24, 24}, {13, 2}}) {
    const auto z = x.slice(2, row, row + 6).slice(3, col, col + 6);
    const auto map = cross_correlation(z, x)[0][0];
    const auto at = map.argmax().item<int64_t>();
    EXPECT_EQ(at / map.size(1), row);
    EXPECT_EQ(at % map.size(1), col);
  }
}

TEST(SiamFCParts, CropsFollowTheRuleAtTheBordersToo) {
  // Pixel (row r, column c) of channel k holds 100k + 10r + c: every sample says where it came from.
  const auto rows = torch::arange(10, torch::kFloat32).view({1, 10, 1}), cols = torch::arange(12, torch::kFloat32).view({1, 1, 12});
  const auto frame = 100 * torch::arange(3, torch::kFloat32).view({3, 1, 1}) + 10 * rows + cols;
  const std::array<double, 3> fill{-1, -2, -3};
  // Side 5 at (4, 3): columns 2..6, rows 1..5, a plain copy.
  auto crop = crop_patch(frame, 4, 3, 5, 5, fill);
  EXPECT_TRUE(torch::equal(crop, frame.slice(1, 1, 6).slice(2, 2, 7)));
  // At the top-left corner: rows and columns -2 and -1 take the fill.
  crop = crop_patch(frame, 0, 0, 5, 5, fill);
  EXPECT_FLOAT_EQ(crop[1][0][0].item<float>(), -2);
  EXPECT_FLOAT_EQ(crop[1][1][4].item<float>(), -2);
  EXPECT_FLOAT_EQ(crop[1][2][2].item<float>(), 100);        // the centre: pixel (0, 0)
  EXPECT_FLOAT_EQ(crop[2][4][3].item<float>(), 200 + 21);   // row 2, column 1
  // Side 10 into 5 pixels: samples 2 pixels apart, centred on (6, 4): columns 2, 4, .. 10; rows 0 .. 8.
  crop = crop_patch(frame, 6, 4, 10, 5, fill);
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 5; ++j) EXPECT_FLOAT_EQ(crop[0][i][j].item<float>(), 10 * (2 * i) + (2 + 2 * j)) << i << " " << j;
  }
  // Half-pixel centre: bilinear between neighbours.
  EXPECT_FLOAT_EQ(crop_patch(frame, 4.5, 3, 1, 1, fill)[0][0][0].item<float>(), 34.5);
  EXPECT_NEAR(exemplar_side(40, 20, 0.5), std::sqrt(70.0 * 50.0), 1e-12);
  EXPECT_THROW(crop_patch(frame, 4, 3, 0, 5, fill), Error);
  EXPECT_THROW(crop_patch(frame.slice(0, 0, 2), 4, 3, 5, 5, fill), Error);
}

TEST(SiamFCParts, TrunksGiveTheReferenceMapSizes) {
  for (auto trunk : {TrunkKind::Compact, TrunkKind::AlexNet}) {
    SiamFC net(SiamFCOptions().trunk(trunk));
    net->eval();
    torch::NoGradGuard no_grad;
    const auto z = net->features(torch::zeros({1, 3, 127, 127})), x = net->features(torch::zeros({2, 3, 255, 255}));
    EXPECT_EQ(z.size(2), 6);
    EXPECT_EQ(x.size(2), 22);
    EXPECT_EQ(z.size(1), trunk_channels(trunk).back());
    EXPECT_EQ(net->score(z, x).sizes(), (std::vector<int64_t>{2, 1, 17, 17}));
    EXPECT_EQ(net->features(torch::zeros({1, 3, 239, 239})).size(2), 20);
  }
  EXPECT_EQ(parse_trunk("alexnet"), TrunkKind::AlexNet);
  EXPECT_THROW(parse_trunk("vgg"), Error);
}

TEST(SiamFCTracker, RefusesBadBoxesAndFrames) {
  Tracker tracker{SiamFC(SiamFCOptions())};
  const auto frame = torch::zeros({3, 100, 120});
  EXPECT_THROW(tracker.update(frame), Error);                           // before init
  EXPECT_THROW(tracker.init(frame, Box{10, 10, 0, 20}), Error);          // zero width
  EXPECT_THROW(tracker.init(frame, Box{130, 10, 20, 20}), Error);        // outside
  EXPECT_THROW(tracker.init(frame, Box{10, 10, NAN, 20}), Error);        // not finite
  EXPECT_THROW(tracker.init(torch::zeros({1, 100, 120}), Box{10, 10, 20, 20}), Error);
  tracker.init(frame, Box{10, 10, 20, 20});
  EXPECT_THROW(tracker.update(torch::zeros({3, 101, 120})), Error);     // another size
  EXPECT_THROW(Tracker(SiamFC(SiamFCOptions()), TrackerOptions().scales(2)), Error);
}
