// Fuzz target: load_model (model/model_file.h), the self-describing model file (a LibTorch archive:
// network options as JSON, weights, threshold, info, checksum) that every command reads. When it
// loads, the network embeds one input of its own shape, as `verify` would. Input: the file.
#include "fuzz_util.h"
#include "siamese/model/model_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = siamese::fuzz::write_input("model.pt", data, size);
  return siamese::fuzz::refuse_quietly([&] {
    auto saved = siamese::load_model(path);
    const auto& cnn = saved.network->options.cnn();
    if (saved.network->options.encoder() == siamese::EncoderKind::Cnn && cnn.height() * cnn.width() <= 4096) {
      torch::NoGradGuard no_grad;
      saved.network->embed(torch::rand({1, cnn.in_channels(), cnn.height(), cnn.width()}));
    }
  });
}
