#pragma once
/// \file backbones.h  Encoders for photographs: torchvision's ResNets (its architectures and
/// parameter names, so that its weights load) and a small fully-convolutional net, both a trunk of
/// feature maps, global average pooling, then the embedding head.

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "siamese/model/network.h"

namespace torch::jit {
struct Module;
}

namespace siamese {

/// The embedding head after global average pooling: an optional hidden layer (linear, ReLU),
/// linear to the embedding, optional L2 normalisation. `features`: the pooled trunk's width.
torch::nn::Sequential embedding_head(int64_t features, const CnnEncoderOptions& options);

/// ResNet-18, -34 or -50 as torchvision builds them (conv1 7×7/2, bn1, max-pool, layer1..4 of
/// basic or bottleneck blocks, batch norm, zero-init of nothing), with torchvision's module names
/// (conv1, bn1, layer1.0.conv1, layer2.0.downsample.0, ...), without its classifier `fc`: the
/// pooled 512 (2048 for -50) features feed embedding_head. Any input of at least 32 × 32 pixels.
class ResnetEncoderImpl : public EncoderImpl {
 public:
  /// depth: 18, 34 or 50. options: in_channels, hidden, embedding_dim, normalize (conv_channels,
  /// height and width are not used: the input size is free).
  ResnetEncoderImpl(int64_t depth, CnnEncoderOptions options);
  torch::Tensor forward(torch::Tensor x) override;
  torch::Tensor feature_maps(torch::Tensor x) override;
  int64_t embedding_dim() const override { return options.embedding_dim(); }

  int64_t depth;
  CnnEncoderOptions options;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  std::vector<torch::nn::Sequential> layers;  ///< layer1 .. layer4
  torch::nn::Sequential head{nullptr};
};
TORCH_MODULE(ResnetEncoder);

/// A small fully-convolutional encoder: the cnn encoder's conv–batch-norm–ReLU–max-pool blocks
/// (conv_channels), then global average pooling instead of flattening, so that the input size is
/// free (at least 2^blocks pixels a side), then embedding_head.
class ConvnetEncoderImpl : public EncoderImpl {
 public:
  explicit ConvnetEncoderImpl(CnnEncoderOptions options);
  torch::Tensor forward(torch::Tensor x) override;
  torch::Tensor feature_maps(torch::Tensor x) override;
  int64_t embedding_dim() const override { return options.embedding_dim(); }

  CnnEncoderOptions options;
  torch::nn::Sequential features{nullptr};
  torch::nn::Sequential head{nullptr};
};
TORCH_MODULE(ConvnetEncoder);

/// A TorchScript module saved in Python (torch.jit.save(torch.jit.script(m)) or a traced module)
/// as the trunk: its output, a vector [N, F] or feature maps [N, C, h, w] (average-pooled), feeds
/// embedding_head. Its parameters and buffers are this module's ("script_" + the module's name,
/// dots as underscores), so the optimiser trains them and save()/load() keep them; train() and
/// eval() reach it.
class TorchScriptEncoderImpl : public EncoderImpl {
 public:
  /// script: the saved module's bytes (SiameseNetworkOptions::backbone); options: in_channels,
  /// height and width of a probe input that finds the output's width, hidden, embedding_dim,
  /// normalize. Throws siamese::Error naming `source`: bytes LibTorch cannot load as a module, a
  /// module that fails on the probe input or whose output is not 2-D or 4-D.
  TorchScriptEncoderImpl(std::shared_ptr<const std::string> script, const std::string& source, CnnEncoderOptions options);
  torch::Tensor forward(torch::Tensor x) override;
  /// The module's output when it is 4-D; Unsupported otherwise.
  torch::Tensor feature_maps(torch::Tensor x) override;
  int64_t embedding_dim() const override { return options.embedding_dim(); }
  void train(bool on = true) override;

  CnnEncoderOptions options;
  std::shared_ptr<torch::jit::Module> module;
  torch::nn::Sequential head{nullptr};

 private:
  torch::Tensor run(const torch::Tensor& x);
  std::string source_;
};
TORCH_MODULE(TorchScriptEncoder);

}  // namespace siamese
