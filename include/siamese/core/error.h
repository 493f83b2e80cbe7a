#pragma once
/// \file error.h  The one exception type the library throws for bad input and I/O failures.

#include <stdexcept>
#include <string>

namespace siamese {

/// What kind of failure an Error is, so that callers can react without reading its message (a
/// service maps them to HTTP codes: InvalidArgument 400, NotFound 404, Unsupported 415 or 501,
/// Corruption and IOError 500, Internal 500).
enum class ErrorCode {
  InvalidArgument,  ///< a bad option value, shape, flag combination or data content (NaN, empty class)
  NotFound,         ///< a file, folder, key or class that does not exist
  Corruption,       ///< a file that exists but is truncated, has a bad checksum or a wrong format
  IOError,          ///< reading or writing failed (disk full, permissions, flush)
  Unsupported,      ///< a valid request this build or format version does not handle
  Internal,         ///< a failure inside a library we call that no input explains
};

/// "invalid argument", "not found", "corruption", "I/O error", "unsupported", "internal".
const char* to_string(ErrorCode code);

/// Thrown for every user-facing failure. The message says what went wrong, where (file name) and
/// what was expected; what() is "PATH: PROBLEM" when a file is concerned. Internal invariants use
/// TORCH_INTERNAL_ASSERT instead. Copyable and immutable: safe to pass between threads.
class Error : public std::runtime_error {
 public:
  /// A failure that concerns no particular file.
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  /// A failure concerning `path` (a file, folder or key): what() is "path: problem".
  Error(ErrorCode code, const std::string& path, const std::string& problem)
      : std::runtime_error(path + ": " + problem), code_(code), path_(path) {}

  ErrorCode code() const { return code_; }
  /// The file (or folder, or key) the failure concerns; "" when none.
  const std::string& path() const { return path_; }

 private:
  ErrorCode code_;
  std::string path_;
};

}  // namespace siamese
