// The `siamese` tool on sequence data, end to end: train, eval, embed, resume, bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>
#include <random>
#include <sstream>

#include "siamese/eval/metrics.h"
#include "siamese/model/model_file.h"
#include "siamese/data/sequence.h"
#include "sequence_test_util.h"
#include "test_util.h"

using namespace siamese;
using namespace siamese::testing;
namespace fs = std::filesystem;

namespace {

/// The epoch, loss, LR and validation columns of a history.csv (not its timings).
std::string losses_and_metrics(const std::string& csv) {
  std::string out;
  std::istringstream lines(csv);
  for (std::string line; std::getline(lines, line);) {
    size_t at = 0;
    for (int field = 0; field < 6 && at != std::string::npos; ++field) at = line.find(',', at + 1);
    out += line.substr(0, at) + "\n";
  }
  return out;
}

const char* kTrainFlags = "--token-dim 16 --rnn-hidden 32 --embedding-dim 16 --normalize true "
                          "--sampler pk --p 8 --k 4 --validation-size 36 --quiet";

/// One LSTM trained once on a small text set, shared by the tests of this file.
class SequenceCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp_dir("seqcli"));
    write_text_set(*dir_ / "text", 60, 12, 6);
    auto r = run("train --json --data text:" + (*dir_ / "text").string() + " --encoder lstm " + kTrainFlags + " --epochs 15 --out " +
                 (*dir_ / "run").string());
    train_out_ = new std::string(r.out);
    train_code_ = r.code;
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete train_out_;
  }
  static std::string data() { return "text:" + (*dir_ / "text").string(); }
  static fs::path* dir_;
  static std::string* train_out_;
  static int train_code_;
};
fs::path* SequenceCli::dir_ = nullptr;
std::string* SequenceCli::train_out_ = nullptr;
int SequenceCli::train_code_ = 0;

}  // namespace

TEST_F(SequenceCli, TrainsAnLstmOnTextThatRecognisesUnseenClasses) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  auto m = last_json_line(*train_out_);
  EXPECT_EQ(m["protocol"], "sequences");
  EXPECT_EQ(m["test_images"], 72);
  EXPECT_GT(m["recall_at_1"].get<double>(), 0.8) << *train_out_;  // chance: 5 of 71 items, 0.07
  EXPECT_GT(m["oneshot_5way_1shot"].get<double>(), 0.6);          // chance: 0.2
  EXPECT_NE(train_out_->find("sequences: 324 train, 36 validation, 72 test"), std::string::npos) << *train_out_;
  auto model = load_model((*dir_ / "run").string());
  EXPECT_EQ(model.network->options.tokens(), "char");
  EXPECT_EQ(model.network->options.vocabulary().size(), 17u);  // <unk> + a..p
}

