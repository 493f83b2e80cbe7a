// ImageDataset (images in memory, or image files read through a view) and RotatedClasses.
#include <algorithm>
#include <random>

#include "siamese/core/checksum.h"
#include "siamese/core/error.h"
#include "siamese/data/data.h"

namespace siamese {

namespace {

/// Checks the labels of a data set: one per item, none negative.
void check_labels(const std::vector<int64_t>& labels, int64_t items, const std::string& source) {
  if (items != static_cast<int64_t>(labels.size())) {
    throw Error(ErrorCode::InvalidArgument, source, std::to_string(items) + " images but " + std::to_string(labels.size()) + " labels");
  }
  for (auto l : labels) {
    if (l < 0) throw Error(ErrorCode::InvalidArgument, source, "negative label " + std::to_string(l));
  }
}

}  // namespace

ImageDataset::ImageDataset(torch::Tensor images, std::vector<int64_t> labels, std::string source,
                           std::vector<std::string> class_names)
    : images_(std::move(images)), labels_(std::move(labels)), source_(std::move(source)),
      class_names_(std::move(class_names)) {
  if (images_.dim() != 4 || images_.scalar_type() != torch::kUInt8) {
    throw Error(ErrorCode::InvalidArgument, source_,
                "expected uint8 images [N, C, H, W], got " + c10::str(images_.sizes()));
  }
  check_labels(labels_, images_.size(0), source_);
}

ImageDataset::ImageDataset(std::shared_ptr<const ImageFiles> files, std::vector<int64_t> rows, std::vector<int64_t> labels,
                           std::string source, std::vector<std::string> class_names)
    : files_(std::move(files)), rows_(std::move(rows)), labels_(std::move(labels)), source_(std::move(source)),
      class_names_(std::move(class_names)) {
  if (!files_) throw Error(ErrorCode::InvalidArgument, source_, "no image files");
  check_labels(labels_, static_cast<int64_t>(rows_.size()), source_);
  for (auto r : rows_) {
    if (r < 0 || r >= files_->size()) throw Error(ErrorCode::InvalidArgument, source_, "no image file " + std::to_string(r));
  }
}

const torch::Tensor& ImageDataset::images() const {
  if (files_) throw Error(ErrorCode::Internal, source_, "image files are not held in memory (use pixels())");
  return images_;
}

std::vector<int64_t> ImageDataset::input_shape() const {
  if (files_) return {files_->view().channels, files_->view().size, files_->view().size};
  return {images_.size(1), images_.size(2), images_.size(3)};
}

std::string ImageDataset::item_path(int64_t i) const { return files_ ? files_->path(rows_.at(static_cast<size_t>(i))) : ""; }

torch::Tensor ImageDataset::pixels(const std::vector<int64_t>& indices) const {
  if (!files_) return images_.index_select(0, torch::tensor(indices, torch::kInt64));
  const auto shape = input_shape();
  auto out = torch::empty({static_cast<int64_t>(indices.size()), shape[0], shape[1], shape[2]}, torch::kUInt8);
  for (size_t j = 0; j < indices.size(); ++j) {
    out[static_cast<int64_t>(j)].copy_(centre_crop(files_->resized(rows_.at(static_cast<size_t>(indices[j]))), shape[1]));
  }
  return out;
}

torch::Tensor ImageDataset::gather(const std::vector<int64_t>& indices) const {
  return pixels(indices).to(torch::kFloat32).div_(255.0);
}

torch::Tensor ImageDataset::gather_drawn(const std::vector<int64_t>& indices, uint64_t draw) const {
  if (!files_ || !random_crops_) return gather(indices);
  const auto shape = input_shape();
  auto out = torch::empty({static_cast<int64_t>(indices.size()), shape[0], shape[1], shape[2]}, torch::kUInt8);
  for (size_t j = 0; j < indices.size(); ++j) {
    const uint64_t key[3] = {seed_, draw, j};
    std::mt19937_64 rng(fnv1a(key, sizeof key, kFnv1aOffset));
    out[static_cast<int64_t>(j)].copy_(random_resized_crop(files_->resized(rows_.at(static_cast<size_t>(indices[j]))), files_->view(), rng));
  }
  return out.to(torch::kFloat32).div_(255.0);
}

ImageDataset ImageDataset::with_random_crops(uint64_t seed) const {
  ImageDataset d = *this;
  d.random_crops_ = files_ != nullptr;
  d.seed_ = seed;
  return d;
}

RotatedClasses::RotatedClasses(const ImageDataset& base, int64_t rotations) : base_(base), rotations_(rotations) {
  if (rotations != 1 && rotations != 2 && rotations != 4) {
    throw Error(ErrorCode::InvalidArgument, "class rotations must be 1, 2 or 4, got " + std::to_string(rotations));
  }
  const auto shape = base.input_shape();
  if (rotations == 4 && base.size() > 0 && shape[1] != shape[2]) {
    throw Error(ErrorCode::InvalidArgument, base.source(),
                "4 class rotations need square images, these are " + std::to_string(shape[1]) + "x" +
                    std::to_string(shape[2]) + " (use 2: 0° and 180°)");
  }
  int64_t classes = 0;
  for (auto l : base.labels()) classes = std::max(classes, l + 1);
  for (int64_t r = 0; r < rotations; ++r) {
    for (auto l : base.labels()) labels_.push_back(l + r * classes);
  }
}

std::vector<int64_t> RotatedClasses::base_items(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> items;
  items.reserve(indices.size());
  for (auto i : indices) items.push_back(i % base_.size());
  return items;
}

torch::Tensor RotatedClasses::turned(torch::Tensor x, const std::vector<int64_t>& indices) const {
  const int64_t step = 4 / rotations_;  // quarter turns per rotation
  for (size_t j = 0; j < indices.size(); ++j) {
    const int64_t turns = (indices[j] / base_.size()) * step;
    if (turns > 0) x[j].copy_(x[j].rot90(turns, {1, 2}));
  }
  return x;
}

torch::Tensor RotatedClasses::gather(const std::vector<int64_t>& indices) const {
  return turned(base_.gather(base_items(indices)), indices);
}

torch::Tensor RotatedClasses::gather_drawn(const std::vector<int64_t>& indices, uint64_t draw) const {
  return turned(base_.gather_drawn(base_items(indices), draw), indices);
}

std::string RotatedClasses::source() const {
  return base_.source() + " x" + std::to_string(rotations_) + " rotations";
}

ImageDataset ImageDataset::subset(const std::vector<int64_t>& indices, const std::string& what) const {
  std::vector<int64_t> labels;
  labels.reserve(indices.size());
  for (auto i : indices) labels.push_back(labels_.at(i));
  if (files_) {
    std::vector<int64_t> rows;
    for (auto i : indices) rows.push_back(rows_.at(static_cast<size_t>(i)));
    ImageDataset d(files_, std::move(rows), std::move(labels), source_ + " (" + what + ")", class_names_);
    d.random_crops_ = random_crops_;
    d.seed_ = seed_;
    return d;
  }
  auto images = indices.empty() ? images_.slice(0, 0, 0).clone()
                                : images_.index_select(0, torch::tensor(indices, torch::kInt64));
  return ImageDataset(images, std::move(labels), source_ + " (" + what + ")", class_names_);
}

std::pair<std::vector<double>, std::vector<double>> ImageDataset::channel_stats() const {
  constexpr int64_t kSample = 2000;
  std::vector<int64_t> sample;
  for (int64_t i = 0; files_ && i < std::min(size(), kSample); ++i) sample.push_back(i * size() / std::min(size(), kSample));
  const auto images = files_ ? pixels(sample) : images_;
  auto x = images.to(torch::kFloat64).div(255.0).transpose(0, 1).reshape({images.size(1), -1});
  auto mean = x.mean(1);
  auto std = x.std(1).clamp_min(1e-6);
  return {std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel()),
          std::vector<double>(std.data_ptr<double>(), std.data_ptr<double>() + std.numel())};
}

}  // namespace siamese
