#include "inputs.h"

#include <filesystem>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "siamese/core/error.h"
#include "siamese/data/data.h"

namespace fs = std::filesystem;

namespace siamese::cli {

std::vector<unsigned char> png_for_key(const std::string& key) {
  static std::map<std::string, DataSource> opened;  // data sets, opened once per process
  const auto hash = key.rfind('#');
  const auto colon = key.rfind(':', hash);
  if (hash != std::string::npos && colon != std::string::npos && !fs::exists(key)) {
    const std::string spec = key.substr(0, colon), split = key.substr(colon + 1, hash - colon - 1);
    auto it = opened.find(spec);
    if (it == opened.end()) it = opened.emplace(spec, open_data(spec)).first;
    const auto& set = split == "test" ? it->second.test : it->second.train;
    const int64_t i = std::stoll(key.substr(hash + 1));
    if (i < 0 || i >= set.size()) throw Error(ErrorCode::NotFound, key, "no such item");
    auto hwc = set.images()[i].permute({1, 2, 0}).contiguous();
    cv::Mat mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), hwc.size(2) == 3 ? CV_8UC3 : CV_8UC1,
                hwc.data_ptr<uint8_t>());
    if (mat.channels() == 3) cv::cvtColor(mat, mat, cv::COLOR_RGB2BGR);
    std::vector<unsigned char> png;
    cv::imencode(".png", mat, png);
    return png;
  }
  cv::Mat mat = cv::imread(key, cv::IMREAD_UNCHANGED);
  if (mat.empty()) {
    throw Error(fs::exists(key) ? ErrorCode::Corruption : ErrorCode::NotFound, key, "cannot read this image");
  }
  std::vector<unsigned char> png;
  cv::imencode(".png", mat, png);
  return png;
}

}  // namespace siamese::cli
