// Fuzz target: read_image (data/data.h), one image file decoded by OpenCV through our reader, as
// verify, search and embed read their inputs. Input: the file (PNG, JPEG, BMP, PGM: OpenCV goes by
// its content). The first byte's low bit picks the channels asked for (1 or 3), so that both the
// grey and the colour paths run; the image must be 28x28 to be accepted.
#include "fuzz_util.h"
#include "siamese/data/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int64_t channels = (data[0] & 1) ? 3 : 1;
  const auto path = siamese::fuzz::write_input("image", data + 1, size - 1);
  return siamese::fuzz::refuse_quietly([&] { siamese::read_image(path, channels, 28, 28); });
}
