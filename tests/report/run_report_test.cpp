// The run report: its pieces (PCA, neighbours) against values computed another way, and the page
// of a small model on a small data set.
#include "siamese/report/run_report.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "siamese/core/error.h"

namespace siamese {
namespace {

int64_t count_matches(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  return std::distance(std::sregex_iterator(text.begin(), text.end(), re), std::sregex_iterator());
}

TEST(Pca, FindsTheAxesOfPointsOnAPlane) {
  // points t·u + s·v with u = (3, 4, 0)/5 spread wider than v = (0, 0, 1): PC 1 = ±u, PC 2 = ±v,
  // and the projections recover t and s up to the centring and the sign rule
  // t runs evenly over [-10, 10] (odd under reversal), s is +1, -1, +1 over the quarters, half and
  // quarter (even): both have mean 0 and sum(t·s) = 0, so the sample covariance is exactly diagonal
  auto t = torch::linspace(-10, 10, 200, torch::kDouble).unsqueeze(1);
  auto s = torch::ones({200, 1}, torch::kDouble);
  s.narrow(0, 50, 100).fill_(-1);
  auto u = torch::tensor({0.6, 0.8, 0.0}, torch::kDouble).unsqueeze(0), v = torch::tensor({0.0, 0.0, 1.0}, torch::kDouble).unsqueeze(0);
  auto x = (t.mm(u) + s.mm(v) + 5).to(torch::kFloat);
  auto xy = pca_2d(x).to(torch::kDouble);
  ASSERT_EQ(xy.sizes(), (std::vector<int64_t>{200, 2}));
  // the largest loadings (0.8 of u, 1 of v) are positive, so the projections are t and s centred
  EXPECT_TRUE(torch::allclose(xy.select(1, 0), (t - t.mean()).squeeze(1), 1e-4, 1e-3));
  EXPECT_TRUE(torch::allclose(xy.select(1, 1), (s - s.mean()).squeeze(1), 1e-4, 1e-3));
  EXPECT_THROW(pca_2d(torch::zeros({1, 3})), Error);
  auto one = pca_2d(torch::tensor({{1.0f}, {3.0f}}));
  EXPECT_FLOAT_EQ(one[0][0].item<float>(), -1);
  EXPECT_FLOAT_EQ(one[1][1].item<float>(), 0);
}

TEST(Neighbours, MatchBruteForce) {
  torch::manual_seed(1);
  auto e = torch::randn({2500, 8});  // more rows than one block
  const std::vector<int64_t> queries{0, 1234, 2499};
  auto n = nearest_neighbours(e, Distance::Euclidean, queries, 5);
  ASSERT_EQ(n.nearest.size(), 2500u);
  for (int64_t i : {int64_t{0}, int64_t{1023}, int64_t{1024}, int64_t{2048}, int64_t{2499}}) {
    double best = INFINITY;
    int64_t arg = -1;
    for (int64_t j = 0; j < 2500; ++j) {
      if (j == i) continue;
      const double d = (e[i] - e[j]).norm().item<double>();
      if (d < best) best = d, arg = j;
    }
    EXPECT_EQ(n.nearest[static_cast<size_t>(i)], arg) << "row " << i;
  }
  for (size_t q = 0; q < queries.size(); ++q) {
    ASSERT_EQ(n.of_query[q].size(), 5u);
    EXPECT_EQ(n.of_query[q][0], n.nearest[static_cast<size_t>(queries[q])]);
    auto all = (e - e[queries[q]]).norm(2, 1);
    all[queries[q]] = INFINITY;
    auto sorted = std::get<0>(all.sort());
    for (int k = 0; k < 5; ++k) EXPECT_NEAR(n.distance[q][static_cast<size_t>(k)], sorted[k].item<double>(), 1e-4);
  }
}

/// 6 classes × 4 random 12 × 12 images, class c brightened by 30·c so that pixels tell classes apart a little.
std::shared_ptr<ImageDataset> small_images(uint64_t seed) {
  torch::manual_seed(seed);
  auto images = torch::randint(0, 100, {24, 1, 12, 12}).to(torch::kUInt8);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 24; ++i) {
    labels.push_back(i / 4);
    images[i] += static_cast<uint8_t>(30 * (i / 4));
  }
  return std::make_shared<ImageDataset>(images, labels, "small", std::vector<std::string>{"a", "b", "c", "d", "e", "<f>"});
}

TEST(RunReport, PageOfASmallModelHasEverySectionAndTheRightNumbers) {
  torch::manual_seed(5);
  SiameseNetwork net(SiameseNetworkOptions().cnn(
      CnnEncoderOptions().in_channels(1).height(12).width(12).conv_channels({4}).hidden(8).embedding_dim(4)));
  net->eval();
  SavedModel model{net, 0.5, "{}"};
  TrainedData data;
  data.spec = "small";
  data.protocol = Protocol::Unseen;
  data.test = small_images(1);
  data.validation = small_images(2);
  RunRecord run;
  run.folder = "runs/x";
  run.config_json = R"({"epochs": 2, "loss": "triplet"})";
  run.history_csv = "epoch,loss,lr,val_recall_at_1,val_map_at_r,val_roc_auc,images_per_second,seconds,data_wait_seconds\n"
                    "1,0.5,0.001,0.5,0.4,0.7,1000,2,0.1\n2,0.4,0.001,0.6,0.5,0.8,1100,2,0.1\n";
  run.metrics_json = R"({"train_seconds": 4, "train_images_per_second": 1050, "epochs": 2, "machine": "test machine"})";
  const auto page = render_run_report(model, data, run, ReportOptions().samples(20).queries(3).neighbours(4).test_pairs(40));
  for (const char* id : {"run", "epochs", "metrics", "verification", "per-class", "map", "neighbours", "confusions", "oneshot"}) {
    EXPECT_NE(page.find(std::string("<section id=\"") + id + "\">"), std::string::npos) << id;
  }
  // the model's Recall@1 and the raw-pixel reference, as evaluate computes them
  const auto eval = EvalOptions().test_pairs(40).few_shot(true);
  const auto test = evaluate(net, *data.test, 0.5, eval);
  const auto pixels = raw_pixel_reference(*data.test, *data.validation, eval);
  ASSERT_TRUE(pixels);
  char row[160];
  std::snprintf(row, sizeof row, "<tr><th>Recall@1</th><td>%.4f</td><td>%.4f</td></tr>", test.recall_at_1, pixels->recall_at_1);
  EXPECT_NE(page.find(row), std::string::npos) << row;
  // 20 map points, each with its thumbnail; 3 queries × 4 neighbours, each framed right or wrong
  EXPECT_EQ(count_matches(page, "<g class=\"pt\"><circle[^>]*r=\"3\""), 20);
  const auto section = page.substr(page.find("<section id=\"neighbours\">"));
  const auto grid = section.substr(0, section.find("</section>"));
  EXPECT_EQ(count_matches(grid, "<td class=\"(right|wrong)\"><img"), 12);
  EXPECT_NE(page.find("&lt;f&gt;"), std::string::npos);  // class names escaped
  EXPECT_NE(page.find("test machine"), std::string::npos);
  EXPECT_EQ(page.find("<script"), std::string::npos);
  EXPECT_EQ(std::regex_search(page, std::regex("(src|href)=\"https?:")), false);
}

TEST(RunReport, ReadsARunFolderAndRefusesAMissingOne) {
  EXPECT_THROW(read_run_record("/no/such/run"), Error);
  auto dir = std::filesystem::temp_directory_path() / ("siamese_report_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "history.csv") << "epoch,loss\n1,0.5\n";
  }
  const auto r = read_run_record(dir.string());
  EXPECT_EQ(r.history_csv, "epoch,loss\n1,0.5\n");
  EXPECT_EQ(r.config_json, "");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace siamese
