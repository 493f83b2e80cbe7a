// Verify two images with a saved model: are they of the same class (same person, same product)?
//   verify_pair MODEL A.png B.png
// Prints the distance between the two embeddings, the model's calibrated threshold and the verdict.
#include <cstdio>

#include "siamese/core/distance.h"
#include "siamese/core/error.h"
#include "siamese/data/data.h"
#include "siamese/model/model_file.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL A.png B.png\n", argv[0]);
    return 2;
  }
  try {
    siamese::SavedModel model = siamese::load_model(argv[1]);  // network in eval mode + threshold
    const auto& cnn = model.network->options.cnn();           // the input size the model was trained on
    torch::Tensor a = siamese::read_image(argv[2], cnn.in_channels(), cnn.height(), cnn.width());
    torch::Tensor b = siamese::read_image(argv[3], cnn.in_channels(), cnn.height(), cnn.width());

    torch::NoGradGuard no_grad;
    // One encoder for both images: the twins share their weights by construction.
    torch::Tensor e = model.network->embed(torch::cat({a, b}));  // [2, D]
    const double d = siamese::paired_distance(e.slice(0, 0, 1), e.slice(0, 1, 2),
                                              model.network->options.distance()).item<double>();
    std::printf("distance %.6f threshold %.6f %s\n", d, model.threshold, d <= model.threshold ? "same" : "different");
  } catch (const siamese::Error& e) {
    std::fprintf(stderr, "error (%s): %s\n", siamese::to_string(e.code()), e.what());
    return 1;
  }
  return 0;
}
