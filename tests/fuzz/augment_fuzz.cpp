// Fuzz target: parse_augment (data/augment.h), the --augment specification, then augment on a
// small batch when it parses, so that extreme accepted values (angles, sigmas, scales) run through
// the transforms too. Input: the specification text.
#include <string>

#include "fuzz_util.h"
#include "siamese/data/augment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string spec(reinterpret_cast<const char*>(data), size);
  return siamese::fuzz::refuse_quietly([&] {
    const auto options = siamese::parse_augment(spec);
    const auto text = siamese::to_string(options);  // documented: parse_augment(to_string(o)) == o
    if (siamese::to_string(siamese::parse_augment(text)) != text) __builtin_trap();
    siamese::augment(torch::rand({2, 1, 8, 8}), options, 7, 1);
  });
}
