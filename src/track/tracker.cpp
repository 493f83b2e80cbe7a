#include "siamese/track/tracker.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "siamese/core/error.h"

namespace siamese {

namespace {

void check_frame(const torch::Tensor& frame) {
  if (frame.dim() != 3 || frame.size(0) != 3 || frame.size(1) < 1 || frame.size(2) < 1) {
    throw Error(ErrorCode::InvalidArgument, "tracker: a frame is [3, H, W], got " + c10::str(frame.sizes()));
  }
}

}  // namespace

std::array<double, 2> centre_of(const Box& b) { return {b.x + (b.w - 1) / 2, b.y + (b.h - 1) / 2}; }

namespace {

/// crop_patch's rule on a frame already converted to float HWC (a cv::Mat of CV_32FC3).
torch::Tensor crop_mat(const cv::Mat& src, double cx, double cy, double size, int64_t out, const std::array<double, 3>& fill) {
  if (!(size > 0) || !std::isfinite(size) || out < 1 || !std::isfinite(cx) || !std::isfinite(cy)) {
    throw Error(ErrorCode::InvalidArgument, "crop_patch: a crop needs a finite centre and sizes > 0");
  }
  const double s = size / static_cast<double>(out), half = (static_cast<double>(out) - 1) / 2;
  // Output pixel (i, j) reads the frame at (cx + (j − half)·s, cy + (i − half)·s).
  const cv::Mat map = (cv::Mat_<double>(2, 3) << s, 0, cx - half * s, 0, s, cy - half * s);
  auto result = torch::empty({out, out, 3}, torch::kFloat32);
  cv::Mat dst(static_cast<int>(out), static_cast<int>(out), CV_32FC3, result.data_ptr<float>());
  cv::warpAffine(src, dst, map, dst.size(), cv::INTER_LINEAR | cv::WARP_INVERSE_MAP, cv::BORDER_CONSTANT,
                 cv::Scalar(fill[0], fill[1], fill[2]));
  return result.permute({2, 0, 1}).contiguous();
}

/// The frame as float HWC, and a cv::Mat over it.
struct FloatFrame {
  explicit FloatFrame(const torch::Tensor& frame)
      : hwc(frame.to(torch::kFloat32).permute({1, 2, 0}).contiguous()),
        mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_32FC3, hwc.data_ptr<float>()) {}
  torch::Tensor hwc;
  cv::Mat mat;
};

}  // namespace

torch::Tensor crop_patch(const torch::Tensor& frame, double cx, double cy, double size, int64_t out,
                         const std::array<double, 3>& fill) {
  check_frame(frame);
  return crop_mat(FloatFrame(frame).mat, cx, cy, size, out, fill);
}

double exemplar_side(double w, double h, double context) {
  const double pad = context * (w + h);
  return std::sqrt((w + pad) * (h + pad));
}

Tracker::Tracker(SiamFC network, TrackerOptions o) : net_(std::move(network)), o_(o) {
  if (o.scales() < 1 || o.scales() % 2 == 0 || o.upscale() < 1 || !(o.scale_step() >= 1) || !(o.min_scale() > 0) ||
      !(o.max_scale() >= o.min_scale()) || o.exemplar_size() < 87 || o.search_size() < o.exemplar_size() ||
      !(o.window_influence() >= 0 && o.window_influence() <= 1) || !(o.scale_lr() >= 0 && o.scale_lr() <= 1)) {
    throw Error(ErrorCode::InvalidArgument, "tracker options out of range (odd scales >= 1, scale step >= 1, "
                                            "0 < min scale <= max scale, window influence and scale lr in [0, 1])");
  }
  net_->eval();
}

