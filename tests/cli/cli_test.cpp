// The `siamese` tool end to end, run as a user would run it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "siamese/data/data.h"
#include "siamese/eval/metrics.h"
#include "siamese/model/model_file.h"
#include "siamese/train/trainer.h"
#include "test_util.h"

using namespace siamese;
using namespace siamese::testing;
namespace fs = std::filesystem;

namespace {

/// One trained model shared by the tests of this file (trained once, on 2,000 images).
class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp_dir("cli"));
    train_out_ = new std::string;
    if (!siamese::testing::have_fashion_mnist()) return;  // every test skips (SetUp)
    auto r = run("train --json --subset 2000 --epochs 2 --conv-channels 16,32 --hidden 64 --p 10 --k 8 --quiet --out " +
                 (*dir_ / "run").string());
    *train_out_ = r.out;
    train_code_ = r.code;
  }
  void SetUp() override { SIAMESE_SKIP_WITHOUT_FASHION_MNIST(); }
  static void TearDownTestSuite() {
    delete dir_;
    delete train_out_;
  }
  static fs::path* dir_;
  static std::string* train_out_;
  static int train_code_;
};
fs::path* Cli::dir_ = nullptr;
std::string* Cli::train_out_ = nullptr;
int Cli::train_code_ = 0;

}  // namespace

TEST_F(Cli, TrainOnASubsetIsFarAboveChanceAndWritesItsFiles) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  auto m = last_json_line(*train_out_);
  EXPECT_GT(m["recall_at_1"].get<double>(), 0.6) << *train_out_;  // chance: 0.1
  EXPECT_GT(m["roc_auc"].get<double>(), 0.85);
  EXPECT_GT(m["verification_accuracy"].get<double>(), 0.75);
  for (auto name : {"model.pt", "checkpoint.pt", "config.json", "history.csv", "metrics.json"}) {
    EXPECT_TRUE(fs::exists(*dir_ / "run" / name)) << name;
  }
  auto metrics = nlohmann::json::parse(read_file(*dir_ / "run" / "metrics.json"));
  EXPECT_GT(metrics["train_images_per_second"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(metrics["recall_at_1"].get<double>(), m["recall_at_1"].get<double>());
  auto history = read_file(*dir_ / "run" / "history.csv");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 3);  // header + 2 epochs
}

TEST_F(Cli, EvalReproducesTheTrainingMetricsWithoutRepeatingFlags) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  auto r = run("eval --model " + (*dir_ / "run").string() + " --subset 2000 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto e = last_json_line(r.out), t = last_json_line(*train_out_);
  for (auto key : {"recall_at_1", "map_at_r", "roc_auc", "verification_accuracy", "eer", "threshold"}) {
    EXPECT_NEAR(e[key].get<double>(), t[key].get<double>(), 1e-6) << key;
  }
  auto unseen = run("eval --model " + (*dir_ / "run").string() + " --subset 2000 --protocol fmnist-unseen --episodes 50 --json");
  ASSERT_EQ(unseen.code, 0) << unseen.out;
  EXPECT_GT(last_json_line(unseen.out)["oneshot_5way_1shot"].get<double>(), 0.3);  // chance: 0.2
}

