// `siamese embed` and the files it must not overwrite, run as a user would run it.
#include <gtest/gtest.h>

#include <filesystem>

#include "small_model_util.h"
#include "test_util.h"

using namespace siamese::testing;
namespace fs = std::filesystem;


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
