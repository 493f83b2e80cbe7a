#pragma once
/// \file plots.h  The report's plots, built on svg.h: ROC curve, pair-distance histograms,
/// curves over epochs, bars by class.
/// Thread safety: pure functions; any calls may run concurrently.

#include <optional>
#include <string>
#include <vector>

#include "siamese/eval/metrics.h"

namespace siamese {

/// A point marked on the ROC curve (e.g. the calibrated threshold's operating point).
struct RocMarker {
  double fpr = 0, tpr = 0;
  std::string label;
};

/// The ROC curve (false accept rate → true accept rate) with the chance diagonal, AUC in the title;
/// drawn through the points where it has moved 1/500 of the axes since the last point drawn.
std::string roc_svg(const Roc& roc, double auc, const std::optional<RocMarker>& marker = std::nullopt);

/// The operating point of `threshold` on these pairs: the shares of different and same pairs
/// with distance <= threshold.
RocMarker operating_point(const std::vector<double>& distance, const std::vector<uint8_t>& same, double threshold);

/// Histograms of same-class and other-class pair distances over `bins` equal bins spanning all
/// distances (and the threshold), each normalised to its own pair count, the threshold marked.
/// Throws siamese::Error on empty or mismatched inputs.
std::string distance_histogram_svg(const std::vector<double>& distance, const std::vector<uint8_t>& same,
                                   double threshold, int bins = 40);

/// One curve of a line chart.
struct Series {
  std::string label, color;
  std::vector<double> y;  ///< one value per x; NaN leaves a point out
};
/// Curves over x (e.g. epochs), y range from the values (from 0 when `from_zero`).
std::string lines_svg(const std::string& title, const std::string& x_label, const std::vector<double>& x,
                      const std::vector<Series>& series, bool from_zero = false);

/// One bar per class (e.g. Recall@1): bar k over [k + 0.1, k + 0.9] with height values[k] clamped
/// to [0, 1], coloured class_color(labels[k]), named names[k] under it (when there are at most 12).
std::string class_bars_svg(const std::string& title, const std::vector<int64_t>& labels,
                           const std::vector<std::string>& names, const std::vector<double>& values);

}  // namespace siamese