TEST_F(SequenceCli, EvalReproducesTrainAndEmbedMatchesTheLibrary) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  auto r = run("eval --model " + (*dir_ / "run").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto e = last_json_line(r.out), t = last_json_line(*train_out_);
  for (auto key : {"recall_at_1", "map_at_r", "roc_auc", "verification_accuracy", "oneshot_5way_1shot", "threshold"}) {
    EXPECT_NEAR(e[key].get<double>(), t[key].get<double>(), 1e-6) << key;
  }
  const auto out = *dir_ / "emb.npy";
  r = run("embed --model " + (*dir_ / "run").string() + " --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto bytes = read_file(out);
  EXPECT_NE(bytes.find("'shape': (72, 16)"), std::string::npos);
  const size_t header = 10 + static_cast<uint8_t>(bytes[8]) + 256 * static_cast<uint8_t>(bytes[9]);
  ASSERT_EQ(bytes.size(), header + 72 * 16 * 4);
  auto from_cli = torch::from_blob(bytes.data() + header, {72, 16}, torch::kFloat32).clone();
  auto model = load_model((*dir_ / "run").string());
  auto s = open_sequences(data(), 36, 0, model.network->options.tokens(), model.network->options.vocabulary());
  auto expected = embed_dataset(model.network, s.test);
  EXPECT_TRUE(torch::allclose(from_cli, expected, 1e-6, 1e-6));
}

TEST_F(SequenceCli, VerifyComparesTwoTextsLikeTheLibrary) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  auto model = load_model((*dir_ / "run").string());
  const auto& net = model.network->options;
  std::ifstream in(*dir_ / "text" / "test.tsv");
  std::string line1, line2, line3;
  for (int i = 0; i < 6; ++i) std::getline(in, line3);  // the first item of the second test class
  in.seekg(0);
  std::getline(in, line1);
  std::getline(in, line2);
  auto text = [](const std::string& line) { return line.substr(0, line.find('\t')); };
  TextItems items;
  items.texts = {text(line1), text(line2), text(line3)};
  items.labels = {"a", "b", "c"};
  auto e = embed_dataset(model.network, encode_text(items, Vocabulary(net.vocabulary()), net.tokens(), 0));
  for (auto [i, j] : {std::pair{0, 1}, std::pair{0, 2}}) {
    auto r = run("verify --model " + (*dir_ / "run").string() + " " + items.texts[i] + " " + items.texts[j] + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    auto j_out = last_json_line(r.out);
    const double expected = paired_distance(e[i].unsqueeze(0), e[j].unsqueeze(0), net.distance()).item<double>();
    EXPECT_NEAR(j_out["distance"].get<double>(), expected, 1e-5);
    EXPECT_EQ(j_out["same"].get<bool>(), expected <= model.threshold);
    EXPECT_EQ(r.out.find("warning"), std::string::npos) << r.out;
  }
  // Training saw the letters a-p only: two texts of other letters, as long, both read as 5 <unk>.
  auto r = run("verify --model " + (*dir_ / "run").string() + " xyzzy wvuts --json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: 'xyzzy' has no token the model knows"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("warning: 'wvuts' has no token"), std::string::npos) << r.out;
  EXPECT_NEAR(last_json_line(r.out)["distance"].get<double>(), 0.0, 1e-4);
}

// index, search and oneshot on a text model: the CLI's neighbours, distances and classes against
// the library's embeddings of the same texts.
TEST_F(SequenceCli, SearchAndOneshotOnTextsAgreeWithTheLibrary) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto model_dir = (*dir_ / "run").string(), idx = (*dir_ / "text.idx").string();
  auto built = run("index build --model " + model_dir + " --data " + data() + " --split test --out " + idx);
  ASSERT_EQ(built.code, 0) << built.out;
  auto model = load_model(model_dir);
  const auto& net = model.network->options;
  auto s = open_sequences(data(), 36, 0, net.tokens(), net.vocabulary());
  auto gallery = embed_dataset(model.network, s.test);
  const std::string query = s.test.name(7);  // a test text, searched for as the text itself
  EXPECT_EQ(query.find('\t'), std::string::npos);
  auto r = run("search --index " + idx + " --model " + model_dir + " --query " + query + " -k 3 --json --html " +
               (*dir_ / "search.html").string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto hits = last_json_line(r.out)["hits"];
  ASSERT_EQ(hits.size(), 3u);
  auto d = paired_distance(gallery[7].unsqueeze(0).expand_as(gallery), gallery, net.distance());
  auto order = std::get<1>(d.sort());
  for (int64_t k = 0; k < 3; ++k) {
    const auto i = order[k].item<int64_t>();
    EXPECT_EQ(hits[k]["key"], s.test.name(i)) << k;
    EXPECT_EQ(hits[k]["label"], s.test.labels()[i]) << k;
    EXPECT_NEAR(hits[k]["distance"].get<double>(), d[i].item<double>(), 1e-4) << k;
  }
  EXPECT_EQ(hits[0]["key"], query);
  EXPECT_NE(read_file(*dir_ / "search.html").find(query), std::string::npos);

  // oneshot: the first text of each test class as support (a .tsv), the others as queries (plain lines).
  std::ifstream test(*dir_ / "text" / "test.tsv");
  std::ofstream support(*dir_ / "support.tsv"), queries(*dir_ / "queries.txt");
  std::vector<int64_t> support_rows, query_rows;
  std::string previous;
  int64_t row = 0;
  for (std::string line; std::getline(test, line); ++row) {
    const auto label = line.substr(line.find('\t') + 1);
    (label != previous ? support : queries) << (label != previous ? line : line.substr(0, line.find('\t'))) << '\n';
    (label != previous ? support_rows : query_rows).push_back(row);
    previous = label;
  }
  support.close(), queries.close();
  r = run("oneshot --model " + model_dir + " --support " + (*dir_ / "support.tsv").string() + " --query " +
          (*dir_ / "queries.txt").string() + " --threshold -1 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  auto answers = json_lines(r.out);
  ASSERT_EQ(answers.size(), query_rows.size());
  std::vector<int64_t> labels;  // s.test keeps the rows of test.tsv in file order
  for (auto i : support_rows) labels.push_back(s.test.labels()[i]);
  auto expected = classify_by_support(gallery.index_select(0, torch::tensor(query_rows)),
                                      gallery.index_select(0, torch::tensor(support_rows)), labels, net.distance(),
                                      SupportRule::ClassMean, -1);
  int64_t right = 0;
  for (size_t q = 0; q < answers.size(); ++q) {
    EXPECT_EQ(answers[q]["class"], s.test.class_names()[expected[q].label]) << q;
    EXPECT_NEAR(answers[q]["distance"].get<double>(), expected[q].distance, 1e-4) << q;
    right += answers[q]["class"] == s.test.class_names()[s.test.labels()[query_rows[q]]];
  }
  EXPECT_GT(right, static_cast<int64_t>(answers.size()) / 2);  // 12-way 1-shot; chance 1/12

  auto numeric = run("search --index " + idx + " --model " + model_dir + " --query " + dir_->string());
  EXPECT_NE(numeric.code, 0);
  EXPECT_NE(numeric.out.find("a folder; this text model reads"), std::string::npos) << numeric.out;
}

TEST_F(SequenceCli, ResumedRunEqualsAnUninterruptedOne) {
  const auto whole = *dir_ / "whole", killed = *dir_ / "killed", pid = *dir_ / "killed.pid";
  const std::string args = "train --json --data " + data() + " " + kTrainFlags + " --encoder gru --distance malstm " +
                           "--loss contrastive --margin 0.5 --epochs 12 --out ";
  auto r = run(args + whole.string());
  ASSERT_EQ(r.code, 0) << r.out;
  ASSERT_EQ(std::system((std::string(SIAMESE_CLI) + " " + args + killed.string() + " >/dev/null 2>&1 & echo $! > " +
                         pid.string()).c_str()), 0);
  for (int i = 0; i < 3000 && !fs::exists(killed / "checkpoint.pt"); ++i) ::usleep(20000);
  ASSERT_TRUE(fs::exists(killed / "checkpoint.pt"));
  ASSERT_EQ(std::system(("kill -9 $(cat " + pid.string() + ")").c_str()), 0);
  ::usleep(200000);
  ASSERT_FALSE(fs::exists(killed / "metrics.json")) << "the run ended before it was killed";
  auto resumed = run("train --json --resume " + killed.string() + " --quiet");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  auto a = last_json_line(r.out), b = last_json_line(resumed.out);
  for (auto key : {"recall_at_1", "roc_auc", "verification_accuracy", "threshold"}) {
    EXPECT_DOUBLE_EQ(a[key].get<double>(), b[key].get<double>()) << key;
  }
  EXPECT_EQ(losses_and_metrics(read_file(whole / "history.csv")), losses_and_metrics(read_file(killed / "history.csv")));
}

// A bag of characters (no recurrent layer) trains from the CLI; the recurrent-layer flags given are named as ignored.
TEST_F(SequenceCli, NoRecurrentLayersWarnsOfTheFlagsItIgnores) {
  auto r = run("train --json --data " + data() + " --encoder lstm " + kTrainFlags + " --layers 0 --pooling mean " +
               "--bidirectional true --epochs 1 --out " + (*dir_ / "bag").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("warning: --rnn-hidden is ignored: --layers 0 has no recurrent layer"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("warning: --bidirectional is ignored"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("--dropout is ignored"), std::string::npos) << r.out;  // not given
  auto model = load_model((*dir_ / "bag").string());
  EXPECT_EQ(model.network->options.rnn().layers(), 0);
}

TEST_F(SequenceCli, BadSequenceInputGivesOneClearLineAndTouchesNothing) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto run_dir = *dir_ / "run";
  const auto model_before = read_file(run_dir / "model.pt");
  const auto bad = *dir_ / "bad";
  fs::create_directories(bad);
  std::ofstream(bad / "train.fasta") << ">a Bacillus\nACGT\n>b Bacillus\n>c Vibrio\nGGCC\n";
  std::ofstream(bad / "test.fasta") << ">d Vibrio\nACGT\n";
  auto fasta = run("train --json --data fasta:" + bad.string() + " --encoder lstm --out " + run_dir.string());
  EXPECT_NE(fasta.code, 0);
  EXPECT_NE(fasta.out.find("train.fasta:3: record 'b' has no sequence"), std::string::npos) << fasta.out;
  std::ofstream(bad / "train.csv") << "up,1,2,3\ndown,3,,1\n";
  std::ofstream(bad / "test.csv") << "up,1,2\n";
  auto csv = run("train --json --data csv:" + bad.string() + " --encoder gru --out " + (*dir_ / "csv_run").string());
  EXPECT_NE(csv.code, 0);
  EXPECT_NE(csv.out.find("train.csv:2: missing value in column 3"), std::string::npos) << csv.out;
  auto cnn = run("train --json --data " + data() + " --out " + (*dir_ / "cnn_run").string());
  EXPECT_NE(cnn.code, 0);
  EXPECT_NE(cnn.out.find("train it with --encoder lstm or gru"), std::string::npos) << cnn.out;
  auto images = run("train --json --encoder lstm --out " + (*dir_ / "img_run").string());
  EXPECT_NE(images.code, 0);
  EXPECT_NE(images.out.find("holds images"), std::string::npos) << images.out;
  EXPECT_EQ(read_file(run_dir / "model.pt"), model_before);
  for (auto name : {"csv_run", "cnn_run", "img_run"}) EXPECT_FALSE(fs::exists(*dir_ / name)) << name;
}

TEST_F(SequenceCli, InputsOfTheWrongKindSayWhatTheModelReads) {
  ASSERT_EQ(train_code_, 0) << *train_out_;
  const auto model = (*dir_ / "run").string();
  const auto png = (*dir_ / "picture.png").string();
  cv::imwrite(png, cv::Mat(8, 8, CV_8UC1, cv::Scalar(9)));
  // Read as text lines, a PNG used to be "4 sequences".
  auto verify = run("verify --model " + model + " " + png + " abc");
  EXPECT_EQ(verify.code, 1);
  EXPECT_NE(verify.out.find(png + ": is an image, but this model reads sequences (texts"), std::string::npos) << verify.out;
  // Used to be "unknown protocol 'sequences'".
  auto eval = run("eval --model " + model + " --data fashion-mnist");
  EXPECT_EQ(eval.code, 1);
  EXPECT_NE(eval.out.find("fashion-mnist: holds images, but the model reads sequences"), std::string::npos) << eval.out;
  const auto empty = *dir_ / "empty";
  fs::create_directories(empty);
  std::ofstream(empty / "train.tsv").flush();
  std::ofstream(empty / "test.tsv") << "abc\tx\n";
  auto train = run("train --data text:" + empty.string() + " --encoder lstm --out " + (*dir_ / "empty_run").string());
  EXPECT_EQ(train.code, 1);
  EXPECT_NE(train.out.find((empty / "train.tsv").string() + ": holds no sequences"), std::string::npos) << train.out;
  EXPECT_FALSE(fs::exists(*dir_ / "empty_run"));
}

// A folder of frames per sequence, through the CLI: a dot moving left, right, up, down, diagonally
// or standing still. Telling left from right needs the frames' order, which the hybrid's LSTM sees.
TEST(HybridCli, LearnsTheDirectionOfMotionFromFoldersOfFrames) {
  const auto dir = temp_dir("frames_cli");
  const std::vector<std::pair<std::string, std::array<int, 2>>> moves = {
      {"left", {0, -1}}, {"right", {0, 1}}, {"up", {-1, 0}}, {"down", {1, 0}}, {"still", {0, 0}}, {"diag", {1, 1}}};
  std::mt19937 rng(1);
  std::uniform_int_distribution<int> start(4, 11);
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", 30}, {"test", 10}}) {
    for (const auto& [name, step] : moves) {
      for (int s = 0; s < n; ++s) {
        const int y = start(rng), x = start(rng);
        const auto seq = dir / "data" / split / name / ("s" + std::to_string(100 + s));
        fs::create_directories(seq);
        for (int f = 0; f < 4; ++f) {
          cv::Mat frame(16, 16, CV_8UC1, cv::Scalar(0));
          cv::rectangle(frame, cv::Rect(x + step[1] * f - 1, y + step[0] * f - 1, 3, 3), cv::Scalar(255), cv::FILLED);
          cv::imwrite((seq / ("f" + std::to_string(f) + ".png")).string(), frame);
        }
      }
    }
  }
  auto r = run("train --json --data folder:" + (dir / "data").string() + " --encoder hybrid --frames 4 --conv-channels 16 "
               "--embedding-dim 16 --rnn-hidden 32 --validation-size 40 --epochs 40 --p 6 --k 8 --lr 3e-3 --quiet --out " +
               (dir / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  auto m = last_json_line(r.out);
  EXPECT_EQ(m["test_images"], 60);                                 // 60 sequences, each one item
  EXPECT_GT(m["recall_at_1"].get<double>(), 0.4) << r.out;          // chance: 9 of 59, 0.15
  auto model = load_model((dir / "run").string());
  EXPECT_EQ(model.network->options.cnn().width(), 64);            // 4 frames of 16 side by side
  EXPECT_EQ(model.network->options.frames(), 4);
}
