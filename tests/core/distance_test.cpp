#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "siamese/core/distance.h"
#include "siamese/core/error.h"

using namespace siamese;

namespace {

double naive_distance(const torch::Tensor& a, const torch::Tensor& b, Distance distance) {
  double dot = 0, na = 0, nb = 0, sq = 0, l1 = 0;
  for (int64_t i = 0; i < a.size(0); ++i) {
    const double x = a[i].item<double>(), y = b[i].item<double>();
    dot += x * y;
    na += x * x;
    nb += y * y;
    sq += (x - y) * (x - y);
    l1 += std::abs(x - y);
  }
  if (distance == Distance::Cosine) return 1 - dot / std::sqrt(na * nb);
  if (distance == Distance::Manhattan) return l1;
  if (distance == Distance::MaLSTM) return 1 - std::exp(-l1);
  return distance == Distance::SqEuclidean ? sq : std::sqrt(sq);
}

}  // namespace

TEST(Distance, PairwiseMatchesNaiveLoop) {
  torch::manual_seed(1);
  auto x = torch::randn({5, 3}, torch::kFloat64), y = torch::randn({4, 3}, torch::kFloat64);
  for (auto dist : {Distance::Euclidean, Distance::SqEuclidean, Distance::Cosine, Distance::Manhattan, Distance::MaLSTM}) {
    auto d = pairwise_distance(x, y, dist);
    ASSERT_EQ(d.sizes(), (std::vector<int64_t>{5, 4}));
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 4; ++j) EXPECT_NEAR(d[i][j].item<double>(), naive_distance(x[i], y[j], dist), 1e-9);
    auto paired = paired_distance(x.slice(0, 0, 4), y, dist);
    EXPECT_TRUE(torch::allclose(paired, d.slice(0, 0, 4).diagonal(), 1e-9, 1e-9));
  }
}

TEST(Distance, ParsesNamesAndRejectsShapes) {
  EXPECT_EQ(parse_distance("cosine"), Distance::Cosine);
  EXPECT_EQ(parse_distance("manhattan"), Distance::Manhattan);
  EXPECT_EQ(parse_distance("malstm"), Distance::MaLSTM);
  EXPECT_THROW(parse_distance("l3"), Error);
  EXPECT_THROW(pairwise_distance(torch::zeros({2, 3}), torch::zeros({2, 4}), Distance::Euclidean), Error);
}
