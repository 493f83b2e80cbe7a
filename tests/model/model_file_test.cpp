// Model files under faults: a disk that fills during a save, and a flipped bit in the weights.
#include "siamese/model/model_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <zlib.h>
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

/// `bad` (which differs from `good` only inside the zip entry of `length` bytes at `start`) with
/// that entry's CRC-32 rewritten wherever the zip records it (data descriptor, central directory),
/// as a tool that re-packs an edited archive would. Also returns how many records were rewritten.
std::pair<std::string, int> with_crc_rewritten(std::string bad, const std::string& good, size_t start, size_t length) {
  const auto crc_of = [&](const std::string& bytes) {
    const auto crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data() + start), static_cast<uInt>(length)));
    return std::string(reinterpret_cast<const char*>(&crc), 4);  // little-endian, as zip stores it
  };
  const std::string before = crc_of(good), after = crc_of(bad);
  int rewritten = 0;
  for (size_t at = bad.find(before); at != std::string::npos; at = bad.find(before, at + 4)) {
    bad.replace(at, 4, after);
    ++rewritten;
  }
  return {bad, rewritten};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

/// load_model(path) must throw Corruption naming `path` with `message` in its text.
void expect_refused(const std::string& path, const std::string& message, const std::string& what) {
  try {
    load_model(path);
    ADD_FAILURE() << "a model with " << what << " was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Corruption) << e.what();
    EXPECT_EQ(e.path(), path);
    EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << what << ": " << e.what();
  }
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
      const std::string what = "bit " + std::to_string(bit) + " of byte " + std::to_string(offset + 1) + " flipped";
      // The zip's own CRC-32 catches it before LibTorch reads the archive ...
      write_bytes(path, bad);
      expect_refused(path, "corrupt model file (archive/data/", what);
      expect_refused(path, "CRC error", what);
      // ... and the checksum of the contents still does when the CRC was rewritten to match.
      const auto [repacked, rewritten] = with_crc_rewritten(bad, good, offset_of(good, weight, 0), static_cast<size_t>(weight.numel()) * 4);
      EXPECT_EQ(rewritten, 2) << "the weight entry's CRC should be in its data descriptor and the central directory";
      write_bytes(path, repacked);
      expect_refused(path, "corrupt model file (checksum mismatch)", what + ", CRC rewritten");
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
