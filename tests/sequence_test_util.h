#pragma once
// Helpers shared by the sequence tests (tests/data/sequence_test.cpp, tests/model/rnn_encoder_test.cpp).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "siamese/core/error.h"

namespace siamese::testing {

inline void write(const std::filesystem::path& path, const std::string& text) { std::ofstream(path) << text; }

/// f() throws a siamese::Error of `code` whose message says `a` and `b`, about the file `path`
/// (its path(); "" where none is concerned, or where a line is named as "FILE:LINE: ...").
template <class F>
void expect_error(F&& f, ErrorCode code, const std::string& a, const std::string& b, const std::string& path = "") {
  try {
    f();
    FAIL() << "no error; expected one naming '" << a << "' and '" << b << "'";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.code(), code) << to_string(e.code()) << ": " << m;
    EXPECT_EQ(e.path(), path) << m;
    EXPECT_NE(m.find(a), std::string::npos) << m;
    EXPECT_NE(m.find(b), std::string::npos) << m;
  }
}

/// Random sequences of the given lengths: token ids in [1, vocab) (vocab > 0) or F numeric features.
inline std::vector<torch::Tensor> random_items(const std::vector<int64_t>& lengths, int64_t vocab, int64_t features) {
  std::vector<torch::Tensor> items;
  for (auto t : lengths) {
    items.push_back(vocab > 0 ? torch::randint(1, vocab, {t, 1}).to(torch::kFloat32) : torch::randn({t, features}));
  }
  return items;
}

}  // namespace siamese::testing
