#pragma once
/// \file siamfc.h  The fully-convolutional Siamese network of SiamFC (Bertinetto et al. 2016): one
/// trunk φ without padding, total stride 8, applied to an exemplar z (127 × 127) and a search
/// region x (255 × 255); the score map is φ(z) ⋆ φ(x) · 0.001 + b, 17 × 17 (15 × 15 for the
/// 239-pixel search regions of training).
///
/// Thread safety: as any torch::nn::Module (forward passes of one module in eval mode may run
/// concurrently; training does not).

#include <torch/torch.h>

#include <string>
#include <vector>

namespace siamese {

/// Which trunk: the reference's AlexNet (96-256-384-384-256 channels), or the compact default with
/// the same kernels, strides and groups and fewer channels, for tracking at frame rate on 2 cores.
enum class TrunkKind { Compact, AlexNet };
TrunkKind parse_trunk(const std::string& name);  ///< "compact" | "alexnet"
std::string to_string(TrunkKind trunk);

struct SiamFCOptions {
  /// Default compact.
  TORCH_ARG(TrunkKind, trunk) = TrunkKind::Compact;
  /// The score map's scale: φ(z) ⋆ φ(x) grows with the feature maps' size and channels, the
  /// reference multiplies it by 0.001. Default 0.001.
  TORCH_ARG(double, score_scale) = 0.001;
};

/// The channels of the five convolutions of a trunk.
std::vector<int64_t> trunk_channels(TrunkKind trunk);

/// Cross-correlation of each exemplar's feature map with its search region's, as one grouped
/// convolution: z [N, C, hz, wz] (or [1, C, hz, wz], one exemplar for every search region),
/// x [N, C, hx, wx] -> [N, 1, hx − hz + 1, wx − wz + 1], out[n, 0, i, j] = Σ_c,u,v z[n, c, u, v] ·
/// x[n, c, i + u, j + v].
torch::Tensor cross_correlation(const torch::Tensor& z, const torch::Tensor& x);

class SiamFCImpl : public torch::nn::Module {
 public:
  explicit SiamFCImpl(SiamFCOptions options = {});
  /// Images [N, 3, H, W] (pixel values 0-255, as the reference takes them) -> feature maps
  /// [N, C, (H − 87) / 8, ...]: 127 -> 6 × 6, 255 -> 22 × 22, 239 -> 20 × 20.
  torch::Tensor features(const torch::Tensor& images);
  /// Score maps [N, 1, h, w] of exemplar features z against search-region features x
  /// (cross_correlation's shapes), scaled and biased.
  torch::Tensor score(const torch::Tensor& z, const torch::Tensor& x);
  /// score(features(exemplars), features(searches)).
  torch::Tensor forward(const torch::Tensor& exemplars, const torch::Tensor& searches);

  SiamFCOptions options;
  torch::nn::Sequential trunk{nullptr};
  torch::Tensor bias;  ///< [1]
};
TORCH_MODULE(SiamFC);

/// The trunk's total stride: one score-map cell is 8 pixels of the search region.
inline constexpr int64_t kTotalStride = 8;

}  // namespace siamese
