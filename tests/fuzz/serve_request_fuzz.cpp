// Fuzz target: the service's request parsers (serve/request.h): the JSON bodies of /v1/embed,
// /v1/compare, /v1/search, /v1/oneshot, PUT /v1/support and PUT /v1/items, base64 inside them,
// item keys from URL paths, and multipart form parts turned into those bodies (the multipart
// bytes themselves are parsed by cpp-httplib).
// Input: one byte choosing the parser (its value mod 8), then the body or path segment. For form
// parts (7): one byte choosing the route, then parts separated by 0x1E, each NAME=CONTENT, a
// name starting with '@' sent as a file.
#include "fuzz_util.h"
#include "siamese/serve/request.h"

namespace {

void parse_form(const std::string& input, const siamese::RequestLimits& limits) {
  if (input.empty()) return;
  static const char* routes[] = {"/v1/embed", "/v1/compare", "/v1/search", "/v1/oneshot", "/v1/items", "/v1/support"};
  const std::string route = routes[static_cast<unsigned char>(input[0]) % 6];
  std::vector<siamese::FormPart> parts;
  for (size_t at = 1; at <= input.size();) {
    const size_t end = std::min(input.find('\x1e', at), input.size());
    const std::string part = input.substr(at, end - at);
    const size_t eq = part.find('=');
    siamese::FormPart p{part.substr(0, eq), eq == std::string::npos ? "" : part.substr(eq + 1), false};
    if (!p.name.empty() && p.name[0] == '@') p = {p.name.substr(1), p.content, true};
    parts.push_back(p);
    at = end + 1;
  }
  const auto body = siamese::form_as_json(parts, route);
  if (route == "/v1/embed") siamese::parse_embed_request(body, limits);
  if (route == "/v1/compare") siamese::parse_compare_request(body, limits);
  if (route == "/v1/search") siamese::parse_search_request(body, limits);
  if (route == "/v1/oneshot") siamese::parse_oneshot_request(body, limits);
  if (route == "/v1/items") siamese::parse_item_request(body, limits);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  siamese::RequestLimits limits;
  limits.max_inputs = 8;
  limits.max_text_bytes = 256;
  return siamese::fuzz::refuse_quietly([&] {
    switch (data[0] % 8) {
      case 0: siamese::parse_embed_request(body, limits); break;
      case 1: siamese::parse_compare_request(body, limits); break;
      case 2: siamese::parse_search_request(body, limits); break;
      case 3: siamese::parse_item_key(body, limits); break;
      case 4: siamese::parse_item_request(body, limits); break;
      case 5: siamese::parse_oneshot_request(body, limits); break;
      case 6: siamese::parse_support_request(body, limits); break;
      default: parse_form(body, limits); break;
    }
  });
}
