#pragma once
/// \file embeddings_file.h  Files of embeddings for other programs: NumPy .npy arrays, and the
/// siamese binary format (`siamese embed --out`). Every file is written atomically
/// (write_atomically): a crash leaves the previous file, if any, as it was.
/// Thread safety: the functions share no state; calls writing different paths may run concurrently.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

/// Writes a NumPy .npy file, format version 1.0: the magic "\x93NUMPY", version 1 0, a
/// little-endian uint16 header length, the header dict
/// "{'descr': '<f4' | '<i8', 'fortran_order': False, 'shape': (N,) | (N, D), }" padded with
/// spaces and ended by '\n' so that the data starts at a multiple of 64 bytes, then the values in
/// C order, little-endian. `array`: float32 or int64, 1-D [N] or 2-D [N, D], any device.
/// Throws siamese::Error(InvalidArgument) on another type or rank, (Unsupported) on a big-endian
/// host, (IOError) naming the file when it cannot be written.
void write_npy(const std::string& path, const torch::Tensor& array);

/// The labels file beside an embeddings .npy: "FILE.npy" -> "FILE.labels.npy".
std::string labels_npy_path(const std::string& npy_path);

/// Writes the siamese binary format: "SIAMEMB1", int64 N, int64 D, N·D float32 (C order), N int64
/// labels, all little-endian. embeddings [N, D] (converted to float32), labels [N] (-1 =
/// unlabelled). Throws siamese::Error(InvalidArgument) on mismatched shapes, (IOError) naming the
/// file when it cannot be written.
void write_embeddings_bin(const std::string& path, const torch::Tensor& embeddings, const std::vector<int64_t>& labels);

/// What `siamese embed` writes: a path ending in ".npy" gives float32 [N, D] there and int64 [N]
/// labels in labels_npy_path(path); any other path, the binary format of write_embeddings_bin.
/// Errors as those functions.
void write_embeddings(const std::string& path, const torch::Tensor& embeddings, const std::vector<int64_t>& labels);

/// A file of write_embeddings_bin read back: embeddings float32 [N, D] on the CPU, labels [N].
struct EmbeddingsFile {
  torch::Tensor embeddings;
  std::vector<int64_t> labels;
};
/// Reads the binary format. Throws siamese::Error naming the file: NotFound when missing,
/// Corruption when it is not that format or is truncated.
EmbeddingsFile read_embeddings_bin(const std::string& path);

}  // namespace siamese
