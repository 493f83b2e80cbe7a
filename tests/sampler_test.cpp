#include <gtest/gtest.h>

#include <map>
#include <set>

#include "siamese/error.h"
#include "siamese/sampler.h"

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
