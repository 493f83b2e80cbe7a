#pragma once
/// \file quantize.h  int8 inference for the "cnn" encoder on the CPU (`--int8`): convolutions
/// (batch norm folded in) and the hidden dense layer run as LibTorch's quantized operators
/// (oneDNN, FBGEMM or QNNPACK, whichever this LibTorch has), with per-channel int8 weights and
/// uint8 activations; the last dense layer and the L2 normalisation stay float32.
///
/// Activation ranges come from calibration, made by the trainer on validation images whenever it
/// saves a model and stored in its configuration (SiameseNetworkOptions::int8_ranges), so that
/// every consumer of one model file quantizes it the same way and a gallery and its queries
/// embed alike.

#include <torch/types.h>

#include <memory>
#include <vector>

namespace siamese {

class SiameseNetworkImpl;

/// Whether a network can run under --int8: a "cnn" encoder. Others are refused with this reason.
bool int8_supported(const SiameseNetworkImpl& net);

/// The activation ranges of `net` ("cnn" encoder, eval mode, on any device) over `images`
/// [N, C, H, W] in [0, 1], 64 images a pass: the largest output of each conv block, then of the
/// hidden dense layer when there is one. Throws Error(Unsupported) for another encoder and
/// Error(InvalidArgument) for a network in training mode, no images or a range that is not finite
/// (a diverged network).
std::vector<double> int8_ranges(SiameseNetworkImpl& net, const torch::Tensor& images);

/// An int8 copy of a "cnn" network for embedding on the CPU. Built from the network's weights and
/// options().int8_ranges(); the network may change afterwards without affecting the copy.
/// Thread safety: embed() only reads, so threads may share one QuantizedCnn. Building one sets
/// LibTorch's process-wide quantized engine while it packs the weights, under a lock, and puts the
/// previous engine back.
class QuantizedCnn {
 public:
  /// Throws Error(Unsupported) when the encoder is not "cnn", the network is not on the CPU or
  /// this LibTorch has no quantized engine, and Error(InvalidArgument) when the model carries no
  /// int8 ranges ("saved before int8 calibration: retrain it") or ranges of the wrong count.
  explicit QuantizedCnn(SiameseNetworkImpl& net);
  /// x [N, C, H, W] in [0, 1] -> embeddings [N, D] float32 on the CPU.
  torch::Tensor embed(const torch::Tensor& x) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace siamese
