#pragma once
/// \file augment.h  Seeded image augmentation, applied by the loader's worker threads.
///
/// A specification lists transforms as `name=value[@probability]`, comma-separated, e.g.
/// "rotate=15,flip=0.5,scale=0.1,translate=0.1,noise=0.05@0.5". Each transform fires with its
/// probability (default 1; for `flip` the value is the probability) and draws its amount
/// uniformly within the range:
///   rotate=DEG       rotation by up to ±DEG degrees
///   flip=P           horizontal flip with probability P
///   scale=S          zoom by a factor in [1−S, 1+S]
///   translate=T      shift by up to ±T of the width and of the height
///   crop=C           crop a window of side (1−u·C), u ∈ [0, 1], at a random place; resize back
///   noise=SIGMA      additive Gaussian noise, standard deviation up to SIGMA (pixels in [0, 1])
///   brightness=B     add a value in [−B, B]
///   contrast=C       scale the deviation from the image mean by a factor in [1−C, 1+C]
///   blur=SIGMA       Gaussian blur with a standard deviation up to SIGMA pixels (at most the
///                    image's larger side: a wider blur changes nothing more)
/// Geometric transforms are combined into one affine warp (borders replicate the edge pixels);
/// results are clamped to [0, 1]. The same (seed, stream, item) always gives the same image,
/// whichever thread computes it.
/// Thread safety: every function here is pure; any calls may run concurrently.

#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace siamese {

/// One transform's range and probability; a range of 0 switches it off.
struct AugmentRange {
  double value = 0;
  double probability = 1;
};

struct AugmentOptions {
  AugmentRange rotate, flip, scale, translate, crop, noise, brightness, contrast, blur;
  bool any() const;
};

/// Parses a specification (see the file comment); "" or "none" gives no transform. Throws
/// siamese::Error naming the bad entry on an unknown name, a missing or negative value, or a
/// probability outside [0, 1].
AugmentOptions parse_augment(const std::string& spec);
/// The specification back ("none" when nothing is on); parse_augment(to_string(o)) == o.
std::string to_string(const AugmentOptions& options);

/// Applies the transforms to float images [N, C, H, W] in [0, 1] and returns new images of the
/// same shape. Item i draws from a generator seeded by (seed, stream, i): pass a stream that
/// differs per batch (the trainer uses epoch and batch number).
torch::Tensor augment(const torch::Tensor& images, const AugmentOptions& options, uint64_t seed, uint64_t stream);

/// A preview grid: one row per image [N, C, H, W] in [0, 1], the original first, then `versions`
/// augmented versions (stream = version number), cells `zoom` times enlarged and 2 pixels apart.
/// Returns uint8 [H', W', C] (OpenCV layout, ready for cv::imwrite after an RGB->BGR swap).
torch::Tensor augment_grid(const torch::Tensor& images, const AugmentOptions& options, int64_t versions,
                           uint64_t seed, int64_t zoom = 3);

}  // namespace siamese
