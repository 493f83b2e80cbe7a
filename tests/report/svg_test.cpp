// The report's SVG plots, checked against coordinates computed by hand.
#include "siamese/report/svg.h"

#include <gtest/gtest.h>

#include <regex>

#include "siamese/core/error.h"
#include "siamese/report/html.h"
#include "siamese/report/plots.h"

namespace siamese {
namespace {

TEST(NiceTicks, OneTwoFiveSteps) {
  EXPECT_EQ(nice_ticks(0, 1, 6), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  // range 0.37..2.9, 5 ticks: raw step 0.6325 -> 1; ticks 1, 2
  EXPECT_EQ(nice_ticks(0.37, 2.9, 5), (std::vector<double>{1, 2}));
  // range -3..7, 6 ticks: raw step 2 -> 2; ticks -2, 0, 2, 4, 6
  EXPECT_EQ(nice_ticks(-3, 7, 6), (std::vector<double>{-2, 0, 2, 4, 6}));
  // range 0..1000, 3 ticks: raw 500 -> 500
  EXPECT_EQ(nice_ticks(0, 1000, 3), (std::vector<double>{0, 500, 1000}));
  EXPECT_EQ(nice_ticks(4, 4), (std::vector<double>{4}));
  EXPECT_THROW(nice_ticks(2, 1), Error);
  EXPECT_THROW(nice_ticks(0, NAN), Error);
}

TEST(NiceTicks, HistogramCountsByHand) {
  // bins of width 0.25 over [0, 1]: 0 -> 0, 0.1 -> 0, 0.25 -> 1, 0.5 -> 2, 0.99 -> 3, 1 -> 3 (last bin closed)
  EXPECT_EQ(histogram_counts({0, 0.1, 0.25, 0.5, 0.99, 1, -0.1, 1.1, NAN}, 0, 1, 4), (std::vector<int64_t>{2, 1, 1, 2}));
  EXPECT_THROW(histogram_counts({1}, 1, 1, 4), Error);
  EXPECT_THROW(histogram_counts({1}, 0, 1, 0), Error);
}

TEST(Plot, MapsDataOntoTheAreaInsideTheMargins) {
  PlotOptions o;
  o.width = 400;   // area 400 - 56 - 16 = 328 wide
  o.height = 272;  // area 272 - 28 - 44 = 200 high
  o.x_lo = 0;
  o.x_hi = 10;
  o.y_lo = -1;
  o.y_hi = 1;
  Plot plot(o);
  EXPECT_DOUBLE_EQ(plot.px(0), 56);
  EXPECT_DOUBLE_EQ(plot.px(5), 56 + 164);
  EXPECT_DOUBLE_EQ(plot.px(10), 384);
  EXPECT_DOUBLE_EQ(plot.py(1), 28);
  EXPECT_DOUBLE_EQ(plot.py(0), 128);
  EXPECT_DOUBLE_EQ(plot.py(-1), 228);
  plot.line({0, 5, 10}, {-1, 0, 1}, "#c22", "a line");
  plot.bars({0, 2.5}, {0.5}, "#00f");
  plot.vertical(2.5, "#222", "t");
  const auto s = plot.str();
  EXPECT_NE(s.find("points=\"56.00,228.00 220.00,128.00 384.00,28.00 \""), std::string::npos) << s;
  // bar over x 0..2.5 (56..138), from y 0 (128) up to 0.5 (78): height 50
  EXPECT_NE(s.find("x=\"56.00\" y=\"78.00\" width=\"82.00\" height=\"50.00\""), std::string::npos) << s;
  EXPECT_NE(s.find("x1=\"138.00\" y1=\"28.00\" x2=\"138.00\" y2=\"228.00\""), std::string::npos) << s;
  EXPECT_NE(s.find(">a line</text>"), std::string::npos);
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
}

TEST(Plot, RefusesEmptyRangesAndEscapesText) {
  PlotOptions o;
  o.x_hi = 0;
  EXPECT_THROW(Plot{o}, Error);
  PlotOptions p;
  p.title = "<a & b>";
  Plot plot(p);
  plot.point(0.5, 0.5, 3, "#000", "tip \"quoted\"");
  const auto s = plot.str();
  EXPECT_NE(s.find("&lt;a &amp; b&gt;"), std::string::npos);
  EXPECT_NE(s.find("<title>tip &quot;quoted&quot;</title>"), std::string::npos);
  // the point at the centre of the default 480 x 320 plot: x 56 + 204, y 28 + 124
  EXPECT_NE(s.find("cx=\"260.00\" cy=\"152.00\""), std::string::npos) << s;
}

TEST(Plots, RocCurveAndOperatingPoint) {
  // distances of 2 same pairs (0.1, 0.4) and 2 different (0.3, 0.8); threshold 0.35 accepts
  // one same pair (TAR 0.5) and one different pair (FAR 0.5)
  const std::vector<double> d{0.1, 0.4, 0.3, 0.8};
  const std::vector<uint8_t> same{1, 1, 0, 0};
  const auto m = operating_point(d, same, 0.35);
  EXPECT_DOUBLE_EQ(m.fpr, 0.5);
  EXPECT_DOUBLE_EQ(m.tpr, 0.5);
  const auto s = roc_svg(roc_curve(d, same), roc_auc(d, same), m);
  EXPECT_NE(s.find("AUC 0.7500"), std::string::npos);
  // the marker in the 420 x 400 plot: x 56 + 0.5 * 348 = 230, y 28 + 0.5 * 328 = 192
  EXPECT_NE(s.find("cx=\"230.00\" cy=\"192.00\""), std::string::npos) << s;
}

TEST(Plots, DistanceHistogramsAreSharesOfEachKind) {
  // same pairs at 0, 0, 1 and other pairs at 3, 4: over [0, 4] in 4 bins the same pairs fill
  // bin 0 with 2/3 and bin 1 with 1/3, the other pairs bin 3 (3 and 4) with 1
  const auto s = distance_histogram_svg({0, 0, 1, 3, 4}, {1, 1, 1, 0, 0}, 2, 4);
  std::regex bar("<rect class=\"bar\"[^>]*height=\"([0-9.]+)\"");
  std::vector<double> heights;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), bar); it != std::sregex_iterator(); ++it) {
    heights.push_back(std::stod((*it)[1]));
  }
  ASSERT_EQ(heights.size(), 8u);
  // area height 320 - 72 = 248 for y in [0, 1.1]
  const double unit = 248 / 1.1;
  EXPECT_NEAR(heights[0], unit * 2 / 3, 0.01);
  EXPECT_NEAR(heights[1], unit / 3, 0.01);
  EXPECT_NEAR(heights[2], 0, 0.01);
  EXPECT_NEAR(heights[7], unit, 0.01);
  EXPECT_NE(s.find("threshold 2.0000"), std::string::npos);
  EXPECT_THROW(distance_histogram_svg({}, {}, 1), Error);
}

TEST(Html, EscapeAndBase64KnownValues) {
  EXPECT_EQ(html_escape("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
  auto b = [](const std::string& s) { return base64(std::vector<unsigned char>(s.begin(), s.end())); };
  // RFC 4648 §10 test vectors
  EXPECT_EQ(b(""), "");
  EXPECT_EQ(b("f"), "Zg==");
  EXPECT_EQ(b("fo"), "Zm8=");
  EXPECT_EQ(b("foo"), "Zm9v");
  EXPECT_EQ(b("foobar"), "Zm9vYmFy");
}

TEST(Html, PngOfAnImageStartsWithThePngSignature) {
  auto image = torch::arange(0, 48, torch::kUInt8).reshape({3, 4, 4});
  auto png = encode_png(image);
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(std::vector<unsigned char>(png.begin(), png.begin() + 8),
            (std::vector<unsigned char>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}));
  EXPECT_EQ(png_data_uri(image).rfind("data:image/png;base64,iVBORw0KGgo", 0), 0u);
  EXPECT_THROW(encode_png(torch::zeros({2, 4, 4}, torch::kUInt8)), Error);
  EXPECT_THROW(encode_png(torch::zeros({1, 4, 4})), Error);
}

}  // namespace
}  // namespace siamese
