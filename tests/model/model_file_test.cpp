// Model files under faults: a disk that fills during a save.
#include "siamese/model/model_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "siamese/core/error.h"
#include "test_util.h"

using namespace siamese;
namespace fs = std::filesystem;

namespace {

/// Set in the environment of the child FullDiskDuringASaveKeepsTheOldModel starts: its folder.
constexpr const char* kFullDiskVariable = "SIAMESE_TEST_MODEL_FULL_DISK_DIR";
/// The child may write files of at most this many bytes (the model file is ~3 MB).
constexpr rlim_t kFileSizeLimit = 64 * 1024;

SiameseNetwork seeded_network(uint64_t seed) {
  torch::manual_seed(seed);
  return SiameseNetwork(SiameseNetworkOptions());
}

std::vector<std::string> temporary_files(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(e.path().string());
  }
  return found;
}

}  // namespace

// The child of FullDiskDuringASaveKeepsTheOldModel, in a process of its own whose files may not
// grow past kFileSizeLimit (writes fail with EFBIG, SIGXFSZ ignored). Skipped in a normal run.
TEST(ModelFileFaults, FullDiskChildSaves) {
  const char* dir = std::getenv(kFullDiskVariable);
  if (!dir) GTEST_SKIP() << "runs only as the child of FullDiskDuringASaveKeepsTheOldModel";
  ::signal(SIGXFSZ, SIG_IGN);
  const rlimit limit{kFileSizeLimit, kFileSizeLimit};
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  auto network = seeded_network(2);
  const auto path = (fs::path(dir) / "model.pt").string();
  try {
    save_model(path, network, 0.5, "{\"attempt\": 2}");
    ADD_FAILURE() << "save_model succeeded past the file size limit";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::IOError) << e.what();
    EXPECT_EQ(e.path(), path) << e.what();
    EXPECT_NE(std::string(e.what()).find("File too large"), std::string::npos) << e.what();
  }
}

TEST(ModelFileFaults, FullDiskDuringASaveKeepsTheOldModel) {
  const auto dir = siamese::testing::temp_dir("model_full_disk");
  const auto path = (dir / "model.pt").string();
  auto network = seeded_network(1);
  save_model(path, network, 0.25, "{\"attempt\": 1}");
  const auto before = siamese::testing::read_file(path);
  ASSERT_GT(before.size(), 10 * kFileSizeLimit);
  const auto log = (fs::temp_directory_path() / ("siamese_model_full_disk_" + std::to_string(::getpid()) + ".log")).string();
  fs::remove(log);
  const pid_t child = siamese::testing::spawn_test_child("ModelFileFaults.FullDiskChildSaves", kFullDiskVariable, dir.string(), log);
  ASSERT_GT(child, 0);
  const int code = siamese::testing::wait_for(child);
  EXPECT_EQ(code, 0) << "the saving child failed or died; its output:\n" << siamese::testing::read_file(log);
  EXPECT_TRUE(temporary_files(dir).empty()) << temporary_files(dir)[0];
  EXPECT_TRUE(siamese::testing::read_file(path) == before) << "the old model file changed";
  auto loaded = load_model(path);
  EXPECT_DOUBLE_EQ(loaded.threshold, 0.25);
  EXPECT_EQ(model_fingerprint(loaded.network), model_fingerprint(network));
  fs::remove(log);
}
