// Sequence data (readers, vocabulary, padded batches) and the recurrent and hybrid encoders.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "siamese/core/error.h"
#include "siamese/model/model_file.h"
#include "siamese/model/network.h"
#include "siamese/data/sequence.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;

namespace {

void write(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

/// f() throws a siamese::Error of `code` whose message says `a` and `b`, about the file `path`
/// (its path(); "" where none is concerned, or where a line is named as "FILE:LINE: ...").
template <class F>
void expect_error(F&& f, ErrorCode code, const std::string& a, const std::string& b, const std::string& path = "") {
  try {
    f();
    FAIL() << "no error; expected one naming '" << a << "' and '" << b << "'";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.code(), code) << to_string(e.code()) << ": " << m;
    EXPECT_EQ(e.path(), path) << m;
    EXPECT_NE(m.find(a), std::string::npos) << m;
    EXPECT_NE(m.find(b), std::string::npos) << m;
  }
}

/// Random sequences of the given lengths: token ids in [1, vocab) (vocab > 0) or F numeric features.
std::vector<torch::Tensor> random_items(const std::vector<int64_t>& lengths, int64_t vocab, int64_t features) {
  std::vector<torch::Tensor> items;
  for (auto t : lengths) {
    items.push_back(vocab > 0 ? torch::randint(1, vocab, {t, 1}).to(torch::kFloat32) : torch::randn({t, features}));
  }
  return items;
}

}  // namespace

TEST(Tokens, CharWordAndOverlappingKmers) {
  EXPECT_EQ(tokenize("aé b", "char"), (std::vector<std::string>{"a", "é", " ", "b"}));
  EXPECT_EQ(tokenize("  in the  beginning ", "word"), (std::vector<std::string>{"in", "the", "beginning"}));
  EXPECT_EQ(tokenize("ACGTA", "kmer3"), (std::vector<std::string>{"ACG", "CGT", "GTA"}));
  EXPECT_EQ(tokenize("AC", "kmer3"), (std::vector<std::string>{"AC"}));
  expect_error([] { tokenize("x", "kmer9"); }, ErrorCode::InvalidArgument, "kmer9", "expected char");
}

TEST(Tokens, VocabularyByFrequencyUnknownsAndTruncationCounted) {
  auto v = Vocabulary::build({{"b", "a", "b"}, {"c", "b", "a"}});
  EXPECT_EQ(v.tokens(), (std::vector<std::string>{"<unk>", "b", "a", "c"}));  // 3, 2, 1 occurrences
  EXPECT_EQ(v.id("a"), 2);
  EXPECT_EQ(v.id("zzz"), 0);
  TextItems items;
  items.texts = {"b a x", "c c c c c"};
  items.labels = {"two", "one"};
  LoadSummary summary;
  auto d = encode_text(items, v, "word", 3, &summary);
  EXPECT_EQ(summary.items, 2);
  EXPECT_EQ(summary.unknown_tokens, 1);  // "x"
  EXPECT_EQ(summary.truncated, 1);       // 5 words cut to 3
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{1, 0}));  // classes by sorted name: one, two
  EXPECT_TRUE(torch::equal(d.steps()[0].view(-1), torch::tensor({1.0f, 2.0f, 0.0f})));
  EXPECT_EQ(d.steps()[1].size(0), 3);
}