TEST_F(Cli, TrainWritesTheReportAndEvalPrintsTheRoundedSummary) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto page = *dir_ / "run" / "report.html";
  ASSERT_TRUE(fs::exists(page));
  const auto html = read_file(page);
  for (const char* id : {"run", "epochs", "metrics", "verification", "per-class", "map", "neighbours", "confusions"}) {
    EXPECT_NE(html.find(std::string("<section id=\"") + id + "\">"), std::string::npos) << id;
  }
  // eval's summary: the metrics of metrics.json rounded to 4 decimals, raw pixels beside them
  auto r = run("eval --model " + (*dir_ / "run").string() + " --subset 2000");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto metrics = nlohmann::json::parse(read_file(*dir_ / "run" / "metrics.json"));
  char row[96];
  std::snprintf(row, sizeof row, "  %-22s %8.4f  ", "Recall@1", metrics["recall_at_1"].get<double>());
  EXPECT_NE(r.out.find(row), std::string::npos) << row << "\n" << r.out;
  EXPECT_NE(r.out.find("raw pixels"), std::string::npos) << r.out;
  // a model given alone: its page elsewhere, refused over an existing file without --force
  const auto other = *dir_ / "other.html";
  auto made = run("report --model " + (*dir_ / "run" / "model.pt").string() + " --out " + other.string() + " --quiet");
  ASSERT_EQ(made.code, 0) << made.out;
  EXPECT_NE(read_file(other).find("<section id=\"map\">"), std::string::npos);
  const auto before = read_file(other);
  auto again = run("report --model " + (*dir_ / "run" / "model.pt").string() + " --out " + other.string());
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_NE(again.out.find("other.html: exists; give --force to replace it"), std::string::npos) << again.out;
  EXPECT_EQ(read_file(other), before);
  auto missing = run("report " + (*dir_ / "no_such_run").string());
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("no_such_run: not a run folder"), std::string::npos) << missing.out;
}

TEST_F(Cli, EmbedWritesNpyThatMatchesTheLibrary) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto out = *dir_ / "emb.npy";
  auto r = run("embed --model " + (*dir_ / "run").string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto bytes = read_file(out);
  ASSERT_EQ(bytes.substr(0, 6), "\x93NUMPY");
  const size_t header = 10 + static_cast<uint8_t>(bytes[8]) + 256 * static_cast<uint8_t>(bytes[9]);
  EXPECT_NE(bytes.find("'shape': (10000, 64)"), std::string::npos);
  ASSERT_EQ(bytes.size(), header + 10000 * 64 * 4);
  auto model = load_model((*dir_ / "run").string());
  auto test = open_data("fashion-mnist").test;
  torch::NoGradGuard no_grad;
  auto e = model.network->embed(test.gather({0, 9999}));
  const float* data = reinterpret_cast<const float*>(bytes.data() + header);
  EXPECT_NEAR(data[0], e[0][0].item<float>(), 1e-5);
  EXPECT_NEAR(data[9999 * 64 + 63], e[1][63].item<float>(), 1e-5);
  // Training calibrated the model for --int8 (two conv blocks, the hidden layer) on validation images.
  ASSERT_EQ(model.network->options.int8_ranges().size(), 3u);
  model.network->use_int8(true);
  EXPECT_LT(((model.network->embed(test.gather({0, 9999})) - e).norm(2, 1) / e.norm(2, 1)).max().item<double>(), 0.1);
  auto labels = read_file(*dir_ / "emb.labels.npy");
  EXPECT_EQ(labels.size(), header + 10000 * 8);  // same header length for [10000] int64
}

TEST_F(Cli, CompareTwoImagesUsesTheCalibratedThreshold) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  auto test = open_data("fashion-mnist").test;
  auto save = [&](int64_t i, const std::string& name) {
    auto img = test.images()[i][0].contiguous();
    cv::Mat mat(28, 28, CV_8UC1, img.data_ptr<uint8_t>());
    cv::imwrite((*dir_ / name).string(), mat);
    return (*dir_ / name).string();
  };
  const auto a = save(0, "a.png"), b = save(1, "b.png");
  auto r = run("compare --model " + (*dir_ / "run").string() + " --json " + a + " " + b);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = last_json_line(r.out);
  auto model = load_model((*dir_ / "run").string());
  torch::NoGradGuard no_grad;
  const double d = model.network->forward(test.gather({0}), test.gather({1})).item<double>();
  EXPECT_NEAR(j["distance"].get<double>(), d, 1e-5);
  EXPECT_EQ(j["same"].get<bool>(), d <= model.threshold);
  EXPECT_NEAR(j["threshold"].get<double>(), model.threshold, 1e-6);
  auto text = run("compare --model " + (*dir_ / "run").string() + " " + a + " " + a);
  EXPECT_NE(text.out.find("same"), std::string::npos) << text.out;  // an image is the same as itself
}

