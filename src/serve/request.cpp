#include "siamese/serve/request.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "siamese/core/base64.h"
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

/// {"series": [...]}: numbers (one feature per step) or rows of numbers, all of one length.
void parse_series(const json& value, const std::string& name, const RequestLimits& limits, RequestInput& in) {
  if (!value.is_array() || value.empty()) bad(name + ": must be a non-empty array of numbers, or of rows of numbers");
  const bool rows = value[0].is_array();
  in.features = rows ? static_cast<int64_t>(value[0].size()) : 1;
  if (in.features < 1) bad(name + "[0]: an empty step");
  if (static_cast<int64_t>(value.size()) > limits.max_series_values / in.features) {
    bad(name + ": more than " + std::to_string(limits.max_series_values) + " numbers");
  }
  const auto number = [&](const json& v, const std::string& at) {
    const double x = v.is_number() ? v.get<double>() : NAN;
    if (!std::isfinite(x) || std::abs(x) > 3.0e38) bad(at + ": must be a finite number");
    in.values.push_back(static_cast<float>(x));
  };
  for (size_t t = 0; t < value.size(); ++t) {
    const std::string at = name + "[" + std::to_string(t) + "]";
    if (!rows) {
      number(value[t], at);
      continue;
    }
    if (!value[t].is_array() || static_cast<int64_t>(value[t].size()) != in.features) {
      bad(at + ": every step must be an array of " + std::to_string(in.features) + " numbers, as the first");
    }
    for (size_t f = 0; f < value[t].size(); ++f) number(value[t][f], at + "[" + std::to_string(f) + "]");
  }
}

RequestInput parse_input(const json& j, const std::string& where, const RequestLimits& limits) {
  const char* shape = ": an input must be an object, {\"image\": BASE64}, {\"text\": STRING} or {\"series\": [NUMBER, ...]}";
  if (!j.is_object()) bad(where + shape);
  if (j.size() != 1 || !(j.contains("image") || j.contains("text") || j.contains("series"))) {
    bad(where + ": an input holds exactly one of \"image\", \"text\" and \"series\"");
  }
  RequestInput in;
  if (j.contains("series")) {
    in.kind = RequestInput::Kind::Series;
    parse_series(j["series"], where + ".series", limits, in);
    return in;
  }
  const bool image = j.contains("image");
  const auto& value = image ? j["image"] : j["text"];
  const std::string name = where + (image ? ".image" : ".text");
  if (!value.is_string()) bad(name + ": must be a string");
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

/// The integer field `name` of `j`, which must lie in [lo, hi]; `fallback` when absent.
int64_t integer_field(const json& j, const char* name, int64_t lo, int64_t hi, int64_t fallback) {
  const auto it = j.find(name);
  if (it == j.end()) return fallback;
  const std::string range = std::string(name) + ": must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!it->is_number_integer()) bad(range);
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(hi)) bad(range);  // past int64_t too
  if (it->get<int64_t>() < lo || it->get<int64_t>() > hi) bad(range);
  return it->get<int64_t>();
}

void only_fields(const json& j, std::initializer_list<const char*> names, const std::string& where) {
  for (const auto& item : j.items()) {
    const std::string& name = item.key();  // not a structured binding: C++17 lambdas cannot capture one
    if (std::find_if(names.begin(), names.end(), [&](const char* n) { return name == n; }) == names.end()) {
      bad(where + ": unknown field \"" + name + "\"");
    }
  }
}

/// An embedding given by the client: 1 to 65536 finite floats.
std::vector<float> parse_embedding(const json& e, const std::string& where) {
  if (!e.is_array() || e.empty() || e.size() > 65536) bad(where + ": must be an array of 1 to 65536 numbers");
  std::vector<float> out;
  for (size_t i = 0; i < e.size(); ++i) {
    const std::string name = where + "[" + std::to_string(i) + "]";
    if (!e[i].is_number()) bad(name + ": must be a number");
    const double v = e[i].get<double>();
    if (!std::isfinite(v) || std::abs(v) > 3.0e38) bad(name + ": must be a finite float");
    out.push_back(static_cast<float>(v));
  }
  return out;
}

/// An item or support example: {"input": INPUT | "embedding": [...], "label": STRING}.
ItemRequest parse_item(const json& j, const std::string& where, const RequestLimits& limits, bool needs_label) {
  if (!j.is_object()) bad(where + ": must be an object");
  const std::string at = where == "body" ? "" : where + ".";
  ItemRequest r;
  const bool input = j.contains("input"), embedding = j.contains("embedding");
  if (input == embedding) bad(where + ": give exactly one of \"input\" and \"embedding\"");
  if (input) {
    r.has_input = true;
    r.input = parse_input(j["input"], at + "input", limits);
  } else {
    r.embedding = parse_embedding(j["embedding"], at + "embedding");
  }
  if (j.contains("label")) {
    if (!j["label"].is_string()) bad(at + "label: must be a string");
    r.label = j["label"].get<std::string>();
    if (static_cast<int64_t>(r.label.size()) > limits.max_key_bytes) bad(at + "label: longer than " + std::to_string(limits.max_key_bytes) + " bytes");
  }
  if (needs_label && r.label.empty()) bad(at + "label: a support example needs its class");
  only_fields(j, {"input", "embedding", "label"}, where);
  return r;
}

