#pragma once
/// \file archive_file.h  LibTorch archives (model files, checkpoints) written atomically with a
/// checksum of their contents, and read back checked.

#include <torch/torch.h>

#include <string>

namespace siamese {

/// The key of the checksum entry save_archive adds to an archive.
constexpr const char* kArchiveChecksumKey = "checksum";

/// Serialises `archive` in memory, adds the entry kArchiveChecksumKey (archive_checksum of what
/// was serialised) and writes the bytes with write_file_atomically: a full disk or any other write
/// failure gives one siamese::Error(IOError) naming `path`, the temporary file is removed and an
/// existing file stays as it was. `archive` keeps the added entry. Throws siamese::Error(Internal)
/// when LibTorch cannot serialise the archive.
void save_archive(torch::serialize::OutputArchive& archive, const std::string& path);

/// Loads the archive in `path` into `archive` and checks its checksum. `what` names the kind of
/// file in messages ("model file", "checkpoint"). Throws siamese::Error(Corruption) naming `path`:
/// "corrupt WHAT (checksum mismatch)" when the contents differ from what was saved, "corrupt or
/// unreadable WHAT (...)" when LibTorch cannot read it. An archive without a checksum entry (files
/// written before they carried one) is accepted unchecked. Returns whether it held a checksum.
/// Its tensors are loaded onto `device` (default the CPU), wherever they were saved from.
bool load_archive(torch::serialize::InputArchive& archive, const std::string& path, const std::string& what,
                  c10::Device device = c10::kCPU);

/// The checks load_archive makes of an archive's bytes before LibTorch parses them (any zip file
/// LibTorch reads: model files, checkpoints, files saved by Python's torch.save): every entry
/// reads whole with the size and CRC-32 its zip directory records, and LibTorch's own zip reader
/// lists the same entries with the same bytes. Throws siamese::Error(Corruption) naming `path`,
/// "corrupt WHAT (...)".
void check_archive_bytes(const std::string& bytes, const std::string& path, const std::string& what);

/// 16 hex digits: 64-bit FNV-1a of every entry of `archive` but kArchiveChecksumKey, in key order,
/// each as its key, its kind and its value (tensors: dtype, shape and bytes; nested archives
/// entry by entry). Equal for an archive and the same archive saved and loaded again.
std::string archive_checksum(torch::serialize::InputArchive& archive);

}  // namespace siamese
