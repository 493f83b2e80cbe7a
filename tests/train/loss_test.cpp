#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "siamese/core/error.h"
#include "siamese/train/loss.h"

using namespace siamese;

namespace {

// Loss over explicit loops, the definition the vectorised losses must match.
torch::Tensor naive_batch_triplet(const torch::Tensor& e, const std::vector<int64_t>& y, double margin) {
  std::vector<torch::Tensor> terms;
  const auto b = static_cast<int64_t>(y.size());
  for (int64_t a = 0; a < b; ++a)
    for (int64_t p = 0; p < b; ++p)
      for (int64_t n = 0; n < b; ++n) {
        if (a == p || y[a] != y[p] || y[a] == y[n]) continue;
        auto t = ((e[a] - e[p]).pow(2).sum().sqrt() - (e[a] - e[n]).pow(2).sum().sqrt() + margin).clamp_min(0);
        if (t.item<double>() > 0) terms.push_back(t);
      }
  return terms.empty() ? torch::zeros({}, e.options()) : torch::stack(terms).mean();
}

torch::Tensor naive_batch_contrastive(const torch::Tensor& e, const std::vector<int64_t>& y, double margin) {
  std::vector<torch::Tensor> pos, neg;
  for (size_t i = 0; i < y.size(); ++i)
    for (size_t j = i + 1; j < y.size(); ++j) {
      auto d = (e[i] - e[j]).pow(2).sum().sqrt();
      if (y[i] == y[j]) pos.push_back(d.pow(2) / 2);
      else neg.push_back((margin - d).clamp_min(0).pow(2) / 2);
    }
  return torch::stack(pos).mean() + torch::stack(neg).mean();
}

// Central finite differences of f at x against autograd's gradient.
void expect_gradient_matches(const std::function<torch::Tensor(const torch::Tensor&)>& f, torch::Tensor x) {
  x = x.clone().set_requires_grad(true);
  f(x).backward();
  auto analytic = x.grad().clone();
  const double h = 1e-6;
  auto flat = x.detach().clone().view(-1);
  for (int64_t i = 0; i < flat.numel(); ++i) {
    auto plus = flat.clone(), minus = flat.clone();
    plus[i] += h;
    minus[i] -= h;
    const double numeric = (f(plus.view(x.sizes())).item<double>() - f(minus.view(x.sizes())).item<double>()) / (2 * h);
    EXPECT_NEAR(analytic.view(-1)[i].item<double>(), numeric, 1e-5) << "element " << i;
  }
}

}  // namespace

TEST(Loss, ContrastiveHandComputed) {
  // d = 0.5 similar: 0.5²/2 = 0.125; d = 2 dissimilar beyond margin: 0; d = 0.3 dissimilar: 0.7²/2 = 0.245.
  auto loss = contrastive_loss(torch::tensor({0.5, 2.0, 0.3}, torch::kFloat64), torch::tensor({1, 0, 0}), 1.0);
  EXPECT_NEAR(loss.item<double>(), (0.125 + 0.0 + 0.245) / 3, 1e-12);
}

TEST(Loss, TripletHandComputedAndMatchesTorch) {
  auto loss = triplet_loss(torch::tensor({1.0, 0.2}, torch::kFloat64), torch::tensor({1.5, 2.0}, torch::kFloat64), 1.0);
  EXPECT_NEAR(loss.item<double>(), (0.5 + 0.0) / 2, 1e-12);
  torch::manual_seed(2);
  auto a = torch::randn({16, 8}, torch::kFloat64), p = torch::randn({16, 8}, torch::kFloat64),
       n = torch::randn({16, 8}, torch::kFloat64);
  auto ours = triplet_loss(paired_distance(a, p, Distance::Euclidean), paired_distance(a, n, Distance::Euclidean), 0.7);
  auto ref = torch::nn::functional::triplet_margin_loss(
      a, p, n, torch::nn::functional::TripletMarginLossFuncOptions().margin(0.7));
  EXPECT_NEAR(ours.item<double>(), ref.item<double>(), 1e-5);  // torch adds eps = 1e-6 inside the norm
}

TEST(Loss, BatchLossesMatchExplicitLoops) {
  torch::manual_seed(3);
  const std::vector<int64_t> labels{0, 0, 1, 1, 1, 2, 2, 0};
  auto e = torch::randn({8, 4}, torch::kFloat64) * 0.5;
  auto y = torch::tensor(labels);
  EXPECT_NEAR(batch_triplet_loss(e, y, Distance::Euclidean, 1.0).item<double>(),
              naive_batch_triplet(e, labels, 1.0).item<double>(), 1e-10);
  EXPECT_NEAR(batch_contrastive_loss(e, y, Distance::Euclidean, 1.0).item<double>(),
              naive_batch_contrastive(e, labels, 1.0).item<double>(), 1e-10);
}

