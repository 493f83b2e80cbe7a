// Fuzz target: the service's request parsers (serve/request.h): the JSON bodies of /v1/embed,
// /v1/compare, /v1/search and PUT /v1/items, base64 inside them, and item keys from URL paths.
// Input: one byte choosing the parser (its value mod 5), then the body or path segment.
#include "fuzz_util.h"
#include "siamese/serve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  siamese::RequestLimits limits;
  limits.max_inputs = 8;
  limits.max_text_bytes = 256;
  return siamese::fuzz::refuse_quietly([&] {
    switch (data[0] % 5) {
      case 0: siamese::parse_embed_request(body, limits); break;
      case 1: siamese::parse_compare_request(body, limits); break;
      case 2: siamese::parse_search_request(body, limits); break;
      case 3: siamese::parse_item_key(body, limits); break;
      default: siamese::parse_item_request(body, limits); break;
    }
  });
}
