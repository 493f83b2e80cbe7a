// Fuzz target: read_text_lines (data/sequence.h), labelled text lines "text<TAB>label" or text
// pairs "a<TAB>b<TAB>same", then encode_text with a vocabulary built from them (what text: data
// specs go through). Input: the TSV file.
#include "fuzz_util.h"
#include "siamese/data/sequence.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = siamese::fuzz::write_input("train.tsv", data, size);
  return siamese::fuzz::refuse_quietly([&] {
    const auto items = siamese::read_text_lines(path);
    std::vector<std::vector<std::string>> tokens;
    for (const auto& text : items.texts) tokens.push_back(siamese::tokenize(text, "char"));
    siamese::encode_text(items, siamese::Vocabulary::build(tokens), "char", 16);
  });
}
