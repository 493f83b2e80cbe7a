#pragma once
// What the CLI tests of files and indexes need without training: a small untrained model and
// folders of random images, written to disk.

#include <torch/torch.h>

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "siamese/model/model_file.h"
#include "siamese/model/quantize.h"

namespace siamese::testing {

/// An untrained CNN model (seeded) on 28x28 grey images, embedding size 16, saved to `path`;
/// with `int8`, calibrated for --int8 on random images as the trainer does on validation ones.
inline void save_small_model(const std::string& path, uint64_t seed = 7, bool int8 = false) {
  torch::manual_seed(seed);
  SiameseNetwork network(SiameseNetworkOptions().cnn(
      CnnEncoderOptions().conv_channels({4, 8}).hidden(32).embedding_dim(16)));
  network->eval();
  if (int8) network->options.int8_ranges(int8_ranges(*network, torch::rand({64, 1, 28, 28})));
  save_model(path, network, 1.0);
}

/// `count` random 28x28 PNG images in `dir`, named PREFIX_0.png ...; returns their paths.
inline std::vector<std::string> write_random_images(const std::filesystem::path& dir, const std::string& prefix,
                                                    int count, uint64_t seed) {
  std::filesystem::create_directories(dir);
  torch::manual_seed(seed);
  std::vector<std::string> paths;
  for (int i = 0; i < count; ++i) {
    auto img = torch::randint(0, 256, {28, 28}, torch::kUInt8).contiguous();
    const auto path = (dir / (prefix + "_" + std::to_string(i) + ".png")).string();
    cv::imwrite(path, cv::Mat(28, 28, CV_8UC1, img.data_ptr<uint8_t>()));
    paths.push_back(path);
  }
  return paths;
}

}  // namespace siamese::testing
