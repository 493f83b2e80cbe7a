#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>

#include "siamese/core/embeddings_file.h"
#include "siamese/core/error.h"
#include "test_util.h"

using namespace siamese;
using siamese::testing::read_file;
using siamese::testing::temp_dir;

namespace {

/// The parts of a .npy file, checked against NumPy's format 1.0 on the way.
struct Npy {
  std::string header;  ///< the dict, padding and '\n' included
  std::string data;
};
Npy parse_npy(const std::string& bytes) {
  Npy n;
  EXPECT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const auto len = static_cast<size_t>(static_cast<uint8_t>(bytes[8])) | static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8;
  EXPECT_EQ((10 + len) % 64, 0u) << "data must start at a multiple of 64";
  n.header = bytes.substr(10, len);
  n.data = bytes.substr(10 + len);
  EXPECT_EQ(n.header.back(), '\n');
  return n;
}

/// Little-endian bytes of the values, written by hand.
template <typename T>
std::string le_bytes(const std::vector<T>& values) {
  std::string out;
  for (T v : values) {
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    for (size_t i = 0; i < sizeof v; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xff);
  }
  return out;
}

}  // namespace

TEST(EmbeddingsFile, NpyIsNumPyFormatOneByteForByte) {
  auto dir = temp_dir("npy");
  const std::vector<float> values{0.5f, -1.25f, 3.0f, 1e-3f, 7.0f, -0.0f};
  const auto e = torch::tensor(values).reshape({3, 2});
  const std::vector<int64_t> labels{4, -1, 1234567890123};
  const auto path = (dir / "e.npy").string();
  write_embeddings(path, e, labels);

  auto f = parse_npy(read_file(path));
  EXPECT_EQ(f.header.substr(0, f.header.find('}') + 1), "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }");
  EXPECT_EQ(f.header.find_first_not_of(' ', f.header.find('}') + 1), f.header.size() - 1);  // spaces, then '\n'
  EXPECT_EQ(f.data, le_bytes(values));

  EXPECT_EQ(labels_npy_path(path), (dir / "e.labels.npy").string());
  auto l = parse_npy(read_file(dir / "e.labels.npy"));
  EXPECT_EQ(l.header.substr(0, l.header.find('}') + 1), "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }");
  EXPECT_EQ(l.data, le_bytes(labels));

  // Any device and layout: a transposed (non-contiguous) array is written in C order.
  write_npy((dir / "t.npy").string(), e.t());
  auto t = parse_npy(read_file(dir / "t.npy"));
  EXPECT_NE(t.header.find("'shape': (2, 3)"), std::string::npos) << t.header;
  EXPECT_EQ(t.data, le_bytes(std::vector<float>{0.5f, 3.0f, 7.0f, -1.25f, 1e-3f, -0.0f}));

  EXPECT_THROW(write_npy((dir / "d.npy").string(), torch::zeros({2}, torch::kFloat64)), Error);
  EXPECT_THROW(write_npy((dir / "r.npy").string(), torch::zeros({2, 2, 2})), Error);
  EXPECT_THROW(write_embeddings((dir / "m.npy").string(), e, {1}), Error);  // labels missing
  EXPECT_FALSE(std::filesystem::exists(dir / "m.npy"));
}

TEST(EmbeddingsFile, BinaryFormatIsAsDocumentedAndReadsBack) {
  auto dir = temp_dir("embeddings_bin");
  const std::vector<float> values{1.0f, 2.0f, -3.5f, 0.25f};
  const std::vector<int64_t> labels{0, -1};
  const auto path = (dir / "e.bin").string();
  write_embeddings(path, torch::tensor(values).reshape({2, 2}), labels);
  EXPECT_EQ(read_file(path), "SIAMEMB1" + le_bytes(std::vector<int64_t>{2, 2}) + le_bytes(values) + le_bytes(labels));
  auto back = read_embeddings_bin(path);
  EXPECT_TRUE(torch::equal(back.embeddings, torch::tensor(values).reshape({2, 2})));
  EXPECT_EQ(back.labels, labels);

  std::filesystem::resize_file(path, 30);
  try {
    read_embeddings_bin(path);
    FAIL() << "a truncated file was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::Corruption) << e.what();
    EXPECT_EQ(e.path(), path);
  }
  try {
    read_embeddings_bin((dir / "none.bin").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound) << e.what();
  }
}