TEST_F(Cli, BadInputGivesOneClearLineAndTouchesNothing) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto run_dir = *dir_ / "run";
  const auto model_before = read_file(run_dir / "model.pt");
  const auto checkpoint_before = read_file(run_dir / "checkpoint.pt");

  auto again = run("train --json --subset 500 --epochs 1 --quiet --out " + run_dir.string());
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.out.find("already holds a run"), std::string::npos) << again.out;

  auto flag = run("train --json --loss hinge --out " + (*dir_ / "x").string());
  EXPECT_NE(flag.code, 0);
  EXPECT_NE(flag.out.find("unknown loss 'hinge'"), std::string::npos) << flag.out;

  auto data = run("train --json --data idx:/no/such/dir --out " + (*dir_ / "y").string());
  EXPECT_NE(data.code, 0);
  EXPECT_NE(data.out.find("/no/such/dir: no such folder"), std::string::npos) << data.out;

  fs::copy_file(run_dir / "model.pt", *dir_ / "broken.pt");
  fs::resize_file(*dir_ / "broken.pt", 1000);
  auto broken = run("eval --model " + (*dir_ / "broken.pt").string());
  EXPECT_NE(broken.code, 0);
  EXPECT_NE(broken.out.find("broken.pt: corrupt"), std::string::npos) << broken.out;

  auto missing = run("compare --model " + run_dir.string() + " /no/a.png /no/b.png");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find("/no/a.png: no such file"), std::string::npos) << missing.out;

  auto unknown = run("train --json --no-such-flag 1");
  EXPECT_NE(unknown.code, 0);

  EXPECT_EQ(read_file(run_dir / "model.pt"), model_before);
  EXPECT_EQ(read_file(run_dir / "checkpoint.pt"), checkpoint_before);
}

