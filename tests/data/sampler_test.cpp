#include <gtest/gtest.h>

#include <map>
#include <set>

#include "siamese/core/error.h"
#include "siamese/data/sampler.h"

using namespace siamese;

namespace {
std::vector<int64_t> labels_of(int classes, int per_class) {
  std::vector<int64_t> l;
  for (int i = 0; i < classes * per_class; ++i) l.push_back(i % classes);
  return l;
}
}  // namespace

TEST(Sampler, PairsHonourThePositiveFractionExactly) {
  auto labels = labels_of(5, 40);
  SamplerOptions o;
  o.kind = SamplerKind::Pairs;
  o.batch_size = 20;
  o.pos_fraction = 0.3;
  Sampler s(labels, o);
  auto plan = s.plan_epoch(0);
  EXPECT_EQ(plan.size(), 200u / 40u);
  for (const auto& b : plan) {
    ASSERT_EQ(b.indices.size(), 40u);
    int positives = 0;
    for (int i = 0; i < 20; ++i) {
      const auto a = b.indices[i], other = b.indices[20 + i];
      const bool same = labels[a] == labels[other];
      EXPECT_EQ(same, b.similar[i] == 1.0f);
      EXPECT_NE(a, other);
      positives += same;
    }
    EXPECT_EQ(positives, 6);
  }
}

TEST(Sampler, TripletsHaveSameClassPositivesAndOtherClassNegatives) {
  auto labels = labels_of(3, 10);
  SamplerOptions o;
  o.kind = SamplerKind::Triplets;
  o.batch_size = 5;
  for (const auto& b : Sampler(labels, o).plan_epoch(3)) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(labels[b.indices[i]], labels[b.indices[5 + i]]);
      EXPECT_NE(b.indices[i], b.indices[5 + i]);
      EXPECT_NE(labels[b.indices[i]], labels[b.indices[10 + i]]);
    }
  }
}

TEST(Sampler, PKBatchesHavePClassesOfKDistinctItemsAndCoverClassesEvenly) {
  // Imbalanced classes: class 0 has 200 items, the others 20.
  std::vector<int64_t> labels;
  for (int i = 0; i < 200; ++i) labels.push_back(0);
  for (int c = 1; c < 8; ++c)
    for (int i = 0; i < 20; ++i) labels.push_back(c);
  SamplerOptions o;
  o.p = 4;
  o.k = 5;
  Sampler s(labels, o);
  std::map<int64_t, int> classes_seen;
  int batches = 0;
  for (int epoch = 0; epoch < 20; ++epoch) {
    for (const auto& b : s.plan_epoch(epoch)) {
      ++batches;
      ASSERT_EQ(b.indices.size(), 20u);
      std::set<int64_t> cls, items(b.indices.begin(), b.indices.end());
      EXPECT_EQ(items.size(), 20u);
      for (int c = 0; c < 4; ++c) {
        cls.insert(labels[b.indices[c * 5]]);
        for (int j = 1; j < 5; ++j) EXPECT_EQ(labels[b.indices[c * 5 + j]], labels[b.indices[c * 5]]);
      }
      EXPECT_EQ(cls.size(), 4u);
      for (auto c : cls) classes_seen[c]++;
    }
  }
  // Each class is picked with probability P / classes = 1/2 per batch, whatever its size.
  for (const auto& [c, n] : classes_seen) EXPECT_NEAR(n / static_cast<double>(batches), 0.5, 0.08) << "class " << c;
  EXPECT_EQ(classes_seen.size(), 8u);
}

TEST(Sampler, SeededAndReproduciblePerEpoch) {
  auto labels = labels_of(4, 25);
  SamplerOptions o;
  o.p = 3;
  o.k = 4;
  o.seed = 11;
  Sampler a(labels, o), b(labels, o);
  EXPECT_EQ(a.plan_epoch(2)[0].indices, b.plan_epoch(2)[0].indices);
  EXPECT_NE(a.plan_epoch(2)[0].indices, a.plan_epoch(3)[0].indices);
  o.seed = 12;
  EXPECT_NE(Sampler(labels, o).plan_epoch(2)[0].indices, a.plan_epoch(2)[0].indices);
}

TEST(Sampler, RejectsLabelsThatCannotGiveBatches) {
  SamplerOptions o;
  EXPECT_THROW(Sampler(std::vector<int64_t>{1, 1, 1}, o), Error);      // one class
  EXPECT_THROW(Sampler(std::vector<int64_t>{0, 1, 2}, o), Error);      // no positive pair
  o.p = 5;
  EXPECT_THROW(Sampler(labels_of(3, 10), o), Error);                  // P above the classes
  o.kind = SamplerKind::Pairs;
  o.pos_fraction = 1.5;
  EXPECT_THROW(Sampler(labels_of(3, 10), o), Error);
  EXPECT_THROW(parse_sampler("random"), Error);
}

