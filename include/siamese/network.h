#pragma once
/// \file network.h  Encoders and the Siamese network that applies ONE encoder to every branch.

#include <torch/torch.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "siamese/distance.h"

namespace siamese {

/// What every encoder is: a module mapping a batch of inputs [N, ...] to embeddings [N, D].
class EncoderImpl : public torch::nn::Module {
 public:
  /// x: a batch of model inputs, [N, ...]. Returns embeddings [N, embedding_dim()].
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  virtual int64_t embedding_dim() const = 0;
};

/// Options of the CNN encoder: one conv(3×3)–batch-norm–ReLU–max-pool(2) block per entry of
/// conv_channels, then flatten → linear(hidden) → ReLU → linear(embedding_dim).
struct CnnEncoderOptions {
  /// Input channels (1 = grey, 3 = colour). Default 1.
  TORCH_ARG(int64_t, in_channels) = 1;
  /// Input height and width in pixels. Default 28 × 28 (Fashion-MNIST).
  TORCH_ARG(int64_t, height) = 28;
  TORCH_ARG(int64_t, width) = 28;
  /// Output channels of each conv block. Default {32, 64}.
  TORCH_ARG(std::vector<int64_t>, conv_channels) = std::vector<int64_t>{32, 64};
  /// Width of the dense hidden layer; 0 = no hidden layer. Default 256.
  TORCH_ARG(int64_t, hidden) = 256;
  /// Embedding size D. Default 64.
  TORCH_ARG(int64_t, embedding_dim) = 64;
  /// L2-normalise each embedding (unit length). Default false.
  TORCH_ARG(bool, normalize) = false;
};

class CnnEncoderImpl : public EncoderImpl {
 public:
  explicit CnnEncoderImpl(CnnEncoderOptions options = {});
  /// x: [N, in_channels, height, width] float. Throws siamese::Error on another shape.
  torch::Tensor forward(torch::Tensor x) override;
  int64_t embedding_dim() const override { return options.embedding_dim(); }
  void reset();

  CnnEncoderOptions options;
  torch::nn::Sequential features{nullptr};
  torch::nn::Sequential head{nullptr};
};
TORCH_MODULE(CnnEncoder);

/// Everything needed to rebuild a network: stored in the model file as its configuration.
struct SiameseNetworkOptions {
  /// Encoder kind; "cnn" is the one built in. Default "cnn".
  TORCH_ARG(std::string, encoder) = "cnn";
  /// Options of the CNN encoder (used when encoder == "cnn").
  TORCH_ARG(CnnEncoderOptions, cnn) = {};
  /// Distance used by forward() and by every consumer of the model. Default Euclidean.
  TORCH_ARG(Distance, distance) = Distance::Euclidean;
  /// Per-channel input normalisation applied inside embed(): (x − mean) / std. Default 0 / 1.
  TORCH_ARG(std::vector<double>, input_mean) = std::vector<double>{0.0};
  TORCH_ARG(std::vector<double>, input_std) = std::vector<double>{1.0};
};

/// The twin network: ONE encoder instance shared by every branch, so the weights are shared by
/// construction. Inputs are images scaled to [0, 1], [N, C, H, W]; normalisation happens inside.
class SiameseNetworkImpl : public torch::nn::Module {
 public:
  explicit SiameseNetworkImpl(SiameseNetworkOptions options = {});

  /// x [N, C, H, W] -> embeddings [N, D].
  torch::Tensor embed(torch::Tensor x);
  /// Pair branch: a [N, ...], b [N, ...] -> distances [N]. Both go through the encoder in one
  /// batch (one set of batch-norm statistics for both twins).
  torch::Tensor forward(torch::Tensor a, torch::Tensor b);
  /// Triplet branch: anchors, positives, negatives [N, ...] -> (d(a,p) [N], d(a,n) [N]).
  std::tuple<torch::Tensor, torch::Tensor> forward(torch::Tensor a, torch::Tensor p, torch::Tensor n);

  SiameseNetworkOptions options;
  std::shared_ptr<EncoderImpl> encoder;
  torch::Tensor input_mean;  ///< buffer [1, C, 1, 1]
  torch::Tensor input_std;   ///< buffer [1, C, 1, 1]
};
TORCH_MODULE(SiameseNetwork);

}  // namespace siamese
