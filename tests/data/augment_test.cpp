#include <gtest/gtest.h>
#include <torch/torch.h>

#include "siamese/data/augment.h"
#include "siamese/data/data.h"
#include "siamese/core/error.h"

using namespace siamese;

namespace {

/// Four different 1×12×10 images in [0, 1].
torch::Tensor images() {
  torch::manual_seed(3);
  return torch::rand({4, 1, 12, 10});
}

}  // namespace

TEST(Augment, SpecificationRoundTripsAndBadEntriesAreNamed) {
  auto o = parse_augment("rotate=15,flip=0.5,scale=0.1,noise=0.05@0.25,blur=1");
  EXPECT_DOUBLE_EQ(o.rotate.value, 15);
  EXPECT_DOUBLE_EQ(o.rotate.probability, 1);
  EXPECT_DOUBLE_EQ(o.flip.probability, 0.5);
  EXPECT_DOUBLE_EQ(o.noise.value, 0.05);
  EXPECT_DOUBLE_EQ(o.noise.probability, 0.25);
  EXPECT_EQ(to_string(parse_augment(to_string(o))), to_string(o));
  EXPECT_EQ(to_string(parse_augment("")), "none");
  EXPECT_FALSE(parse_augment("none").any());
  EXPECT_TRUE(o.any());
  for (const char* bad : {"spin=3", "rotate", "rotate=x", "rotate=-1", "noise=0.1@2", "scale=1.5", "flip=0.5@0.5",
                          "noise=inf", "translate=nan", "blur=1e400"}) {
    try {
      parse_augment(bad);
      ADD_FAILURE() << bad << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find("augment"), std::string::npos) << e.what();
    }
  }
}

// Found by tests/fuzz/augment_fuzz.cpp: to_string printed 9 significant digits, so a probability
// of 0.99999999995 came back as 1 (the transform then always fired) and the round trip failed.
TEST(Augment, ToStringKeepsEveryDigitAValueNeeds) {
  const auto o = parse_augment("brightness=5@0.99999999995,rotate=0.1234567890123,flip=0.3");
  EXPECT_EQ(to_string(o), "flip=0.3,rotate=0.1234567890123,brightness=5@0.99999999995");
  const auto back = parse_augment(to_string(o));
  EXPECT_EQ(back.brightness.probability, 0.99999999995);
  EXPECT_EQ(back.rotate.value, 0.1234567890123);
  EXPECT_EQ(back.flip.probability, 0.3);
  EXPECT_EQ(to_string(parse_augment("noise=0.05@0.25,blur=1")), "blur=1,noise=0.05@0.25");  // short stays short
}

// Found by tests/fuzz/augment_fuzz.cpp: blur=11727099 built a Gaussian kernel of ~10^8 taps (a
// hang); the standard deviation is now capped at the image's larger side.
TEST(Augment, HugeBlurIsCappedAtTheImageSize) {
  const auto x = images();  // [4, 1, 12, 10]
  const auto huge = augment(x, parse_augment("blur=1e7"), 5, 0);
  const auto huger = augment(x, parse_augment("blur=1e12"), 5, 0);
  EXPECT_TRUE(torch::equal(huge, huger));  // both capped at 12 pixels (unless a draw is below 1e-6)
  EXPECT_GE(huge.min().item<float>(), 0.0f);
  EXPECT_LE(huge.max().item<float>(), 1.0f);
  // A 12-pixel blur of a 12x10 image leaves it nearly flat: each row within 0.2 of its mean.
  const auto spread = (huge - huge.mean({2, 3}, true)).abs().max().item<float>();
  EXPECT_LT(spread, 0.2f);
  EXPECT_FALSE(torch::equal(huge, augment(x, parse_augment("blur=1"), 5, 0)));
}

TEST(Augment, SameSeedAndStreamGiveTheSameImagesOthersDiffer) {
  auto x = images();
  auto o = parse_augment("rotate=20,translate=0.1,noise=0.05,contrast=0.3");
  auto a = augment(x, o, 7, 1), b = augment(x, o, 7, 1), c = augment(x, o, 7, 2), d = augment(x, o, 8, 1);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_FALSE(torch::equal(a, d));
  EXPECT_EQ(a.sizes(), x.sizes());
  EXPECT_GE(a.min().item<float>(), 0.0f);
  EXPECT_LE(a.max().item<float>(), 1.0f);
  // Items draw independently: the same image at two positions gets two different versions.
  auto twice = augment(torch::cat({x.slice(0, 0, 1), x.slice(0, 0, 1)}), o, 7, 1);
  EXPECT_FALSE(torch::equal(twice[0], twice[1]));
}

