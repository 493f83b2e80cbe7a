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
  int64_t max_series_values = 1 << 20;  ///< numbers in one series
};

/// One input as the client sent it: an image file's bytes (sent base64-encoded), a text, or a
/// numeric series ({"series": [v, ...]} of one feature per step, or [[f1, ..., fF], ...]).
struct RequestInput {
  enum class Kind { Image, Text, Series };
  Kind kind = Kind::Image;
  std::string data;           ///< the decoded image file, or the text (UTF-8)
  std::vector<float> values;  ///< a series: steps x features, row by row
  int64_t features = 1;       ///< a series: numbers per step
};

/// Standard base64 (RFC 4648 §4, '=' padding required, no whitespace, no other characters).
/// `what` names the field in errors.
std::string decode_base64(const std::string& text, const std::string& what);

/// POST /v1/embed: {"inputs": [INPUT, ...]}, 1 to max_inputs inputs; INPUT is {"image": BASE64},
/// {"text": STRING} (non-empty, at most max_text_bytes) or {"series": [NUMBER, ...] or
/// [[NUMBER, ...], ...]} (finite, rows of one length, at most max_series_values numbers).
std::vector<RequestInput> parse_embed_request(const std::string& body, const RequestLimits& limits);

/// POST /v1/compare: {"a": INPUT, "b": INPUT}.
std::pair<RequestInput, RequestInput> parse_compare_request(const std::string& body, const RequestLimits& limits);

/// POST /v1/search: {"input": INPUT or "embedding": [NUMBER, ...], "k": 1..max_k (default 10),
/// "nprobe": N, "ef_search": N}; nprobe (IVF indexes) and ef_search (HNSW), 1 to 65536, apply to
/// this search only (0: the index's own).
struct SearchRequest {
  bool has_input = true;
  RequestInput input;            ///< when has_input
  std::vector<float> embedding;  ///< otherwise
  int64_t k = 10;
  int64_t nprobe = 0, ef_search = 0;
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

/// POST /v1/oneshot: {"input": INPUT, "support": [EXAMPLE, ...], "rule": "mean"|"nearest",
/// "threshold": T}. "support" (optional: the set of PUT /v1/support) holds examples as PUT
/// /v1/items bodies, label required, of at least 2 classes, at most max_inputs. "threshold" >= 0,
/// or -1 for never answering "none" (optional: the model's).
struct OneShotRequest {
  RequestInput input;
  std::vector<ItemRequest> support;  ///< empty: the service's support set
  std::string rule = "mean";
  double threshold = -2;  ///< -2: the model's
};
OneShotRequest parse_oneshot_request(const std::string& body, const RequestLimits& limits);

/// PUT /v1/support: {"examples": [EXAMPLE, ...]}, as the "support" of /v1/oneshot (required).
std::vector<ItemRequest> parse_support_request(const std::string& body, const RequestLimits& limits);

/// One part of a multipart/form-data body.
struct FormPart {
  std::string name, content;
  bool file = false;  ///< the part carries a file name (curl -F name=@FILE)
};
/// A multipart/form-data request to `route` ("/v1/embed", "/v1/compare", "/v1/search",
/// "/v1/oneshot" or "/v1/items") as the JSON body the same request would have, for the parsers
/// above. A part named "image" is an image file and "text" a text; "a", "b" and "input" are an
/// image when sent as a file, else a text. /v1/embed takes every input part in order, the others
/// one input ("a" and "b" for /v1/compare). "k", "nprobe" and "ef_search" are integers,
/// "threshold" a number, "label" and "rule" strings. Throws siamese::Error(InvalidArgument) on
/// an unknown part, a repeated one, or a number that does not parse.
std::string form_as_json(const std::vector<FormPart>& parts, const std::string& route);

/// An item key from a URL path segment: percent-decoded; 1 to max_key_bytes bytes, no control
/// characters.
std::string parse_item_key(const std::string& segment, const RequestLimits& limits);

}  // namespace siamese
