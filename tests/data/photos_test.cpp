// Photographs of any size (photos.h): the evaluation and training views against OpenCV computed
// directly, channel and depth conversions, the cache's budget, list files, folders of mixed
// sizes and bad files under both policies.
#include "siamese/data/photos.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <zlib.h>

#include <fstream>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/data/data.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::temp_dir;
namespace fs = std::filesystem;

namespace {

/// A colour image (BGR, as OpenCV holds it) whose pixels vary in x, y and channel.
cv::Mat pattern(int rows, int cols, int seed = 0) {
  cv::Mat m(rows, cols, CV_8UC3);
  for (int y = 0; y < rows; ++y) {
    for (int x = 0; x < cols; ++x) {
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>((x * 7 + seed) % 256), static_cast<uchar>((y * 5 + seed) % 256),
                                        static_cast<uchar>((x + y) * 3 % 256));
    }
  }
  return m;
}

void write_image(const fs::path& path, const cv::Mat& m) {
  fs::create_directories(path.parent_path());
  ASSERT_TRUE(cv::imwrite(path.string(), m)) << path;
}

/// What the evaluation view should be, computed with OpenCV alone: shorter side resized to
/// `side` (area averaging when it shrinks, bilinear when it grows), the centre size × size, RGB,
/// as uint8 [3, size, size].
torch::Tensor expected_view(const cv::Mat& bgr, int side, int size) {
  const double scale = static_cast<double>(side) / std::min(bgr.rows, bgr.cols);
  const cv::Size to = bgr.cols <= bgr.rows ? cv::Size(side, static_cast<int>(std::lround(bgr.rows * scale)))
                                           : cv::Size(static_cast<int>(std::lround(bgr.cols * scale)), side);
  cv::Mat resized, rgb;
  cv::resize(bgr, resized, to, 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  cv::cvtColor(resized(cv::Rect((to.width - size) / 2, (to.height - size) / 2, size, size)).clone(), rgb, cv::COLOR_BGR2RGB);
  return torch::from_blob(rgb.data, {size, size, 3}, torch::kUInt8).permute({2, 0, 1}).clone();
}

ImageView view_of(int64_t size, int64_t channels = 3) {
  ImageView v;
  v.size = size;
  v.channels = channels;
  return v;
}

struct WarningLines : Logger {
  std::vector<std::string> warnings;
  void log(LogLevel level, const std::string& message) override {
    if (level == LogLevel::Warning) warnings.push_back(message);
  }
};

/// f() throws a siamese::Error whose message names `file` and says `words`.
void expect_error(const std::function<void()>& f, const std::string& file, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error (expected '" << words << "')";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

}  // namespace

TEST(ImageViewRule, CentreViewEqualsOpenCvResizeAndCrop) {
  const auto dir = temp_dir("photo_view");
  for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{80, 120}, {150, 60}, {33, 33}}) {
    const auto m = pattern(rows, cols);
    const auto file = (dir / ("p" + std::to_string(rows) + ".png")).string();
    write_image(file, m);
    const auto view = view_of(32);
    ASSERT_EQ(view.resize_side(), 37);  // round(32 / 0.875)
    const auto got = decode_view(read_file(file), file, view);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{3, 32, 32}));
    const auto want = expected_view(m, 37, 32);
    EXPECT_TRUE(torch::equal(got, want)) << rows << "x" << cols << ": max difference "
                                         << (got.to(torch::kInt) - want.to(torch::kInt)).abs().max().item<int>();
  }
}

TEST(ImageViewRule, ReducedJpegDecodingStaysCloseToTheFullDecode) {
  const auto dir = temp_dir("photo_jpeg");
  cv::Mat small = pattern(8, 12), m;  // smooth: a photograph's content, not a pattern of sharp edges
  cv::resize(small, m, cv::Size(600, 400), 0, 0, cv::INTER_LINEAR);
  const auto file = (dir / "big.jpg").string();
  write_image(file, m);
  // A 400-pixel shorter side for a 37-pixel view: decoded at 1/8 scale (50 px), then resized.
  const auto got = decode_view(read_file(file), file, view_of(32)).to(torch::kFloat);
  const auto full = expected_view(cv::imread(file, cv::IMREAD_COLOR), 37, 32).to(torch::kFloat);
  EXPECT_LT((got - full).abs().mean().item<double>(), 2.0);
}

