#include "siamese/core/error.h"

namespace siamese {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::InvalidArgument: return "invalid argument";
    case ErrorCode::NotFound: return "not found";
    case ErrorCode::Corruption: return "corruption";
    case ErrorCode::IOError: return "I/O error";
    case ErrorCode::Unsupported: return "unsupported";
    case ErrorCode::Internal: return "internal";
  }
  return "unknown";
}

}  // namespace siamese
