#pragma once
/// \file base64.h  Standard base64 (RFC 4648, with '=' padding) of bytes: the inline images of the
/// HTML pages (report/html.h) and the images of multipart uploads on their way to the service's
/// JSON parsers (serve/request.h, which also decodes).

#include <string>
#include <vector>

namespace siamese {

std::string base64(const std::vector<unsigned char>& bytes);

}  // namespace siamese
