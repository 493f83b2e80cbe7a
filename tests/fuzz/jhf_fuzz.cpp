// Fuzz target: read_strokes (data/sequence.h), pen strokes of Hershey .jhf glyphs. Input: one
// .jhf file, read as the only style of its folder; the first byte's low bit asks for a max_length
// of 8 steps (glyphs cut).
#include "fuzz_util.h"
#include "siamese/data/sequence.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int64_t max_length = (data[0] & 1) ? 8 : 0;
  siamese::fuzz::write_input("strokes/style.jhf", data + 1, size - 1);
  return siamese::fuzz::refuse_quietly(
      [&] { siamese::read_strokes((siamese::fuzz::work_dir() / "strokes").string(), max_length); });
}
