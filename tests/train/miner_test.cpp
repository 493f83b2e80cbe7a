#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <tuple>

#include "siamese/core/error.h"
#include "siamese/train/miner.h"

using namespace siamese;

namespace {

// Five points on a line: 0.0, 0.3, 0.9 of class 0 and 0.5, 2.0 of class 1.
torch::Tensor points() { return torch::tensor({0.0, 0.3, 0.9, 0.5, 2.0}, torch::kFloat64).unsqueeze(1); }
torch::Tensor point_labels() { return torch::tensor({0, 0, 0, 1, 1}); }
torch::Tensor point_distances() { return pairwise_distance(points(), points(), Distance::Euclidean); }

std::set<std::tuple<int64_t, int64_t, int64_t>> as_set(const MinedTriplets& t) {
  std::set<std::tuple<int64_t, int64_t, int64_t>> s;
  for (int64_t i = 0; i < t.size(); ++i) {
    s.emplace(t.anchor[i].item<int64_t>(), t.positive[i].item<int64_t>(), t.negative[i].item<int64_t>());
  }
  return s;
}

}  // namespace

TEST(Miner, BatchHardTakesFarthestPositiveAndNearestNegative) {
  auto t = mine_triplets(MinerKind::BatchHard, point_distances(), point_labels());
  using T = std::tuple<int64_t, int64_t, int64_t>;
  EXPECT_EQ(as_set(t), (std::set<T>{{0, 2, 3}, {1, 2, 3}, {2, 0, 3}, {3, 4, 1}, {4, 3, 2}}));
}

TEST(Miner, SemiHardKeepsNegativesInsideTheMarginWindow) {
  auto t = mine_triplets(MinerKind::SemiHard, point_distances(), point_labels(), MinerOptions().margin(0.45));
  using T = std::tuple<int64_t, int64_t, int64_t>;
  EXPECT_EQ(as_set(t), (std::set<T>{{0, 1, 3}, {2, 0, 4}, {4, 3, 1}}));
}

TEST(Miner, HardPairsAreAllPositivesAndAsManyNearestNegatives) {
  auto p = mine_pairs(MinerKind::HardPairs, point_distances(), point_labels());
  std::set<std::tuple<int64_t, int64_t, int64_t>> got;
  for (int64_t i = 0; i < p.size(); ++i) {
    got.emplace(p.first[i].item<int64_t>(), p.second[i].item<int64_t>(), p.same[i].item<int64_t>());
  }
  using T = std::tuple<int64_t, int64_t, int64_t>;
  EXPECT_EQ(got, (std::set<T>{{0, 1, 1}, {0, 2, 1}, {1, 2, 1}, {3, 4, 1},      // every positive pair
                              {1, 3, 0}, {2, 3, 0}, {0, 3, 0}, {2, 4, 0}}));  // the 4 nearest negatives
}

TEST(Miner, DistanceWeightedDrawsNegativesInProportionToInverseDensity) {
  // Anchor 0 (class 0) has negatives 2 at d = 0.6 and 3 at d = 1.0; in dimension 4 the weight is
  // d^-2 / sqrt(1 - d²/4): 2.9119 and 1.1547, so negative 2 should come 71.6% of the time.
  auto d = torch::tensor({{0.0, 0.2, 0.6, 1.0}, {0.2, 0.0, 1.5, 1.5}, {0.6, 1.5, 0.0, 0.3}, {1.0, 1.5, 0.3, 0.0}},
                         torch::kFloat64);
  auto labels = torch::tensor({0, 0, 1, 1});
  int twos = 0, draws = 0;
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    auto t = mine_triplets(MinerKind::DistanceWeighted, d, labels, MinerOptions().dim(4).seed(seed));
    for (int64_t i = 0; i < t.size(); ++i) {
      const auto a = t.anchor[i].item<int64_t>(), n = t.negative[i].item<int64_t>();
      EXPECT_NE(labels[a].item<int64_t>(), labels[n].item<int64_t>());
      if (a == 1) ADD_FAILURE() << "anchor 1's negatives are beyond the 1.4 cut-off";
      if (a == 0) {
        ++draws;
        twos += n == 2;
      }
    }
  }
  EXPECT_EQ(draws, 2000);
  EXPECT_NEAR(twos / 2000.0, 2.9119 / (2.9119 + 1.1547), 0.03);
  auto a = mine_triplets(MinerKind::DistanceWeighted, d, labels, MinerOptions().dim(4).seed(5));
  auto b = mine_triplets(MinerKind::DistanceWeighted, d, labels, MinerOptions().dim(4).seed(5));
  EXPECT_TRUE(torch::equal(a.negative, b.negative));
}

