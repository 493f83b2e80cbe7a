// Fuzz target: read_fasta (data/sequence.h), ">ID LABEL" headers and sequence lines, then
// encode_text as fasta: data specs do. Input: the FASTA file; the first byte's low bit says
// whether labels are required (both paths run).
#include "fuzz_util.h"
#include "siamese/data/sequence.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool require_labels = data[0] & 1;
  const auto path = siamese::fuzz::write_input("train.fasta", data + 1, size - 1);
  return siamese::fuzz::refuse_quietly([&] {
    const auto items = siamese::read_fasta(path, require_labels);
    std::vector<std::vector<std::string>> tokens;
    for (const auto& text : items.texts) tokens.push_back(siamese::tokenize(text, "char"));
    siamese::encode_text(items, siamese::Vocabulary::build(tokens), "char", 0);
  });
}
