#pragma once
// The CLI's side of inputs: reading them is the library's (siamese/model/inputs.h); showing one on
// a page (an HTML search result) is the CLI's.

#include <string>
#include <vector>

#include "siamese/model/inputs.h"

namespace siamese::cli {

/// The image a key of read_inputs points to, as PNG bytes (data-set items "SPEC:SPLIT#N" are taken
/// from the data set, opened once per process). Throws siamese::Error naming the key.
std::vector<unsigned char> png_for_key(const std::string& key);

}  // namespace siamese::cli
