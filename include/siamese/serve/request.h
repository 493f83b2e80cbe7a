#pragma once
/// \file request.h  The service's request bodies (docs/service.md), parsed and checked before any
/// work is done: every function throws siamese::Error(InvalidArgument) with a message for the
/// client, naming the field, on bad JSON, a wrong type, a missing field or a value past its limit.
/// May run concurrently.

#include <cstdint>
#include <string>
#include <vector>

namespace siamese {

/// Limits a request must keep (ServiceOptions carries the service's).
struct RequestLimits {
  int64_t max_inputs = 256;       ///< inputs in one embed request
  int64_t max_text_bytes = 65536; ///< bytes of one text
  int64_t max_k = 1000;           ///< k of a search
  int64_t max_key_bytes = 512;    ///< bytes of an item key
};

/// One input as the client sent it: an image file's bytes (sent base64-encoded) or a text.
struct RequestInput {
  enum class Kind { Image, Text };
  Kind kind = Kind::Image;
  std::string data;  ///< the decoded image file, or the text (UTF-8)
};

/// Standard base64 (RFC 4648 §4, '=' padding required, no whitespace, no other characters).
/// `what` names the field in errors.
std::string decode_base64(const std::string& text, const std::string& what);

/// POST /v1/embed: {"inputs": [INPUT, ...]}, 1 to max_inputs inputs; INPUT is {"image": BASE64}
/// or {"text": STRING} (non-empty, at most max_text_bytes).
std::vector<RequestInput> parse_embed_request(const std::string& body, const RequestLimits& limits);

/// POST /v1/compare: {"a": INPUT, "b": INPUT}.
std::pair<RequestInput, RequestInput> parse_compare_request(const std::string& body, const RequestLimits& limits);

/// POST /v1/search: {"input": INPUT, "k": 1..max_k (default 10)}.
struct SearchRequest {
  RequestInput input;
  int64_t k = 10;
};
SearchRequest parse_search_request(const std::string& body, const RequestLimits& limits);

/// PUT /v1/items/{key}: {"input": INPUT, "label": STRING} or {"embedding": [NUMBER, ...],
/// "label": STRING}; "label" is optional (no class). Embedding values must be finite, at most
/// 65536 of them.
struct ItemRequest {
  bool has_input = false;
  RequestInput input;            ///< when has_input
  std::vector<float> embedding;  ///< otherwise
  std::string label;
};
ItemRequest parse_item_request(const std::string& body, const RequestLimits& limits);

/// An item key from a URL path segment: percent-decoded; 1 to max_key_bytes bytes, no control
/// characters.
std::string parse_item_key(const std::string& segment, const RequestLimits& limits);

}  // namespace siamese
