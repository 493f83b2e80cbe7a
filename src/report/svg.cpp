#include "siamese/report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "siamese/core/error.h"
#include "siamese/report/html.h"

namespace siamese {

namespace {

std::string fmt(const char* format, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, a);
  return buf;
}

/// A tick label: few digits, no trailing zeros ("0.25", "1000", "1e-05").
std::string tick_label(double v) {
  if (std::fabs(v) < 1e-12) return "0";
  return fmt("%.4g", v);
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi < lo || max_ticks < 2) {
    throw Error(ErrorCode::InvalidArgument, "nice_ticks: needs finite lo <= hi and max_ticks >= 2");
  }
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / (max_ticks - 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * magnitude >= raw * (1 - 1e-9)) {
      step = m * magnitude;
      break;
    }
  }
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k += 1) {
    ticks.push_back(std::fabs(k * step) < step * 1e-9 ? 0.0 : k * step);
  }
  return ticks;
}

std::vector<int64_t> histogram_counts(const std::vector<double>& values, double lo, double hi, int bins) {
  if (bins < 1 || !(hi > lo)) throw Error(ErrorCode::InvalidArgument, "histogram_counts: needs bins >= 1 and hi > lo");
  std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
  for (double v : values) {
    if (!(v >= lo && v <= hi)) continue;
    const auto bin = std::min<int64_t>(bins - 1, static_cast<int64_t>((v - lo) / (hi - lo) * bins));
    ++counts[static_cast<size_t>(bin)];
  }
  return counts;
}

Plot::Plot(PlotOptions options) : o_(std::move(options)) {
  const bool finite = std::isfinite(o_.x_lo) && std::isfinite(o_.x_hi) && std::isfinite(o_.y_lo) && std::isfinite(o_.y_hi);
  if (!finite || !(o_.x_hi > o_.x_lo) || !(o_.y_hi > o_.y_lo)) {
    throw Error(ErrorCode::InvalidArgument, "plot '" + o_.title + "': empty or non-finite data range");
  }
  if (o_.width <= left + right || o_.height <= top + bottom) {
    throw Error(ErrorCode::InvalidArgument, "plot '" + o_.title + "': smaller than its margins");
  }
}

double Plot::px(double x) const { return left + (x - o_.x_lo) / (o_.x_hi - o_.x_lo) * (o_.width - left - right); }

double Plot::py(double y) const { return top + (o_.y_hi - y) / (o_.y_hi - o_.y_lo) * (o_.height - top - bottom); }

void Plot::line(const std::vector<double>& x, const std::vector<double>& y, const std::string& color,
                const std::string& label, bool dashed) {
  const size_t n = std::min(x.size(), y.size());
  body_ += "<polyline class=\"line\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\"" +
           (dashed ? " stroke-dasharray=\"5 4\"" : "") + " points=\"";
  char buf[48];
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    std::snprintf(buf, sizeof buf, "%.2f,%.2f ", px(x[i]), py(y[i]));
    body_ += buf;
  }
  body_ += "\"/>\n";
  if (!label.empty()) legend_.emplace_back(color, label);
}

void Plot::bars(const std::vector<double>& edges, const std::vector<double>& heights, const std::string& color,
                double opacity, const std::string& label) {
  if (edges.size() != heights.size() + 1) {
    throw Error(ErrorCode::InvalidArgument, "plot '" + o_.title + "': bars need one more edge than heights");
  }
  const double base = py(std::max(o_.y_lo, 0.0));
  char buf[200];
  for (size_t i = 0; i < heights.size(); ++i) {
    const double top_px = py(heights[i]);
    std::snprintf(buf, sizeof buf, "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\" fill-opacity=\"%g\"/>\n",
                  px(edges[i]), std::min(top_px, base), std::max(0.0, px(edges[i + 1]) - px(edges[i])),
                  std::fabs(base - top_px), color.c_str(), opacity);
    body_ += buf;
  }
  if (!label.empty()) legend_.emplace_back(color, label);
}

void Plot::vertical(double x, const std::string& color, const std::string& label) {
  char buf[240];
  std::snprintf(buf, sizeof buf, "<line class=\"marker\" x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                px(x), top, px(x), o_.height - bottom, color.c_str());
  body_ += buf;
  if (!label.empty()) {
    std::snprintf(buf, sizeof buf, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"11\" fill=\"%s\">", px(x) + 3, top + 12, color.c_str());
    body_ += buf + html_escape(label) + "</text>\n";
  }
}

void Plot::point(double x, double y, double r, const std::string& color, const std::string& tip, const std::string& extra) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "<g class=\"pt\"><circle cx=\"%.2f\" cy=\"%.2f\" r=\"%g\" fill=\"%s\">", px(x), py(y), r, color.c_str());
  body_ += buf;
  if (!tip.empty()) body_ += "<title>" + html_escape(tip) + "</title>";
  body_ += "</circle>";
  if (!extra.empty()) body_ += "<g class=\"hover\">" + extra + "</g>";
  body_ += "</g>\n";
}

std::string Plot::str() const {
  const double w = o_.width, h = o_.height, area_w = w - left - right, area_h = h - top - bottom;
  char buf[240];
  std::snprintf(buf, sizeof buf, "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n",
                w, h, w, h);
  std::string s = buf;
  std::snprintf(buf, sizeof buf, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#888\"/>\n", left, top, area_w, area_h);
  s += buf;
  std::vector<std::pair<double, std::string>> x_ticks = o_.x_ticks;
  if (x_ticks.empty()) {
    for (double t : nice_ticks(o_.x_lo, o_.x_hi)) x_ticks.emplace_back(t, tick_label(t));
  }
  for (const auto& [t, text] : x_ticks) {
    std::snprintf(buf, sizeof buf, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", px(t), h - bottom + 16);
    s += buf + html_escape(text) + "</text>";
  }
  for (double t : nice_ticks(o_.y_lo, o_.y_hi)) {
    std::snprintf(buf, sizeof buf, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">", left - 6, py(t) + 4);
    s += buf + tick_label(t) + "</text>";
  }
  s += "\n";
  if (!o_.title.empty()) {
    std::snprintf(buf, sizeof buf, "<text x=\"%.2f\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">", left + area_w / 2);
    s += buf + html_escape(o_.title) + "</text>\n";
  }
  if (!o_.x_label.empty()) {
    std::snprintf(buf, sizeof buf, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">", left + area_w / 2, h - 8);
    s += buf + html_escape(o_.x_label) + "</text>\n";
  }
  if (!o_.y_label.empty()) {
    const double cy = top + area_h / 2;
    std::snprintf(buf, sizeof buf, "<text x=\"14\" y=\"%.2f\" transform=\"rotate(-90 14 %.2f)\" text-anchor=\"middle\">", cy, cy);
    s += buf + html_escape(o_.y_label) + "</text>\n";
  }
  s += body_;
  double ly = top + 8;
  for (const auto& [color, label] : legend_) {
    std::snprintf(buf, sizeof buf, "<rect x=\"%.2f\" y=\"%.2f\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%.2f\" y=\"%.2f\" font-size=\"11\">",
                  w - right - 150, ly, color.c_str(), w - right - 136, ly + 9);
    s += buf + html_escape(label) + "</text>\n";
    ly += 15;
  }
  return s + "</svg>\n";
}

const std::string& class_color(int64_t label) {
  static const std::vector<std::string> colors = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return colors[static_cast<size_t>(((label % 10) + 10) % 10)];
}

}  // namespace siamese
