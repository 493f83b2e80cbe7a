// The service's request parsers: base64 against httplib's own encoder, bodies, keys, limits.
#include "siamese/serve/request.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <random>

#include "base64_util.h"
#include "siamese/core/error.h"

using namespace siamese;

namespace {

/// f() throws InvalidArgument whose message holds `says`.
template <class F>
void expect_bad(F&& f, const std::string& says) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected an error saying " << says;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(ServeRequest, Base64DecodesWhatAnotherEncoderEncoded) {
  std::mt19937 rng(3);
  for (size_t length = 0; length < 70; ++length) {
    std::string bytes(length, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    EXPECT_EQ(decode_base64(siamese::testing::base64(bytes), "x"), bytes) << "length " << length;
  }
  EXPECT_EQ(decode_base64("aGVsbG8=", "x"), "hello");
  EXPECT_EQ(decode_base64("aGVsbA==", "x"), "hell");
}

TEST(ServeRequest, Base64RefusesWhatIsNotBase64) {
  expect_bad([] { decode_base64("aGVsbG8", "img"); }, "img: not base64 (its length is not a multiple of 4)");
  expect_bad([] { decode_base64("aGV sbG8", "img"); }, "img: not base64 (character 3)");
  expect_bad([] { decode_base64("aG=sbG8=", "img"); }, "not base64");
  expect_bad([] { decode_base64("aGVs=G8=", "img"); }, "not base64");
  expect_bad([] { decode_base64("a===", "img"); }, "not base64");
}

TEST(ServeRequest, EmbedBodiesAreCheckedFieldByField) {
  RequestLimits limits;
  limits.max_inputs = 2;
  limits.max_text_bytes = 5;
  const auto ok = parse_embed_request(R"({"inputs": [{"image": "aGVsbG8="}, {"text": "hi"}]})", limits);
  ASSERT_EQ(ok.size(), 2u);
  EXPECT_EQ(ok[0].kind, RequestInput::Kind::Image);
  EXPECT_EQ(ok[0].data, "hello");
  EXPECT_EQ(ok[1].kind, RequestInput::Kind::Text);
  EXPECT_EQ(ok[1].data, "hi");
  expect_bad([&] { parse_embed_request("{", limits); }, "the body is not JSON");
  expect_bad([&] { parse_embed_request("[1]", limits); }, "the body must be a JSON object");
  expect_bad([&] { parse_embed_request("{}", limits); }, "missing field \"inputs\"");
  expect_bad([&] { parse_embed_request(R"({"inputs": 3})", limits); }, "inputs: must be an array");
  expect_bad([&] { parse_embed_request(R"({"inputs": []})", limits); }, "inputs: empty");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"text":"a"},{"text":"b"},{"text":"c"}]})", limits); }, "3 inputs; at most 2");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"image": 5}]})", limits); }, "inputs[0].image: must be a string");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"image": "aGVsbG8=", "text": "x"}]})", limits); }, "exactly one of");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"text": "  "}]})", limits); }, "inputs[0].text: an empty text");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"text": "toolong"}]})", limits); }, "7 bytes; at most 5");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"image": ""}]})", limits); }, "an empty image");
  expect_bad([&] { parse_embed_request(R"({"inputs": ["x"]})", limits); }, "inputs[0]: an input must be an object");
}

TEST(ServeRequest, SearchKMustBeAnIntegerInRange) {
  RequestLimits limits;
  limits.max_k = 50;
  EXPECT_EQ(parse_search_request(R"({"input": {"text": "a"}})", limits).k, 10);
  EXPECT_EQ(parse_search_request(R"({"input": {"text": "a"}, "k": 50})", limits).k, 50);
  for (const char* k : {"0", "-1", "51", "1.5", "\"3\"", "18446744073709551615", "1e300"}) {
    expect_bad([&] { parse_search_request(std::string(R"({"input": {"text": "a"}, "k": )") + k + "}", limits); }, "k: ");
  }
  expect_bad([&] { parse_compare_request(R"({"a": {"text": "x"}})", limits); }, "missing field \"b\"");
}

TEST(ServeRequest, ItemKeysArePercentDecodedAndChecked) {
  RequestLimits limits;
  limits.max_key_bytes = 8;
  EXPECT_EQ(parse_item_key("shoe%2F1", limits), "shoe/1");
  EXPECT_EQ(parse_item_key("a%20b", limits), "a b");
  expect_bad([&] { parse_item_key("", limits); }, "key: empty");
  expect_bad([&] { parse_item_key("abc%2", limits); }, "two hex digits");
  expect_bad([&] { parse_item_key("abc%zz", limits); }, "two hex digits");
  expect_bad([&] { parse_item_key("a%0Ab", limits); }, "control character");
  expect_bad([&] { parse_item_key("123456789", limits); }, "longer than 8 bytes");
}

TEST(ServeRequest, ItemBodiesHoldAnInputOrAnEmbedding) {
  RequestLimits limits;
  const auto by_vector = parse_item_request(R"({"embedding": [0.5, -1, 2e3], "label": "shoe"})", limits);
  EXPECT_FALSE(by_vector.has_input);
  EXPECT_EQ(by_vector.embedding, (std::vector<float>{0.5f, -1.0f, 2000.0f}));
  EXPECT_EQ(by_vector.label, "shoe");
  const auto by_input = parse_item_request(R"({"input": {"text": "a shoe"}})", limits);
  EXPECT_TRUE(by_input.has_input);
  EXPECT_EQ(by_input.input.data, "a shoe");
  EXPECT_EQ(by_input.label, "");
  expect_bad([&] { parse_item_request(R"({"label": "x"})", limits); }, "exactly one of");
  expect_bad([&] { parse_item_request(R"({"embedding": []})", limits); }, "an array of 1 to 65536 numbers");
  expect_bad([&] { parse_item_request(R"({"embedding": [1, "2"]})", limits); }, "embedding[1]: must be a number");
  expect_bad([&] { parse_item_request(R"({"embedding": [1e39]})", limits); }, "embedding[0]: must be a finite float");
  expect_bad([&] { parse_item_request(R"({"embedding": [1], "label": 3})", limits); }, "label: must be a string");
  expect_bad([&] { parse_item_request(R"({"embedding": [1], "lable": "x"})", limits); }, "unknown field \"lable\"");
}