TEST(SequenceFiles, TextLinesSkipBlanksAndNameBadLines) {
  auto dir = temp_dir("text");
  write(dir / "ok.tsv", "in the beginning\tGen 1:1\n\n   \t Gen 1:2\r\nin the start\tGen 1:1\n");
  auto items = read_text_lines((dir / "ok.tsv").string());
  EXPECT_EQ(items.texts, (std::vector<std::string>{"in the beginning", "in the start"}));
  EXPECT_EQ(items.labels, (std::vector<std::string>{"Gen 1:1", "Gen 1:1"}));
  EXPECT_EQ(items.summary.skipped_empty, 2);
  write(dir / "notab.tsv", "a\tx\nno tab here\n");
  expect_error([&] { read_text_lines((dir / "notab.tsv").string()); }, ErrorCode::Corruption, "notab.tsv:2", "no tab");
  write(dir / "nolabel.tsv", "text\t\n");
  expect_error([&] { read_text_lines((dir / "nolabel.tsv").string()); },
               ErrorCode::Corruption, "nolabel.tsv:1", "empty label");
  expect_error([&] { read_text_lines((dir / "missing.tsv").string()); },
               ErrorCode::NotFound, "missing.tsv", "no such file", (dir / "missing.tsv").string());
}

TEST(SequenceFiles, TextPairsBecomeClassesJoinedBySamePairs) {
  auto dir = temp_dir("pairs");
  write(dir / "ok.tsv", "in the beginning\tat first\t1\nat first\tat the start\t1\nlight\tat first\t0\n"
                        "\nlight\tday\t1\nnight\tday\t0\n");
  auto items = read_text_lines((dir / "ok.tsv").string());
  EXPECT_EQ(items.texts, (std::vector<std::string>{"in the beginning", "at first", "at the start", "light", "day", "night"}));
  EXPECT_EQ(items.labels, (std::vector<std::string>{"group1", "group1", "group1", "group2", "group2", "group3"}));
  EXPECT_EQ(items.summary.skipped_empty, 1);
  write(dir / "contradiction.tsv", "a\tb\t1\nb\tc\t1\na\tc\t0\n");
  expect_error([&] { read_text_lines((dir / "contradiction.tsv").string()); },
               ErrorCode::InvalidArgument, "contradiction.tsv:3", "different pair");
  write(dir / "mixed.tsv", "a\tb\t1\nsome text\tlabel\n");
  expect_error([&] { read_text_lines((dir / "mixed.tsv").string()); }, ErrorCode::Corruption, "mixed.tsv:2", "mixes");
}

TEST(SequenceFiles, FastaRecordsAndBadRecords) {
  auto dir = temp_dir("fasta");
  write(dir / "ok.fasta", ">r1 Bacillus subtilis\nacgt-\nAC.G\n>r2 Vibrio\nTTTT\n");
  auto items = read_fasta((dir / "ok.fasta").string());
  EXPECT_EQ(items.texts, (std::vector<std::string>{"ACGTACG", "TTTT"}));
  EXPECT_EQ(items.labels, (std::vector<std::string>{"Bacillus", "Vibrio"}));
  EXPECT_EQ(items.names, (std::vector<std::string>{"r1", "r2"}));
  auto encoded = encode_text(items, Vocabulary({"<unk>", "A"}), "char", 0);
  EXPECT_EQ(encoded.name(1), "r2");  // items are named by their IDs, and keep them in a subset
  EXPECT_EQ(encoded.subset({1}, "part").name(0), "r2");
  write(dir / "empty.fasta", ">r1 A\nACGT\n>r2 B\n>r3 C\nGG\n");
  expect_error([&] { read_fasta((dir / "empty.fasta").string()); },
               ErrorCode::Corruption, "empty.fasta:3", "record 'r2' has no sequence");
  write(dir / "headless.fasta", "ACGT\n>r1 A\nAC\n");
  expect_error([&] { read_fasta((dir / "headless.fasta").string()); },
               ErrorCode::Corruption, "headless.fasta:1", "before the first");
  write(dir / "nolabel.fasta", ">r1\nACGT\n");
  expect_error([&] { read_fasta((dir / "nolabel.fasta").string()); },
               ErrorCode::Corruption, "nolabel.fasta:1", "ID LABEL");
  auto queries = read_fasta((dir / "nolabel.fasta").string(), /*require_labels=*/false);  // e.g. search queries
  EXPECT_EQ(queries.labels, (std::vector<std::string>{""}));
  EXPECT_EQ(queries.names, (std::vector<std::string>{"r1"}));
}