TEST_F(Cli, ConfigFileSetsTheFlags) {
  const auto config = *dir_ / "train.toml";
  std::ofstream(config) << "[train]\nsubset = 300\nepochs = 1\nconv-channels = [8]\nhidden = 0\nembedding-dim = 8\n"
                           "p = 5\nk = 4\nquiet = true\nloss = \"triplet\"\nmargin = 0.2\n";
  auto r = run("train --json --config " + config.string() + " --out " + (*dir_ / "from_config").string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto saved = nlohmann::json::parse(read_file(*dir_ / "from_config" / "config.json"));
  EXPECT_EQ(saved["loss"], "triplet");
  EXPECT_DOUBLE_EQ(saved["margin"].get<double>(), 0.2);
  EXPECT_EQ(saved["network"]["conv_channels"], nlohmann::json::array({8}));
  EXPECT_EQ(saved["network"]["embedding_dim"], 8);

  std::ofstream(config) << "epochs = 1\n";  // outside [train]: refused, not silently ignored
  auto stray = run("train --json --config " + config.string() + " --out " + (*dir_ / "stray").string());
  EXPECT_NE(stray.code, 0);
  EXPECT_FALSE(fs::exists(*dir_ / "stray"));
}

TEST_F(Cli, KilledRunResumesFromItsLastCheckpoint) {
  const auto out = *dir_ / "killed";
  const auto pid_file = *dir_ / "killed.pid";
  const std::string args = "train --subset 3000 --epochs 6 --conv-channels 16,32 --hidden 64 --p 10 --k 8 --quiet --out " +
                           out.string();
  ASSERT_EQ(std::system((std::string(SIAMESE_CLI) + " " + args + " >/dev/null 2>&1 & echo $! > " + pid_file.string()).c_str()), 0);
  for (int i = 0; i < 600 && !fs::exists(out / "checkpoint.pt"); ++i) ::usleep(100000);
  ASSERT_TRUE(fs::exists(out / "checkpoint.pt"));
  ASSERT_EQ(std::system(("kill -9 $(cat " + pid_file.string() + ")").c_str()), 0);
  ::usleep(200000);
  EXPECT_FALSE(fs::exists(out / "metrics.json"));  // killed before the end

  auto r = run("train --json --resume " + out.string() + " --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("resuming"), std::string::npos) << r.out;
  auto history = read_file(out / "history.csv");
  EXPECT_EQ(std::count(history.begin(), history.end(), '\n'), 7);  // header + 6 epochs, none twice
  EXPECT_GT(last_json_line(r.out)["recall_at_1"].get<double>(), 0.6);
}

TEST_F(Cli, TrainsOnAnImageFolderAndNamesABadImage) {
  const auto root = *dir_ / "folder";
  auto source = open_data("fashion-mnist");
  auto dump = [&](const ImageDataset& d, const std::string& split, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      const auto cls = root / split / ("class" + std::to_string(d.labels()[i]));
      fs::create_directories(cls);
      auto img = d.images()[i][0].contiguous();
      cv::imwrite((cls / (std::to_string(i) + ".png")).string(), cv::Mat(28, 28, CV_8UC1, img.data_ptr<uint8_t>()));
    }
  };
  dump(source.train, "train", 600);
  dump(source.test, "test", 200);
  // No --validation-size: 5000 would not fit in 600 images; a fifth of them validates.
  auto r = run("train --json --data folder:" + root.string() + " --epochs 1 --conv-channels 8 --hidden 0 "
               "--p 5 --k 4 --quiet --out " + (*dir_ / "folder_run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(last_json_line(r.out)["test_images"].get<int64_t>(), 200);
  EXPECT_EQ(nlohmann::json::parse(read_file(*dir_ / "folder_run" / "config.json"))["validation_size"], 120);
  // A model trained on Fashion-MNIST (validation 5000) evaluated on this small folder.
  ASSERT_EQ(train_code_, 0) << *train_out_;
  auto other = run("eval --json --model " + (*dir_ / "run").string() + " --data folder:" + root.string());
  ASSERT_EQ(other.code, 0) << other.out;
  EXPECT_EQ(last_json_line(other.out)["test_images"].get<int64_t>(), 200);

  cv::imwrite((root / "test" / "class0" / "big.png").string(), cv::Mat(32, 32, CV_8UC1, cv::Scalar(0)));
  auto bad = run("eval --model " + (*dir_ / "folder_run").string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("big.png: image is"), std::string::npos) << bad.out;
}

TEST_F(Cli, AugmentPreviewWritesAGridAndRefusesABadSpecification) {
  const auto png = *dir_ / "grid.png";
  auto r = run("augment-preview --augment rotate=15,flip=0.5,noise=0.05 --images 4 --versions 3 --zoom 2 --out " +
               png.string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto grid = cv::imread(png.string(), cv::IMREAD_UNCHANGED);
  EXPECT_EQ(grid.rows, 2 + 4 * (56 + 2));  // 4 classes' images, 28 px × 2, 2-px gaps
  EXPECT_EQ(grid.cols, 2 + 4 * (56 + 2));  // the original and 3 versions
  const auto before = read_file(png);
  auto bad = run("augment-preview --augment spin=3 --out " + png.string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("unknown transform 'spin'"), std::string::npos) << bad.out;
  EXPECT_EQ(read_file(png), before);
}

TEST_F(Cli, StrategyFlagsReachTheRunAndItsLog) {
  const auto out = *dir_ / "strategies";
  auto r = run("train --json --subset 1500 --epochs 2 --conv-channels 8,16 --hidden 0 --p 10 --k 4 --views 2 "
               "--augment rotate=10,noise=0.05 --instance-weight 1 --loss ntxent --imbalance 3:0.1 "
               "--schedule plateau --patience 1 --early-stop 3 --select-by recall_at_1 --offline-mining-every 1 "
               "--out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("offline mining: the 10 nearest other-class images"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sampled: 10 of 10 classes"), std::string::npos) << r.out;
  auto saved = nlohmann::json::parse(read_file(out / "config.json"));
  EXPECT_EQ(saved["augment"], "rotate=10,noise=0.05");
  EXPECT_EQ(saved["imbalance"], "3:0.1");
  EXPECT_EQ(saved["schedule"], "plateau");
  EXPECT_EQ(saved["select_by"], "recall_at_1");
  EXPECT_EQ(saved["loss"], "ntxent");
  EXPECT_EQ(saved["views"], 2);
  auto history = read_file(out / "history.csv");
  EXPECT_NE(history.find("min_class_share,max_class_share,positive_share"), std::string::npos);
  EXPECT_GT(last_json_line(r.out)["recall_at_1"].get<double>(), 0.4);
}

TEST_F(Cli, UnseenClassTrainingStartsFromTheAblationsBestConfigurationWhereNoFlagSaysOtherwise) {
  const TrainOptions defaults, best = image_recipe(TrainOptions{});
  ASSERT_NE(best.loss.miner, defaults.loss.miner);
  ASSERT_NE(best.optim.schedule, defaults.optim.schedule);
  // fmnist-seen (the fixture's run) keeps the defaults.
  auto seen = nlohmann::json::parse(read_file(*dir_ / "run" / "config.json"));
  EXPECT_EQ(seen["miner"], to_string(defaults.loss.miner));
  EXPECT_EQ(seen["augment"], "none");
  EXPECT_EQ(seen["schedule"], to_string(defaults.optim.schedule));

  auto train_unseen = [&](const std::string& name, const std::string& flags) {
    const auto out = *dir_ / name;
    auto r = run("train --json --protocol fmnist-unseen --subset 600 --validation-size 100 --epochs 1 --p 5 --conv-channels 8 "
                 "--hidden 0 --quiet " + flags + " --out " + out.string());
    EXPECT_EQ(r.code, 0) << r.out;
    return nlohmann::json::parse(read_file(out / "config.json"));
  };
  auto unseen = train_unseen("unseen", "--k 4");  // a flag given wins over the recipe
  EXPECT_EQ(unseen["miner"], to_string(best.loss.miner));
  EXPECT_EQ(unseen["augment"], to_string(best.data.augment));
  EXPECT_EQ(unseen["schedule"], to_string(best.optim.schedule));
  EXPECT_EQ(unseen["views"], best.sampler.views);
  EXPECT_DOUBLE_EQ(unseen["instance_weight"].get<double>(), best.loss.instance_weight);
  EXPECT_EQ(unseen["k"], 4);

  // Without augmentation the views and the instance term stay off; ntxent keeps every pair.
  auto plain = train_unseen("unseen_plain", "--augment none --loss ntxent");
  EXPECT_EQ(plain["augment"], "none");
  EXPECT_EQ(plain["miner"], "all");
  EXPECT_EQ(plain["views"], 1);
  EXPECT_EQ(plain["k"], defaults.sampler.k);
  EXPECT_DOUBLE_EQ(plain["instance_weight"].get<double>(), 0);
  EXPECT_EQ(plain["schedule"], to_string(best.optim.schedule));
}

namespace {

/// Writes test images first..first+count-1 of Fashion-MNIST as root/class<label>/<i>.png.
void dump_test_images(const fs::path& root, int64_t first, int64_t count) {
  auto test = open_data("fashion-mnist").test;
  for (int64_t i = first; i < first + count; ++i) {
    const auto cls = root / ("class" + std::to_string(test.labels()[i]));
    fs::create_directories(cls);
    auto img = test.images()[i][0].contiguous();
    cv::imwrite((cls / (std::to_string(i) + ".png")).string(), cv::Mat(28, 28, CV_8UC1, img.data_ptr<uint8_t>()));
  }
}

}  // namespace

TEST_F(Cli, IndexSearchEqualsBruteForceAndFollowsAddAndRemove) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto model = (*dir_ / "run").string();
  const auto gallery = *dir_ / "gallery", more = *dir_ / "more", queries = *dir_ / "queries";
  dump_test_images(gallery, 0, 60);
  dump_test_images(more, 60, 20);
  dump_test_images(queries, 100, 4);
  const auto idx = (*dir_ / "gallery.db").string();
  auto build = run("index build --model " + model + " --data " + gallery.string() + " --out " + idx);
  ASSERT_EQ(build.code, 0) << build.out;
  auto again = run("index build --model " + model + " --data " + gallery.string() + " --out " + idx);
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.out.find("exists"), std::string::npos) << again.out;
  ASSERT_EQ(run("index add --index " + idx + " --model " + model + " --data " + more.string()).code, 0);

  // Brute force with the library: the 80 gallery images, in the order the index numbered them.
  auto m = load_model(model);
  std::vector<std::string> files;
  for (const auto& dir : {gallery, more}) {
    std::vector<std::string> part;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
      if (e.is_regular_file()) part.push_back(e.path().string());
    }
    std::sort(part.begin(), part.end());
    files.insert(files.end(), part.begin(), part.end());
  }
  ASSERT_EQ(files.size(), 80u);
  auto embed_files = [&](const std::vector<std::string>& paths) {
    std::vector<torch::Tensor> images;
    for (const auto& p : paths) images.push_back(read_image(p, 1, 28, 28));
    torch::NoGradGuard no_grad;
    m.network->eval();
    return m.network->embed(torch::cat(images));
  };
  auto g = embed_files(files);
  std::vector<std::string> query_files;
  for (const auto& e : fs::recursive_directory_iterator(queries)) {
    if (e.is_regular_file()) query_files.push_back(e.path().string());
  }
  std::sort(query_files.begin(), query_files.end());
  auto d = torch::cdist(embed_files(query_files), g);  // Euclidean: the model's distance

  const auto html = (*dir_ / "search.html").string();
  auto search = run("search --index " + idx + " --model " + model + " --query " + queries.string() + " -k 5 --json --html " + html);
  ASSERT_EQ(search.code, 0) << search.out;
  auto lines = json_lines(search.out);
  ASSERT_EQ(lines.size(), 4u) << search.out;
  for (size_t q = 0; q < 4; ++q) {
    auto [dist, order] = d[static_cast<int64_t>(q)].sort();
    EXPECT_EQ(lines[q]["query"], query_files[q]);
    for (int64_t j = 0; j < 5; ++j) {
      const auto& hit = lines[q]["hits"][static_cast<size_t>(j)];
      EXPECT_EQ(hit["id"].get<int64_t>(), order[j].item<int64_t>()) << q << " " << j;
      EXPECT_EQ(hit["key"], files[static_cast<size_t>(order[j].item<int64_t>())]);
      EXPECT_NEAR(hit["distance"].get<double>(), dist[j].item<double>(), 1e-4);
    }
  }
  auto page = read_file(html);
  size_t images = 0;
  for (size_t at = page.find("<img src=\"data:image/png;base64,"); at != std::string::npos;
       at = page.find("<img src=\"data:image/png;base64,", at + 1)) {
    ++images;
  }
  EXPECT_EQ(images, 4u * 6u);  // each query and its 5 neighbours

  // Remove the nearest item of query 0: it never comes back, the next one moves up.
  const auto first = lines[0]["hits"][0]["id"].get<int64_t>(), second = lines[0]["hits"][1]["id"].get<int64_t>();
  auto removed = run("index remove --index " + idx + " --ids " + std::to_string(first) + ",99999");
  ASSERT_EQ(removed.code, 0) << removed.out;
  EXPECT_NE(removed.out.find("removed 1 of 2 ids (index now 79)"), std::string::npos) << removed.out;
  auto after = json_lines(run("search --index " + idx + " --model " + model + " --query " + query_files[0] + " -k 3 --json").out);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0]["hits"][0]["id"].get<int64_t>(), second);
}

