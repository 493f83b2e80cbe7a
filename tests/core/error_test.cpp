// siamese::Error: its category, the file it concerns, and the names of the categories.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "siamese/core/error.h"

using namespace siamese;

TEST(Error, PathFormNamesTheFileFirst) {
  const Error e(ErrorCode::Corruption, "/data/model.pt", "truncated");
  EXPECT_STREQ(e.what(), "/data/model.pt: truncated");
  EXPECT_EQ(e.path(), "/data/model.pt");
  EXPECT_EQ(e.code(), ErrorCode::Corruption);
}

TEST(Error, MessageFormConcernsNoFile) {
  const Error e(ErrorCode::InvalidArgument, "lr must be > 0");
  EXPECT_STREQ(e.what(), "lr must be > 0");
  EXPECT_EQ(e.path(), "");
  EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
}

TEST(Error, IsARuntimeErrorThatKeepsItsCodeAndPathWhenCopied) {
  static_assert(std::is_base_of_v<std::runtime_error, Error>);
  try {
    throw Error(ErrorCode::NotFound, "a.png", "no such file");
  } catch (const std::runtime_error& base) {
    EXPECT_STREQ(base.what(), "a.png: no such file");
    const auto* e = dynamic_cast<const Error*>(&base);
    ASSERT_NE(e, nullptr);
    const Error copy = *e;
    EXPECT_EQ(copy.code(), ErrorCode::NotFound);
    EXPECT_EQ(copy.path(), "a.png");
  }
}

TEST(Error, EveryCodeHasItsName) {
  EXPECT_STREQ(to_string(ErrorCode::InvalidArgument), "invalid argument");
  EXPECT_STREQ(to_string(ErrorCode::NotFound), "not found");
  EXPECT_STREQ(to_string(ErrorCode::Corruption), "corruption");
  EXPECT_STREQ(to_string(ErrorCode::IOError), "I/O error");
  EXPECT_STREQ(to_string(ErrorCode::Unsupported), "unsupported");
  EXPECT_STREQ(to_string(ErrorCode::Internal), "internal");
}
