// Sequence data: tokens, vocabulary, the readers (text, FASTA, strokes, CSV), padded batches, splits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "siamese/core/error.h"
#include "siamese/data/sequence.h"
#include "sequence_test_util.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::expect_error;
using siamese::testing::random_items;
using siamese::testing::temp_dir;
using siamese::testing::write;

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
