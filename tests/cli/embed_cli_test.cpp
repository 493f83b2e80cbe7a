// `siamese embed` and the files it must not overwrite, run as a user would run it.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "siamese/model/device.h"
#include "small_model_util.h"
#include "test_util.h"

using namespace siamese::testing;
namespace fs = std::filesystem;

namespace {

/// Two embedding files of 8 items (header of 24 bytes, the floats, 8 labels of 8 bytes): the
/// largest difference between their floats, and the largest float of the first.
std::pair<double, double> float_differences(const std::string& a, const std::string& b) {
  const size_t floats = (a.size() - 24 - 8 * 8) / 4;
  double worst = 0, largest = 0;
  for (size_t i = 0; i < floats; ++i) {
    float x = 0, y = 0;
    std::memcpy(&x, a.data() + 24 + 4 * i, 4);
    std::memcpy(&y, b.data() + 24 + 4 * i, 4);
    worst = std::max(worst, static_cast<double>(std::abs(x - y)));
    largest = std::max(largest, static_cast<double>(std::abs(x)));
  }
  return {worst, largest};
}

}  // namespace

TEST(EmbedCli, RefusesAnExistingOutUnlessForced) {
  const auto dir = temp_dir("embed_force");
  const auto model = (dir / "model.pt").string();
  save_small_model(model);
  write_random_images(dir / "images" / "a", "a", 3, 1);
  write_random_images(dir / "images" / "b", "b", 3, 2);
  const auto out = (dir / "e.bin").string();
  const auto args = "embed --model " + model + " --data " + (dir / "images").string() + " --out " + out;
  auto first = run(args);
  ASSERT_EQ(first.code, 0) << first.out;
  const auto written = read_file(out);
  ASSERT_EQ(written.size(), 8 + 16 + 6 * 16 * 4 + 6 * 8);  // SIAMEMB1, N, D, N*D floats, N labels
  {
    std::ofstream(out, std::ios::binary | std::ios::trunc) << "precious";
  }
  auto again = run(args);
  EXPECT_NE(again.code, 0);
  EXPECT_EQ(lines_of(again.out), 1u) << again.out;
  EXPECT_NE(again.out.find(out + ": exists; pass --force to replace it"), std::string::npos) << again.out;
  EXPECT_EQ(read_file(out), "precious");
  auto forced = run(args + " --force");
  ASSERT_EQ(forced.code, 0) << forced.out;
  EXPECT_TRUE(read_file(out) == written);  // the same embeddings again
}

TEST(EmbedCli, NeverOverwritesTheModelOrAnInputEvenWhenForced) {
  const auto dir = temp_dir("embed_self");
  fs::create_directories(dir / "run");
  const auto model = (dir / "run" / "model.pt").string();
  save_small_model(model);
  const auto image = write_random_images(dir / "images", "x", 2, 3)[0];
  const auto model_bytes = read_file(model), image_bytes = read_file(image);
  fs::create_symlink(model, dir / "alias.bin");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--model " + model + " --data " + image + " --out " + model, model},
      {"--model " + (dir / "run").string() + " --data " + image + " --out " + (dir / "run" / "." / "model.pt").string(),
       "model"},
      {"--model " + model + " --data " + image + " --out " + (dir / "alias.bin").string(), "model"},
      {"--model " + model + " --data " + image + " --out " + image, image},
  };
  for (const auto& [args, named] : cases) {
    auto r = run("embed " + args + " --force");
    EXPECT_NE(r.code, 0) << args;
    EXPECT_EQ(lines_of(r.out), 1u) << r.out;
    EXPECT_NE(r.out.find(named), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("refusing to overwrite"), std::string::npos) << r.out;
  }
  EXPECT_TRUE(read_file(model) == model_bytes);
  EXPECT_TRUE(read_file(image) == image_bytes);
  EXPECT_TRUE(fs::is_symlink(dir / "alias.bin"));
}

