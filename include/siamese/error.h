#pragma once
/// \file error.h  The one exception type the library throws for bad input and I/O failures.

#include <stdexcept>
#include <string>

namespace siamese {

/// Thrown for every user-facing failure: a missing or corrupt file, a wrong shape, an unknown
/// option value, a NaN loss. The message says what went wrong, where (file name) and what was
/// expected. Internal invariants use TORCH_INTERNAL_ASSERT instead.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace siamese
