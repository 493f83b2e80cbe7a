#pragma once
// Base64 for the service tests, from OpenSSL (an encoder other than the one under test).
#include <openssl/evp.h>

#include <string>
#include <vector>

namespace siamese::testing {

inline std::string base64(const std::string& bytes) {
  std::vector<unsigned char> out(4 * ((bytes.size() + 2) / 3) + 1);
  const int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<size_t>(n));
}

}  // namespace siamese::testing