TEST(Loss, BatchTripletCountsMatchExplicitLoopsOnLargerBatchesAndTies) {
  // The loss counts violated triplets by binary search in sorted rows; the loops test each one.
  // Uneven classes with a singleton (an anchor without positives), then 1-D integer points whose
  // distances tie exactly with d(a, p) + margin (which would count if "violates" were not strict).
  torch::manual_seed(7);
  std::vector<int64_t> labels;
  for (int i = 0; i < 30; ++i) labels.push_back(i == 29 ? 9 : i % 4);
  const auto random = torch::randn({30, 5}, torch::kFloat64) * 0.6;
  std::vector<int64_t> grid_labels{0, 0, 0, 1, 1, 2, 2, 2, 1};
  const auto grid = torch::tensor({0.0, 1.0, 3.0, 2.0, 4.0, 5.0, 6.0, 7.0, 9.0}, torch::kFloat64).unsqueeze(1);
  for (const auto& [e, y, margin] : {std::tuple{random, labels, 0.8}, std::tuple{grid, grid_labels, 1.0}}) {
    int64_t active = -1, expected = 0;
    const auto b = static_cast<int64_t>(y.size());
    const auto d = torch::cdist(e, e);
    for (int64_t a = 0; a < b; ++a)
      for (int64_t p = 0; p < b; ++p)
        for (int64_t n = 0; n < b; ++n) {
          if (a != p && y[a] == y[p] && y[a] != y[n]) expected += d[a][p].item<double>() - d[a][n].item<double>() + margin > 0;
        }
    auto e1 = e.clone().set_requires_grad(true), e2 = e.clone().set_requires_grad(true);
    auto ours = batch_triplet_loss(e1, torch::tensor(y), Distance::Euclidean, margin, &active);
    auto ref = naive_batch_triplet(e2, y, margin);
    EXPECT_EQ(active, expected);
    EXPECT_GT(active, 0);
    EXPECT_NEAR(ours.item<double>(), ref.item<double>(), 1e-10);
    ours.backward();
    ref.backward();
    EXPECT_TRUE(torch::allclose(e1.grad(), e2.grad(), 1e-9, 1e-10));
  }
}

TEST(Loss, BatchTripletRoundsTheMarginOnceInFloat32) {
  // 1-D points on a 1/64 grid (exact Manhattan distances) and margins just above a grid value:
  // d(a, p) + margin then rounds onto d(a, n) for some triplets, and both counts must agree on
  // them. The reference loops over the triplets with the same float32 test, summing in double.
  torch::manual_seed(8);
  const int64_t b = 48;
  const auto y = torch::arange(b) % 4;
  const auto e = (torch::randint(0, 200, {b, 1}) / 64.0).to(torch::kFloat32);
  const auto d = pairwise_distance(e, e, Distance::Manhattan);
  for (int k : {16, 40, 64, 90}) {
    const float margin = std::nextafter(static_cast<float>(k) / 64.0f, 1.0e9f);
    int64_t active = -1, expected = 0;
    double sum = 0;
    for (int64_t a = 0; a < b; ++a)
      for (int64_t p = 0; p < b; ++p)
        for (int64_t n = 0; n < b; ++n) {
          if (a == p || y[a].item<int64_t>() != y[p].item<int64_t>() || y[a].item<int64_t>() == y[n].item<int64_t>()) continue;
          const float dap = d[a][p].item<float>(), dan = d[a][n].item<float>();
          if (dan < dap + margin) ++expected, sum += static_cast<double>(dap) - dan + margin;
        }
    const auto loss = batch_triplet_loss(e, y, Distance::Manhattan, margin, &active).item<double>();
    EXPECT_EQ(active, expected) << "margin " << margin;
    EXPECT_NEAR(loss, sum / static_cast<double>(expected), 2e-5) << "margin " << margin;
  }
  EXPECT_THROW(batch_triplet_loss(e, y, Distance::Manhattan, std::nan(""), nullptr), Error);
}

