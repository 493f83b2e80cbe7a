#pragma once
/// \file evaluation.h  OTB one-pass evaluation as the GOT-10k toolkit computes it, and the
/// trackers it compares: SiamFC, OpenCV's KCF, CSRT and MIL, and a box that never moves.
///
/// IoU without +1 on the sides; centre = xy + (wh − 1) / 2; success curve over the 21 IoU
/// thresholds linspace(0, 1, 21), counting IoU > t; success AUC = the curve's mean; precision
/// curve over 0 .. 50 px, counting centre error <= t; precision@20 its value at 20 px. Frame 0 is
/// set to the ground truth and counted. Curves are computed per sequence, then averaged.
///
/// Thread safety: the functions may run concurrently; one BoxTracker per thread.

#include <memory>
#include <string>
#include <vector>

#include "siamese/track/sequences.h"
#include "siamese/track/tracker.h"

namespace siamese {

/// Intersection over union, sides without +1; 0 when the union is empty.
double iou(const Box& a, const Box& b);
/// Distance between the centres (centre_of), pixels.
double centre_error(const Box& a, const Box& b);

inline constexpr int kSuccessThresholds = 21;    ///< IoU 0, 0.05, ..., 1
inline constexpr int kPrecisionThresholds = 51;  ///< 0, 1, ..., 50 px

struct Curves {
  std::vector<double> success;    ///< [21] share of frames with IoU > t
  std::vector<double> precision;  ///< [51] share of frames with centre error <= t px
  double success_auc = 0;         ///< mean of the success curve
  double precision_20 = 0;        ///< precision[20]
};
/// The curves of one sequence. Throws Error(InvalidArgument) when the sizes differ or are 0.
Curves sequence_curves(const std::vector<Box>& predicted, const std::vector<Box>& truth);
/// The mean of each point over sequences (and of the two scores). Throws on an empty list.
Curves mean_curves(const std::vector<Curves>& per_sequence);

/// A tracker the evaluation runs: started on a frame and a box, then told each next frame.
class BoxTracker {
 public:
  virtual ~BoxTracker() = default;
  virtual void init(const torch::Tensor& frame, const Box& box) = 0;
  /// The box in the next frame and a confidence (SiamFC's peak; 1 or 0 for OpenCV's found/lost).
  virtual TrackResult update(const torch::Tensor& frame) = 0;
};

/// The names make_tracker takes besides "siamfc".
const std::vector<std::string>& baseline_names();  ///< kcf, csrt, mil, fixed
/// "kcf" | "csrt" | "mil" (OpenCV 4.6's, default parameters; a lost target keeps the last box) or
/// "fixed" (the first box, every frame). Throws Error(InvalidArgument) for another name.
std::unique_ptr<BoxTracker> make_baseline(const std::string& name);
/// The SiamFC-3s tracker (tracker.h) as a BoxTracker.
std::unique_ptr<BoxTracker> make_siamfc_tracker(SiamFC network, TrackerOptions options = {});

/// One tracker over one sequence.
struct SequenceRun {
  std::string sequence;
  std::vector<Box> boxes;     ///< frame 0 = the ground truth's
  std::vector<double> scores; ///< frame 0: 1
  Curves curves;
  double fps = 0;             ///< frames over the tracker's own time (init and updates; reading excluded)
};
/// Reads each frame of `sequence` in turn (read_frame: an unreadable one throws Error naming its
/// file and index), starts `tracker` on frame 0 with the ground truth and updates it on the rest.
SequenceRun run_sequence(BoxTracker& tracker, const Sequence& sequence);

}  // namespace siamese