TEST_F(Cli, IndexRefusesAnotherModelAndDamagedFiles) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto model = (*dir_ / "run").string();
  const auto gallery = *dir_ / "gallery2";
  dump_test_images(gallery, 200, 20);
  const auto idx = (*dir_ / "g2.db").string();
  ASSERT_EQ(run("index build --model " + model + " --data " + gallery.string() + " --out " + idx).code, 0);
  const auto before = read_file(idx);

  auto other = load_model(model);
  {
    torch::NoGradGuard no_grad;
    other.network->parameters()[0].add_(0.01);
  }
  save_model((*dir_ / "other.pt").string(), other.network, other.threshold, other.info);
  auto wrong = run("search --index " + idx + " --model " + (*dir_ / "other.pt").string() + " --query " + gallery.string());
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.out.find("built with another model"), std::string::npos) << wrong.out;
  auto wrong_add = run("index add --index " + idx + " --model " + (*dir_ / "other.pt").string() + " --data " + gallery.string());
  EXPECT_NE(wrong_add.code, 0);

  const auto cut = (*dir_ / "cut.db").string();
  fs::copy_file(idx, cut);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  auto truncated = run("search --index " + cut + " --model " + model + " --query " + gallery.string());
  EXPECT_NE(truncated.code, 0);
  EXPECT_NE(truncated.out.find(cut), std::string::npos) << truncated.out;

  auto missing = run("search --index " + idx + " --model " + model + " --query /no/such.png");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find("/no/such.png"), std::string::npos) << missing.out;

  std::string all_ids;
  for (int i = 0; i < 20; ++i) all_ids += (i ? "," : "") + std::to_string(i);
  const auto emptied = (*dir_ / "empty.db").string();
  fs::copy_file(idx, emptied);
  ASSERT_EQ(run("index remove --index " + emptied + " --ids " + all_ids).code, 0);
  auto empty = run("search --index " + emptied + " --model " + model + " --query " + gallery.string());
  EXPECT_NE(empty.code, 0);
  EXPECT_NE(empty.out.find("empty"), std::string::npos) << empty.out;

  EXPECT_EQ(read_file(idx), before);  // failed commands changed nothing
}

