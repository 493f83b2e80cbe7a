// Fuzz target: read_idx (data/data.h), the IDX image and label files of MNIST-style data sets.
// Input: 2 bytes (little-endian) L, then L bytes of the label file, then the image file; each
// file may be plain or gzip-compressed, as read_idx accepts both.
#include <algorithm>

#include "fuzz_util.h"
#include "siamese/data/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t labels = std::min<size_t>(data[0] | (data[1] << 8), size - 2);
  const auto labels_path = siamese::fuzz::write_input("labels-idx1-ubyte", data + 2, labels);
  const auto images_path = siamese::fuzz::write_input("images-idx3-ubyte", data + 2 + labels, size - 2 - labels);
  return siamese::fuzz::refuse_quietly([&] { siamese::read_idx(images_path, labels_path); });
}
