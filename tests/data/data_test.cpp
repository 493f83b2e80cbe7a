#include <gtest/gtest.h>
#include <torch/torch.h>

#include <opencv2/imgcodecs.hpp>
#include <set>

#include "siamese/data/data.h"
#include "siamese/core/error.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::idx_bytes;
using siamese::testing::temp_dir;
using siamese::testing::write_bytes;
namespace fs = std::filesystem;

namespace {

/// f() throws a siamese::Error of `code` about `file` (its path(); "" for none, e.g. a bad spec) whose
/// message names the file and says `words`.
void expect_error(const std::function<void()>& f, ErrorCode code, const std::string& file, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error (expected '" << words << "')";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << to_string(e.code()) << ": " << e.what();
    EXPECT_EQ(e.path(), file) << e.what();
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

/// 3 images of 2×2 with pixel values 0..11, labels 2, 0, 1.
struct IdxFiles {
  std::string images, labels;
};
IdxFiles write_idx(const fs::path& dir, bool gzip) {
  std::vector<uint8_t> pixels(12);
  for (int i = 0; i < 12; ++i) pixels[i] = static_cast<uint8_t>(i * 20);
  IdxFiles f{(dir / (gzip ? "img.gz" : "img")).string(), (dir / (gzip ? "lab.gz" : "lab")).string()};
  write_bytes(f.images, idx_bytes({3, 2, 2}, pixels), gzip);
  write_bytes(f.labels, idx_bytes({3}, {2, 0, 1}), gzip);
  return f;
}

void write_png(const fs::path& path, int rows, int cols, int type, int value) {
  fs::create_directories(path.parent_path());
  cv::imwrite(path.string(), cv::Mat(rows, cols, type, cv::Scalar::all(value)));
}

}  // namespace

TEST(Idx, ReadsRawAndGzip) {
  auto dir = temp_dir("idx");
  for (bool gz : {false, true}) {
    auto f = write_idx(dir, gz);
    auto d = read_idx(f.images, f.labels);
    ASSERT_EQ(d.size(), 3);
    EXPECT_EQ(d.images().sizes(), (std::vector<int64_t>{3, 1, 2, 2}));
    EXPECT_EQ(d.labels(), (std::vector<int64_t>{2, 0, 1}));
    EXPECT_EQ(d.images()[1][0][1][0].item<int>(), 6 * 20);  // item 1, row 1, column 0 = pixel 4+2
    auto x = d.gather({2, 0});
    EXPECT_NEAR(x[0][0][0][0].item<double>(), 8 * 20 / 255.0, 1e-6);
  }
}

TEST(Idx, BadFilesAreClearErrors) {
  auto dir = temp_dir("idx_bad");
  auto good = write_idx(dir, false);
  expect_error([&] { read_idx((dir / "nope").string(), good.labels); }, ErrorCode::NotFound, (dir / "nope").string(),
               "no such file");

  const auto magic = (dir / "magic").string();
  auto bytes = idx_bytes({3, 2, 2}, std::vector<uint8_t>(12));
  bytes[3] = 2;  // two dimensions declared
  write_bytes(magic, bytes, false);
  expect_error([&] { read_idx(magic, good.labels); }, ErrorCode::Corruption, magic, "wrong IDX magic");

  const auto truncated = (dir / "truncated.gz").string();
  write_bytes(truncated, idx_bytes({3, 2, 2}, std::vector<uint8_t>(10)), true);
  expect_error([&] { read_idx(truncated, good.labels); }, ErrorCode::Corruption, truncated, "truncated");

  const auto header = (dir / "header").string();
  write_bytes(header, {0, 0, 8, 3, 0}, false);
  expect_error([&] { read_idx(header, good.labels); }, ErrorCode::Corruption, header, "truncated IDX header");

  const auto labels = (dir / "labels4").string();
  write_bytes(labels, idx_bytes({4}, {0, 1, 0, 1}), false);
  expect_error([&] { read_idx(good.images, labels); }, ErrorCode::InvalidArgument, labels, "4 labels for 3 images");

  // Sizes whose product wraps around 2^64 (4 × 2^31 × 2^31 = 2^64 "= 0" data bytes): found by
  // reading parse_idx for the fuzz target; they reached LibTorch, whose c10::Error leaked out.
  const auto wrap = (dir / "wrap").string();
  write_bytes(wrap, idx_bytes({4, 1u << 31, 1u << 31}, {}), false);
  const auto four = (dir / "four").string();
  write_bytes(four, idx_bytes({4}, {0, 1, 0, 1}), false);
  expect_error([&] { read_idx(wrap, four); }, ErrorCode::Corruption, wrap, "truncated: the header declares more");

  // A gzip stream cut in the middle.
  const auto cut = (dir / "cut.gz").string();
  std::vector<uint8_t> noise(40000);
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>((i * 7919) % 251);
  write_bytes(cut, idx_bytes({100, 20, 20}, noise), true);
  fs::resize_file(cut, fs::file_size(cut) / 2);
  expect_error([&] { read_idx(cut, good.labels); }, ErrorCode::Corruption, cut, "truncated");
}

TEST(ImageFolder, ReadsClassesInNameOrder) {
  auto dir = temp_dir("folder");
  write_png(dir / "cat" / "a.png", 6, 5, CV_8UC1, 10);
  write_png(dir / "cat" / "b.png", 6, 5, CV_8UC1, 20);
  write_png(dir / "ant" / "x.png", 6, 5, CV_8UC1, 30);
  write_png(dir / "ant" / "y.png", 6, 5, CV_8UC1, 40);
  auto d = read_image_folder(dir.string());
  EXPECT_EQ(d.class_names(), (std::vector<std::string>{"ant", "cat"}));
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(d.images().sizes(), (std::vector<int64_t>{4, 1, 6, 5}));
  EXPECT_EQ(d.images()[2][0][3][3].item<int>(), 10);

  // Every grey image keeps its own pixels (each once aliased the reader's reused buffer).
  auto many = temp_dir("folder_many");
  for (int i = 0; i < 40; ++i) {
    write_png(many / (i < 20 ? "a" : "b") / (std::to_string(100 + i) + ".png"), 28, 28, CV_8UC1, 3 * i);
  }
  auto m = read_image_folder(many.string());
  for (int64_t i = 0; i < 40; ++i) {
    EXPECT_EQ(m.images()[i].min().item<int>(), 3 * i) << i;
    EXPECT_EQ(m.images()[i].max().item<int>(), 3 * i) << i;
  }

  auto colour = temp_dir("folder_rgb");
  cv::Mat bgr(4, 4, CV_8UC3, cv::Scalar(255, 0, 0));  // blue in OpenCV's BGR order
  fs::create_directories(colour / "a");
  fs::create_directories(colour / "b");
  for (auto name : {"a/1.png", "a/2.png", "b/1.png", "b/2.png"}) cv::imwrite((colour / name).string(), bgr);
  auto rgb = read_image_folder(colour.string());
  EXPECT_EQ(rgb.images()[0][2][0][0].item<int>(), 255);  // blue is channel 2 in RGB
  EXPECT_EQ(rgb.images()[0][0][0][0].item<int>(), 0);
}

// A folder in place of an image is a sequence of frames, laid side by side in name order.
TEST(ImageFolder, SequenceFoldersBecomeFramesSideBySide) {
  auto dir = temp_dir("frames");
  for (int f = 0; f < 3; ++f) {
    write_png(dir / "left" / "s1" / ("f" + std::to_string(f) + ".png"), 4, 2, CV_8UC1, 10 + f);
    write_png(dir / "left" / "s2" / ("f" + std::to_string(f) + ".png"), 4, 2, CV_8UC1, 20 + f);
    write_png(dir / "right" / "s3" / ("f" + std::to_string(2 - f) + ".png"), 4, 2, CV_8UC1, 30 + f);
    write_png(dir / "right" / "s4" / ("f" + std::to_string(f) + ".png"), 4, 2, CV_8UC1, 40 + f);
  }
  auto d = read_image_folder(dir.string());
  EXPECT_EQ(d.labels(), (std::vector<int64_t>{0, 0, 1, 1}));
  ASSERT_EQ(d.images().sizes(), (std::vector<int64_t>{4, 1, 4, 6}));  // 3 frames of 4×2
  auto row = d.images()[2][0][1];  // s3: f0.png holds 32, f1.png 31, f2.png 30
  EXPECT_TRUE(torch::equal(row, torch::tensor({32, 32, 31, 31, 30, 30}, torch::kUInt8)));
  write_png(dir / "right" / "s4" / "f3.png", 4, 2, CV_8UC1, 0);
  expect_error([&] { read_image_folder(dir.string()); }, ErrorCode::InvalidArgument, (dir / "right" / "s4").string(),
               "the same number of frames");
  write_png(dir / "right" / "s4" / "f3.png", 4, 3, CV_8UC1, 0);
  expect_error([&] { read_image_folder(dir.string()); }, ErrorCode::InvalidArgument,
               (dir / "right" / "s4" / "f3.png").string(), "frames of a sequence must match");
  fs::remove_all(dir / "right" / "s4");
  fs::create_directories(dir / "right" / "s4");
  expect_error([&] { read_image_folder(dir.string()); }, ErrorCode::InvalidArgument, (dir / "right" / "s4").string(),
               "without frames");
}

TEST(ImageFolder, BadFoldersAreClearErrors) {
  auto one = temp_dir("one_class");
  write_png(one / "only" / "a.png", 4, 4, CV_8UC1, 1);
  write_png(one / "only" / "b.png", 4, 4, CV_8UC1, 1);
  expect_error([&] { read_image_folder(one.string()); }, ErrorCode::InvalidArgument, one.string(), "need at least 2");

  auto single = temp_dir("single_image");
  write_png(single / "a" / "1.png", 4, 4, CV_8UC1, 1);
  write_png(single / "a" / "2.png", 4, 4, CV_8UC1, 1);
  write_png(single / "b" / "1.png", 4, 4, CV_8UC1, 1);
  expect_error([&] { read_image_folder(single.string()); }, ErrorCode::InvalidArgument, (single / "b").string(),
               "1 image");

  auto size = temp_dir("size");
  write_png(size / "a" / "1.png", 4, 4, CV_8UC1, 1);
  write_png(size / "a" / "2.png", 4, 4, CV_8UC1, 1);
  write_png(size / "b" / "1.png", 4, 4, CV_8UC1, 1);
  write_png(size / "b" / "2.png", 5, 4, CV_8UC1, 1);
  expect_error([&] { read_image_folder(size.string()); }, ErrorCode::InvalidArgument, (size / "b" / "2.png").string(),
               "all images must match");

  auto channels = temp_dir("channels");
  write_png(channels / "a" / "1.png", 4, 4, CV_8UC1, 1);
  write_png(channels / "a" / "2.png", 4, 4, CV_8UC1, 1);
  write_png(channels / "b" / "1.png", 4, 4, CV_8UC3, 1);
  write_png(channels / "b" / "2.png", 4, 4, CV_8UC1, 1);
  expect_error([&] { read_image_folder(channels.string()); }, ErrorCode::InvalidArgument,
               (channels / "b" / "1.png").string(), "all images must match");

  auto broken = temp_dir("broken");
  write_png(broken / "a" / "1.png", 4, 4, CV_8UC1, 1);
  write_png(broken / "a" / "2.png", 4, 4, CV_8UC1, 1);
  write_png(broken / "b" / "1.png", 4, 4, CV_8UC1, 1);
  std::ofstream((broken / "b" / "2.png").string()) << "not a png";
  expect_error([&] { read_image_folder(broken.string()); }, ErrorCode::Corruption, (broken / "b" / "2.png").string(),
               "cannot decode the image");
  expect_error([&] { read_image((broken / "b" / "3.png").string(), 1, 4, 4); }, ErrorCode::NotFound,
               (broken / "b" / "3.png").string(), "no such file");

  // Found by tests/fuzz/image_fuzz.cpp: a PNG signature cut short, then "DICM" at byte 128, made
  // OpenCV hand the file to GDCM, which worked on it for minutes (or asked for 3 GB). Only files
  // with a full PNG, JPEG, BMP or PGM signature reach OpenCV now.
  std::string dicom(128, '\0');
  dicom.replace(0, 5, "\x89PNG\r");
  dicom += "DICM";
  dicom += std::string(64, '\0');
  const auto dicm = (broken / "dicm.png").string();
  std::ofstream(dicm, std::ios::binary) << dicom;
  expect_error([&] { read_image(dicm, 1, 4, 4); }, ErrorCode::Corruption, dicm, "not a PNG, JPEG, BMP, PGM or WebP file");
  const auto tiff = (broken / "image.tif").string();
  std::ofstream(tiff, std::ios::binary) << std::string("II*\0\x08\0\0\0", 8);
  expect_error([&] { read_image(tiff, 1, 4, 4); }, ErrorCode::Corruption, tiff, "not a PNG, JPEG, BMP, PGM or WebP file");
  EXPECT_EQ(read_image((broken / "a" / "1.png").string(), 1, 4, 4).sizes(), (std::vector<int64_t>{1, 1, 4, 4}));

  expect_error([&] { read_image_folder((broken / "missing").string()); }, ErrorCode::NotFound,
               (broken / "missing").string(), "no such folder");
  expect_error([&] { read_image((broken / "a" / "1.png").string(), 1, 28, 28); }, ErrorCode::InvalidArgument,
               (broken / "a" / "1.png").string(), "expects 1x28x28");
  expect_error([&] { open_data("mnist"); }, ErrorCode::InvalidArgument, "", "unknown data 'mnist'");
}

TEST(Splits, SeenAndUnseenProtocols) {
  // 20 training images of classes 0..3 in turn, 8 test images.
  auto labels = [](int n) {
    std::vector<int64_t> l;
    for (int i = 0; i < n; ++i) l.push_back(i % 4);
    return l;
  };
  DataSource source{ImageDataset(torch::zeros({20, 1, 2, 2}, torch::kUInt8), labels(20), "train"),
                    ImageDataset(torch::zeros({8, 1, 2, 2}, torch::kUInt8), labels(8), "test")};
  auto seen = make_splits(source, SplitOptions().validation_size(4));
  EXPECT_EQ(seen.train.size(), 16);
  EXPECT_EQ(seen.validation.size(), 4);
  EXPECT_EQ(seen.test.size(), 8);

  auto unseen = make_splits(source, SplitOptions().protocol(Protocol::Unseen).unseen_classes({2, 3}).validation_size(8));
  for (auto l : unseen.train.labels()) EXPECT_LT(l, 2);
  for (auto l : unseen.validation.labels()) EXPECT_LT(l, 2);
  for (auto l : unseen.test.labels()) EXPECT_GE(l, 2);
  EXPECT_EQ(unseen.train.size(), 6);
  EXPECT_EQ(unseen.validation.size(), 4);
  EXPECT_EQ(unseen.test.size(), 4);

  EXPECT_THROW(make_splits(source, SplitOptions().protocol(Protocol::Unseen).unseen_classes({1, 2, 3})), Error);
  EXPECT_EQ(make_splits(source, SplitOptions().validation_size(4).subset(5)).train.size(), 5);
}

TEST(Loader, DeliversEveryBatchInPlanOrder) {
  auto images = torch::arange(50, torch::kUInt8).view({50, 1, 1, 1});
  std::vector<int64_t> labels(50);
  for (int i = 0; i < 50; ++i) labels[i] = i % 5;
  ImageDataset data(images, labels, "range");
  std::vector<std::vector<int64_t>> plan;
  for (int b = 0; b < 17; ++b) plan.push_back({(b * 3) % 50, (b * 7 + 1) % 50, (b * 11 + 2) % 50});
  Loader loader(data, plan, 3, 2);
  int64_t count = 0;
  while (auto batch = loader.next()) {
    ASSERT_EQ(batch->number, count);
    EXPECT_EQ(batch->indices, plan[count]);
    EXPECT_TRUE(torch::equal(batch->inputs, data.gather(plan[count])));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(batch->labels[i].item<int64_t>(), labels[plan[count][i]]);
    ++count;
  }
  EXPECT_EQ(count, 17);
  EXPECT_FALSE(loader.next().has_value());
}

TEST(Splits, ImbalanceKeepsTheFirstShareOfAClassAndNamesBadClasses) {
  std::vector<int64_t> labels;
  for (int i = 0; i < 400; ++i) labels.push_back(i % 4);  // 100 per class
  DataSource source{ImageDataset(torch::zeros({400, 1, 2, 2}, torch::kUInt8), labels, "train"),
                    ImageDataset(torch::zeros({8, 1, 2, 2}, torch::kUInt8), std::vector<int64_t>(labels.begin(), labels.begin() + 8), "test")};
  auto s = make_splits(source, SplitOptions().validation_size(40).imbalance(parse_imbalance("1:0.1,3:0.001")));
  std::vector<int64_t> count(4, 0);
  for (auto l : s.train.labels()) ++count[l];
  EXPECT_EQ(count, (std::vector<int64_t>{90, 9, 90, 2}));  // 10% of 90; at least 2
  EXPECT_EQ(s.validation.size(), 40);  // untouched
  EXPECT_EQ(to_string(parse_imbalance("3:0.001,1:0.1")), "1:0.1,3:0.001");
  EXPECT_TRUE(parse_imbalance("").empty());
  for (const char* bad : {"1", "1:", "x:0.1", "1:0", "1:1.5", "1:0.1junk"}) EXPECT_THROW(parse_imbalance(bad), Error) << bad;
  expect_error([&] { make_splits(source, SplitOptions().validation_size(40).imbalance({{7, 0.5}})); },
               ErrorCode::InvalidArgument, "train", "class 7");
}

TEST(RotatedClasses, EachQuarterTurnIsANewClass) {
  // One 2×2 image [[1, 2], [3, 4]] of class 0 and one of class 1.
  auto images = torch::tensor({1, 2, 3, 4, 5, 6, 7, 8}, torch::kUInt8).view({2, 1, 2, 2});
  ImageDataset base(images, {0, 1}, "two");
  RotatedClasses r(base, 4);
  ASSERT_EQ(r.size(), 8);
  EXPECT_EQ(r.labels(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  auto x = r.gather({0, 2, 4, 6, 7}).mul(255).round().to(torch::kInt64);
  // Quarter turns counter-clockwise: [[1,2],[3,4]] -> [[2,4],[1,3]] -> [[4,3],[2,1]] -> [[3,1],[4,2]].
  EXPECT_TRUE(torch::equal(x[0].flatten(), torch::tensor({1, 2, 3, 4})));
  EXPECT_TRUE(torch::equal(x[1].flatten(), torch::tensor({2, 4, 1, 3})));
  EXPECT_TRUE(torch::equal(x[2].flatten(), torch::tensor({4, 3, 2, 1})));
  EXPECT_TRUE(torch::equal(x[3].flatten(), torch::tensor({3, 1, 4, 2})));
  EXPECT_TRUE(torch::equal(x[4].flatten(), torch::tensor({7, 5, 8, 6})));
  RotatedClasses half(base, 2);
  EXPECT_EQ(half.labels(), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(torch::equal(half.gather({2}).mul(255).round().to(torch::kInt64).flatten(), torch::tensor({4, 3, 2, 1})));
  EXPECT_THROW(RotatedClasses(base, 3), Error);
  ImageDataset wide(torch::zeros({2, 1, 2, 3}, torch::kUInt8), {0, 1}, "wide");
  EXPECT_THROW(RotatedClasses(wide, 4), Error);
  EXPECT_EQ(RotatedClasses(wide, 2).size(), 4);
}

TEST(PairsFile, ReadsTheLfwFormatAndNamesBadLines) {
  auto dir = siamese::testing::temp_dir("pairs");
  for (auto name : {"ann", "bob"}) {
    fs::create_directories(dir / name);
    for (int i = 1; i <= 2; ++i) {
      char file[32];
      std::snprintf(file, sizeof file, "%s_%04d.png", name, i);
      cv::imwrite((dir / name / file).string(), cv::Mat(4, 4, CV_8UC1, cv::Scalar(i)));
    }
  }
  const auto path = (dir / "pairs.txt").string();
  std::ofstream(path) << "2\t1\nann\t1\t2\nann\t1\tbob\t2\nbob\t1\t2\r\nbob\t2\tann\t2\n";
  auto pairs = read_pairs_file(path, dir.string());
  ASSERT_EQ(pairs.size(), 4u);
  EXPECT_EQ(pairs[0].a, (dir / "ann" / "ann_0001.png").string());
  EXPECT_EQ(pairs[0].b, (dir / "ann" / "ann_0002.png").string());
  EXPECT_TRUE(pairs[0].same);
  EXPECT_EQ(pairs[1].b, (dir / "bob" / "bob_0002.png").string());
  EXPECT_FALSE(pairs[1].same);
  EXPECT_EQ(pairs[1].fold, 0);
  EXPECT_TRUE(pairs[2].same);
  EXPECT_EQ(pairs[2].fold, 1);
  EXPECT_EQ(pairs[3].fold, 1);

  // A bad line is named "FILE:LINE: ..." (path() stays empty); a bad file as a whole sets path().
  auto expect_error = [&](const std::string& text, ErrorCode code, const std::string& fragment,
                          const std::string& file) {
    std::ofstream(path) << text;
    try {
      read_pairs_file(path, dir.string());
      FAIL() << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << to_string(e.code()) << ": " << e.what();
      EXPECT_EQ(e.path(), file) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error("1\t1\nann\t1\t2\nann\t1\n", ErrorCode::Corruption, "pairs.txt:3: expected", "");  // malformed line
  expect_error("1\t1\nann\t1\t7\nann\t1\tbob\t1\n", ErrorCode::NotFound, "ann_0007.png: no such image",
               "");  // missing image
  expect_error("2\t1\nann\t1\t2\nann\t1\tbob\t1\n", ErrorCode::Corruption, "promises 4 pairs, the file has 2",
               path);  // short
  expect_error("", ErrorCode::Corruption, "empty pairs file", path);
  // Found by tests/fuzz/pairs_fuzz.cpp: a header of 0 pairs per fold divided by zero, and a huge
  // one overflowed the promised count.
  expect_error("2\t0\nann\t1\t2\n", ErrorCode::Corruption, "pairs.txt:1: a fold needs N >= 1 pairs", "");
  expect_error("4611686018427387904\t2\nann\t1\t2\n", ErrorCode::Corruption, "more pairs than can be counted", "");
  expect_error("2\t4611686018427387904\n", ErrorCode::Corruption, "more pairs than can be counted", "");
  EXPECT_THROW(read_pairs_file((dir / "none.txt").string(), dir.string()), Error);
  try {
    read_pairs_file((dir / "none.txt").string(), dir.string());
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound) << e.what();
    EXPECT_EQ(e.path(), (dir / "none.txt").string());
  }
}

TEST(DecodeImage, SizesFromTheHeaderAreCheckedBeforeDecoding) {
  const auto code_of = [](const std::string& bytes, uint64_t max_pixels) {
    try {
      decode_image(bytes, "upload", max_pixels);
      return std::string("accepted");
    } catch (const Error& e) {
      return std::string(to_string(e.code())) + ": " + e.what();
    }
  };
  // A PGM that claims 30000 x 30000 and holds 4 bytes: refused for its size, nothing allocated.
  EXPECT_NE(code_of("P5\n30000 30000\n255\nabcd", kMaxImagePixels).find("image of 900000000 pixels; at most 50000000"), std::string::npos);
  // A fuzzer's PPM whose header OpenCV reads laxly as 888848 x 888 (gigabytes): no readable size.
  EXPECT_NE(code_of("P3\v888848(888c8884-", kMaxImagePixels).find("its header gives no readable size"), std::string::npos);
  // Within the limit it decodes: a 3 x 2 PGM, and the same refused by a limit of 5 pixels.
  const std::string small("P5\n3 2\n255\n\x01\x02\x03\x04\x05\x06", 17);
  const auto image = decode_image(small, "small.pgm", 6);
  EXPECT_EQ(image.sizes(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(image[0][1][2].item<int>(), 6);
  EXPECT_NE(code_of(small, 5).find("image of 6 pixels; at most 5"), std::string::npos);
}
