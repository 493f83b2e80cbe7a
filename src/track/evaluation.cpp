#include "siamese/track/evaluation.h"

#include <opencv2/imgproc.hpp>
#include <opencv2/tracking.hpp>
#include <opencv2/video/tracking.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "siamese/core/error.h"

namespace siamese {

double iou(const Box& a, const Box& b) {
  const double w = std::max(0.0, std::min(a.x + a.w, b.x + b.w) - std::max(a.x, b.x));
  const double h = std::max(0.0, std::min(a.y + a.h, b.y + b.h) - std::max(a.y, b.y));
  const double inter = w * h, uni = a.w * a.h + b.w * b.h - inter;
  return uni > 0 ? std::clamp(inter / uni, 0.0, 1.0) : 0.0;
}

double centre_error(const Box& a, const Box& b) {
  const auto ca = centre_of(a), cb = centre_of(b);
  return std::hypot(ca[0] - cb[0], ca[1] - cb[1]);
}

Curves sequence_curves(const std::vector<Box>& predicted, const std::vector<Box>& truth) {
  if (predicted.empty() || predicted.size() != truth.size()) {
    throw Error(ErrorCode::InvalidArgument, "sequence_curves: " + std::to_string(predicted.size()) + " boxes for " +
                                                std::to_string(truth.size()) + " ground-truth boxes");
  }
  Curves c;
  c.success.assign(kSuccessThresholds, 0);
  c.precision.assign(kPrecisionThresholds, 0);
  const double n = static_cast<double>(truth.size());
  for (size_t f = 0; f < truth.size(); ++f) {
    const double overlap = iou(predicted[f], truth[f]), error = centre_error(predicted[f], truth[f]);
    for (int t = 0; t < kSuccessThresholds; ++t) c.success[t] += overlap > t / 20.0 ? 1 / n : 0;
    for (int t = 0; t < kPrecisionThresholds; ++t) c.precision[t] += error <= t ? 1 / n : 0;
  }
  for (double s : c.success) c.success_auc += s / kSuccessThresholds;
  c.precision_20 = c.precision[20];
  return c;
}

Curves mean_curves(const std::vector<Curves>& all) {
  if (all.empty()) throw Error(ErrorCode::InvalidArgument, "mean_curves: no sequence");
  Curves m;
  m.success.assign(kSuccessThresholds, 0);
  m.precision.assign(kPrecisionThresholds, 0);
  const double n = static_cast<double>(all.size());
  for (const auto& c : all) {
    for (int t = 0; t < kSuccessThresholds; ++t) m.success[t] += c.success[t] / n;
    for (int t = 0; t < kPrecisionThresholds; ++t) m.precision[t] += c.precision[t] / n;
    m.success_auc += c.success_auc / n;
    m.precision_20 += c.precision_20 / n;
  }
  return m;
}

namespace {

cv::Mat to_bgr(const torch::Tensor& frame) {
  const auto hwc = frame.to(torch::kUInt8).permute({1, 2, 0}).contiguous();
  const cv::Mat rgb(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  return bgr;
}

/// OpenCV's trackers take and give integer rectangles.
class OpenCvTracker : public BoxTracker {
 public:
  explicit OpenCvTracker(cv::Ptr<cv::Tracker> tracker) : tracker_(std::move(tracker)) {}
  void init(const torch::Tensor& frame, const Box& box) override {
    last_ = box;
    tracker_->init(to_bgr(frame), cv::Rect(static_cast<int>(std::lround(box.x)), static_cast<int>(std::lround(box.y)),
                                           std::max(1, static_cast<int>(std::lround(box.w))),
                                           std::max(1, static_cast<int>(std::lround(box.h)))));
  }
  TrackResult update(const torch::Tensor& frame) override {
    cv::Rect r;
    if (!tracker_->update(to_bgr(frame), r)) return {last_, 0};
    last_ = {static_cast<double>(r.x), static_cast<double>(r.y), static_cast<double>(r.width), static_cast<double>(r.height)};
    return {last_, 1};
  }

 private:
  cv::Ptr<cv::Tracker> tracker_;
  Box last_;
};

class FixedBox : public BoxTracker {
 public:
  void init(const torch::Tensor&, const Box& box) override { box_ = box; }
  TrackResult update(const torch::Tensor&) override { return {box_, 1}; }

 private:
  Box box_;
};

class SiamFCTracker : public BoxTracker {
 public:
  SiamFCTracker(SiamFC network, TrackerOptions options) : tracker_(std::move(network), options) {}
  void init(const torch::Tensor& frame, const Box& box) override { tracker_.init(frame, box); }
  TrackResult update(const torch::Tensor& frame) override { return tracker_.update(frame); }

 private:
  Tracker tracker_;
};

}  // namespace

const std::vector<std::string>& baseline_names() {
  static const std::vector<std::string> kNames{"kcf", "csrt", "mil", "fixed"};
  return kNames;
}

std::unique_ptr<BoxTracker> make_baseline(const std::string& name) {
  if (name == "kcf") return std::make_unique<OpenCvTracker>(cv::TrackerKCF::create());
  if (name == "csrt") return std::make_unique<OpenCvTracker>(cv::TrackerCSRT::create());
  if (name == "mil") return std::make_unique<OpenCvTracker>(cv::TrackerMIL::create());
  if (name == "fixed") return std::make_unique<FixedBox>();
  throw Error(ErrorCode::InvalidArgument, "unknown tracker '" + name + "' (siamfc, kcf, csrt, mil, fixed)");
}

std::unique_ptr<BoxTracker> make_siamfc_tracker(SiamFC network, TrackerOptions options) {
  return std::make_unique<SiamFCTracker>(std::move(network), options);
}

SequenceRun run_sequence(BoxTracker& tracker, const Sequence& s) {
  using Clock = std::chrono::steady_clock;
  SequenceRun run;
  run.sequence = s.name;
  double seconds = 0;
  for (size_t f = 0; f < s.frames.size(); ++f) {
    torch::Tensor frame;
    try {
      frame = read_frame(s.frames[f]);
    } catch (const Error&) {
      throw Error(ErrorCode::Corruption, s.frames[f], "frame " + std::to_string(f) + " of " + s.name + ": unreadable image");
    }
    const auto start = Clock::now();
    if (f == 0) {
      tracker.init(frame, s.boxes[0]);
      run.boxes.push_back(s.boxes[0]);
      run.scores.push_back(1);
    } else {
      const auto r = tracker.update(frame);
      run.boxes.push_back(r.box);
      run.scores.push_back(r.score);
    }
    seconds += std::chrono::duration<double>(Clock::now() - start).count();
  }
  run.curves = sequence_curves(run.boxes, s.boxes);
  run.fps = static_cast<double>(s.frames.size()) / std::max(1e-9, seconds);
  return run;
}

}  // namespace siamese