TEST(SequenceFiles, HersheyStrokesAsStepsWithPenUps) {
  auto dir = temp_dir("strokes");
  std::filesystem::create_directories(dir / "ok");
  // '-' (45): extent pair, then (-9, 0) -> (9, 0). '=' (61): two strokes. Space (32): no points.
  write(dir / "ok" / "a.jhf", "   45  3E_IR[R\n   61  6E_IO[O RIU[U\n   32  1JZ\n");
  write(dir / "ok" / "b.jhf", "   45  3E_JRZR\n");
  LoadSummary summary;
  auto d = read_strokes((dir / "ok").string(), 0, &summary);
  ASSERT_EQ(d.size(), 3);
  EXPECT_EQ(summary.skipped_empty, 1);
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"45", "61"}));
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_TRUE(torch::equal(d.steps()[0], torch::tensor({-9.0f, 0.0f, 1.0f, 18.0f, 0.0f, 0.0f}).view({2, 3})));
  // '=': (-9,-3) pen up, (9,-3) drawn, then the pen lifts to (-9,3), (9,3) drawn.
  EXPECT_TRUE(torch::equal(d.steps()[1], torch::tensor({-9.0f, -3.0f, 1.0f, 18.0f, 0.0f, 0.0f, -18.0f, 6.0f, 1.0f,
                                                        18.0f, 0.0f, 0.0f}).view({4, 3})));
  auto cut = read_strokes((dir / "ok").string(), 3, &summary);
  EXPECT_EQ(cut.steps()[1].size(0), 3);
  EXPECT_EQ(summary.truncated, 1);
  std::filesystem::create_directories(dir / "bad");
  write(dir / "bad" / "t.jhf", "   45  3E_IR[R\n   61  6E_IO[O\n");
  expect_error([&] { read_strokes((dir / "bad").string()); },
               ErrorCode::Corruption, "t.jhf: glyph 2", "truncated", (dir / "bad" / "t.jhf").string());
  expect_error([&] { read_strokes((dir / "none").string()); },
               ErrorCode::NotFound, "none", "no such folder", (dir / "none").string());
}

TEST(SequenceFiles, CsvSeriesHeaderLengthsAndMissingValues) {
  auto dir = temp_dir("csv");
  write(dir / "ok.csv", "label,t0,t1,t2\nup,1,2,3\n\ndown,3,2\n");
  auto d = read_series_csv((dir / "ok.csv").string());
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"down", "up"}));
  EXPECT_TRUE(torch::equal(d.steps()[1].view(-1), torch::tensor({3.0f, 2.0f})));
  write(dir / "gap.csv", "up,1,2,3\ndown,1,,3\n");
  expect_error([&] { read_series_csv((dir / "gap.csv").string()); },
               ErrorCode::Corruption, "gap.csv:2", "missing value in column 3");
  write(dir / "tail.csv", "up,1,2,\n");
  expect_error([&] { read_series_csv((dir / "tail.csv").string()); },
               ErrorCode::Corruption, "tail.csv:1", "missing value in column 4");
  write(dir / "word.csv", "up,1,2\ndown,1,x\n");
  expect_error([&] { read_series_csv((dir / "word.csv").string()); }, ErrorCode::Corruption, "word.csv:2", "'x'");
  write(dir / "nan.csv", "up,1,nan\n");
  expect_error([&] { read_series_csv((dir / "nan.csv").string()); }, ErrorCode::InvalidArgument, "nan.csv:1", "finite");
  write(dir / "bare.csv", "up,1\ndown\n");
  expect_error([&] { read_series_csv((dir / "bare.csv").string()); }, ErrorCode::Corruption, "bare.csv:2", "no values");
  EXPECT_EQ(d.name(0), (dir / "ok.csv").string() + ":2");
}

