#include "siamese/core/embeddings_file.h"

#include <filesystem>
#include <fstream>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"

namespace siamese {

namespace {

constexpr char kBinMagic[] = "SIAMEMB1";

void require_little_endian() {
  const uint16_t one = 1;
  if (*reinterpret_cast<const unsigned char*>(&one) != 1) {
    throw Error(ErrorCode::Unsupported, "embedding files: this host is big-endian; the formats are little-endian");
  }
}

/// The embeddings as float32 [N, D] contiguous on the CPU, checked against the labels.
torch::Tensor checked_embeddings(const torch::Tensor& embeddings, const std::vector<int64_t>& labels) {
  if (embeddings.dim() != 2 || embeddings.size(0) != static_cast<int64_t>(labels.size())) {
    throw Error(ErrorCode::InvalidArgument, "embedding files: need embeddings [N, D] and N labels, got " +
                                                std::to_string(embeddings.dim()) + "-D embeddings of " +
                                                std::to_string(embeddings.dim() > 0 ? embeddings.size(0) : 0) +
                                                " rows and " + std::to_string(labels.size()) + " labels");
  }
  return embeddings.to(torch::kCPU, torch::kFloat32).contiguous();
}

}  // namespace

void write_npy(const std::string& path, const torch::Tensor& array) {
  require_little_endian();
  const auto type = array.scalar_type();
  if ((type != torch::kFloat32 && type != torch::kInt64) || (array.dim() != 1 && array.dim() != 2)) {
    throw Error(ErrorCode::InvalidArgument, path, "write_npy takes float32 or int64 arrays of 1 or 2 dimensions");
  }
  const bool is_float = type == torch::kFloat32;
  const auto& t = array;
  std::string shape = "(" + std::to_string(t.size(0)) + (t.dim() == 1 ? "," : ", " + std::to_string(t.size(1))) + ")";
  std::string header = std::string("{'descr': '") + (is_float ? "<f4" : "<i8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  const auto c = array.cpu().contiguous();
  const uint16_t len = static_cast<uint16_t>(header.size());
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes.append(reinterpret_cast<const char*>(&len), 2);
  bytes += header;
  bytes.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  write_file_atomically(path, bytes);  // every write checked: a full disk is an error, not a short file
}

std::string labels_npy_path(const std::string& npy_path) {
  const bool npy = npy_path.size() > 4 && npy_path.substr(npy_path.size() - 4) == ".npy";
  return (npy ? npy_path.substr(0, npy_path.size() - 4) : npy_path) + ".labels.npy";
}

void write_embeddings_bin(const std::string& path, const torch::Tensor& embeddings, const std::vector<int64_t>& labels) {
  require_little_endian();
  const auto e = checked_embeddings(embeddings, labels);
  const int64_t dims[2] = {e.size(0), e.size(1)};
  std::string bytes(kBinMagic, 8);
  bytes.append(reinterpret_cast<const char*>(dims), sizeof dims);
  bytes.append(static_cast<const char*>(e.data_ptr()), e.nbytes());
  bytes.append(reinterpret_cast<const char*>(labels.data()), labels.size() * sizeof(int64_t));
  write_file_atomically(path, bytes);
}

void write_embeddings(const std::string& path, const torch::Tensor& embeddings, const std::vector<int64_t>& labels) {
  if (path.size() > 4 && path.substr(path.size() - 4) == ".npy") {
    const auto e = checked_embeddings(embeddings, labels);
    write_npy(path, e);
    write_npy(labels_npy_path(path), torch::tensor(labels, torch::kInt64));
  } else {
    write_embeddings_bin(path, embeddings, labels);
  }
}

EmbeddingsFile read_embeddings_bin(const std::string& path) {
  require_little_endian();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(std::filesystem::exists(path) ? ErrorCode::IOError : ErrorCode::NotFound, path,
                std::filesystem::exists(path) ? "cannot read" : "no such file");
  }
  char magic[8];
  int64_t dims[2];
  if (!in.read(magic, 8) || std::string(magic, 8) != kBinMagic || !in.read(reinterpret_cast<char*>(dims), sizeof dims)) {
    throw Error(ErrorCode::Corruption, path, "not a file of `siamese embed --out FILE.bin`");
  }
  const auto size = std::filesystem::file_size(path);
  if (dims[0] < 0 || dims[1] < 0 ||
      size != 24 + static_cast<uintmax_t>(dims[0]) * static_cast<uintmax_t>(dims[1] * 4 + 8)) {
    throw Error(ErrorCode::Corruption, path,
                "truncated or damaged: " + std::to_string(size) + " bytes for " + std::to_string(dims[0]) + " x " +
                    std::to_string(dims[1]) + " embeddings with labels");
  }
  EmbeddingsFile f;
  f.embeddings = torch::empty({dims[0], dims[1]}, torch::kFloat32);
  f.labels.resize(static_cast<size_t>(dims[0]));
  in.read(static_cast<char*>(f.embeddings.data_ptr()), static_cast<std::streamsize>(f.embeddings.nbytes()));
  in.read(reinterpret_cast<char*>(f.labels.data()), static_cast<std::streamsize>(f.labels.size() * sizeof(int64_t)));
  if (!in) throw Error(ErrorCode::Corruption, path, "truncated");
  return f;
}

}  // namespace siamese
