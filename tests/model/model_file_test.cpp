// Model files under faults: a disk that fills during a save, and a flipped bit in the weights.
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

/// The offset in `file` of the bytes of `tensor`'s element `at` (float32, stored raw): found by
/// searching the file for the 64 bytes from that element on. npos when not found exactly once.
size_t offset_of(const std::string& file, const torch::Tensor& tensor, int64_t at) {
  auto c = tensor.detach().contiguous();
  const std::string needle(static_cast<const char*>(c.data_ptr()) + at * 4, 64);
  const size_t first = file.find(needle);
  if (first == std::string::npos || file.find(needle, first + 1) != std::string::npos) return std::string::npos;
  return first;
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

TEST(ModelFileFaults, FlippedBitInTheWeightsIsRefused) {
  const auto dir = siamese::testing::temp_dir("model_flip");
  const auto path = (dir / "model.pt").string();
  auto network = seeded_network(3);
  save_model(path, network, 0.5);
  const auto good = siamese::testing::read_file(path);
  // The largest weight tensor, found in the file by its own bytes; bits flipped across it.
  torch::Tensor weight;
  for (const auto& p : network->parameters()) {
    if (!weight.defined() || p.numel() > weight.numel()) weight = p;
  }
  for (double where : {0.0, 0.25, 0.5, 0.75, 0.999}) {
    const auto at = static_cast<int64_t>(where * static_cast<double>(weight.numel() - 16));
    const size_t offset = offset_of(good, weight, at);
    ASSERT_NE(offset, std::string::npos) << "element " << at << " not found in the file";
    for (int bit : {0, 7}) {  // a low and a high bit of a byte inside the weight
      std::string bad = good;
      bad[offset + 1] = static_cast<char>(bad[offset + 1] ^ (1 << bit));
      {
        std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
      }
      try {
        load_model(path);
        ADD_FAILURE() << "a model with bit " << bit << " of byte " << offset + 1 << " flipped was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::Corruption) << e.what();
        EXPECT_EQ(e.path(), path);
        EXPECT_NE(std::string(e.what()).find("corrupt model file (checksum mismatch)"), std::string::npos) << e.what();
      }
    }
  }
  {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << good;
  }
  auto restored = load_model(path);
  EXPECT_EQ(model_fingerprint(restored.network), model_fingerprint(network));
}

TEST(ModelFileFaults, FileWithoutAChecksumFromEarlierVersionsStillLoads) {
  // Written as save_model wrote model files before they carried a checksum.
  const auto dir = siamese::testing::temp_dir("model_old");
  const auto path = (dir / "model.pt").string();
  auto network = seeded_network(4);
  torch::serialize::OutputArchive archive;
  archive.write("format", c10::IValue(std::string("siamese-model")));
  archive.write("version", c10::IValue(kModelFormatVersion));
  archive.write("config", c10::IValue(to_json(network->options)));
  archive.write("threshold", c10::IValue(0.75));
  archive.write("info", c10::IValue(std::string("{}")));
  torch::serialize::OutputArchive weights;
  network->save(weights);
  archive.write("network", weights);
  archive.save_to(path);
  auto loaded = load_model(path);
  EXPECT_DOUBLE_EQ(loaded.threshold, 0.75);
  EXPECT_EQ(model_fingerprint(loaded.network), model_fingerprint(network));
}