void Tracker::init(const torch::Tensor& frame, const Box& box) {
  check_frame(frame);
  height_ = frame.size(1), width_ = frame.size(2);
  const bool finite = std::isfinite(box.x) && std::isfinite(box.y) && std::isfinite(box.w) && std::isfinite(box.h);
  if (!finite || box.w < 1 || box.h < 1) {
    throw Error(ErrorCode::InvalidArgument, "tracker: the first box needs a width and height of at least 1 pixel");
  }
  if (box.x + box.w <= 0 || box.y + box.h <= 0 || box.x >= width_ || box.y >= height_) {
    throw Error(ErrorCode::InvalidArgument, "tracker: the first box lies outside the " + std::to_string(width_) + " × " +
                                                std::to_string(height_) + " frame");
  }
  const auto c = centre_of(box);
  cx_ = c[0], cy_ = c[1], w0_ = box.w, h0_ = box.h, scale_ = 1;
  z0_ = exemplar_side(box.w, box.h, o_.context());
  const auto mean = frame.to(torch::kFloat32).mean({1, 2});
  for (int i = 0; i < 3; ++i) fill_[i] = mean[i].item<double>();
  torch::NoGradGuard no_grad;
  kernel_ = net_->features(crop_patch(frame, cx_, cy_, z0_, o_.exemplar_size(), fill_).unsqueeze(0));
  const auto map = (o_.search_size() - o_.exemplar_size()) / kTotalStride + 1;
  const auto hann = torch::hann_window(map * o_.upscale(), /*periodic=*/false, torch::kFloat32);
  window_ = torch::outer(hann, hann);
  window_ /= window_.sum();
}

TrackResult Tracker::update(const torch::Tensor& frame) {
  check_frame(frame);
  if (!kernel_.defined()) throw Error(ErrorCode::InvalidArgument, "tracker: update before init");
  if (frame.size(1) != height_ || frame.size(2) != width_) {
    throw Error(ErrorCode::InvalidArgument, "tracker: a frame of " + std::to_string(frame.size(2)) + " × " +
                                                std::to_string(frame.size(1)) + " after frames of " + std::to_string(width_) +
                                                " × " + std::to_string(height_));
  }
  torch::NoGradGuard no_grad;
  const FloatFrame pixels(frame);  // converted once for the scales' crops
  const double x_side = z0_ * scale_ * static_cast<double>(o_.search_size()) / o_.exemplar_size();
  std::vector<double> factors;
  std::vector<torch::Tensor> crops;
  for (int64_t k = 0; k < o_.scales(); ++k) {
    factors.push_back(std::pow(o_.scale_step(), static_cast<double>(k - o_.scales() / 2)));
    crops.push_back(crop_mat(pixels.mat, cx_, cy_, x_side * factors.back(), o_.search_size(), fill_));
  }
  const auto maps = net_->score(kernel_, net_->features(torch::stack(crops)));
  const auto side = window_.size(0);
  auto up = torch::nn::functional::interpolate(
                maps, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{side, side}).mode(torch::kBicubic).align_corners(false))
                .squeeze(1);
  auto peaks = up.amax({1, 2});
  for (int64_t k = 0; k < o_.scales(); ++k) {
    if (k != o_.scales() / 2) peaks[k] *= o_.scale_penalty();
  }
  const int64_t best = peaks.argmax().item<int64_t>();
  auto r = up[best] - up[best].min();
  r = (1 - o_.window_influence()) * r / (r.sum() + 1e-16) + o_.window_influence() * window_;
  const int64_t at = r.argmax().item<int64_t>();
  // From the upsampled map's centre to the peak, in search-region pixels, then in frame pixels.
  const double centre = (static_cast<double>(side) - 1) / 2;
  const double to_frame = static_cast<double>(kTotalStride) / o_.upscale() * x_side * factors[best] / o_.search_size();
  cy_ += (static_cast<double>(at / side) - centre) * to_frame;
  cx_ += (static_cast<double>(at % side) - centre) * to_frame;
  scale_ = std::clamp(scale_ * ((1 - o_.scale_lr()) + o_.scale_lr() * factors[best]), o_.min_scale(), o_.max_scale());
  const double w = w0_ * scale_, h = h0_ * scale_;
  return {{cx_ - (w - 1) / 2, cy_ - (h - 1) / 2, w, h}, maps[best].max().item<double>()};
}

}  // namespace siamese