TEST(Augment, TransformsMatchTheirDefinitions) {
  auto x = images();
  // Certain flip: the mirror image, exactly.
  EXPECT_TRUE(torch::equal(augment(x, parse_augment("flip=1"), 0, 0), x.flip({3})));
  // No transform: the images unchanged.
  EXPECT_TRUE(torch::equal(augment(x, AugmentOptions{}, 0, 0), x));
  // Brightness on a flat grey image: one shift per image, within the range.
  auto grey = torch::full({6, 1, 8, 8}, 0.5f);
  auto bright = augment(grey, parse_augment("brightness=0.2"), 1, 0);
  for (int i = 0; i < 6; ++i) {
    const auto v = bright[i].flatten();
    EXPECT_NEAR((v - v[0]).abs().max().item<float>(), 0.0f, 1e-6);
    EXPECT_LE(std::abs(v[0].item<float>() - 0.5f), 0.2f + 1e-6);
  }
  // Contrast keeps each image's mean (away from the clamp) and scales the spread by ≤ 1.3.
  auto mid = x * 0.4 + 0.3;
  auto con = augment(mid, parse_augment("contrast=0.3"), 2, 0);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(con[i].mean().item<float>(), mid[i].mean().item<float>(), 1e-4);
    const double ratio = (con[i].std() / mid[i].std()).item<double>();
    EXPECT_GE(ratio, 0.7 - 1e-4);
    EXPECT_LE(ratio, 1.3 + 1e-4);
  }
  // Noise of at most sigma 0.05: the difference's deviation stays below it, its mean near 0.
  auto noisy = augment(mid, parse_augment("noise=0.05"), 3, 0);
  EXPECT_LT((noisy - mid).std().item<float>(), 0.05f);
  EXPECT_LT((noisy - mid).mean().abs().item<float>(), 0.01f);
  // A shift moves the content: a single bright pixel lands elsewhere but keeps its height.
  auto dot = torch::zeros({1, 1, 21, 21});
  dot[0][0][10][10] = 1;
  auto moved = augment(dot, parse_augment("translate=0.2"), 5, 0);
  const auto at = moved.flatten().argmax().item<int64_t>();
  EXPECT_NE(at, 10 * 21 + 10);
  EXPECT_LE(std::abs(at / 21 - 10), 4);
  EXPECT_LE(std::abs(at % 21 - 10), 4);
}

TEST(Augment, LoaderWorkersGiveTheSameBatchesWhateverTheirNumber) {
  std::vector<int64_t> labels{0, 1, 0, 1, 0, 1, 0, 1};
  ImageDataset data((images().repeat({2, 1, 1, 1}) * 255).to(torch::kUInt8), labels, "mem");
  std::vector<std::vector<int64_t>> plan{{0, 1, 2}, {3, 4, 5}, {6, 7, 0}, {1, 2, 3}};
  auto o = parse_augment("rotate=30,scale=0.2,noise=0.1");
  auto transform = [&o](const torch::Tensor& x, int64_t number) { return augment(x, o, 11, number); };
  std::vector<torch::Tensor> one, three;
  {
    Loader loader(data, plan, 1, 4, transform);
    while (auto b = loader.next()) one.push_back(b->inputs);
  }
  {
    Loader loader(data, plan, 3, 2, transform);
    while (auto b = loader.next()) three.push_back(b->inputs);
  }
  ASSERT_EQ(one.size(), 4u);
  ASSERT_EQ(three.size(), 4u);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(torch::equal(one[i], three[i])) << "batch " << i;
  EXPECT_FALSE(torch::equal(one[0], data.gather(plan[0])));
}

TEST(Augment, PreviewGridHasTheOriginalsThenTheVersions) {
  auto x = images();  // 4 × 1 × 12 × 10
  auto o = parse_augment("rotate=30,noise=0.1");
  auto grid = augment_grid(x, o, 3, 9, 2);
  // 4 rows of 24 px and 4 columns of 20 px, 2-px gaps around and between.
  ASSERT_EQ(grid.sizes(), (std::vector<int64_t>{2 + 4 * 26, 2 + 4 * 22, 1}));
  auto as_byte = [](const torch::Tensor& t) { return t.mul(255).round().to(torch::kUInt8); };
  // Row 1, column 0: image 1 enlarged twice; column 2: its version drawn with stream 2.
  EXPECT_TRUE(torch::equal(grid.slice(0, 28, 52).slice(1, 2, 22).select(2, 0),
                           as_byte(x[1][0]).repeat_interleave(2, 0).repeat_interleave(2, 1)));
  EXPECT_TRUE(torch::equal(grid.slice(0, 28, 52).slice(1, 46, 66).select(2, 0),
                           as_byte(augment(x, o, 9, 2)[1][0]).repeat_interleave(2, 0).repeat_interleave(2, 1)));
  EXPECT_EQ(grid[0][0][0].item<uint8_t>(), 255);  // gap
  EXPECT_THROW(augment_grid(x[0], o, 3, 0), Error);
}
