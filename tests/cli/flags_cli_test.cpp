// The command line's contract: exit 0 success, 1 bad input or I/O, 2 a wrong command line; every
// error one line; numbers out of range refused; outputs never replaced without --force.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "small_model_util.h"
#include "test_util.h"

using namespace siamese::testing;
namespace fs = std::filesystem;

namespace {


/// A usage error: exit 2, one line, naming what is wrong.
void expect_usage_error(const std::string& args, const std::string& says) {
  const auto r = run(args);
  EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
  EXPECT_EQ(lines_of(r.out), 1u) << args << "\n" << r.out;
  EXPECT_NE(r.out.find("siamese: usage error: "), std::string::npos) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(says), std::string::npos) << args << "\n" << r.out;
}

/// A bad-input error: exit 1, one line, saying `says`.
void expect_input_error(const std::string& args, const std::string& says) {
  const auto r = run(args);
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  EXPECT_EQ(lines_of(r.out), 1u) << args << "\n" << r.out;
  EXPECT_NE(r.out.find(says), std::string::npos) << args << "\n" << r.out;
}

}  // namespace

TEST(FlagsCli, NumbersOutOfRangeAreUsageErrorsNamingTheFlag) {
  // Each was accepted before: trained on everything, clamped, wrapped or kept.
  expect_usage_error("train --subset -5", "--subset: -5 is out of range: must be >= 0");
  expect_usage_error("train --epochs 99999999999999999999999", "--epochs: 99999999999999999999999 is out of range");
  expect_usage_error("train --seed -1", "--seed: -1 is out of range");
  expect_usage_error("train --threads -3", "--threads: -3 is out of range");
  expect_usage_error("train --lr 0", "--lr: 0 is out of range: must be > 0");
  expect_usage_error("train --dropout 1.5", "--dropout: 1.5 is out of range");
  expect_usage_error("train --conv-channels 16,-2", "--conv-channels: -2 is out of range");
  expect_usage_error("train --epochs abc", "--epochs: 'abc' is not a number");
  expect_usage_error("train --epochs 3x", "--epochs: '3x' is not a number");
  expect_usage_error("eval --model m.pt --subset -1", "--subset: -1 is out of range");
  expect_usage_error("eval --model m.pt --pairs 0", "--pairs: 0 is out of range: must be >= 2");
  expect_usage_error("oneshot --model m --support s --query q --k-shot -1", "--k-shot: -1 is out of range");
  expect_usage_error("oneshot --model m --support s --query q --threshold -7", "--threshold: -7 is not a distance >= 0, or -1 (never)");
  expect_usage_error("augment-preview --augment rotate=5 --out x.png --images 0", "--images: 0 is out of range");
  expect_usage_error("search --index i --model m --query q -k 0", "-k: 0 is out of range");
}

TEST(FlagsCli, InRangeValuesStillReachTheCommand) {
  // -1 is oneshot's "never" threshold: the command runs and fails on the missing model instead.
  const auto r = run("oneshot --model /nonexistent/m.pt --support s --query q --threshold -1");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("/nonexistent/m.pt"), std::string::npos) << r.out;
}

TEST(FlagsCli, CommandLineMistakesExitTwoInOneLine) {
  expect_usage_error("bogus", "unknown command 'bogus' (commands: train, eval, embed");
  expect_usage_error("", "A subcommand is required");
  expect_usage_error("train --no-such-flag", "--no-such-flag");
  expect_usage_error("eval", "--model is required");
  const auto config = temp_dir("config_key") / "extra.toml";
  std::ofstream(config) << "[train]\nepochs = 1\nbogus-key = 3\n";
  expect_usage_error("train --config " + config.string(), "--config: unknown key 'train.bogus-key' (the keys are the flags, without --)");
  const auto help = run("train --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--epochs"), std::string::npos);
}

TEST(FlagsCli, ResumeRefusesFlagsItWouldIgnore) {
  const auto dir = temp_dir("resume_flags");
  expect_usage_error("train --resume " + dir.string() + " --epochs 9 --lr 0.1",
                     "--resume: the run continues with the flags it was started with; --epochs, --lr cannot be changed");
}

TEST(FlagsCli, ImagesThatCannotBeReadGetOneLineOfOurs) {
  const auto dir = temp_dir("bad_images");
  const auto model = (dir / "model.pt").string();
  save_small_model(model);
  const auto good = write_random_images(dir, "ok", 1, 3).front();
  // Missing: OpenCV used to print its own "can't open/read file" warning first.
  expect_input_error("verify --model " + model + " " + (dir / "missing.png").string() + " " + good,
                     (dir / "missing.png").string() + ": no such file");
  // Truncated: libpng used to print "libpng error: Read Error" first.
  const auto bytes = read_file(good);
  const auto cut = (dir / "cut.png").string();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  expect_input_error("verify --model " + model + " " + cut + " " + good, cut + ": truncated PNG");
  // One flipped bit in the image data: a CRC error, before libpng can print one.
  auto flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x10;
  const auto bad = (dir / "flipped.png").string();
  std::ofstream(bad, std::ios::binary) << flipped;
  expect_input_error("verify --model " + model + " " + bad + " " + good, bad + ": damaged PNG (chunk IDAT fails its CRC)");
  const auto empty = (dir / "empty.png").string();
  std::ofstream(empty, std::ios::binary).flush();
  expect_input_error("verify --model " + model + " " + empty + " " + good, empty + ": empty file");
  expect_input_error("verify --model " + model + " \"\" " + good, "the first input is an empty string");
}

TEST(FlagsCli, WritersRefuseAnExistingFileUnlessForced) {
  const auto dir = temp_dir("writers_force");
  const auto png = (dir / "grid.png").string();
  std::ofstream(png) << "precious";
  if (have_fashion_mnist()) {
    expect_input_error("augment-preview --augment rotate=10 --images 2 --versions 1 --out " + png,
                       png + ": exists; pass --force to replace it");
    EXPECT_EQ(read_file(png), "precious");
    const auto forced = run("augment-preview --augment rotate=10 --images 2 --versions 1 --force --out " + png);
    EXPECT_EQ(forced.code, 0) << forced.out;
    EXPECT_EQ(read_file(png).substr(1, 3), "PNG");
  }
  const auto model = (dir / "model.pt").string();
  save_small_model(model);
  const auto images = write_random_images(dir / "images", "i", 2, 5);
  const auto index = (dir / "i.faiss").string();
  ASSERT_EQ(run("index build --model " + model + " --data " + (dir / "images").string() + " --out " + index).code, 0);
  const auto html = (dir / "hits.html").string();
  std::ofstream(html) << "precious";
  expect_input_error("search --index " + index + " --model " + model + " --query " + images[0] + " --html " + html,
                     html + ": exists; pass --force to replace it");
  EXPECT_EQ(read_file(html), "precious");
  // Never the index itself, even with --force.
  expect_input_error("search --index " + index + " --model " + model + " --query " + images[0] + " --force --html " + index,
                     "is the input file");
}

TEST(FlagsCli, UnknownDataNamesEveryKind) {
  expect_input_error("train --data bogus:x --epochs 1", "unknown data 'bogus:x' (images: fashion-mnist, idx:DIR, "
                                                        "folder:DIR or list:FILE; sequences: text:DIR, fasta:DIR, strokes:DIR or csv:DIR)");
}