TEST(EmbedCli, Int8) {
  const auto dir = temp_dir("embed_int8");
  const auto model = (dir / "model.pt").string(), uncalibrated = (dir / "old.pt").string();
  save_small_model(model, 7, /*int8=*/true);
  save_small_model(uncalibrated);
  write_random_images(dir / "images" / "a", "a", 4, 5);
  write_random_images(dir / "images" / "b", "b", 4, 6);
  const auto data = " --data " + (dir / "images").string() + " --out ";
  const auto exact = (dir / "exact.bin").string(), int8 = (dir / "int8.bin").string();
  ASSERT_EQ(run("embed --model " + model + data + exact).code, 0);
  auto quantized = run("embed --model " + model + data + int8 + " --int8");
  ASSERT_EQ(quantized.code, 0) << quantized.out;
  const auto a = read_file(exact), b = read_file(int8);
  ASSERT_EQ(a.size(), b.size());
  const auto [worst, largest] = float_differences(a, b);
  EXPECT_GT(worst, 0.0) << "--int8 changed nothing";
  EXPECT_LT(worst, 0.1 * largest) << "largest value " << largest;

  for (const auto& [args, message] : {std::pair{"--model " + model + " --int8 --amp", "excludes"},
                                      std::pair{"--model " + uncalibrated + " --int8", "no int8 calibration"}}) {
    const auto out = (dir / "refused.bin").string();
    auto refused = run("embed " + args + data + out);
    EXPECT_NE(refused.code, 0);
    EXPECT_EQ(lines_of(refused.out), 1u) << refused.out;
    EXPECT_NE(refused.out.find(message), std::string::npos) << refused.out;
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST(EmbedCli, DeviceAndAmp) {
  const auto dir = temp_dir("embed_device");
  const auto model = (dir / "model.pt").string();
  save_small_model(model);
  write_random_images(dir / "images" / "a", "a", 4, 5);
  write_random_images(dir / "images" / "b", "b", 4, 6);
  const auto base = "embed --model " + model + " --data " + (dir / "images").string() + " --out ";
  const auto exact = (dir / "exact.bin").string(), mixed = (dir / "amp.bin").string();
  ASSERT_EQ(run(base + exact).code, 0);
  auto amp = run(base + mixed + " --device cpu --amp");
  ASSERT_EQ(amp.code, 0) << amp.out;
  const auto a = read_file(exact), b = read_file(mixed);
  ASSERT_EQ(a.size(), b.size());
  // The same header, labels and shape; bfloat16 moves the floats a little, never far.
  ASSERT_EQ((a.size() - 24 - 8 * 8) / 4, 8u * 16u);
  const auto [worst, largest] = float_differences(a, b);
  EXPECT_GT(worst, 0.0) << "--amp changed nothing";
  EXPECT_LT(worst, 0.05 * largest) << "largest value " << largest;
  EXPECT_EQ(a.substr(a.size() - 64), b.substr(b.size() - 64));

  auto bogus = run(base + (dir / "bogus.bin").string() + " --device gpu");
  EXPECT_NE(bogus.code, 0);
  EXPECT_EQ(lines_of(bogus.out), 1u) << bogus.out;
  EXPECT_NE(bogus.out.find("unknown device 'gpu'"), std::string::npos) << bogus.out;
  if (!siamese::cuda_available()) {
    const auto out = (dir / "cuda.bin").string();
    auto cuda = run(base + out + " --device cuda");
    EXPECT_NE(cuda.code, 0);
    EXPECT_EQ(lines_of(cuda.out), 1u) << cuda.out;
    EXPECT_NE(cuda.out.find("--device cuda: no CUDA GPU here"), std::string::npos) << cuda.out;
    EXPECT_FALSE(fs::exists(out));
    auto automatic = run(base + (dir / "auto.bin").string() + " --device auto");
    ASSERT_EQ(automatic.code, 0) << automatic.out;
    EXPECT_EQ(read_file(dir / "auto.bin"), a);  // auto is the CPU here
  }
}