TEST_F(Cli, OneshotMatchesTheLibraryAndSaysNoneAboveTheThreshold) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto model = (*dir_ / "run").string();
  const auto support = *dir_ / "support", queries = *dir_ / "oneshot_queries";
  dump_test_images(support, 300, 30);
  dump_test_images(queries, 400, 10);
  auto r = run("oneshot --model " + model + " --support " + support.string() + " --query " + queries.string() +
               " --k-shot 1 --threshold -1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 10u) << r.out;

  // The same with the library: the first image (by name) of each class folder is its support.
  auto m = load_model(model);
  std::vector<std::string> class_names;
  std::vector<torch::Tensor> shots;
  std::vector<int64_t> labels;
  std::vector<fs::path> class_dirs;
  for (const auto& e : fs::directory_iterator(support)) class_dirs.push_back(e.path());
  std::sort(class_dirs.begin(), class_dirs.end());
  for (const auto& c : class_dirs) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(c)) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    labels.push_back(static_cast<int64_t>(class_names.size()));
    class_names.push_back(c.filename().string());
    shots.push_back(read_image(files[0], 1, 28, 28));
  }
  std::vector<std::string> query_files;
  for (const auto& e : fs::recursive_directory_iterator(queries)) {
    if (e.is_regular_file()) query_files.push_back(e.path().string());
  }
  std::sort(query_files.begin(), query_files.end());
  std::vector<torch::Tensor> q;
  for (const auto& f : query_files) q.push_back(read_image(f, 1, 28, 28));
  torch::NoGradGuard no_grad;
  m.network->eval();
  auto matches = classify_by_support(m.network->embed(torch::cat(q)), m.network->embed(torch::cat(shots)), labels,
                                     Distance::Euclidean, SupportRule::ClassMean, -1);
  double smallest = 1e9;
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(lines[i]["query"], query_files[i]);
    EXPECT_EQ(lines[i]["class"], class_names[static_cast<size_t>(matches[i].label)]);
    EXPECT_NEAR(lines[i]["distance"].get<double>(), matches[i].distance, 1e-4);
    smallest = std::min(smallest, matches[i].distance);
  }
  // A threshold below every best distance: every answer is "none".
  auto none = run("oneshot --model " + model + " --support " + support.string() + " --query " + queries.string() +
                  " --k-shot 1 --json --threshold " + std::to_string(smallest * 0.5));
  for (const auto& line : json_lines(none.out)) EXPECT_EQ(line["class"], "none");

  const auto lonely = *dir_ / "lonely";
  dump_test_images(lonely, 0, 1);
  auto one = run("oneshot --model " + model + " --support " + lonely.string() + " --query " + queries.string());
  EXPECT_NE(one.code, 0);
  EXPECT_NE(one.out.find("at least 2 classes"), std::string::npos) << one.out;
}

