#include "siamese/report/html.h"

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "siamese/core/error.h"

namespace fs = std::filesystem;

namespace siamese {

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::vector<unsigned char> encode_png(const torch::Tensor& image) {
  if (image.dim() != 3 || image.scalar_type() != torch::kUInt8 || (image.size(0) != 1 && image.size(0) != 3)) {
    throw Error(ErrorCode::InvalidArgument, "encode_png: needs a uint8 [C, H, W] image with C = 1 or 3");
  }
  auto hwc = image.permute({1, 2, 0}).contiguous();
  cv::Mat mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), hwc.size(2) == 3 ? CV_8UC3 : CV_8UC1,
              hwc.data_ptr<uint8_t>());
  cv::Mat bgr;
  if (mat.channels() == 3) cv::cvtColor(mat, bgr, cv::COLOR_RGB2BGR);
  std::vector<unsigned char> png;
  if (!cv::imencode(".png", mat.channels() == 3 ? bgr : mat, png)) {
    throw Error(ErrorCode::Internal, "encode_png: OpenCV could not encode the image");
  }
  return png;
}

std::string png_data_uri(const torch::Tensor& image) { return "data:image/png;base64," + base64(encode_png(image)); }

std::vector<unsigned char> KeyImages::png(const std::string& key) {
  const auto hash = key.rfind('#');
  const auto colon = key.rfind(':', hash);
  if (hash != std::string::npos && colon != std::string::npos && !fs::exists(key)) {
    const std::string spec = key.substr(0, colon), split = key.substr(colon + 1, hash - colon - 1);
    auto it = opened_.find(spec);
    if (it == opened_.end()) it = opened_.emplace(spec, open_data(spec)).first;
    const auto& set = split == "test" ? it->second.test : it->second.train;
    int64_t i = -1;
    try {
      i = std::stoll(key.substr(hash + 1));
    } catch (const std::exception&) {
    }
    if (i < 0 || i >= set.size()) throw Error(ErrorCode::NotFound, key, "no such item");
    return encode_png(set.pixels({i})[0]);
  }
  cv::Mat mat = cv::imread(key, cv::IMREAD_UNCHANGED);
  if (mat.empty()) {
    throw Error(fs::exists(key) ? ErrorCode::Corruption : ErrorCode::NotFound, key, "cannot read this image");
  }
  std::vector<unsigned char> png;
  cv::imencode(".png", mat, png);
  return png;
}

namespace {

/// An item on the search page: its image, or for a sequence model its key.
std::string show(const std::string& key, bool sequences, KeyImages& images) {
  if (sequences) return "<div class=\"s\">" + html_escape(key) + "</div>";
  return "<img src=\"data:image/png;base64," + base64(images.png(key)) + "\" alt=\"" + html_escape(key) + "\">";
}

}  // namespace

std::string search_page(const std::vector<std::string>& query_keys, const std::vector<std::vector<SearchHit>>& hits,
                        const std::string& index_path, bool sequences, KeyImages& images) {
  std::string h =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>siamese search</title><style>"
      "body{font-family:sans-serif}td{text-align:center;vertical-align:top;font-size:12px;padding:4px}"
      "img{width:96px;image-rendering:pixelated}.q{background:#eef}.s{max-width:240px;text-align:left}</style></head><body>\n<h1>Search of " +
      html_escape(index_path) + "</h1>\n<table>\n";
  for (size_t i = 0; i < hits.size() && i < query_keys.size(); ++i) {
    h += "<tr><td class=\"q\">" + show(query_keys[i], sequences, images) + "<br>query" +
         (sequences ? "" : "<br>" + html_escape(query_keys[i])) + "</td>";
    for (const auto& hit : hits[i]) {
      char d[32];
      std::snprintf(d, sizeof d, "%.4f", hit.distance);
      h += "<td>" + show(hit.item.key, sequences, images) + "<br>" + d + "<br>label " + std::to_string(hit.item.label) +
           (sequences ? "" : "<br>" + html_escape(hit.item.key)) + "</td>";
    }
    h += "</tr>\n";
  }
  return h + "</table></body></html>\n";
}

}  // namespace siamese
