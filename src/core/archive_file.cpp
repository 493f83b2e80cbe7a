#include "siamese/core/archive_file.h"

#include <sstream>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"

namespace siamese {

void save_archive(torch::serialize::OutputArchive& archive, const std::string& path) {
  // In memory first: LibTorch's file writer throws from its destructor when the disk fills, which
  // ends the process; the bytes are then written by write_file_atomically, every write checked.
  std::string bytes;
  try {
    std::ostringstream out;
    archive.save_to(out);
    bytes = std::move(out).str();
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Internal, path, std::string("cannot serialise (") + e.what_without_backtrace() + ")");
  }
  write_file_atomically(path, bytes);
}

void load_archive(torch::serialize::InputArchive& archive, const std::string& path, const std::string& what) {
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::Corruption, path,
                "corrupt or unreadable " + what + " (" + e.what_without_backtrace() + ")");
  }
}

}  // namespace siamese
