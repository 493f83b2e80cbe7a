#pragma once
// Files built into the binary (cmake/EmbedFile.cmake): the web page served at / and the OpenAPI
// document served at /openapi.json, from src/serve/web/.

#include <string_view>

namespace siamese::serve {

extern const std::string_view kIndexHtml;    ///< src/serve/web/index.html
extern const std::string_view kOpenApiJson;  ///< src/serve/web/openapi.json

}  // namespace siamese::serve
