#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "siamese/core/distance.h"
#include "siamese/core/error.h"
#include "siamese/eval/metrics.h"
#include "siamese/eval/pairs_protocol.h"
#include "test_util.h"

using namespace siamese;
namespace fs = std::filesystem;

namespace {

SavedModel small_model(Distance distance) {
  torch::manual_seed(5);
  SiameseNetwork net(SiameseNetworkOptions()
                         .cnn(CnnEncoderOptions().in_channels(1).height(12).width(12).conv_channels({4}).hidden(8).embedding_dim(4))
                         .distance(distance));
  net->eval();
  return SavedModel{net, 0.5, "{}"};
}

/// root/NAME/NAME_000I.png for three people with three random 12×12 grey images each.
void write_people(const fs::path& root) {
  cv::setRNGSeed(7);
  for (auto name : {"ann", "bob", "cid"}) {
    fs::create_directories(root / name);
    for (int i = 1; i <= 3; ++i) {
      char file[32];
      std::snprintf(file, sizeof file, "%s_%04d.png", name, i);
      cv::Mat m(12, 12, CV_8UC1);
      cv::randu(m, 0, 256);
      cv::imwrite((root / name / file).string(), m);
    }
  }
}

}  // namespace

TEST(PairsProtocol, MatchesCrossValidationOnDistancesComputedDirectly) {
  auto dir = siamese::testing::temp_dir("pairs_protocol");
  write_people(dir);
  const auto path = (dir / "pairs.txt").string();
  // 3 folds of 2 same and 2 different pairs; ann_0001 appears in several pairs (embedded once).
  std::ofstream(path) << "3\t2\n"
                         "ann\t1\t2\nbob\t1\t3\nann\t1\tbob\t2\ncid\t1\tann\t3\n"
                         "cid\t2\t3\nann\t1\t3\nbob\t1\tcid\t3\nann\t2\tcid\t1\n"
                         "bob\t2\t3\ncid\t1\t3\nann\t1\tcid\t2\nbob\t3\tann\t2\n";
  for (auto distance : {Distance::Euclidean, Distance::Cosine}) {
    auto model = small_model(distance);
    const auto r = run_pairs_protocol(model, path, dir.string());
    ASSERT_EQ(r.pairs, 12);
    EXPECT_EQ(r.folds, 3);
    EXPECT_EQ(r.images, 9);  // every image of the three people, once each

    // The same numbers another way: each pair's images read and embedded on their own.
    const auto pairs = read_pairs_file(path, dir.string());
    std::vector<double> d;
    std::vector<uint8_t> same;
    std::vector<int64_t> fold;
    {
      torch::NoGradGuard no_grad;
      for (const auto& p : pairs) {
        auto a = model.network->embed(read_image(p.a, 1, 12, 12));
        auto b = model.network->embed(read_image(p.b, 1, 12, 12));
        d.push_back(paired_distance(a, b, distance).item<double>());
        same.push_back(p.same);
        fold.push_back(p.fold);
      }
    }
    ASSERT_EQ(r.distance.size(), d.size());
    for (size_t i = 0; i < d.size(); ++i) EXPECT_NEAR(r.distance[i], d[i], 1e-5) << "pair " << i;
    EXPECT_EQ(r.same, same);
    EXPECT_EQ(r.fold, fold);
    const auto cv = cross_validate(d, same, fold);
    ASSERT_TRUE(r.cross_validation.has_value());
    EXPECT_NEAR(r.cross_validation->accuracy_mean, cv.accuracy_mean, 1e-12);
    EXPECT_NEAR(r.cross_validation->accuracy_std, cv.accuracy_std, 1e-12);
    EXPECT_EQ(r.cross_validation->fold_accuracy, cv.fold_accuracy);
    EXPECT_NEAR(r.roc_auc, roc_auc(d, same), 1e-12);
    EXPECT_NEAR(r.eer, equal_error_rate(d, same), 1e-6);
    EXPECT_NEAR(r.tar_at_far_1e_3, tar_at_far(d, same, 1e-3), 1e-12);
    EXPECT_NEAR(r.accuracy_at_model_threshold, accuracy_at(d, same, 0.5), 1e-12);
    EXPECT_EQ(r.model_threshold, 0.5);
    EXPECT_EQ(r.roc.threshold.size(), roc_curve(d, same).threshold.size());
  }
}

TEST(PairsProtocol, OneFoldHasNoCrossValidationAndBadInputIsRefused) {
  auto dir = siamese::testing::temp_dir("pairs_protocol_one");
  write_people(dir);
  const auto path = (dir / "pairs.txt").string();
  std::ofstream(path) << "4\nann\t1\t2\nbob\t1\t2\nann\t1\tbob\t1\ncid\t1\tbob\t3\n";
  auto model = small_model(Distance::Euclidean);
  const auto r = run_pairs_protocol(model, path, dir.string());
  EXPECT_EQ(r.folds, 1);
  EXPECT_EQ(r.pairs, 4);
  EXPECT_FALSE(r.cross_validation.has_value());

  EXPECT_THROW(run_pairs_protocol(model, std::vector<FilePair>{}), Error);
  SiameseNetwork text(SiameseNetworkOptions()
                          .encoder(EncoderKind::Gru)
                          .rnn(RnnEncoderOptions().token_dim(4).hidden(5).embedding_dim(3))
                          .tokens("word")
                          .vocabulary({"<unk>", "the"}));
  text->eval();
  SavedModel sequences{text, 0.5, "{}"};
  try {
    run_pairs_protocol(sequences, path, dir.string());
    FAIL() << "a sequence model ran the pairs protocol";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Unsupported) << e.what();
  }
}
