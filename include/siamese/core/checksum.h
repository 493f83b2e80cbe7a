#pragma once
// FNV-1a, 64-bit: a fast, stable checksum of bytes (fingerprints, corruption checks), the same
// on every platform and build, unlike std::hash.

#include <cstddef>
#include <cstdint>

namespace siamese {

constexpr uint64_t kFnv1aOffset = 1469598103934665603ull;

/// Hash of `size` bytes at `data`, continuing from `hash` (pass a previous result to chain).
inline uint64_t fnv1a(const void* data, size_t size, uint64_t hash = kFnv1aOffset) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  return hash;
}

}  // namespace siamese
