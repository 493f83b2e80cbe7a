#include "siamese/serve/request.h"

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

#include "siamese/core/error.h"

namespace siamese {

namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& message) { throw Error(ErrorCode::InvalidArgument, message); }

json parse_object(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    bad(std::string("the body is not JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad("the body must be a JSON object");
  return j;
}

const json& field(const json& object, const char* name, const std::string& where) {
  const auto it = object.find(name);
  if (it == object.end()) bad(where + ": missing field \"" + name + "\"");
  return *it;
}

RequestInput parse_input(const json& j, const std::string& where, const RequestLimits& limits) {
  if (!j.is_object()) bad(where + ": an input must be an object, {\"image\": BASE64} or {\"text\": STRING}");
  const bool image = j.contains("image"), text = j.contains("text");
  if (image == text || j.size() != 1) bad(where + ": an input holds exactly one of \"image\" and \"text\"");
  const auto& value = image ? j["image"] : j["text"];
  const std::string name = where + (image ? ".image" : ".text");
  if (!value.is_string()) bad(name + ": must be a string");
  RequestInput in;
  if (image) {
    in.kind = RequestInput::Kind::Image;
    in.data = decode_base64(value.get<std::string>(), name);
    if (in.data.empty()) bad(name + ": an empty image");
  } else {
    in.kind = RequestInput::Kind::Text;
    in.data = value.get<std::string>();
    if (in.data.find_first_not_of(" \t\r\n") == std::string::npos) bad(name + ": an empty text");
    if (static_cast<int64_t>(in.data.size()) > limits.max_text_bytes) {
      bad(name + ": " + std::to_string(in.data.size()) + " bytes; at most " + std::to_string(limits.max_text_bytes));
    }
  }
  return in;
}

/// Value of a base64 character, -1 for any other.
constexpr std::array<int8_t, 256> base64_values() {
  std::array<int8_t, 256> v{};
  for (auto& x : v) x = -1;
  const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) v[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return v;
}

}  // namespace

std::string decode_base64(const std::string& text, const std::string& what) {
  static constexpr auto values = base64_values();
  if (text.size() % 4 != 0) bad(what + ": not base64 (its length is not a multiple of 4)");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t at = 0; at < text.size(); at += 4) {
    const bool last = at + 4 == text.size();
    uint32_t group = 0;
    int padding = 0;
    for (size_t i = 0; i < 4; ++i) {
      const auto c = static_cast<unsigned char>(text[at + i]);
      if (c == '=' && last && i >= 2 && (i == 3 || text[at + 3] == '=')) {
        ++padding;
        group <<= 6;
        continue;
      }
      if (values[c] < 0 || padding > 0) bad(what + ": not base64 (character " + std::to_string(at + i) + ")");
      group = group << 6 | static_cast<uint32_t>(values[c]);
    }
    out.push_back(static_cast<char>(group >> 16));
    if (padding < 2) out.push_back(static_cast<char>(group >> 8 & 0xFF));
    if (padding < 1) out.push_back(static_cast<char>(group & 0xFF));
  }
  return out;
}

std::vector<RequestInput> parse_embed_request(const std::string& body, const RequestLimits& limits) {
  const auto j = parse_object(body);
  const auto& inputs = field(j, "inputs", "body");
  if (!inputs.is_array()) bad("inputs: must be an array of inputs");
  if (inputs.empty()) bad("inputs: empty; give 1 or more");
  if (static_cast<int64_t>(inputs.size()) > limits.max_inputs) {
    bad("inputs: " + std::to_string(inputs.size()) + " inputs; at most " + std::to_string(limits.max_inputs) + " per request");
  }
  std::vector<RequestInput> out;
  for (size_t i = 0; i < inputs.size(); ++i) out.push_back(parse_input(inputs[i], "inputs[" + std::to_string(i) + "]", limits));
  return out;
}

std::pair<RequestInput, RequestInput> parse_compare_request(const std::string& body, const RequestLimits& limits) {
  const auto j = parse_object(body);
  return {parse_input(field(j, "a", "body"), "a", limits), parse_input(field(j, "b", "body"), "b", limits)};
}

SearchRequest parse_search_request(const std::string& body, const RequestLimits& limits) {
  const auto j = parse_object(body);
  SearchRequest r;
  r.input = parse_input(field(j, "input", "body"), "input", limits);
  if (j.contains("k")) {
    const auto& k = j["k"];
    if (!k.is_number_integer()) bad("k: must be an integer");
    const bool in_range = k.is_number_unsigned() ? k.get<uint64_t>() >= 1 && k.get<uint64_t>() <= static_cast<uint64_t>(limits.max_k)
                                                 : k.get<int64_t>() >= 1 && k.get<int64_t>() <= limits.max_k;
    if (!in_range) bad("k: must be in [1, " + std::to_string(limits.max_k) + "]");
    r.k = k.get<int64_t>();
  }
  return r;
}

ItemRequest parse_item_request(const std::string& body, const RequestLimits& limits) {
  const auto j = parse_object(body);
  ItemRequest r;
  const bool input = j.contains("input"), embedding = j.contains("embedding");
  if (input == embedding) bad("body: give exactly one of \"input\" and \"embedding\"");
  if (input) {
    r.has_input = true;
    r.input = parse_input(j["input"], "input", limits);
  } else {
    const auto& e = j["embedding"];
    if (!e.is_array() || e.empty() || e.size() > 65536) bad("embedding: must be an array of 1 to 65536 numbers");
    for (size_t i = 0; i < e.size(); ++i) {
      if (!e[i].is_number()) bad("embedding[" + std::to_string(i) + "]: must be a number");
      const double v = e[i].get<double>();
      if (!std::isfinite(v) || std::abs(v) > 3.0e38) bad("embedding[" + std::to_string(i) + "]: must be a finite float");
      r.embedding.push_back(static_cast<float>(v));
    }
  }
  if (j.contains("label")) {
    if (!j["label"].is_string()) bad("label: must be a string");
    r.label = j["label"].get<std::string>();
    if (static_cast<int64_t>(r.label.size()) > limits.max_key_bytes) bad("label: longer than " + std::to_string(limits.max_key_bytes) + " bytes");
  }
  for (const auto& [name, value] : j.items()) {
    if (name != "input" && name != "embedding" && name != "label") bad("body: unknown field \"" + name + "\"");
  }
  return r;
}

std::string parse_item_key(const std::string& segment, const RequestLimits& limits) {
  std::string key;
  for (size_t i = 0; i < segment.size(); ++i) {
    if (segment[i] != '%') {
      key.push_back(segment[i]);
      continue;
    }
    const auto hex = [&](size_t at) {
      const char c = at < segment.size() ? segment[at] : '\0';
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      bad("key: a '%' not followed by two hex digits");
    };
    key.push_back(static_cast<char>(hex(i + 1) * 16 + hex(i + 2)));
    i += 2;
  }
  if (key.empty()) bad("key: empty");
  if (static_cast<int64_t>(key.size()) > limits.max_key_bytes) bad("key: longer than " + std::to_string(limits.max_key_bytes) + " bytes");
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7F) bad("key: holds a control character");
  }
  return key;
}

}  // namespace siamese