TEST(SequenceFiles, CsvSeriesOnePerFileWithSeveralFeatures) {
  auto dir = temp_dir("csvfiles");
  std::filesystem::create_directories(dir / "ok");
  write(dir / "ok" / "b.csv", "label,x,y\nwave,1,2\n\nwave,3,4\nwave,5,6\n");
  write(dir / "ok" / "a.csv", "step,0.5,-1\n");
  write(dir / "ok" / "notes.txt", "not a series\n");
  LoadSummary summary;
  auto d = read_series_files((dir / "ok").string(), 2, &summary);
  ASSERT_EQ(d.size(), 2);
  EXPECT_EQ(d.features(), 2);
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"step", "wave"}));
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{0, 1}));  // a.csv, b.csv
  EXPECT_TRUE(torch::equal(d.steps()[0], torch::tensor({0.5f, -1.0f}).view({1, 2})));
  EXPECT_TRUE(torch::equal(d.steps()[1], torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({2, 2})));  // cut to 2 steps
  EXPECT_EQ(summary.truncated, 1);
  EXPECT_EQ(d.name(1), (dir / "ok" / "b.csv").string());
  // `whole_file`: the error is about s.csv as a whole (its path()), not about one of its lines.
  auto bad = [&](const std::string& name, const std::string& text, ErrorCode code, const std::string& where,
                 const std::string& what, bool whole_file = false) {
    std::filesystem::create_directories(dir / name);
    write(dir / name / "s.csv", text);
    expect_error([&] { read_series_files((dir / name).string()); }, code, where, what,
                 whole_file ? (dir / name / "s.csv").string() : "");
  };
  bad("relabel", "up,1\ndown,2\n", ErrorCode::Corruption, "s.csv:2", "differs from the first row's 'up'");
  bad("ragged", "up,1,2\nup,3\n", ErrorCode::Corruption, "s.csv:2", "1 values, the first row has 2");
  bad("gap", "up,1,2\nup,,3\n", ErrorCode::Corruption, "s.csv:2", "missing value in column 2");
  bad("header_only", "label,x\n", ErrorCode::Corruption, "s.csv", "no time steps", /*whole_file=*/true);
  write(dir / "relabel" / "t.csv", "up,1,2\n");
  write(dir / "relabel" / "s.csv", "up,1\n");
  expect_error([&] { read_series_files((dir / "relabel").string()); },
               ErrorCode::InvalidArgument, "t.csv", "2 features per step", (dir / "relabel" / "t.csv").string());
  expect_error([&] { read_series_files((dir / "none").string()); },
               ErrorCode::NotFound, "none", "no such folder", (dir / "none").string());
  // csv:DIR reads train/ and test/ folders of files in place of train.csv and test.csv.
  for (const std::string split : {"train", "test"}) {
    for (int c = 0; c < 4; ++c) {
      for (int i = 0; i < 2; ++i) {
        std::filesystem::create_directories(dir / "spec" / split);
        write(dir / "spec" / split / (split + std::to_string(c) + "_" + std::to_string(i) + ".csv"),
              "c" + std::to_string(c) + ",1,2\nc" + std::to_string(c) + "," + std::to_string(i) + ",3\n");
      }
    }
  }
  auto splits = open_sequences("csv:" + (dir / "spec").string(), 4, 0);
  EXPECT_EQ(splits.train.size() + splits.validation.size(), 8);
  EXPECT_EQ(splits.test.size(), 8);
  EXPECT_EQ(splits.test.features(), 2);
}