TEST(Loss, BatchTripletGradientEqualsExplicitLoopGradient) {
  torch::manual_seed(4);
  const std::vector<int64_t> labels{0, 0, 1, 1, 2, 2};
  auto e1 = (torch::randn({6, 3}, torch::kFloat64) * 0.4).set_requires_grad(true);
  auto e2 = e1.detach().clone().set_requires_grad(true);
  batch_triplet_loss(e1, torch::tensor(labels), Distance::Euclidean, 1.0).backward();
  naive_batch_triplet(e2, labels, 1.0).backward();
  EXPECT_TRUE(torch::allclose(e1.grad(), e2.grad(), 1e-9, 1e-10));
}

TEST(Loss, FiniteDifferenceGradients) {
  torch::manual_seed(5);
  auto y = torch::tensor({0, 0, 1, 1, 2});
  auto x = torch::randn({5, 3}, torch::kFloat64) * 0.4;
  for (auto dist : {Distance::Euclidean, Distance::Cosine}) {
    expect_gradient_matches([&](const torch::Tensor& e) { return batch_contrastive_loss(e, y, dist, 1.0); }, x);
    expect_gradient_matches([&](const torch::Tensor& e) { return batch_triplet_loss(e, y, dist, 1.0); }, x);
  }
  auto sim = torch::tensor({1, 0, 1, 0});
  expect_gradient_matches([&](const torch::Tensor& e) {
    return contrastive_loss(paired_distance(e.slice(0, 0, 4), e.slice(0, 1, 5), Distance::Euclidean), sim, 1.5);
  }, x);
}

TEST(Loss, NoViolationGivesZeroAttachedLoss) {
  auto e = torch::tensor({{0.0, 0.0}, {0.0, 0.1}, {5.0, 5.0}, {5.0, 5.1}}, torch::kFloat64).set_requires_grad(true);
  auto loss = batch_triplet_loss(e, torch::tensor({0, 0, 1, 1}), Distance::Euclidean, 1.0);
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();  // must not throw: still part of the graph
  EXPECT_EQ(e.grad().abs().sum().item<double>(), 0.0);
}

TEST(Loss, BatchTripletLargeBatchStaysQuadratic) {
  // 1,024 embeddings: an [B, B, B] float tensor would need 4 GiB; the sorted counts need [B, B].
  torch::manual_seed(6);
  auto labels = torch::arange(1024) % 32;
  auto e = torch::randn({1024, 16}).set_requires_grad(true);
  auto loss = batch_triplet_loss(e, labels, Distance::Euclidean, 0.5);
  loss.backward();
  EXPECT_GT(loss.item<double>(), 0.0);
  EXPECT_TRUE(torch::isfinite(e.grad()).all().item<bool>());
}

TEST(Loss, RejectsBadShapes) {
  EXPECT_THROW(contrastive_loss(torch::zeros({3}), torch::zeros({4}), 1.0), Error);
  EXPECT_THROW(batch_triplet_loss(torch::zeros({3, 2}), torch::zeros({4}, torch::kLong), Distance::Euclidean, 1.0), Error);
  EXPECT_THROW(parse_loss("hinge"), Error);
}

TEST(Loss, NTXentEqualsItsDefinitionComputedByLoops) {
  torch::manual_seed(4);
  auto e = torch::randn({6, 3}, torch::kFloat64);
  auto labels = torch::tensor({0, 0, 1, 1, 1, 2});  // item 5 has no positive
  const double t = 0.5;
  double total = 0;
  int with_positive = 0;
  for (int i = 0; i < 6; ++i) {
    auto cos = [&](int a, int b) { return (e[a].dot(e[b]) / (e[a].norm() * e[b].norm())).item<double>() / t; };
    double denominator = 0;
    for (int j = 0; j < 6; ++j) if (j != i) denominator += std::exp(cos(i, j));
    double sum = 0;
    int positives = 0;
    for (int p = 0; p < 6; ++p) {
      if (p == i || labels[p].item<int64_t>() != labels[i].item<int64_t>()) continue;
      sum += -std::log(std::exp(cos(i, p)) / denominator);
      ++positives;
    }
    if (positives > 0) total += sum / positives, ++with_positive;
  }
  int64_t active = 0;
  EXPECT_NEAR(ntxent_loss(e, labels, t, &active).item<double>(), total / with_positive, 1e-10);
  EXPECT_EQ(active, 5);
  EXPECT_EQ(ntxent_loss(e, torch::arange(6), t).item<double>(), 0.0);  // nobody has a positive
  EXPECT_THROW(ntxent_loss(e, labels, 0), Error);
  EXPECT_THROW(ntxent_loss(e, labels.slice(0, 0, 4), t), Error);
  EXPECT_EQ(parse_loss("ntxent"), LossKind::NTXent);
}
