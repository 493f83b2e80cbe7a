#pragma once
// Helpers shared by the sequence tests (tests/data/sequence_test.cpp, tests/model/rnn_encoder_test.cpp,
// tests/cli/sequence_cli_test.cpp, tests/train/distributed_test.cpp).

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <random>
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

/// Text lines "noisy copy of a class template<TAB>class": each class a random string of 20-40
/// letters, each item that string with 15% of its letters replaced. Test classes are new templates.
inline void write_text_set(const std::filesystem::path& dir, int train_classes, int test_classes, int per_class) {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> letter('a', 'p'), length(20, 40);
  std::uniform_real_distribution<double> u(0, 1);
  auto write = [&](const std::string& name, int classes, const std::string& prefix) {
    std::ofstream out(dir / name);
    for (int c = 0; c < classes; ++c) {
      std::string base(length(rng), ' ');
      for (auto& ch : base) ch = static_cast<char>(letter(rng));
      for (int i = 0; i < per_class; ++i) {
        std::string item = base;
        for (auto& ch : item) ch = u(rng) < 0.15 ? static_cast<char>(letter(rng)) : ch;
        out << item << '\t' << prefix << c << '\n';
      }
    }
  };
  std::filesystem::create_directories(dir);
  write("train.tsv", train_classes, "k");
  write("test.tsv", test_classes, "t");
}

}  // namespace siamese::testing
