#include "siamese/data/augment.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <opencv2/imgproc.hpp>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "siamese/core/error.h"

namespace siamese {
namespace {

/// The transforms by name, in the order they are applied and printed.
std::vector<std::pair<const char*, AugmentRange AugmentOptions::*>> fields() {
  return {{"flip", &AugmentOptions::flip},           {"rotate", &AugmentOptions::rotate},
          {"scale", &AugmentOptions::scale},         {"translate", &AugmentOptions::translate},
          {"crop", &AugmentOptions::crop},           {"brightness", &AugmentOptions::brightness},
          {"contrast", &AugmentOptions::contrast},   {"blur", &AugmentOptions::blur},
          {"noise", &AugmentOptions::noise}};
}

double number(const std::string& text, const std::string& entry) {
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw Error(ErrorCode::InvalidArgument, "augment: '" + entry + "': '" + text + "' is not a number");
}

/// The shortest "%.Ng" form of v (N from 9 to 17) that reads back as exactly v, so that
/// parse_augment(to_string(o)) == o for every value parse_augment accepts.
std::string exact(double v) {
  char buf[32];
  for (int digits = 9; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

bool AugmentOptions::any() const {
  for (const auto& [name, field] : fields()) {
    if ((this->*field).value > 0 && (this->*field).probability > 0) return true;
  }
  return false;
}

AugmentOptions parse_augment(const std::string& spec) {
  AugmentOptions o;
  if (spec.empty() || spec == "none") return o;
  std::stringstream list(spec);
  std::string entry;
  while (std::getline(list, entry, ',')) {
    const auto eq = entry.find('=');
    if (eq == std::string::npos) {
      throw Error(ErrorCode::InvalidArgument, "augment: '" + entry + "' needs a value (name=value[@probability])");
    }
    const auto name = entry.substr(0, eq);
    auto value = entry.substr(eq + 1);
    AugmentRange range;
    if (const auto at = value.find('@'); at != std::string::npos) {
      range.probability = number(value.substr(at + 1), entry);
      value = value.substr(0, at);
    }
    range.value = number(value, entry);
    AugmentRange AugmentOptions::*target = nullptr;
    std::string known;
    for (const auto& [n, field] : fields()) {
      if (name == n) target = field;
      known += known.empty() ? n : std::string(", ") + n;
    }
    if (!target) {
      throw Error(ErrorCode::InvalidArgument, "augment: unknown transform '" + name + "' (known: " + known + ")");
    }
    if (range.value < 0) throw Error(ErrorCode::InvalidArgument, "augment: '" + entry + "': the value must be >= 0");
    if (name == std::string("flip")) {
      if (entry.find('@') != std::string::npos) {
        throw Error(ErrorCode::InvalidArgument, "augment: '" + entry + "': flip's value is its probability");
      }
      range.probability = range.value;
      range.value = range.probability > 0 ? 1 : 0;
    }
    if (range.probability < 0 || range.probability > 1) {
      throw Error(ErrorCode::InvalidArgument, "augment: '" + entry + "': the probability must be in [0, 1]");
    }
    if ((name == std::string("scale") || name == std::string("crop")) && range.value >= 1) {
      throw Error(ErrorCode::InvalidArgument, "augment: '" + entry + "': " + name + " must be below 1");
    }
    o.*target = range;
  }
  return o;
}

std::string to_string(const AugmentOptions& o) {
  std::string s;
  for (const auto& [name, field] : fields()) {
    const auto& r = o.*field;
    if (r.value <= 0 || r.probability <= 0) continue;
    std::string entry = std::string(name) + "=";
    if (field == &AugmentOptions::flip) {
      entry += exact(r.probability);
    } else if (r.probability < 1) {
      entry += exact(r.value) + "@" + exact(r.probability);
    } else {
      entry += exact(r.value);
    }
    s += (s.empty() ? "" : ",") + entry;
  }
  return s.empty() ? "none" : s;
}

torch::Tensor augment(const torch::Tensor& images, const AugmentOptions& o, uint64_t seed, uint64_t stream) {
  if (images.dim() != 4) {
    throw Error(ErrorCode::InvalidArgument, "augment: expected images [N, C, H, W], got " + c10::str(images.sizes()));
  }
  auto hwc = images.to(torch::kFloat32).permute({0, 2, 3, 1}).contiguous();  // OpenCV wants H, W, C
  const int n = static_cast<int>(hwc.size(0)), h = static_cast<int>(hwc.size(1)), w = static_cast<int>(hwc.size(2)),
            c = static_cast<int>(hwc.size(3));
  auto out = torch::empty_like(hwc);
  for (int i = 0; i < n; ++i) {
    std::mt19937_64 rng(mix(mix(seed) ^ mix(stream + 0x51ED27ull) ^ static_cast<uint64_t>(i)));
    std::uniform_real_distribution<double> unit(0, 1);
    auto fires = [&](const AugmentRange& r) { return r.value > 0 && unit(rng) < r.probability; };
    auto within = [&](double range) { return (2 * unit(rng) - 1) * range; };

    cv::Mat img(h, w, CV_32FC(c), hwc[i].data_ptr<float>());
    cv::Mat cur = img.clone();
    if (fires(o.flip)) cv::flip(cur, cur, 1);

    // Rotation, zoom, shift and crop as one affine map about the centre.
    double angle = 0, zoom = 1, dx = 0, dy = 0;
    if (fires(o.rotate)) angle = within(o.rotate.value);
    if (fires(o.scale)) zoom *= 1 + within(o.scale.value);
    if (fires(o.translate)) {
      dx += within(o.translate.value) * w;
      dy += within(o.translate.value) * h;
    }
    if (fires(o.crop)) {
      const double side = 1 - unit(rng) * o.crop.value;  // window side as a share of the image
      zoom /= side;
      dx += within((1 - side) / 2) * w * zoom;
      dy += within((1 - side) / 2) * h * zoom;
    }
    if (angle != 0 || zoom != 1 || dx != 0 || dy != 0) {
      cv::Mat m = cv::getRotationMatrix2D(cv::Point2f((w - 1) / 2.0f, (h - 1) / 2.0f), angle, zoom);
      m.at<double>(0, 2) += dx;
      m.at<double>(1, 2) += dy;
      cv::warpAffine(cur, cur, m, cur.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    }
    if (fires(o.brightness)) cur += cv::Scalar::all(within(o.brightness.value));
    if (fires(o.contrast)) {
      const cv::Scalar mean = cv::mean(cur);
      const double factor = 1 + within(o.contrast.value);
      cur = (cur - mean) * factor + mean;
    }
    if (fires(o.blur)) {
      // Capped at the image's larger side: a wider Gaussian blurs no further, and OpenCV's kernel
      // (about 8 sigma wide) would otherwise take minutes and gigabytes for a sigma of millions.
      const double sigma = std::min(unit(rng) * o.blur.value, static_cast<double>(std::max(h, w)));
      if (sigma > 0.05) cv::GaussianBlur(cur, cur, cv::Size(0, 0), sigma, sigma, cv::BORDER_REPLICATE);
    }
    if (fires(o.noise)) {
      const double sigma = unit(rng) * o.noise.value;
      std::normal_distribution<float> gauss(0.0f, static_cast<float>(sigma));
      auto* p = reinterpret_cast<float*>(cur.data);
      for (int k = 0; k < h * w * c; ++k) p[k] += gauss(rng);
    }
    cv::Mat dst(h, w, CV_32FC(c), out[i].data_ptr<float>());
    cur.copyTo(dst);
  }
  return out.clamp_(0, 1).permute({0, 3, 1, 2}).contiguous();
}

torch::Tensor augment_grid(const torch::Tensor& images, const AugmentOptions& options, int64_t versions,
                           uint64_t seed, int64_t zoom) {
  if (images.dim() != 4 || images.size(0) < 1) {
    throw Error(ErrorCode::InvalidArgument,
                "augment preview: expected images [N, C, H, W], got " + c10::str(images.sizes()));
  }
  if (versions < 0 || zoom < 1) {
    throw Error(ErrorCode::InvalidArgument, "augment preview: versions must be >= 0 and zoom >= 1");
  }
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2) * zoom, w = images.size(3) * zoom;
  const int64_t gap = 2, cols = versions + 1;
  auto grid = torch::full({n * (h + gap) + gap, cols * (w + gap) + gap, c}, 255, torch::kUInt8);
  for (int64_t v = 0; v < cols; ++v) {
    auto x = v == 0 ? images.to(torch::kFloat32) : augment(images, options, seed, static_cast<uint64_t>(v));
    x = x.repeat_interleave(zoom, 2).repeat_interleave(zoom, 3);  // nearest-neighbour zoom
    auto cells = x.mul(255).round().clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1});
    for (int64_t i = 0; i < n; ++i) {
      grid.slice(0, gap + i * (h + gap), gap + i * (h + gap) + h).slice(1, gap + v * (w + gap), gap + v * (w + gap) + w)
          .copy_(cells[i]);
    }
  }
  return grid;
}

}  // namespace siamese
