#include <gtest/gtest.h>
#include <torch/torch.h>

#include <random>

#include "siamese/core/error.h"
#include "siamese/eval/metrics.h"

using namespace siamese;

TEST(Retrieval, HandComputedLine) {
  // Points on a line; by hand: R@1 = 4/5, R@5 = 1, MAP@R = (1/2 + 1/2 + 1 + 1 + 0) / 5.
  auto e = torch::tensor({0.0, 1.0, 10.0, 11.0, 12.5}).unsqueeze(1);
  auto m = retrieval_metrics(e, {0, 0, 1, 1, 0}, Distance::Euclidean);
  EXPECT_DOUBLE_EQ(m.recall_at_1, 0.8);
  EXPECT_DOUBLE_EQ(m.recall_at_5, 1.0);
  EXPECT_NEAR(m.map_at_r, 0.6, 1e-12);
  // By class: 2 of class 0's 3 queries hit (12.5 finds 11), both of class 1's.
  ASSERT_EQ(m.recall_at_1_by_class.size(), 2u);
  EXPECT_NEAR(m.recall_at_1_by_class[0], 2.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(m.recall_at_1_by_class[1], 1.0);
}

TEST(Retrieval, MatchesBruteForceOnRandomData) {
  torch::manual_seed(9);
  const int n = 300;
  auto e = torch::randn({n, 4}, torch::kFloat64);
  std::vector<int64_t> labels;
  for (int i = 0; i < n; ++i) labels.push_back((i * 7) % 6);
  auto d = torch::cdist(e, e);
  double r1 = 0, map = 0;
  std::vector<double> class_hits(6, 0), class_count(6, 0);
  for (int q = 0; q < n; ++q) {
    std::vector<std::pair<double, int>> order;
    for (int j = 0; j < n; ++j)
      if (j != q) order.emplace_back(d[q][j].item<double>(), j);
    std::sort(order.begin(), order.end());
    int r = 0;
    for (int j = 0; j < n; ++j) r += (j != q && labels[j] == labels[q]);
    r1 += labels[order[0].second] == labels[q];
    class_hits[labels[q]] += labels[order[0].second] == labels[q];
    class_count[labels[q]] += 1;
    double hits = 0, ap = 0;
    for (int i = 0; i < r; ++i) {
      if (labels[order[i].second] == labels[q]) {
        hits += 1;
        ap += hits / (i + 1);
      }
    }
    map += ap / r;
  }
  auto m = retrieval_metrics(e, labels, Distance::Euclidean);
  EXPECT_NEAR(m.recall_at_1, r1 / n, 1e-12);
  EXPECT_NEAR(m.map_at_r, map / n, 1e-9);
  for (int c = 0; c < 6; ++c) EXPECT_NEAR(m.recall_at_1_by_class.at(c), class_hits[c] / class_count[c], 1e-12);
}

TEST(Verification, FourPointRocByHand) {
  // Sorted: 0.1 same, 0.35 different, 0.4 same, 0.8 different.
  const std::vector<double> d{0.1, 0.4, 0.35, 0.8};
  const std::vector<uint8_t> same{1, 1, 0, 0};
  auto roc = roc_curve(d, same);
  EXPECT_EQ(roc.fpr, (std::vector<double>{0, 0, 0.5, 0.5, 1}));
  EXPECT_EQ(roc.tpr, (std::vector<double>{0, 0.5, 0.5, 1, 1}));
  EXPECT_DOUBLE_EQ(roc_auc(d, same), 0.75);
  EXPECT_DOUBLE_EQ(equal_error_rate(d, same), 0.5);
  EXPECT_DOUBLE_EQ(tar_at_far(d, same, 0.0), 0.5);
  EXPECT_DOUBLE_EQ(calibrate_threshold(d, same), 0.225);  // first of the two best (3 of 4 right)
  EXPECT_DOUBLE_EQ(accuracy_at(d, same, 0.225), 0.75);
}

TEST(Verification, AucIsTheMannWhitneyStatisticWithTies) {
  std::mt19937 rng(3);
  std::vector<double> d;
  std::vector<uint8_t> same;
  for (int i = 0; i < 400; ++i) {
    same.push_back(i % 3 == 0);
    d.push_back(std::round((same.back() ? 0.0 : 1.0) + std::normal_distribution<double>(0, 1)(rng)) / 4);  // ties
  }
  double wins = 0, total = 0;
  for (size_t i = 0; i < d.size(); ++i)
    for (size_t j = 0; j < d.size(); ++j)
      if (same[i] && !same[j]) {
        wins += d[i] < d[j] ? 1 : d[i] == d[j] ? 0.5 : 0;
        total += 1;
      }
  EXPECT_NEAR(roc_auc(d, same), wins / total, 1e-12);
  // The calibrated threshold is the best of all thresholds.
  const double best = accuracy_at(d, same, calibrate_threshold(d, same));
  for (double t : d) EXPECT_LE(accuracy_at(d, same, t), best + 1e-12);
}

TEST(Verification, PerfectSeparationAndBadInput) {
  const std::vector<double> d{0.1, 0.2, 0.9, 1.0};
  const std::vector<uint8_t> same{1, 1, 0, 0};
  EXPECT_DOUBLE_EQ(roc_auc(d, same), 1.0);
  EXPECT_DOUBLE_EQ(equal_error_rate(d, same), 0.0);
  EXPECT_DOUBLE_EQ(accuracy_at(d, same, calibrate_threshold(d, same)), 1.0);
  EXPECT_THROW(roc_auc({0.1, 0.2}, {1, 1}), Error);
  EXPECT_THROW(roc_auc({0.1, std::nan("")}, {1, 0}), Error);
}

TEST(Verification, PairDistancesOfWideRowsMatchEachPairComputedAlone) {
  // 700,000 values a row: pair_distances gathers two pairs at a time (its ~2M-value chunks).
  torch::manual_seed(5);
  const auto e = torch::randn({4, 700000});
  Pairs pairs;
  pairs.a = {0, 1, 2, 3, 0};
  pairs.b = {1, 2, 3, 0, 0};
  pairs.same = {1, 0, 1, 0, 1};
  const auto d = pair_distances(e, pairs, Distance::Euclidean);
  ASSERT_EQ(d.size(), 5u);
  for (size_t i = 0; i < d.size(); ++i) {
    const double alone = (e[pairs.a[i]].to(torch::kFloat64) - e[pairs.b[i]].to(torch::kFloat64)).norm().item<double>();
    EXPECT_NEAR(d[i], alone, 1e-3 + 1e-6 * alone) << "pair " << i;
  }
}

TEST(Verification, EmbeddingsCollapsedToOnePointAreAllAtOneDistance) {
  const auto point = torch::tensor({0.3, -1.2, 2.0}, torch::kFloat32);
  const auto collapsed = point.repeat({6, 1});
  const auto spread = collapsed + torch::arange(6, torch::kFloat32).unsqueeze(1) * 0.01;
  const auto pairs = balanced_pairs({0, 0, 0, 1, 1, 1}, 20, 3);
  for (auto distance : {Distance::Euclidean, Distance::Cosine, Distance::Manhattan}) {
    EXPECT_TRUE(all_at_one_distance(pair_distances(collapsed, pairs, distance)));
    EXPECT_FALSE(all_at_one_distance(pair_distances(spread, pairs, distance)));
  }
  // Within a millionth of the largest distance (or of 1 below it) counts as one distance.
  EXPECT_TRUE(all_at_one_distance({5.0, 5.0 + 4e-6}));
  EXPECT_FALSE(all_at_one_distance({5.0, 5.0 + 6e-6}));
  EXPECT_FALSE(all_at_one_distance({0.1, 0.2}));
  EXPECT_FALSE(all_at_one_distance({}));
}

TEST(Pairs, BalancedAndSeeded) {
  std::vector<int64_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(i % 7);
  auto p = balanced_pairs(labels, 1000, 0);
  int positives = 0;
  for (size_t i = 0; i < p.a.size(); ++i) {
    EXPECT_EQ(labels[p.a[i]] == labels[p.b[i]], p.same[i] == 1);
    EXPECT_NE(p.a[i], p.b[i]);
    positives += p.same[i];
  }
  EXPECT_EQ(positives, 500);
  EXPECT_EQ(balanced_pairs(labels, 1000, 0).b, p.b);
  EXPECT_NE(balanced_pairs(labels, 1000, 1).b, p.b);
}

TEST(FewShot, SeparatedClassesAndTheChanceCase) {
  // 6 classes far apart on a line, 4 items each: every episode is right.
  std::vector<int64_t> labels;
  std::vector<double> x;
  for (int c = 0; c < 6; ++c)
    for (int i = 0; i < 4; ++i) {
      labels.push_back(c);
      x.push_back(c * 10.0 + i * 0.1);
    }
  auto e = torch::tensor(x).unsqueeze(1);
  EXPECT_DOUBLE_EQ(few_shot_accuracy(e, labels, Distance::Euclidean, 5, 1, 50, 0), 1.0);
  EXPECT_DOUBLE_EQ(few_shot_accuracy(e, labels, Distance::Euclidean, 5, 3, 50, 0), 1.0);
  // All embeddings equal: argmin picks the first class, so exactly 1 query in 5 is right.
  EXPECT_DOUBLE_EQ(few_shot_accuracy(torch::zeros({24, 2}), labels, Distance::Euclidean, 5, 1, 40, 0), 0.2);
  EXPECT_THROW(few_shot_accuracy(e, labels, Distance::Euclidean, 5, 4, 10, 0), Error);  // needs 5 per class
}

TEST(OneShot, HandMadeSupportSetGivesTheHandComputedAnswers) {
  // Class 7 at x = 0 and x = 4 (mean 2), class 3 at x = 5. Query 2.9: mean rule -> class 7
  // (0.9 against 2.1); nearest rule -> class 7 (1.1 from x=4 against 2.1). Query 4.4: mean rule ->
  // class 3 (0.6 against 2.4), nearest rule -> class 7 (0.4 from x = 4 against 0.6).
  auto support = torch::tensor({0.0, 4.0, 5.0}).unsqueeze(1);
  auto queries = torch::tensor({2.9, 4.4, 30.0}).unsqueeze(1);
  auto mean = classify_by_support(queries, support, {7, 7, 3}, Distance::Euclidean, SupportRule::ClassMean, -1);
  EXPECT_EQ(mean[0].label, 7);
  EXPECT_NEAR(mean[0].distance, 0.9, 1e-6);
  EXPECT_EQ(mean[1].label, 3);
  EXPECT_NEAR(mean[1].distance, 0.6, 1e-6);
  auto nearest = classify_by_support(queries, support, {7, 7, 3}, Distance::Euclidean, SupportRule::Nearest, -1);
  EXPECT_EQ(nearest[0].label, 7);
  EXPECT_NEAR(nearest[0].distance, 1.1, 1e-6);
  EXPECT_EQ(nearest[1].label, 7);
  EXPECT_NEAR(nearest[1].distance, 0.4, 1e-6);
  // With a threshold of 5, the far query (25 from x = 5) is "none of these"; the others stay.
  auto gated = classify_by_support(queries, support, {7, 7, 3}, Distance::Euclidean, SupportRule::ClassMean, 5.0);
  EXPECT_EQ(gated[0].label, 7);
  EXPECT_EQ(gated[2].label, -1);
  EXPECT_NEAR(gated[2].distance, 25.0, 1e-6);
  EXPECT_THROW(classify_by_support(queries, support, {1, 1, 1}, Distance::Euclidean, SupportRule::ClassMean, -1), Error);
  EXPECT_THROW(parse_support_rule("median"), Error);
}

TEST(CrossValidation, HandComputedThreeFolds) {
  // Fold 0: 1 same, 3 different. Fold 1: 2 same, 5 and 2.7 different. Fold 2: 1.5 same, 2.5
  // different, 3.5 same. By hand, the best threshold of the other folds is 2.25 (5/6 right) for
  // fold 0, 2.0 (4/5) for fold 1 and 2.35 (5/5) for fold 2; the folds then score 1, 1 and 2/3.
  std::vector<double> d{1, 3, 2, 5, 2.7, 1.5, 2.5, 3.5};
  std::vector<uint8_t> same{1, 0, 1, 0, 0, 1, 0, 1};
  std::vector<int64_t> fold{0, 0, 1, 1, 1, 2, 2, 2};
  auto cv = cross_validate(d, same, fold);
  ASSERT_EQ(cv.fold_threshold.size(), 3u);
  EXPECT_NEAR(cv.fold_threshold[0], 2.25, 1e-12);
  EXPECT_NEAR(cv.fold_threshold[1], 2.0, 1e-12);
  EXPECT_NEAR(cv.fold_threshold[2], 2.35, 1e-12);
  EXPECT_DOUBLE_EQ(cv.fold_accuracy[0], 1.0);
  EXPECT_DOUBLE_EQ(cv.fold_accuracy[1], 1.0);
  EXPECT_NEAR(cv.fold_accuracy[2], 2.0 / 3, 1e-12);
  EXPECT_NEAR(cv.accuracy_mean, 8.0 / 9, 1e-12);
  EXPECT_NEAR(cv.accuracy_std, std::sqrt(2.0) / 9, 1e-12);
  EXPECT_THROW(cross_validate(d, same, std::vector<int64_t>(8, 0)), Error);  // one fold
}

TEST(Reference, RawPixelsByHand) {
  // two classes of 1 × 1 × 2 images: a (0, 0), b (30, 0) of class 0; c (200, 200), d (200, 180),
  // e (20, 0) of class 1. Nearest others: a -> e, b -> e, c -> d, d -> c, e -> b: Recall@1 = 2/5.
  auto images = torch::tensor({0, 0, 30, 0, 200, 200, 200, 180, 20, 0}, torch::kUInt8).reshape({5, 1, 1, 2});
  ImageDataset test(images, {0, 0, 1, 1, 1}, "hand");
  auto r = raw_pixel_reference(test, test, EvalOptions().test_pairs(20), 20);
  ASSERT_TRUE(r);
  EXPECT_DOUBLE_EQ(r->recall_at_1, 0.4);
  EXPECT_EQ(r->test_images, 5);
  // the same through evaluate_embeddings on the pixels, threshold given
  auto e = images.reshape({5, 2}).to(torch::kFloat) / 255.0;
  auto direct = evaluate_embeddings(e, {0, 0, 1, 1, 1}, Distance::Euclidean, r->threshold, EvalOptions().test_pairs(20));
  EXPECT_EQ(to_json(direct), to_json(*r));
  EXPECT_THROW(evaluate_embeddings(e, {0, 1}, Distance::Euclidean, 0.5, EvalOptions()), Error);
}