TEST(Miner, MinedLossesByHand) {
  auto e = points();
  // Batch-hard triplet terms with margin 0.45: 0.85, 0.85, 0.95, 1.75, 0.85.
  auto bh = mined_loss(LossKind::Triplet, MinerKind::BatchHard, e, point_labels(), Distance::Euclidean, 0.45);
  EXPECT_NEAR(bh.loss.item<double>(), 1.05, 1e-6);
  EXPECT_EQ(bh.selected, 5);
  EXPECT_EQ(bh.active, 5);
  // "all": the batch loss, over 3·2·2 + 2·1·3 = 18 valid triplets.
  auto all = mined_loss(LossKind::Triplet, MinerKind::All, e, point_labels(), Distance::Euclidean, 0.45);
  EXPECT_NEAR(all.loss.item<double>(), batch_triplet_loss(e, point_labels(), Distance::Euclidean, 0.45).item<double>(), 1e-12);
  EXPECT_EQ(all.selected, 18);
  EXPECT_LE(all.active, 18);
  // Hard pairs, contrastive, margin 1: positives d²/2 = 0.045, 0.405, 0.18, 1.125; negatives
  // (1 − d)²/2 = 0.32, 0.18, 0.125, 0 (d = 0.2, 0.4, 0.5, 1.1).
  auto hp = mined_loss(LossKind::Contrastive, MinerKind::HardPairs, e, point_labels(), Distance::Euclidean, 1.0);
  EXPECT_NEAR(hp.loss.item<double>(), (0.045 + 0.405 + 0.18 + 1.125 + 0.32 + 0.18 + 0.125 + 0) / 8, 1e-6);
  EXPECT_EQ(hp.selected, 8);
  EXPECT_EQ(hp.active, 7);
}

TEST(Miner, GradientsFlowThroughTheChosenTriplets) {
  auto e = points().clone().set_requires_grad(true);
  mined_loss(LossKind::Triplet, MinerKind::SemiHard, e, point_labels(), Distance::Euclidean, 0.45).loss.backward();
  // Triplets (0,1,3), (2,0,4), (4,3,1), all active; on a line ∂|xi − xj|/∂xi = sign(xi − xj):
  // (0,1,3) gives x1 +1, x3 −1; (2,0,4) gives x0 −1, x2 +2, x4 −1; (4,3,1) gives x1 +1, x3 −1.
  auto expected = torch::tensor({-1.0, 2.0, 2.0, -2.0, -1.0}, torch::kFloat64) / 3;
  EXPECT_TRUE(torch::allclose(e.grad().squeeze(1), expected, 1e-6, 1e-9)) << e.grad();
}

TEST(Miner, LargeBatchesStayQuadratic) {
  torch::manual_seed(1);
  auto e = torch::nn::functional::normalize(torch::randn({1024, 16}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto labels = torch::arange(1024) % 64;
  for (auto miner : {MinerKind::BatchHard, MinerKind::SemiHard, MinerKind::HardPairs, MinerKind::DistanceWeighted}) {
    for (auto loss : {LossKind::Triplet, LossKind::Contrastive}) {
      auto r = mined_loss(loss, miner, e, labels, Distance::Euclidean, 0.2);
      EXPECT_TRUE(std::isfinite(r.loss.item<double>())) << to_string(miner);
      EXPECT_GT(r.selected, 0) << to_string(miner);
    }
  }
}

TEST(Miner, NamesAndBadInput) {
  for (auto name : {"all", "batch-hard", "semi-hard", "hard-pairs", "distance-weighted"}) {
    EXPECT_EQ(to_string(parse_miner(name)), name);
  }
  EXPECT_THROW(parse_miner("hardest"), Error);
  EXPECT_THROW(mine_triplets(MinerKind::BatchHard, torch::zeros({3, 4}), torch::zeros({3}, torch::kLong)), Error);
  EXPECT_THROW(mine_triplets(MinerKind::All, torch::zeros({3, 3}), torch::zeros({3}, torch::kLong)), Error);
}

TEST(Miner, OfflineHardNegativesAreTheNearestOtherClassItems) {
  torch::manual_seed(5);
  const int64_t n = 1500;  // more than one block of 1,024 rows
  auto e = torch::randn({n, 3});
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(i % 7);
  auto hard = mine_hard_negatives(e, labels, Distance::Euclidean, 3);
  ASSERT_EQ(hard.per_item, 3);
  ASSERT_EQ(hard.items.size(), static_cast<size_t>(3 * n));
  for (int64_t i : {0L, 1L, 1023L, 1024L, 1499L}) {  // brute force, row by row
    std::vector<std::pair<double, int64_t>> others;
    for (int64_t j = 0; j < n; ++j) {
      if (labels[j] != labels[i]) others.emplace_back((e[i] - e[j]).norm().item<double>(), j);
    }
    std::sort(others.begin(), others.end());
    for (int r = 0; r < 3; ++r) EXPECT_EQ(hard.items[i * 3 + r], others[r].second) << "item " << i << " rank " << r;
  }
  EXPECT_THROW(mine_hard_negatives(e.slice(0, 0, 4), {0, 0, 0, 1}, Distance::Euclidean, 2), Error);
  EXPECT_THROW(mine_hard_negatives(e, {0, 1}, Distance::Euclidean, 1), Error);
}

TEST(Miner, NTXentGoesThroughMinedLossWithMinerAllOnly) {
  auto e = points();
  auto r = mined_loss(LossKind::NTXent, MinerKind::All, e, point_labels(), Distance::Euclidean, 0.2, 0, 0.5);
  EXPECT_DOUBLE_EQ(r.loss.item<double>(), ntxent_loss(e, point_labels(), 0.5).item<double>());
  EXPECT_EQ(r.active, 5);    // every point has a same-class partner
  EXPECT_EQ(r.selected, 5);
  EXPECT_THROW(mined_loss(LossKind::NTXent, MinerKind::BatchHard, e, point_labels(), Distance::Euclidean, 0.2), Error);
}
