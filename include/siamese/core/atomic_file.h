#pragma once
// Atomic file replacement: write to a temporary name beside the target, flush it to disk, rename.

#include <functional>
#include <string>

namespace siamese {

/// Calls write(temporary_path), fsyncs that file, then renames it onto `path`. On any failure the
/// temporary file is removed, `path` is left as it was, and the exception propagates.
void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write);

/// write_atomically for a text file.
void write_text_atomically(const std::string& path, const std::string& text);

}  // namespace siamese
