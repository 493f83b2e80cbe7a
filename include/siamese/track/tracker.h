#pragma once
/// \file tracker.h  Following one object through the frames of a video with a SiamFC network
/// (siamfc.h): the exemplar cut once around the first box, then in every frame three search
/// regions around the last position at three scales, the best score map's peak the new position
/// (SiamFC-3s, with the reference's rules and values as defaults).
///
/// Frames are tensors [3, H, W] (uint8 or float, values 0-255, RGB), all of one size in a video.
/// Thread safety: one Tracker per thread (it holds the tracked object's state); trackers may share
/// a network in eval mode.

#include <torch/torch.h>

#include <array>

#include "siamese/track/siamfc.h"

namespace siamese {

/// A box in pixels: top-left corner x, y, width w, height h (OTB's ground-truth convention).
struct Box {
  double x = 0, y = 0, w = 0, h = 0;
};

/// The box's centre as OTB and the GOT-10k toolkit compute it: (x + (w − 1) / 2, y + (h − 1) / 2).
std::array<double, 2> centre_of(const Box& box);

/// A square of side `size` pixels of `frame` [3, H, W] centred on (cx, cy), resized to out × out:
/// output pixel (i, j) is the frame, interpolated bilinearly, at column cx + (j − (out − 1) / 2) ·
/// size / out and row cy + (i − (out − 1) / 2) · size / out; outside the frame each channel
/// takes `fill`. -> float [3, out, out]. With size == out and an integer centre: a plain copy.
torch::Tensor crop_patch(const torch::Tensor& frame, double cx, double cy, double size, int64_t out,
                         const std::array<double, 3>& fill);

/// The side of the exemplar's square around a target of w × h with `context` of (w + h) added to
/// each side: sqrt((w + context·(w + h)) · (h + context·(w + h))). The search region's is this
/// × search_size / exemplar_size.
double exemplar_side(double w, double h, double context);

struct TrackerOptions {
  TORCH_ARG(int64_t, exemplar_size) = 127;   ///< exemplar crop, pixels
  TORCH_ARG(int64_t, search_size) = 255;     ///< search-region crop, pixels
  TORCH_ARG(double, context) = 0.5;          ///< exemplar_side's context
  TORCH_ARG(int64_t, scales) = 3;            ///< search regions a frame, odd
  TORCH_ARG(double, scale_step) = 1.0375;    ///< ratio between successive scales
  TORCH_ARG(double, scale_penalty) = 0.9745; ///< the peaks of the other scales are multiplied by it
  TORCH_ARG(double, scale_lr) = 0.59;        ///< the size follows the best scale by this share
  TORCH_ARG(int64_t, upscale) = 16;          ///< score maps upsampled (bicubic) by this factor
  TORCH_ARG(double, window_influence) = 0.176;  ///< weight of the cosine (Hann) window on the map
  TORCH_ARG(double, min_scale) = 0.2;        ///< the size stays in [min_scale, max_scale] × the first
  TORCH_ARG(double, max_scale) = 5;
};

struct TrackResult {
  Box box;
  double score = 0;  ///< the chosen score map's peak (its raw value, before the window)
};

class Tracker {
 public:
  /// Puts `network` in eval mode. Throws Error(InvalidArgument) on options out of range.
  explicit Tracker(SiamFC network, TrackerOptions options = {});
  /// Starts on `frame` with the object in `box`. Throws Error(InvalidArgument) when the box is
  /// empty (w or h < 1), not finite, or does not overlap the frame, or the frame is not [3, H, W].
  void init(const torch::Tensor& frame, const Box& box);
  /// The object's box in the next frame. Throws Error(InvalidArgument) before init or when the
  /// frame's size differs from init's.
  TrackResult update(const torch::Tensor& frame);

 private:
  SiamFC net_;
  TrackerOptions o_;
  torch::Tensor kernel_;  ///< the exemplar's features [1, C, h, w]
  torch::Tensor window_;  ///< Hann window of the upsampled map, summing to 1
  std::array<double, 3> fill_{};
  int64_t height_ = 0, width_ = 0;
  double cx_ = 0, cy_ = 0, w0_ = 0, h0_ = 0, z0_ = 0, scale_ = 1;
};

}  // namespace siamese
