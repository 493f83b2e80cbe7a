#pragma once
// Image file bytes -> pixels, the bytes checked before any decoder sees them: the readers of
// data.cpp (images of one size, in memory) and photos.cpp (photographs of any size) share it.

#include <opencv2/core.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace siamese::detail {

/// Width and height as an image file's header declares them.
struct DeclaredSize {
  uint64_t width = 0, height = 0;
  uint64_t pixels() const { return width * height; }
};

/// The checks every image file passes before it is decoded, each failure one siamese::Error naming
/// `path`: not empty; a PNG's chunks whole with right CRCs up to IEND; a JPEG that ends with its
/// end-of-image marker (a truncated JPEG otherwise decodes silently as grey); the signature of a
/// PNG, JPEG, BMP, PGM/PPM or WebP file (OpenCV's other decoders are third-party code we do not
/// fuzz); a readable size in the header of at most `max_pixels` pixels (InvalidArgument beyond).
DeclaredSize check_image_bytes(const std::string& bytes, const std::string& path, uint64_t max_pixels);

/// An image file's bytes (8-bit, 1 or 3 channels) -> uint8 [C, H, W], RGB; `path` names it in
/// errors. `mat` is the decoder's buffer (reused between calls). Unsupported for 16-bit and
/// 4-channel images: images of one size are taken exactly as they are.
torch::Tensor decode_mat(const std::string& bytes, const std::string& path, cv::Mat& mat, uint64_t max_pixels);

/// A photograph's bytes (8 or 16 bits, grey, RGB, RGBA, CMYK) -> uint8 [channels, h, w], RGB,
/// alpha dropped, its shorter side resized to `side` (0: kept) with area averaging when it shrinks
/// and bilinear interpolation when it grows. A JPEG much larger than `side` is decoded at 1/2, 1/4
/// or 1/8 scale (libjpeg's reduced decoding), never below `side`. channels: 1 or 3.
torch::Tensor decode_photo(const std::string& bytes, const std::string& path, int64_t channels, int64_t side,
                           uint64_t max_pixels);

}  // namespace siamese::detail