std::vector<ItemRequest> parse_examples(const json& e, const char* name, const RequestLimits& limits) {
  if (!e.is_array() || e.empty()) bad(std::string(name) + ": must be a non-empty array of examples");
  if (static_cast<int64_t>(e.size()) > limits.max_inputs) {
    bad(std::string(name) + ": " + std::to_string(e.size()) + " examples; at most " + std::to_string(limits.max_inputs));
  }
  std::vector<ItemRequest> out;
  std::set<std::string> classes;
  for (size_t i = 0; i < e.size(); ++i) {
    out.push_back(parse_item(e[i], std::string(name) + "[" + std::to_string(i) + "]", limits, true));
    classes.insert(out.back().label);
  }
  if (classes.size() < 2) bad(std::string(name) + ": examples of at least 2 classes are needed, got " + std::to_string(classes.size()));
  return out;
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
  only_fields(j, {"inputs"}, "body");
  return out;
}

std::pair<RequestInput, RequestInput> parse_compare_request(const std::string& body, const RequestLimits& limits) {
  const auto j = parse_object(body);
  only_fields(j, {"a", "b"}, "body");
  return {parse_input(field(j, "a", "body"), "a", limits), parse_input(field(j, "b", "body"), "b", limits)};
}

SearchRequest parse_search_request(const std::string& body, const RequestLimits& limits) {
  const auto j = parse_object(body);
  SearchRequest r;
  r.has_input = !j.contains("embedding");
  if (!r.has_input && j.contains("input")) bad("body: give exactly one of \"input\" and \"embedding\"");
  if (r.has_input) r.input = parse_input(field(j, "input", "body"), "input", limits);
  if (!r.has_input) r.embedding = parse_embedding(j["embedding"], "embedding");
  r.k = integer_field(j, "k", 1, limits.max_k, 10);
  r.nprobe = integer_field(j, "nprobe", 1, 65536, 0);
  r.ef_search = integer_field(j, "ef_search", 1, 65536, 0);
  only_fields(j, {"input", "embedding", "k", "nprobe", "ef_search"}, "body");
  return r;
}

ItemRequest parse_item_request(const std::string& body, const RequestLimits& limits) {
  return parse_item(parse_object(body), "body", limits, false);
}

OneShotRequest parse_oneshot_request(const std::string& body, const RequestLimits& limits) {
  const auto j = parse_object(body);
  OneShotRequest r;
  r.input = parse_input(field(j, "input", "body"), "input", limits);
  if (j.contains("support")) r.support = parse_examples(j["support"], "support", limits);
  if (j.contains("rule")) {
    if (!j["rule"].is_string() || (j["rule"] != "mean" && j["rule"] != "nearest")) bad("rule: must be \"mean\" or \"nearest\"");
    r.rule = j["rule"].get<std::string>();
  }
  if (j.contains("threshold")) {
    const auto& t = j["threshold"];
    const double v = t.is_number() ? t.get<double>() : -3;
    if (!(v == -1 || (v >= 0 && v <= 1e12))) bad("threshold: must be a distance >= 0, or -1 (never answer \"none\")");
    r.threshold = v;
  }
  only_fields(j, {"input", "support", "rule", "threshold"}, "body");
  return r;
}

std::vector<ItemRequest> parse_support_request(const std::string& body, const RequestLimits& limits) {
  const auto j = parse_object(body);
  auto out = parse_examples(field(j, "examples", "body"), "examples", limits);
  only_fields(j, {"examples"}, "body");
  return out;
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

namespace {

json form_input(const FormPart& part) {
  const bool image = part.name == "image" || (part.name != "text" && part.file);
  return image ? json{{"image", base64(std::vector<unsigned char>(part.content.begin(), part.content.end()))}} : json{{"text", part.content}};
}

json form_number(const FormPart& part, bool integer) {
  const auto& c = part.content;
  size_t used = 0;
  try {
    if (integer) {
      const long long v = std::stoll(c, &used);
      if (used == c.size()) return json(static_cast<int64_t>(v));
    } else {
      const double v = std::stod(c, &used);
      if (used == c.size() && std::isfinite(v)) return json(v);
    }
  } catch (const std::exception&) {
  }
  bad(part.name + ": '" + c.substr(0, 40) + "' is not " + (integer ? "an integer" : "a number"));
}

}  // namespace

std::string form_as_json(const std::vector<FormPart>& parts, const std::string& route) {
  const std::set<std::string> known = {"/v1/embed", "/v1/compare", "/v1/search", "/v1/oneshot", "/v1/items"};
  if (!known.count(route)) bad(route + ": takes JSON bodies only, not multipart/form-data");
  json j = json::object();
  for (const auto& part : parts) {
    const auto& n = part.name;
    const bool input = n == "image" || n == "text" || n == "input";
    std::string target = n;
    if (route == "/v1/embed" && input) {
      j["inputs"].push_back(form_input(part));
      continue;
    }
    if (route == "/v1/compare" ? n != "a" && n != "b" : input) target = "input";
    const bool ok = route == "/v1/compare" ? n == "a" || n == "b"
                    : route == "/v1/embed" ? false
                    : input || (n == "k" && route == "/v1/search") || ((n == "nprobe" || n == "ef_search") && route == "/v1/search") ||
                          (n == "label" && route == "/v1/items") || ((n == "rule" || n == "threshold") && route == "/v1/oneshot");
    if (!ok) bad("form part '" + n.substr(0, 64) + "': not a part of " + route + " (docs/service.md)");
    if (j.contains(target)) bad("form part '" + n + "': given twice");
    if (target == "input" || target == "a" || target == "b") {
      j[target] = form_input(part);
    } else if (n == "label" || n == "rule") {
      j[target] = part.content;
    } else {
      j[target] = form_number(part, n != "threshold");
    }
  }
  try {
    return j.dump();
  } catch (const json::type_error&) {
    bad("form parts: a text must be UTF-8");
  }
}

}  // namespace siamese