TEST(SequenceDataset, GatherPadsWithAMaskColumn) {
  SequenceDataset d({torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({2, 2}), torch::tensor({5.0f, 6.0f}).view({1, 2})},
                    {0, 1}, "mem");
  auto x = d.gather({1, 0});
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_TRUE(torch::equal(x[0], torch::tensor({1.0f, 5.0f, 6.0f, 0.0f, 0.0f, 0.0f}).view({2, 3})));
  EXPECT_TRUE(torch::equal(x[1], torch::tensor({1.0f, 1.0f, 2.0f, 1.0f, 3.0f, 4.0f}).view({2, 3})));
  auto [mean, std] = d.feature_stats();
  EXPECT_NEAR(mean[0], 3.0, 1e-9);                 // 1, 3, 5
  EXPECT_NEAR(std[1], std::sqrt(8.0 / 3), 1e-6);  // 2, 4, 6
  expect_error([] { SequenceDataset({torch::zeros({0, 2})}, {0}, "mem"); },
               ErrorCode::InvalidArgument, "mem", "T >= 1", "mem");
}

TEST(SequenceSplits, ValidationIsWholeClassesAndTheVocabularyComesFromTrain) {
  auto dir = temp_dir("splits");
  std::string train;
  for (char c : std::string("abcdefgh")) train += std::string(3, c) + "\t" + c + "\n" + std::string(2, c) + "\t" + c + "\n";
  write(dir / "train.tsv", train);
  write(dir / "test.tsv", "xyz\tq\nxy\tq\nab\tr\nabz\tr\n");
  auto s = open_sequences("text:" + dir.string(), 4, 0);
  EXPECT_EQ(s.train.size(), 12);
  EXPECT_EQ(s.train.class_names(), (std::vector<std::string>{"a", "b", "c", "d", "e", "f"}));
  EXPECT_EQ(s.validation.size(), 4);
  EXPECT_EQ(s.validation.class_names(), (std::vector<std::string>{"g", "h"}));  // never trained on
  EXPECT_EQ(s.test.size(), 4);
  EXPECT_EQ(s.vocabulary.size(), 7u);  // <unk> + a..f; g, h only in validation
  EXPECT_EQ(s.summary.unknown_tokens, 10 + 6);  // validation g, h (10); test x y z, x y, z (6)
  EXPECT_EQ(s.tokens, "char");
  expect_error([&] { open_sequences("text:" + dir.string(), 15, 0); },
               ErrorCode::InvalidArgument, "train.tsv", "--validation-size", (dir / "train.tsv").string());
  expect_error([&] { open_sequences("fasta:" + dir.string(), 4, 0); },
               ErrorCode::NotFound, "train.fasta", "no such file", (dir / "train.fasta").string());
  expect_error([&] { open_sequences("csv:" + dir.string(), 4, 0, "word"); },
               ErrorCode::InvalidArgument, "--tokens", "csv");
}