TEST_F(Cli, VerifyPairsFileCrossValidatesLikeTheLibraryAndWritesTheRoc) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto model = (*dir_ / "run").string();
  // People are classes: root/classC/classC_000N.png, N = 1.. for the test images of class C.
  const auto root = *dir_ / "lfw";
  auto test = open_data("fashion-mnist").test;
  std::vector<int64_t> count(10, 0);
  for (int64_t i = 0; i < 300; ++i) {
    const auto c = test.labels()[i];
    const std::string name = "class" + std::to_string(c);
    char file[48];
    std::snprintf(file, sizeof file, "%s_%04lld.png", name.c_str(), static_cast<long long>(++count[c]));
    fs::create_directories(root / name);
    auto img = test.images()[i][0].contiguous();
    cv::imwrite((root / name / file).string(), cv::Mat(28, 28, CV_8UC1, img.data_ptr<uint8_t>()));
  }
  // 3 folds of 8 same and 8 different pairs.
  std::string text = "3\t8\n";
  std::vector<int64_t> fold;
  std::vector<uint8_t> same;
  std::vector<std::pair<std::string, std::string>> files;
  auto path = [&](int64_t c, int64_t n) {
    char file[48];
    std::snprintf(file, sizeof file, "class%lld/class%lld_%04lld.png", static_cast<long long>(c), static_cast<long long>(c),
                  static_cast<long long>(n));
    return (root / file).string();
  };
  for (int64_t f = 0; f < 3; ++f) {
    for (int64_t i = 0; i < 8; ++i) {
      const int64_t c = (f * 8 + i) % 10, n = 1 + i % 3;
      text += "class" + std::to_string(c) + "\t" + std::to_string(n) + "\t" + std::to_string(n + 10) + "\n";
      files.emplace_back(path(c, n), path(c, n + 10));
      same.push_back(1);
      fold.push_back(f);
    }
    for (int64_t i = 0; i < 8; ++i) {
      const int64_t c = (f + i) % 10, o = (c + 1 + i % 9) % 10;
      text += "class" + std::to_string(c) + "\t" + std::to_string(i + 1) + "\tclass" + std::to_string(o) + "\t" +
              std::to_string(i + 2) + "\n";
      files.emplace_back(path(c, i + 1), path(o, i + 2));
      same.push_back(0);
      fold.push_back(f);
    }
  }
  const auto pairs = (*dir_ / "pairs.txt").string();
  std::ofstream(pairs) << text;
  const auto roc = (*dir_ / "roc").string();
  auto r = run("verify --model " + model + " --pairs " + pairs + " --root " + root.string() + " --roc " + roc + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = last_json_line(r.out);

  auto m = load_model(model);
  torch::NoGradGuard no_grad;
  std::vector<double> d;
  for (const auto& [a, b] : files) d.push_back(m.network->forward(read_image(a, 1, 28, 28), read_image(b, 1, 28, 28)).item<double>());
  auto cv = cross_validate(d, same, fold);
  EXPECT_EQ(j["pairs"].get<int64_t>(), 48);
  EXPECT_EQ(j["folds"].get<int64_t>(), 3);
  EXPECT_NEAR(j["accuracy_mean"].get<double>(), cv.accuracy_mean, 1e-9);
  EXPECT_NEAR(j["roc_auc"].get<double>(), roc_auc(d, same), 1e-4);
  EXPECT_GT(j["roc_auc"].get<double>(), 0.6);
  auto csv = read_file(roc + ".csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "threshold,false_accept_rate,true_accept_rate");
  EXPECT_EQ(static_cast<size_t>(std::count(csv.begin(), csv.end(), '\n')), roc_curve(d, same).threshold.size() + 1);
  EXPECT_NE(read_file(roc + ".svg").find("<polyline"), std::string::npos);

  std::ofstream(*dir_ / "bad_pairs.txt") << "1\t1\nclass0\t1\t999\nclass0\t1\tclass1\t1\n";
  auto bad = run("verify --model " + model + " --pairs " + (*dir_ / "bad_pairs.txt").string() + " --root " + root.string());
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("class0_0999.png: no such image"), std::string::npos) << bad.out;
}