TEST(Sampler, BalancedSamplingEvensOutImbalancedClassesNaiveFollowsTheirSizes) {
  // Class 0 has 10 items, classes 1..4 have 200 each: 10 / 810 = 1.2% of the items.
  std::vector<int64_t> labels(10, 0);
  for (int c = 1; c <= 4; ++c) labels.insert(labels.end(), 200, c);
  for (auto kind : {SamplerKind::Pairs, SamplerKind::Triplets, SamplerKind::PK}) {
    SamplerOptions o;
    o.kind = kind;
    o.batch_size = 40;
    o.p = 2;
    o.k = 10;
    std::vector<BatchPlan> balanced, naive;
    for (int e = 0; e < 20; ++e) {
      auto b = Sampler(labels, o).plan_epoch(e);
      balanced.insert(balanced.end(), b.begin(), b.end());
      o.balance = false;
      auto n = Sampler(labels, o).plan_epoch(e);
      naive.insert(naive.end(), n.begin(), n.end());
      o.balance = true;
    }
    const auto fair = plan_balance(balanced, kind, labels).class_share;
    const auto by_size = plan_balance(naive, kind, labels).class_share;
    ASSERT_EQ(fair.size(), 5u);
    for (int c = 0; c < 5; ++c) EXPECT_NEAR(fair[c], 0.2, 0.03) << to_string(kind) << " class " << c;
    EXPECT_LT(by_size[0], 0.06) << to_string(kind);  // ~1.2% of anchors (pk: P=2 of 5 classes by size)
  }
}

TEST(Sampler, PlanBalanceCountsByHand) {
  std::vector<int64_t> labels{0, 0, 1, 1, 2};
  // pairs: (0,1) positive, (2,4) negative; images: class 0 ×2, class 1 ×1, class 2 ×1.
  BatchPlan pairs{{0, 2, 1, 4}, {1.0f, 0.0f}};
  auto b = plan_balance({pairs}, SamplerKind::Pairs, labels);
  EXPECT_DOUBLE_EQ(b.positive_share, 0.5);
  EXPECT_DOUBLE_EQ(b.class_share[0], 0.5);
  EXPECT_DOUBLE_EQ(b.class_share[1], 0.25);
  // pk batch 0,1,2,3,4: same-class pairs (0,1), (2,3) of 10 pairs.
  b = plan_balance({BatchPlan{{0, 1, 2, 3, 4}, {}}}, SamplerKind::PK, labels);
  EXPECT_DOUBLE_EQ(b.positive_share, 0.2);
  EXPECT_DOUBLE_EQ(b.class_share[2], 0.2);
  EXPECT_DOUBLE_EQ(b.min_class_share, 0.2);
  EXPECT_DOUBLE_EQ(b.max_class_share, 0.4);
  // A class the plan never draws counts 0, even the largest label; a label with no items does not count.
  labels = {0, 0, 1, 1, 3, 3};
  b = plan_balance({BatchPlan{{0, 1, 1, 2}, {}}}, SamplerKind::PK, labels);
  ASSERT_EQ(b.class_share.size(), 4u);
  EXPECT_DOUBLE_EQ(b.class_share[3], 0.0);
  EXPECT_DOUBLE_EQ(b.min_class_share, 0.0);
  EXPECT_DOUBLE_EQ(b.max_class_share, 0.75);
  EXPECT_EQ(b.classes, 3);
  EXPECT_EQ(b.classes_drawn, 2);
}

TEST(Sampler, MinedNegativesAreTheOnesDrawn) {
  auto labels = labels_of(4, 30);  // item i has class i % 4
  HardNegatives hard;
  hard.per_item = 2;
  for (size_t i = 0; i < labels.size(); ++i) {  // the mined negatives of i: i+1 and i+2 (other classes)
    hard.items.push_back((i + 1) % labels.size());
    hard.items.push_back((i + 2) % labels.size());
  }
  auto mined = [&](int64_t a, int64_t x) { return x == (a + 1) % 120 || x == (a + 2) % 120; };
  SamplerOptions o;
  o.kind = SamplerKind::Triplets;
  o.batch_size = 16;
  for (const auto& b : Sampler(labels, o).plan_epoch(0, hard)) {
    for (int i = 0; i < 16; ++i) EXPECT_TRUE(mined(b.indices[i], b.indices[32 + i]));
  }
  o.kind = SamplerKind::PK;
  o.p = 2;
  o.k = 6;
  for (const auto& b : Sampler(labels, o).plan_epoch(0, hard)) {
    ASSERT_EQ(b.indices.size(), 12u);
    for (int i = 0; i < 6; ++i) EXPECT_TRUE(mined(b.indices[i], b.indices[6 + i])) << i;  // 3 + 3 own, 6 mined
  }
}

TEST(Sampler, ViewsRepeatEveryItemSideBySide) {
  SamplerOptions o;
  o.p = 2;
  o.k = 3;
  o.views = 2;
  Sampler s(labels_of(3, 10), o);
  EXPECT_EQ(s.images_per_batch(), 12);
  auto plan = s.plan_epoch(0);
  EXPECT_EQ(plan.size(), 5u);  // 30 items / 6 distinct per batch
  for (const auto& b : plan) {
    ASSERT_EQ(b.indices.size(), 12u);
    for (int i = 0; i < 12; i += 2) EXPECT_EQ(b.indices[i], b.indices[i + 1]);
  }
  o.kind = SamplerKind::Pairs;
  EXPECT_THROW(Sampler(labels_of(3, 10), o), Error);
}