TEST(ImageViewRule, ConvertsChannelsDepthAndAlpha) {
  const auto dir = temp_dir("photo_channels");
  const auto m = pattern(40, 40);
  cv::Mat bgra, grey, deep;
  cv::cvtColor(m, bgra, cv::COLOR_BGR2BGRA);
  bgra.forEach<cv::Vec4b>([](cv::Vec4b& p, const int*) { p[3] = 7; });  // nearly transparent: alpha is dropped, not applied
  cv::cvtColor(m, grey, cv::COLOR_BGR2GRAY);
  m.convertTo(deep, CV_16UC3, 257.0);  // 16 bits per channel, v * 257 = v << 8 | v
  write_image(dir / "rgb.png", m);
  write_image(dir / "rgba.png", bgra);
  write_image(dir / "grey.png", grey);
  write_image(dir / "deep.png", deep);
  const auto view = [&](const char* name, int64_t channels) {
    const auto file = (dir / name).string();
    return decode_view(read_file(file), file, view_of(35, channels));
  };
  const auto rgb = view("rgb.png", 3);
  EXPECT_TRUE(torch::equal(view("rgba.png", 3), rgb));
  EXPECT_TRUE(torch::equal(view("deep.png", 3), rgb));
  const auto from_grey = view("grey.png", 3);
  EXPECT_TRUE(torch::equal(from_grey[0], from_grey[1]) && torch::equal(from_grey[1], from_grey[2]));
  const auto as_grey = view("rgb.png", 1);
  ASSERT_EQ(as_grey.size(0), 1);
  // libpng's RGB -> grey conversion against OpenCV's: within one grey level.
  EXPECT_LE((as_grey[0].to(torch::kInt) - view("grey.png", 1)[0].to(torch::kInt)).abs().max().item<int>(), 1);
}

TEST(ImageViewRule, RandomResizedCropsAreDrawnFromTheirSeed) {
  auto image = torch::arange(3 * 60 * 90, torch::kInt64).remainder(251).to(torch::kUInt8).reshape({3, 60, 90});
  ImageView view = view_of(24);
  std::mt19937_64 a(5), b(5), c(6);
  const auto first = random_resized_crop(image, view, a);
  EXPECT_EQ(first.sizes(), (std::vector<int64_t>{3, 24, 24}));
  EXPECT_TRUE(torch::equal(first, random_resized_crop(image, view, b)));
  EXPECT_FALSE(torch::equal(first, random_resized_crop(image, view, c)));
  // The whole image, square, crop 1: the crop is the image itself, resized as upsample_bilinear2d does.
  auto square = image.slice(2, 0, 60).contiguous();
  view.crop_min = view.crop_max = 1.0;
  std::mt19937_64 d(1);
  const auto whole = random_resized_crop(square, view, d);
  const auto want = torch::upsample_bilinear2d(square.unsqueeze(0).to(torch::kFloat), {24, 24}, false).squeeze(0).round().to(torch::kUInt8);
  EXPECT_TRUE(torch::equal(whole, want));
}

TEST(ImageViewRule, BadSettingsAreRefused) {
  for (auto bad : {view_of(4), view_of(64, 2), view_of(5000)}) EXPECT_THROW(bad.check(), Error);
  auto v = view_of(64);
  v.eval_resize = 1.5;
  EXPECT_THROW(v.check(), Error);
  v.eval_resize = 0.875;
  v.crop_min = 0.9;
  v.crop_max = 0.5;
  EXPECT_THROW(v.check(), Error);
  EXPECT_EQ(parse_crop_scale("0.2,0.9"), std::make_pair(0.2, 0.9));
  EXPECT_THROW(parse_crop_scale("0.2"), Error);
  EXPECT_THROW(parse_crop_scale("a,b"), Error);
}

