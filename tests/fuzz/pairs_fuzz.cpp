// Fuzz target: read_pairs_file (data/data.h), the LFW pairs format of `verify --pairs`.
// Input: the pairs file. Its images live under work_dir()/root: a/a_0001.png, a/a_0002.png and
// b/b_0001.png exist (empty files: the reader only checks that they exist), so lines naming them
// are accepted and the parser gets past its first line.
#include "fuzz_util.h"
#include "siamese/data/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string root = [] {
    for (const char* image : {"a/a_0001.png", "a/a_0002.png", "b/b_0001.png"}) {
      siamese::fuzz::write_input(std::string("root/") + image, nullptr, 0);
    }
    return (siamese::fuzz::work_dir() / "root").string();
  }();
  const auto path = siamese::fuzz::write_input("pairs.txt", data, size);
  return siamese::fuzz::refuse_quietly([&] { siamese::read_pairs_file(path, root); });
}
