#pragma once
/// \file svg.h  Small SVG plots for reports: linear axes with 1-2-5 ticks, lines, histograms,
/// bars, scatter points and marker lines, as one standalone `<svg>` element.
/// Thread safety: a Plot is used by one thread; the free functions are pure.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace siamese {

/// "Nice" tick positions covering [lo, hi]: multiples of 1, 2 or 5 × 10^k, at most `max_ticks`
/// of them, the first >= lo and the last <= hi. lo == hi gives {lo}. Throws siamese::Error
/// (InvalidArgument) on hi < lo, non-finite bounds or max_ticks < 2.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 6);

/// Counts of `values` in `bins` equal bins over [lo, hi]; a value equal to hi falls in the last
/// bin, values outside [lo, hi] and NaN are not counted. Throws siamese::Error on bins < 1 or
/// hi <= lo.
std::vector<int64_t> histogram_counts(const std::vector<double>& values, double lo, double hi, int bins);

/// What a plot shows and its size in pixels. Defaults: 480 × 320, no labels.
struct PlotOptions {
  double width = 480, height = 320;
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  ///< data ranges mapped onto the plot area
  std::string title, x_label, y_label;
  /// Labelled x ticks (position, text) in place of the numeric ones, e.g. class names under bars.
  std::vector<std::pair<double, std::string>> x_ticks;
};

/// One plot. The plot area is the SVG minus fixed margins: `left` px for the y ticks and label,
/// `right`, `top` for the title, `bottom` for the x ticks and label. A data point (x, y) maps to
/// px = left + (x − x_lo) / (x_hi − x_lo) · (width − left − right) and
/// py = top + (y_hi − y) / (y_hi − y_lo) · (height − top − bottom).
class Plot {
 public:
  static constexpr double left = 56, right = 16, top = 28, bottom = 44;

  /// Throws siamese::Error (InvalidArgument) on an empty or non-finite range, or a size smaller
  /// than the margins.
  explicit Plot(PlotOptions options);

  double px(double x) const;  ///< horizontal pixel of data x
  double py(double y) const;  ///< vertical pixel of data y

  /// A polyline through (x[i], y[i]); `label` goes in the legend when not empty.
  void line(const std::vector<double>& x, const std::vector<double>& y, const std::string& color,
            const std::string& label = "", bool dashed = false);
  /// Bars from y = max(y_lo, 0) to each height, bar i over [edges[i], edges[i + 1]]
  /// (edges.size() == heights.size() + 1), filled with `color` at `opacity`.
  void bars(const std::vector<double>& edges, const std::vector<double>& heights, const std::string& color,
            double opacity = 1, const std::string& label = "");
  /// A vertical line at data x across the plot area, its label at the top.
  void vertical(double x, const std::string& color, const std::string& label = "");
  /// A dot of radius r at (x, y). `tip` becomes its tooltip (<title>); `extra` is raw SVG drawn
  /// inside the dot's group and shown only while the pointer is over it (the report's
  /// stylesheet: `.pt .hover`), e.g. an <image> thumbnail.
  void point(double x, double y, double r, const std::string& color, const std::string& tip = "",
             const std::string& extra = "");
  /// The whole <svg> element: frame, ticks, labels, then what was drawn, then the legend.
  std::string str() const;

 private:
  PlotOptions o_;
  std::string body_;
  std::vector<std::pair<std::string, std::string>> legend_;  // (color, label)
};

/// Ten colours that stay apart (Tableau 10), by class: class_color(c) == class_color(c + 10).
const std::string& class_color(int64_t label);

}  // namespace siamese
