#include "siamese/track/sequences.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "siamese/core/error.h"
#include "siamese/data/image_files.h"

namespace fs = std::filesystem;

namespace siamese {

namespace {

/// A cv::Mat (BGR, grey or BGRA; 16-bit scaled to 8) as RGB [3, H, W] uint8.
torch::Tensor to_tensor(const cv::Mat& image) {
  cv::Mat rgb;
  if (image.channels() == 1) {
    cv::cvtColor(image, rgb, cv::COLOR_GRAY2RGB);
  } else if (image.channels() == 4) {
    cv::cvtColor(image, rgb, cv::COLOR_BGRA2RGB);
  } else {
    cv::cvtColor(image, rgb, cv::COLOR_BGR2RGB);
  }
  if (rgb.depth() != CV_8U) rgb.convertTo(rgb, CV_8U, rgb.depth() == CV_16U ? 1 / 256.0 : 1);
  auto t = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
  return t.permute({2, 0, 1}).contiguous();
}

}  // namespace

std::vector<Box> read_boxes(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::NotFound, path, "cannot open the ground-truth file");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  auto blank = [](const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; };
  while (!lines.empty() && blank(lines.back())) lines.pop_back();
  std::vector<Box> boxes;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string line = lines[i];
    std::replace_if(line.begin(), line.end(), [](char c) { return c == ',' || c == '\t' || c == '\r'; }, ' ');
    const auto where = path + " line " + std::to_string(i + 1);
    const char* p = line.c_str();
    double v[4];
    for (double& x : v) {
      char* end = nullptr;
      x = std::strtod(p, &end);
      if (end == p || !std::isfinite(x)) {
        throw Error(ErrorCode::Corruption, where, "expected 4 finite numbers x,y,w,h, got '" + lines[i] + "'");
      }
      p = end;
    }
    if (!blank(p)) throw Error(ErrorCode::Corruption, where, "text after x,y,w,h: '" + lines[i] + "'");
    if (v[2] < 0 || v[3] < 0) throw Error(ErrorCode::Corruption, where, "a negative width or height");
    boxes.push_back({v[0], v[1], v[2], v[3]});
  }
  return boxes;
}

std::vector<std::string> image_files(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && is_image_file(entry.path())) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

Sequence read_sequence(const std::string& dir) {
  Sequence s;
  s.dir = dir;
  s.name = fs::path(dir).filename().string();
  if (s.name.empty()) s.name = fs::path(dir).parent_path().filename().string();
  const auto img = fs::path(dir) / "img";
  if (!fs::is_directory(img)) throw Error(ErrorCode::NotFound, img.string(), "no such folder (a sequence is SEQ/img/ and SEQ/groundtruth_rect.txt)");
  s.frames = image_files(img.string());
  if (s.frames.empty()) throw Error(ErrorCode::NotFound, img.string(), "no png, jpg, bmp, pgm or webp image");
  const auto truth = (fs::path(dir) / "groundtruth_rect.txt").string();
  if (!fs::exists(truth)) throw Error(ErrorCode::NotFound, truth, "no such ground-truth file");
  s.boxes = read_boxes(truth);
  if (s.boxes.size() != s.frames.size()) {
    throw Error(ErrorCode::Corruption, truth, std::to_string(s.boxes.size()) + " boxes for " +
                                                  std::to_string(s.frames.size()) + " frames in " + img.string());
  }
  return s;
}

std::vector<Sequence> read_sequences(const std::string& spec) {
  const std::string dir = spec.rfind("sequences:", 0) == 0 ? spec.substr(10) : spec;
  if (!fs::is_directory(dir)) throw Error(ErrorCode::NotFound, dir, "no such folder of sequences");
  std::vector<std::string> dirs;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_directory() && fs::exists(entry.path() / "groundtruth_rect.txt")) dirs.push_back(entry.path().string());
  }
  std::sort(dirs.begin(), dirs.end());
  if (dirs.empty()) throw Error(ErrorCode::NotFound, dir, "no sequence (a folder with img/ and groundtruth_rect.txt)");
  std::vector<Sequence> sequences;
  for (const auto& d : dirs) sequences.push_back(read_sequence(d));
  return sequences;
}

torch::Tensor read_frame(const std::string& path) {
  const cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
  if (image.empty()) throw Error(ErrorCode::Corruption, path, "unreadable image (missing, truncated or not an image)");
  return to_tensor(image);
}

struct FrameSource::Video {
  cv::VideoCapture capture;
};

FrameSource::FrameSource(const std::string& path) : path_(path) {
  if (!fs::exists(path)) throw Error(ErrorCode::NotFound, path, "no such folder or video");
  if (fs::is_directory(path)) {
    files_ = image_files(path);
    if (files_.empty()) throw Error(ErrorCode::NotFound, path, "no png, jpg, bmp, pgm or webp image in the folder");
    return;
  }
  video_ = std::make_unique<Video>();
  // FFmpeg only: when it fails, OpenCV would try GStreamer next, which prints warnings of its own.
  if (!video_->capture.open(path, cv::CAP_FFMPEG) || !video_->capture.isOpened()) {
    throw Error(ErrorCode::InvalidArgument, path, "OpenCV cannot open this file as a video");
  }
}

FrameSource::~FrameSource() = default;

double FrameSource::fps() const { return video_ ? std::max(0.0, video_->capture.get(cv::CAP_PROP_FPS)) : 0.0; }

std::optional<torch::Tensor> FrameSource::next() {
  const int64_t i = index_ + 1;
  torch::Tensor frame;
  if (video_) {
    cv::Mat image;
    if (!video_->capture.read(image) || image.empty()) return std::nullopt;
    frame = to_tensor(image);
  } else {
    if (i >= static_cast<int64_t>(files_.size())) return std::nullopt;
    try {
      frame = read_frame(files_[i]);
    } catch (const Error& e) {
      throw Error(ErrorCode::Corruption, files_[i], "frame " + std::to_string(i) + ": unreadable image");
    }
  }
  const std::string name = video_ ? path_ : files_[i];
  if (i == 0) {
    height_ = frame.size(1), width_ = frame.size(2);
  } else if (frame.size(1) != height_ || frame.size(2) != width_) {
    throw Error(ErrorCode::Corruption, name, "frame " + std::to_string(i) + " is " + std::to_string(frame.size(2)) + " × " +
                                                 std::to_string(frame.size(1)) + ", frame 0 " + std::to_string(width_) + " × " +
                                                 std::to_string(height_));
  }
  index_ = i;
  return frame;
}

}  // namespace siamese
