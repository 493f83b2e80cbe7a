#pragma once
/// \file archive_file.h  LibTorch archives (model files, checkpoints) serialised in memory and
/// written atomically, every write checked.

#include <torch/torch.h>

#include <string>

namespace siamese {

/// Serialises `archive` in memory and writes the bytes with write_file_atomically: a full disk or
/// any other write failure gives one siamese::Error(IOError) naming `path`, the temporary file is
/// removed and an existing file stays as it was. Throws siamese::Error(Internal) when LibTorch
/// cannot serialise the archive.
void save_archive(torch::serialize::OutputArchive& archive, const std::string& path);

/// Loads the archive in `path` into `archive`. `what` names the kind of file in messages ("model
/// file", "checkpoint"): throws siamese::Error(Corruption) naming `path`, "corrupt or unreadable
/// WHAT (...)", when LibTorch cannot read it.
void load_archive(torch::serialize::InputArchive& archive, const std::string& path, const std::string& what);

}  // namespace siamese