// An item's embedding must not depend on what it is batched with: packing hides the padding.
TEST(RnnEncoder, SameEmbeddingWhateverTheBatchNeighbours) {
  struct Case {
    std::string cell, pooling;
    int64_t vocab, conv_channels, conv_stride, conv_pool;
    bool bidirectional;
  };
  for (const auto& c : {Case{"lstm", "last", 0, 0, 1, 1, true}, Case{"lstm", "mean", 20, 0, 1, 1, false},
                        Case{"gru", "max", 20, 6, 2, 1, true}, Case{"gru", "last", 0, 4, 1, 1, false},
                        Case{"lstm", "mean", 0, 5, 3, 1, true}, Case{"lstm", "max", 20, 5, 1, 4, true},
                        Case{"gru", "mean", 0, 3, 2, 3, false}}) {
    SCOPED_TRACE(c.cell + " " + c.pooling + " vocab " + std::to_string(c.vocab) + " conv " + std::to_string(c.conv_channels) +
                 " pool " + std::to_string(c.conv_pool));
    torch::manual_seed(3);
    RnnEncoder enc(RnnEncoderOptions().cell(parse_cell(c.cell)).pooling(parse_pooling(c.pooling)).vocab_size(c.vocab).token_dim(5).features(3)
                       .conv_channels(c.conv_channels).conv_kernel(3).conv_stride(c.conv_stride).conv_pool(c.conv_pool).hidden(7).layers(2)
                       .bidirectional(c.bidirectional).embedding_dim(4));
    enc->eval();
    SequenceDataset d(random_items({5, 1, 12, 3, 9}, c.vocab, 3), {0, 0, 1, 1, 2}, "mem", {}, c.vocab > 0);
    auto batched = enc->forward(d.gather({0, 1, 2, 3, 4}));
    for (int64_t i = 0; i < 5; ++i) {
      auto alone = enc->forward(d.gather({i}));
      EXPECT_TRUE(torch::allclose(alone[0], batched[i], 1e-5, 1e-6)) << "item " << i;
    }
    // Garbage in the padded steps changes nothing either.
    auto x = d.gather({1, 2});
    auto noisy = x.clone();
    noisy[0].narrow(0, 1, x.size(1) - 1).narrow(1, 1, x.size(2) - 1).fill_(c.vocab > 0 ? 7 : 1e3);
    EXPECT_TRUE(torch::allclose(enc->forward(x), enc->forward(noisy), 1e-6, 1e-6));
  }
  RnnEncoder enc(RnnEncoderOptions().features(2));
  expect_error([&] { enc->forward(torch::zeros({2, 4, 2})); },
               ErrorCode::InvalidArgument, "expected a sequence batch", "[2, 4, 2]");
  expect_error([&] { enc->forward(torch::zeros({1, 4, 3})); }, ErrorCode::InvalidArgument, "rnn encoder", "no steps");
  RnnEncoder tokens(RnnEncoderOptions().vocab_size(5));
  expect_error([&] { tokens->forward(torch::tensor({1.0f, 9.0f}).view({1, 1, 2})); },
               ErrorCode::InvalidArgument, "token id", "5");
}

// The per-direction recurrent layers against torch::nn's own bidirectional LSTM/GRU forward on
// an item alone (no padding): the same weights must give the same states.
TEST(RnnEncoder, EqualsTheModulesOwnBidirectionalForward) {
  for (const std::string cell : {"lstm", "gru"}) {
    for (const std::string pooling : {"last", "mean"}) {
      SCOPED_TRACE(cell + " " + pooling);
      torch::manual_seed(11);
      RnnEncoder enc(RnnEncoderOptions().cell(parse_cell(cell)).features(3).hidden(5).layers(2).pooling(parse_pooling(pooling)).embedding_dim(4));
      enc->eval();
      auto steps = torch::randn({7, 3});
      auto got = enc->forward(SequenceDataset({steps}, {0}, "mem").gather({0}));
      torch::Tensor out, states;  // [1, 7, 10], [layers · 2, 1, 5]
      if (cell == "lstm") {
        auto r = enc->lstm->forward(steps.unsqueeze(0));
        out = std::get<0>(r), states = std::get<0>(std::get<1>(r));
      } else {
        auto r = enc->gru->forward(steps.unsqueeze(0));
        out = std::get<0>(r), states = std::get<1>(r);
      }
      auto pooled = pooling == "last" ? torch::cat({states[-2], states[-1]}, 1) : out.mean(1);
      EXPECT_TRUE(torch::allclose(got, enc->head->forward(pooled), 1e-5, 1e-6));
    }
  }
}