TEST(ImageCacheBudget, DropsTheLeastRecentlyUsedFirst) {
  ImageCache cache(250);
  const auto image = [](int v) { return torch::full({100}, v, torch::kUInt8); };
  cache.put(1, image(1));
  cache.put(2, image(2));
  ASSERT_TRUE(cache.get(1).defined());  // 1 is now more recent than 2
  cache.put(3, image(3));
  EXPECT_TRUE(cache.get(1).defined());
  EXPECT_FALSE(cache.get(2).defined());
  EXPECT_TRUE(cache.get(3).defined());
  EXPECT_EQ(cache.bytes(), 200u);
  cache.put(4, torch::zeros({300}, torch::kUInt8));  // larger than the budget: never kept
  EXPECT_FALSE(cache.get(4).defined());
  EXPECT_EQ(cache.get(3)[0].item<int>(), 3);
}

TEST(ImageLists, ReadColumnsInAnyOrderPathsRelativeToTheFile) {
  const auto dir = temp_dir("photo_list");
  for (const char* name : {"a.png", "b.png", "c.png", "sub/d.png"}) write_image(dir / name, pattern(10, 12));
  write_text(dir / "list.csv", "label,split,path\n10,train,a.png\n2,train,b.png\n10,test,c.png\n2,test,sub/d.png\n");
  const auto list = read_image_list((dir / "list.csv").string());
  EXPECT_EQ(list.class_names, (std::vector<std::string>{"2", "10"}));  // numerically
  EXPECT_EQ(list.labels, (std::vector<int64_t>{1, 0, 1, 0}));
  EXPECT_EQ(list.test, (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(list.paths[3], (dir / "sub/d.png").string());
  // Without a split column every fifth image of a class tests.
  std::string rows = "path,label\n";
  for (int i = 0; i < 10; ++i) rows += std::string(i % 2 ? "a.png" : "b.png").insert(1, std::to_string(i)) + "," + (i % 2 ? "x" : "y") + "\n";
  for (int i = 0; i < 10; ++i) write_image(dir / (std::string(i % 2 ? "a.png" : "b.png").insert(1, std::to_string(i))), pattern(8, 8));
  write_text(dir / "nosplit.csv", rows);
  const auto plain = read_image_list((dir / "nosplit.csv").string());
  EXPECT_EQ(std::count(plain.test.begin(), plain.test.end(), true), 2);
  EXPECT_TRUE(plain.test[8] && plain.test[9]);  // the fifth x and the fifth y
}

TEST(ImageLists, BadListsNameTheLine) {
  const auto dir = temp_dir("photo_list_bad");
  write_image(dir / "a.png", pattern(10, 12));
  const auto list = [&](const std::string& text) {
    write_text(dir / "l.csv", text);
    return (dir / "l.csv").string();
  };
  expect_error([&] { read_image_list(list("file,label\na.png,x\n")); }, "l.csv:1", "must name the columns path and label");
  expect_error([&] { read_image_list(list("path,label\nmissing.png,x\n")); }, "l.csv:2", "no such image file");
  expect_error([&] { read_image_list(list("path,label\na.png,\n")); }, "l.csv:2", "no label");
  expect_error([&] { read_image_list(list("path,label\na.png,x\n./a.png,y\n")); }, "l.csv:3", "listed already, on line 2");
  expect_error([&] { read_image_list(list("path,label,split\na.png,x,val\n")); }, "l.csv:2", "is not train or test");
  expect_error([&] { read_image_list(list("path,label\n")); }, "l.csv", "lists no images");
  expect_error([&] { read_image_list(list("")); }, "l.csv", "empty list file");
  expect_error([&] { read_image_list((dir / "none.csv").string()); }, "none.csv", "no such list file");
}

TEST(ImageFolders, MixedSizesAndFormatsStreamThroughTheView) {
  const auto dir = temp_dir("photo_folder");
  int seed = 0;
  for (const char* split : {"train", "test"}) {
    for (const char* cls : {"cat", "dog"}) {
      write_image(dir / split / cls / "a.jpg", pattern(50 + seed, 90, seed));
      write_image(dir / split / cls / "b.png", pattern(120, 40 + seed, seed + 1));
      write_image(dir / split / cls / "c.webp", pattern(64, 64, seed + 2));
      write_image(dir / split / cls / "d.bmp", pattern(31, 77, seed + 3));
      seed += 10;
    }
  }
  ImageReadOptions o;
  o.view = view_of(32);
  const auto data = open_data("folder:" + dir.string(), silent_logger(), o);
  ASSERT_EQ(data.train.size(), 8);
  ASSERT_EQ(data.test.size(), 8);
  EXPECT_FALSE(data.train.in_memory());
  EXPECT_EQ(data.train.class_names(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(data.train.labels(), (std::vector<int64_t>{0, 1, 0, 1, 0, 1, 0, 1}));  // interleaved: the last validate
  // The test split too, so that the first N under --subset hold every class.
  EXPECT_EQ(data.test.labels(), (std::vector<int64_t>{0, 1, 0, 1, 0, 1, 0, 1}));
  EXPECT_EQ(data.test.item_path(1), (dir / "test/dog/a.jpg").string());
  SplitOptions quick;
  quick.validation_size(2).subset(2);
  EXPECT_EQ(make_splits(data, quick).test.labels(), (std::vector<int64_t>{0, 1}));
  const auto x = data.train.gather({0, 1, 2, 3, 7});
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{5, 3, 32, 32}));
  // Item 2 is train/cat/b.png: its view equals OpenCV's resize and centre crop of the file.
  EXPECT_EQ(data.train.item_path(2), (dir / "train/cat/b.png").string());
  const auto want = expected_view(cv::imread(data.train.item_path(2), cv::IMREAD_COLOR), 37, 32);
  EXPECT_TRUE(torch::equal(data.train.pixels({2})[0], want));
  // Training crops: the same draw gives the same batch in any thread; another draw another.
  const auto crops = data.train.with_random_crops(3);
  EXPECT_TRUE(torch::equal(crops.gather_drawn({0, 5}, 11), crops.subset({0, 5}, "s").gather_drawn({0, 1}, 11)));
  EXPECT_FALSE(torch::equal(crops.gather_drawn({0, 5}, 11), crops.gather_drawn({0, 5}, 12)));
  EXPECT_TRUE(torch::equal(data.train.gather_drawn({0, 5}, 11), data.train.gather({0, 5})));  // no crops: the view
}

TEST(ImageFolders, TheCacheStaysWithinItsBudget) {
  const auto dir = temp_dir("photo_cache");
  for (int i = 0; i < 12; ++i) write_image(dir / "train" / (i % 2 ? "a" : "b") / (std::to_string(i) + ".png"), pattern(70, 70, i));
  for (int i = 0; i < 4; ++i) write_image(dir / "test" / (i % 2 ? "a" : "b") / (std::to_string(i) + ".png"), pattern(70, 70, i));
  ImageReadOptions o;
  o.view = view_of(56);  // resize side 64: 3 x 64 x 64 = 12,288 bytes an image
  o.cache_bytes = 40'000;
  const auto data = open_data("folder:" + dir.string(), silent_logger(), o);
  std::vector<int64_t> all(12);
  std::iota(all.begin(), all.end(), 0);
  const auto first = data.train.gather(all);
  EXPECT_LE(data.train.files()->cache().bytes(), 40'000u);
  EXPECT_GE(data.train.files()->cache().bytes(), 3 * 12'288u);
  EXPECT_TRUE(torch::equal(first, data.train.gather(all)));  // decoded again where dropped: the same
}

TEST(ImageFolders, BadFilesFailOrAreSkippedAndCounted) {
  const auto dir = temp_dir("photo_bad");
  for (const char* split : {"train", "test"}) {
    for (const char* cls : {"a", "b"}) {
      for (int i = 0; i < 3; ++i) write_image(dir / split / cls / (std::to_string(i) + ".jpg"), pattern(40, 50, i));
    }
  }
  const auto good = read_file((dir / "train/a/0.jpg").string());
  write_text(dir / "train/a/empty.jpg", "");
  write_text(dir / "train/a/text.jpg", "this is not an image\n");
  write_text(dir / "train/b/truncated.jpg", good.substr(0, good.size() / 2));
  // A PNG header declaring 60,000 x 60,000 pixels (a decompression bomb): refused before decoding.
  cv::Mat tiny(1, 1, CV_8UC3, cv::Scalar::all(1));
  std::vector<uchar> png;
  cv::imencode(".png", tiny, png);
  std::string bomb(png.begin(), png.end());
  const auto be32 = [](uint32_t v) { return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; };
  bomb.replace(16, 8, be32(60000) + be32(60000));
  const auto crc = crc32(0, reinterpret_cast<const Bytef*>(bomb.data() + 12), 17);
  bomb.replace(29, 4, be32(static_cast<uint32_t>(crc)));
  write_text(dir / "train/b/bomb.png", bomb);

  ImageReadOptions o;
  o.view = view_of(32);
  expect_error([&] { open_data("folder:" + dir.string(), silent_logger(), o); }, "train/a/empty.jpg", "empty file");
  o.on_bad_image = BadImagePolicy::Skip;
  WarningLines lines;
  const auto data = open_data("folder:" + dir.string(), lines, o);
  EXPECT_EQ(data.train.size(), 6);
  ASSERT_EQ(lines.warnings.size(), 1u);
  const auto& w = lines.warnings[0];
  EXPECT_NE(w.find("skipped 4 of 16 image files"), std::string::npos) << w;
  EXPECT_NE(w.find("empty.jpg (empty file"), std::string::npos) << w;
  EXPECT_NE(w.find("bomb.png (image of 3600000000 pixels"), std::string::npos) << w;
  EXPECT_NE(w.find(", ..."), std::string::npos) << w;
  const auto problem = check_image_file((dir / "train/b/truncated.jpg").string(), kMaxImagePixels);
  EXPECT_NE(problem.find("truncated JPEG"), std::string::npos) << problem;
}

TEST(ImageFolders, ClassesAndFoldersThatCannotTrainAreRefused) {
  const auto dir = temp_dir("photo_classes");
  ImageReadOptions o;
  o.view = view_of(32);
  for (const char* split : {"train", "test"}) {
    for (int i = 0; i < 2; ++i) write_image(dir / split / "a" / (std::to_string(i) + ".png"), pattern(20, 30, i));
  }
  write_image(dir / "train/b/0.png", pattern(20, 30));
  write_image(dir / "test/b/0.png", pattern(20, 30));
  expect_error([&] { open_data("folder:" + dir.string(), silent_logger(), o); }, "class 'b'", "has 1 training image(s)");
  write_image(dir / "train/b/1.png", pattern(20, 30));
  fs::create_directories(dir / "train/c");  // an empty class folder
  expect_error([&] { open_data("folder:" + dir.string(), silent_logger(), o); }, "class 'c'", "has 0 training image(s)");
  fs::remove(dir / "train/c");
  fs::create_directories(dir / "train/b/frames");
  expect_error([&] { open_data("folder:" + dir.string(), silent_logger(), o); }, "train/b/frames", "sequence folders need images of one size");
  fs::remove(dir / "train/b/frames");
  fs::create_symlink("loop.png", dir / "train/b/loop.png");  // a symlink to itself
  o.on_bad_image = BadImagePolicy::Skip;
  WarningLines lines;
  EXPECT_EQ(open_data("folder:" + dir.string(), lines, o).train.size(), 4);
  ASSERT_EQ(lines.warnings.size(), 1u);
  EXPECT_NE(lines.warnings[0].find("loop.png"), std::string::npos) << lines.warnings[0];
  expect_error([&] { open_data("list:" + (dir / "l.csv").string(), silent_logger(), ImageReadOptions()); }, "list:", "--image-size");
}
