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

TEST(ServeRequest, SearchParametersAreOptionalIntegers) {
  RequestLimits limits;
  const auto plain = parse_search_request(R"({"input": {"text": "a"}})", limits);
  EXPECT_EQ(plain.nprobe, 0);
  EXPECT_EQ(plain.ef_search, 0);
  const auto tuned = parse_search_request(R"({"input": {"text": "a"}, "nprobe": 8, "ef_search": 300})", limits);
  EXPECT_EQ(tuned.nprobe, 8);
  EXPECT_EQ(tuned.ef_search, 300);
  expect_bad([&] { parse_search_request(R"({"input": {"text": "a"}, "nprobe": 0})", limits); }, "nprobe: must be an integer in [1, 65536]");
  expect_bad([&] { parse_search_request(R"({"input": {"text": "a"}, "ef_search": 1e9})", limits); }, "ef_search: must be an integer");
  expect_bad([&] { parse_search_request(R"({"input": {"text": "a"}, "nprobes": 3})", limits); }, "unknown field \"nprobes\"");
}

TEST(ServeRequest, OneShotAndSupportBodies) {
  RequestLimits limits;
  limits.max_inputs = 3;
  const std::string support = R"([{"input": {"text": "a"}, "label": "x"}, {"embedding": [1, 2], "label": "y"}])";
  const auto r = parse_oneshot_request(R"({"input": {"text": "q"}, "rule": "nearest", "threshold": 0.25, "support": )" + support + "}", limits);
  EXPECT_EQ(r.input.data, "q");
  EXPECT_EQ(r.rule, "nearest");
  EXPECT_DOUBLE_EQ(r.threshold, 0.25);
  ASSERT_EQ(r.support.size(), 2u);
  EXPECT_EQ(r.support[1].embedding, (std::vector<float>{1, 2}));
  EXPECT_EQ(r.support[1].label, "y");
  const auto defaults = parse_oneshot_request(R"({"input": {"text": "q"}})", limits);
  EXPECT_TRUE(defaults.support.empty());
  EXPECT_EQ(defaults.rule, "mean");
  EXPECT_DOUBLE_EQ(defaults.threshold, -2) << "the model's threshold";
  EXPECT_DOUBLE_EQ(parse_oneshot_request(R"({"input": {"text": "q"}, "threshold": -1})", limits).threshold, -1);
  expect_bad([&] { parse_oneshot_request(R"({"input": {"text": "q"}, "threshold": -7})", limits); }, "threshold: must be a distance >= 0, or -1");
  expect_bad([&] { parse_oneshot_request(R"({"input": {"text": "q"}, "threshold": "0.5"})", limits); }, "threshold: must be");
  EXPECT_EQ(parse_support_request(R"({"examples": )" + support + "}", limits).size(), 2u);
  expect_bad([&] { parse_support_request(R"({"examples": [{"input": {"text": "a"}}, {"input": {"text": "b"}, "label": "y"}]})", limits); },
             "examples[0].label: a support example needs its class");
  expect_bad([&] { parse_support_request(R"({"examples": [{"input": {"text": "a"}, "label": "x"}, {"input": {"text": "b"}, "label": "x"}]})", limits); },
             "at least 2 classes");
  expect_bad([&] { parse_support_request(R"({"examples": [1, 2, 3, 4]})", limits); }, "4 examples; at most 3");
  expect_bad([&] { parse_support_request(R"({"examples": [{"embedding": [1], "label": "x", "extra": 1}, 2]})", limits); },
             "examples[0]: unknown field \"extra\"");
}