// With 0 layers the encoder is a bag of tokens: the head applied to the mean (or max) of the
// token embeddings of the item's own steps, whatever it is batched with. It leaves <unk> (id 0)
// out, which stands for tokens training never had; an item of <unk> alone embeds as <unk>.
TEST(RnnEncoder, NoLayersPoolsTheTokenEmbeddingsDirectly) {
  // Mean pooling over 20 tokens is computed from the token counts, over 1,000 (> 64 x 12 steps) by a gather.
  for (const auto& [pooling, vocab] : std::vector<std::pair<std::string, int64_t>>{{"mean", 20}, {"mean", 1000}, {"max", 20}}) {
    SCOPED_TRACE(pooling + " over " + std::to_string(vocab) + " tokens");
    torch::manual_seed(13);
    RnnEncoder enc(RnnEncoderOptions().vocab_size(vocab).token_dim(6).layers(0).pooling(parse_pooling(pooling)).embedding_dim(4));
    enc->eval();
    EXPECT_FALSE(enc->lstm);
    EXPECT_FALSE(enc->gru);
    auto items = random_items({5, 1, 12}, 20, 1);
    auto batched = enc->forward(SequenceDataset(items, {0, 1, 2}, "mem", {}, true).gather({0, 1, 2}));
    std::vector<torch::Tensor> by_hand;
    for (int64_t i = 0; i < 3; ++i) {
      auto vectors = enc->embedding->weight.index_select(0, items[i].view(-1).to(torch::kInt64));
      auto pooled = pooling == "mean" ? vectors.mean(0) : std::get<0>(vectors.max(0));
      by_hand.push_back(enc->head->forward(pooled.unsqueeze(0))[0]);
      EXPECT_TRUE(torch::allclose(batched[i], by_hand.back(), 1e-5, 1e-6)) << "item " << i;
    }
    // The same gradient for the token table, whichever way the forward pass computed the pooling.
    auto weights = torch::randn({3, 4});
    auto table_grad = [&](const torch::Tensor& embeddings) {
      enc->zero_grad();
      (embeddings * weights).sum().backward({}, true);
      return enc->embedding->weight.grad().clone();
    };
    EXPECT_TRUE(torch::allclose(table_grad(batched), table_grad(torch::stack(by_hand)), 1e-5, 1e-6));

    auto ids = [](std::vector<float> v) { return torch::tensor(v).view({-1, 1}); };
    std::vector<torch::Tensor> with_unk{ids({3, 0, 7, 0, 0, 3, 9, 0, 0, 0, 0, 0}), ids({3, 7, 3, 9}), ids({0, 0}), ids({0})};
    auto e = enc->forward(SequenceDataset(with_unk, {0, 0, 1, 1}, "mem", {}, true).gather({0, 1, 2, 3}));
    EXPECT_TRUE(torch::allclose(e[0], e[1], 1e-5, 1e-6));
    auto unk = enc->head->forward(enc->embedding->weight.narrow(0, 0, 1))[0];
    EXPECT_TRUE(torch::allclose(e[2], unk, 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(e[3], unk, 1e-5, 1e-6));
    // Nothing flows back to <unk> from an item that has known tokens.
    auto grad = table_grad(e.narrow(0, 0, 1).repeat({3, 1}));
    EXPECT_EQ(grad[0].abs().sum().item<float>(), 0.0f);
    EXPECT_GT(grad[3].abs().sum().item<float>(), 0.0f);
  }
  expect_error([] { RnnEncoder(RnnEncoderOptions().layers(0).pooling(Pooling::Last)); },
               ErrorCode::InvalidArgument, "0 recurrent layers", "mean or max");
  expect_error([] { RnnEncoder(RnnEncoderOptions().layers(-1)); },
               ErrorCode::InvalidArgument, "rnn encoder", "layers >= 0");
}

// Backpropagation through the recurrent layers against central differences, in float64.
TEST(RnnEncoder, GradientsMatchFiniteDifferences) {
  for (const std::string cell : {"lstm", "gru"}) {
    SCOPED_TRACE(cell);
    torch::manual_seed(5);
    RnnEncoder enc(RnnEncoderOptions().cell(parse_cell(cell)).features(2).conv_channels(3).conv_kernel(3)
                       .conv_pool(cell == "gru" ? 2 : 1).hidden(4).layers(2).pooling(Pooling::Mean).embedding_dim(3));
    enc->to(torch::kFloat64);
    SequenceDataset d(random_items({4, 2, 6}, 0, 2), {0, 1, 2}, "mem");
    auto x = d.gather({0, 1, 2}).to(torch::kFloat64);
    auto weights = torch::randn({3, 3}, torch::kFloat64);
    auto f = [&] { return (enc->forward(x) * weights).sum(); };
    enc->zero_grad();
    f().backward();
    for (auto& p : enc->parameters()) {
      auto flat = p.data().view(-1);
      const auto grad = p.grad().view(-1).clone();
      for (int64_t i : {int64_t{0}, flat.numel() / 2, flat.numel() - 1}) {
        const double h = 1e-6, saved = flat[i].item<double>();
        torch::NoGradGuard no_grad;
        flat[i] = saved + h;
        const double up = f().item<double>();
        flat[i] = saved - h;
        const double down = f().item<double>();
        flat[i] = saved;
        EXPECT_NEAR(grad[i].item<double>(), (up - down) / (2 * h), 1e-6);
      }
    }
  }
}

TEST(HybridEncoder, EncodesEachColumnThenRunsTheRnnOverThem) {
  torch::manual_seed(9);
  auto cnn = CnnEncoderOptions().height(8).width(12).conv_channels({4}).hidden(0).embedding_dim(5);
  auto rnn = RnnEncoderOptions().hidden(6).embedding_dim(3).pooling(Pooling::Last);
  HybridEncoder hybrid(cnn, rnn, 3);
  hybrid->eval();
  auto x = torch::rand({2, 1, 8, 12});
  auto e = hybrid->forward(x);
  ASSERT_EQ(e.sizes(), (std::vector<int64_t>{2, 3}));
  // By hand: column f of image i is x[i, :, :, 4f : 4f + 4].
  std::vector<torch::Tensor> columns;
  for (int64_t f = 0; f < 3; ++f) columns.push_back(hybrid->cnn->forward(x.narrow(3, 4 * f, 4)));
  auto features = torch::stack(columns, 1);  // [2, 3, 5]
  auto expected = hybrid->rnn->forward(torch::cat({torch::ones({2, 3, 1}), features}, 2));
  EXPECT_TRUE(torch::allclose(e, expected, 1e-5, 1e-6));
  expect_error([&] { HybridEncoder(cnn, rnn, 5); }, ErrorCode::InvalidArgument, "width 12", "5 frames");
}

TEST(SequenceNetwork, SaveLoadKeepsVocabularyAndOutputsAndPairsOfUnequalLength) {
  torch::manual_seed(11);
  SiameseNetwork net(SiameseNetworkOptions()
                         .encoder(EncoderKind::Gru)
                         .rnn(RnnEncoderOptions().token_dim(4).hidden(5).embedding_dim(3))
                         .tokens("word")
                         .vocabulary({"<unk>", "the", "lord", "god"})
                         .distance(Distance::MaLSTM));
  EXPECT_EQ(net->options.rnn().vocab_size(), 4);
  net->eval();
  SequenceDataset d(random_items({3, 6}, 4, 1), {0, 1}, "mem", {}, true);
  auto a = d.gather({0}), b = d.gather({1});
  auto both = net->embed(d.gather({0, 1}));
  auto dist = net->forward(a, b);  // T = 3 and T = 6: padded inside
  EXPECT_NEAR(dist.item<double>(), 1 - std::exp(-(both[0] - both[1]).abs().sum().item<double>()), 1e-6);
  auto dir = temp_dir("seqnet");
  const auto path = (dir / "m.pt").string();
  save_model(path, net, 0.5);
  auto loaded = load_model(path);
  EXPECT_EQ(loaded.network->options.vocabulary(), net->options.vocabulary());
  EXPECT_EQ(loaded.network->options.tokens(), "word");
  EXPECT_EQ(loaded.network->options.encoder(), EncoderKind::Gru);
  EXPECT_TRUE(torch::equal(loaded.network->embed(d.gather({0, 1})), both));
  EXPECT_EQ(model_fingerprint(loaded.network), model_fingerprint(net));
}
