#include "siamese/report/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "siamese/core/error.h"
#include "siamese/report/svg.h"

namespace siamese {

std::string roc_svg(const Roc& roc, double auc, const std::optional<RocMarker>& marker) {
  char title[64];
  std::snprintf(title, sizeof title, "ROC, AUC %.4f", auc);
  PlotOptions o;
  o.width = 420;
  o.height = 400;
  o.title = title;
  o.x_label = "false accept rate";
  o.y_label = "true accept rate";
  Plot plot(o);
  plot.line({0, 1}, {0, 1}, "#bbbbbb", "", true);
  // A point where the curve has moved 1/500 of the axes since the last one drawn: the same line
  // to the eye, a few hundred points instead of one per distinct distance.
  std::vector<double> x{0}, y{0};
  for (size_t i = 0; i < roc.fpr.size() && i < roc.tpr.size(); ++i) {
    if (std::fabs(roc.fpr[i] - x.back()) + std::fabs(roc.tpr[i] - y.back()) >= 0.002 || i + 1 == roc.fpr.size()) {
      x.push_back(roc.fpr[i]);
      y.push_back(roc.tpr[i]);
    }
  }
  x.push_back(1);
  y.push_back(1);
  plot.line(x, y, "#c22", "ROC");
  if (marker) {
    char tip[160];
    std::snprintf(tip, sizeof tip, "%s: FAR %.4f, TAR %.4f", marker->label.c_str(), marker->fpr, marker->tpr);
    plot.point(marker->fpr, marker->tpr, 5, "#222", tip);
    plot.line({marker->fpr}, {marker->tpr}, "#222", marker->label);
  }
  return plot.str();
}

RocMarker operating_point(const std::vector<double>& distance, const std::vector<uint8_t>& same, double threshold) {
  double accepted_same = 0, accepted_other = 0, n_same = 0, n_other = 0;
  for (size_t i = 0; i < distance.size() && i < same.size(); ++i) {
    (same[i] ? n_same : n_other) += 1;
    if (distance[i] <= threshold) (same[i] ? accepted_same : accepted_other) += 1;
  }
  return {n_other > 0 ? accepted_other / n_other : 0, n_same > 0 ? accepted_same / n_same : 0, "threshold"};
}

std::string distance_histogram_svg(const std::vector<double>& distance, const std::vector<uint8_t>& same,
                                   double threshold, int bins) {
  if (distance.empty() || distance.size() != same.size()) {
    throw Error(ErrorCode::InvalidArgument, "distance histogram: needs one 'same' flag per distance, and distances");
  }
  double lo = *std::min_element(distance.begin(), distance.end());
  double hi = *std::max_element(distance.begin(), distance.end());
  if (std::isfinite(threshold)) {
    lo = std::min(lo, threshold);
    hi = std::max(hi, threshold);
  }
  if (!(hi > lo)) hi = lo + 1;
  std::vector<double> d_same, d_other;
  for (size_t i = 0; i < distance.size(); ++i) (same[i] ? d_same : d_other).push_back(distance[i]);
  auto shares = [&](const std::vector<double>& d) {
    auto counts = histogram_counts(d, lo, hi, bins);
    std::vector<double> s(counts.size());
    for (size_t i = 0; i < counts.size(); ++i) s[i] = d.empty() ? 0 : static_cast<double>(counts[i]) / d.size();
    return s;
  };
  const auto s_same = shares(d_same), s_other = shares(d_other);
  const double top = std::max(*std::max_element(s_same.begin(), s_same.end()), *std::max_element(s_other.begin(), s_other.end()));
  std::vector<double> edges(static_cast<size_t>(bins) + 1);
  for (int i = 0; i <= bins; ++i) edges[static_cast<size_t>(i)] = lo + (hi - lo) * i / bins;
  PlotOptions o;
  o.width = 520;
  o.x_lo = lo;
  o.x_hi = hi;
  o.y_hi = top > 0 ? top * 1.1 : 1;
  o.title = "pair distances";
  o.x_label = "distance";
  o.y_label = "share of pairs";
  Plot plot(o);
  plot.bars(edges, s_same, "#4e79a7", 0.6, "same class (" + std::to_string(d_same.size()) + ")");
  plot.bars(edges, s_other, "#e15759", 0.6, "other class (" + std::to_string(d_other.size()) + ")");
  char label[48];
  std::snprintf(label, sizeof label, "threshold %.4f", threshold);
  if (std::isfinite(threshold)) plot.vertical(threshold, "#222", label);
  return plot.str();
}

std::string lines_svg(const std::string& title, const std::string& x_label, const std::vector<double>& x,
                      const std::vector<Series>& series, bool from_zero) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : series) {
    for (double v : s.y) {
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
    }
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (from_zero) lo = std::min(lo, 0.0);
  if (!(hi > lo)) hi = lo + (lo == 0 ? 1 : std::fabs(lo) * 0.1);
  const double pad = (hi - lo) * 0.05;
  PlotOptions o;
  o.title = title;
  o.x_label = x_label;
  o.x_lo = x.empty() ? 0 : x.front();
  o.x_hi = x.size() > 1 ? x.back() : o.x_lo + 1;
  o.y_lo = from_zero && lo >= 0 ? lo : lo - pad;
  o.y_hi = hi + pad;
  Plot plot(o);
  for (const auto& s : series) {
    plot.line(x, s.y, s.color, s.label);
    for (size_t i = 0; i < x.size() && i < s.y.size(); ++i) {
      if (std::isfinite(s.y[i])) plot.point(x[i], s.y[i], 2.5, s.color);
    }
  }
  return plot.str();
}

std::string class_bars_svg(const std::string& title, const std::vector<int64_t>& labels,
                           const std::vector<std::string>& names, const std::vector<double>& values) {
  PlotOptions o;
  o.width = std::max(320.0, 80 + 48.0 * static_cast<double>(values.size()));
  o.x_hi = std::max<double>(1, static_cast<double>(values.size()));
  o.title = title;
  for (size_t k = 0; k < values.size() && values.size() <= 12; ++k) {
    std::string name = k < names.size() ? names[k] : std::to_string(k);
    if (name.size() > 8) name = name.substr(0, 7) + ".";
    o.x_ticks.emplace_back(static_cast<double>(k) + 0.5, name);
  }
  if (o.x_ticks.empty()) o.x_label = "class (in label order)";
  Plot plot(o);
  for (size_t k = 0; k < values.size(); ++k) {
    const double x = static_cast<double>(k);
    plot.bars({x + 0.1, x + 0.9}, {std::clamp(values[k], 0.0, 1.0)}, class_color(k < labels.size() ? labels[k] : 0));
  }
  return plot.str();
}

}  // namespace siamese