TEST(ServeRequest, FormPartsBecomeTheJsonBody) {
  RequestLimits limits;
  const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + std::string(5, '\0');
  const auto compare = parse_compare_request(form_as_json({{"a", png, true}, {"b", "a text", false}}, "/v1/compare"), limits);
  EXPECT_EQ(compare.first.kind, RequestInput::Kind::Image);
  EXPECT_EQ(compare.first.data, png) << "the file's bytes, through base64 and back";
  EXPECT_EQ(compare.second.kind, RequestInput::Kind::Text);
  EXPECT_EQ(compare.second.data, "a text");
  const auto embed = parse_embed_request(form_as_json({{"image", "abc", false}, {"image", "de", true}}, "/v1/embed"), limits);
  ASSERT_EQ(embed.size(), 2u);
  EXPECT_EQ(embed[0].data, "abc") << "a part named image is an image even without a file name";
  EXPECT_EQ(embed[1].data, "de");
  const auto search = parse_search_request(form_as_json({{"text", "shoe", false}, {"k", "7", false}, {"nprobe", "3", false}}, "/v1/search"), limits);
  EXPECT_EQ(search.input.data, "shoe");
  EXPECT_EQ(search.k, 7);
  EXPECT_EQ(search.nprobe, 3);
  const auto item = parse_item_request(form_as_json({{"image", "xyz", true}, {"label", "boot", false}}, "/v1/items"), limits);
  EXPECT_EQ(item.label, "boot");
  const auto oneshot = parse_oneshot_request(form_as_json({{"input", "q", false}, {"threshold", "0.5", false}}, "/v1/oneshot"), limits);
  EXPECT_DOUBLE_EQ(oneshot.threshold, 0.5);
  expect_bad([&] { form_as_json({{"k", "7x", false}}, "/v1/search"); }, "k: '7x' is not an integer");
  expect_bad([&] { form_as_json({{"threshold", "nan", false}}, "/v1/oneshot"); }, "threshold: 'nan' is not a number");
  expect_bad([&] { form_as_json({{"image", "a", true}, {"text", "b", false}}, "/v1/search"); }, "given twice");
  expect_bad([&] { form_as_json({{"label", "x", false}}, "/v1/search"); }, "form part 'label': not a part of /v1/search");
  expect_bad([&] { form_as_json({{"examples", "x", false}}, "/v1/support"); }, "takes JSON bodies only");
  expect_bad([&] { form_as_json({{"text", "\xff\xfe", false}}, "/v1/embed"); }, "must be UTF-8");
}

TEST(ServeRequest, SearchByInputOrByEmbedding) {
  RequestLimits limits;
  const auto by_vector = parse_search_request(R"({"embedding": [1, -2.5], "k": 3})", limits);
  EXPECT_FALSE(by_vector.has_input);
  EXPECT_EQ(by_vector.embedding, (std::vector<float>{1, -2.5f}));
  EXPECT_TRUE(parse_search_request(R"({"input": {"text": "a"}})", limits).has_input);
  expect_bad([&] { parse_search_request(R"({"k": 3})", limits); }, "missing field \"input\"");
  expect_bad([&] { parse_search_request(R"({"input": {"text": "a"}, "embedding": [1]})", limits); }, "exactly one of");
  expect_bad([&] { parse_search_request(R"({"embedding": [1, null]})", limits); }, "embedding[1]: must be a number");
}

TEST(ServeRequest, SeriesAreNumbersOrRowsOfNumbers) {
  RequestLimits limits;
  limits.max_series_values = 6;
  const auto flat = parse_embed_request(R"({"inputs": [{"series": [1, 2.5, -3]}]})", limits).at(0);
  EXPECT_EQ(flat.kind, RequestInput::Kind::Series);
  EXPECT_EQ(flat.features, 1);
  EXPECT_EQ(flat.values, (std::vector<float>{1, 2.5f, -3}));
  const auto rows = parse_embed_request(R"({"inputs": [{"series": [[1, 2, 0], [3, 4, 1]]}]})", limits).at(0);
  EXPECT_EQ(rows.features, 3);
  EXPECT_EQ(rows.values, (std::vector<float>{1, 2, 0, 3, 4, 1}));
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"series": []}]})", limits); }, "inputs[0].series: must be a non-empty array");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"series": [[1, 2], [3]]}]})", limits); }, "inputs[0].series[1]: every step must be an array of 2 numbers");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"series": [1, "x"]}]})", limits); }, "inputs[0].series[1]: must be a finite number");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"series": [[1, 1e39]]}]})", limits); }, "inputs[0].series[0][1]: must be a finite number");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"series": [1, 2, 3, 4, 5, 6, 7]}]})", limits); }, "more than 6 numbers");
  expect_bad([&] { parse_embed_request(R"({"inputs": [{"series": [1], "text": "x"}]})", limits); }, "exactly one of");
}
