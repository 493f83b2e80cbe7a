#pragma once
/// \file photos.h  Photographs of any size as model inputs: the view rule that turns one into an
/// S × S input (torchvision's convention), a bounded cache of decoded images, the image files of a
/// data set read on demand in the loader's threads, and `list:FILE` data sets.

#include <torch/torch.h>

#include <cstdint>
#include <list>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace siamese {

/// The most pixels (width × height) an image file may declare before the readers refuse to decode
/// it (a decompression bomb): 50 million, a 8660 × 5773 photograph.
constexpr uint64_t kMaxImagePixels = 50'000'000;

/// What a file that cannot be used does to a data set being opened: stops it with an error naming
/// the file ("fail"), or is left out and counted ("skip").
enum class BadImagePolicy { Fail, Skip };
BadImagePolicy parse_bad_image_policy(const std::string& name);  ///< "fail" | "skip"
std::string to_string(BadImagePolicy policy);

/// How a photograph of any size becomes a model input of size × size, as torchvision does it:
/// evaluation resizes the shorter side to round(size / eval_resize) and crops the centre; training
/// draws a random crop of a share in [crop_min, crop_max] of the area, aspect ratio 3/4 to 4/3,
/// resized to size × size. Every image is converted to `channels` (alpha dropped) first.
struct ImageView {
  /// Side of the square model input; 0 = no view: the images are used as they are, all of one size.
  int64_t size = 0;
  /// 1 (grey) or 3 (RGB). Default 3.
  int64_t channels = 3;
  /// Default 0.875 (224 of 256).
  double eval_resize = 0.875;
  /// Default 0.35 to 1.
  double crop_min = 0.35, crop_max = 1.0;

  /// The shorter side of the resized image the centre crop is taken from (>= size).
  int64_t resize_side() const;
  /// Throws siamese::Error(InvalidArgument) naming the bad field: size outside 0 or [8, 4096],
  /// channels not 1 or 3, eval_resize outside (0, 1], crops outside 0 < crop_min <= crop_max <= 1.
  void check() const;
};

/// "MIN,MAX" (e.g. "0.35,1") -> (crop_min, crop_max); throws siamese::Error on anything else.
std::pair<double, double> parse_crop_scale(const std::string& text);

/// The centre size × size of `image` (uint8 [C, h, w], shorter side resize_side()): the evaluation view.
torch::Tensor centre_crop(const torch::Tensor& image, int64_t size);
/// A random-resized crop of `image` (uint8 [C, h, w]), resized to size × size (bilinear): the
/// training view. Deterministic in `rng`.
torch::Tensor random_resized_crop(const torch::Tensor& image, const ImageView& view, std::mt19937_64& rng);

/// The bytes of an image file of any size as `view` shows it outside training: converted to
/// view.channels, its shorter side resized to view.resize_side(), the centre cropped: uint8
/// [channels, size, size]. `name` names it in errors. Throws siamese::Error as decode_image does
/// (data.h), but takes 16-bit, alpha and CMYK images (converted).
torch::Tensor decode_view(const std::string& bytes, const std::string& name, const ImageView& view,
                          uint64_t max_pixels = kMaxImagePixels);

/// Decoded images by item, at most `budget` bytes of tensor data, the least recently used dropped
/// first. Thread safe.
class ImageCache {
 public:
  explicit ImageCache(size_t budget_bytes) : budget_(budget_bytes) {}
  /// The cached image, or an undefined tensor.
  torch::Tensor get(int64_t key);
  /// Keeps `image` if it fits the budget at all, dropping older ones to make room.
  void put(int64_t key, const torch::Tensor& image);
  size_t bytes() const;
  size_t budget() const { return budget_; }

 private:
  using Order = std::list<int64_t>;
  struct Entry {
    torch::Tensor image;
    Order::iterator position;
  };
  size_t budget_;
  size_t bytes_ = 0;
  Order order_;  ///< most recently used first
  std::unordered_map<int64_t, Entry> entries_;
  mutable std::mutex mutex_;
};

/// The image files of a data set, decoded on demand (in whichever thread asks) through a view and
/// kept in a shared cache at the view's resize_side(). Thread safe.
class ImageFiles {
 public:
  ImageFiles(std::vector<std::string> paths, ImageView view, size_t cache_bytes, uint64_t max_pixels);
  int64_t size() const { return static_cast<int64_t>(paths_.size()); }
  const std::string& path(int64_t i) const { return paths_.at(static_cast<size_t>(i)); }
  const ImageView& view() const { return view_; }
  /// Image i, uint8 [channels, h, w], shorter side view().resize_side(): cached, or decoded now.
  /// Throws siamese::Error naming the file when it cannot be read or decoded.
  torch::Tensor resized(int64_t i) const;
  const ImageCache& cache() const { return cache_; }

 private:
  std::vector<std::string> paths_;
  ImageView view_;
  uint64_t max_pixels_;
  mutable ImageCache cache_;
};

/// What is wrong with an image file, or "" when nothing is found: missing or unreadable, empty, not
/// an image, truncated, a header without a readable size or of more than
/// `max_pixels` pixels, a damaged PNG chunk. Reads the whole file but decodes nothing.
std::string check_image_file(const std::string& path, uint64_t max_pixels);

/// A labelled list of image files: a class folder or a list file, before anything is decoded.
struct ImageList {
  std::vector<std::string> paths;
  std::vector<int64_t> labels;           ///< by path, in [0, class_names.size())
  std::vector<std::string> class_names;  ///< by label
  std::vector<bool> test;                ///< list files: whether the row is in the test split
};

/// Reads a list file: CSV with a header naming the columns `path` and `label` and optionally
/// `split` (train | test), in any order; paths relative to the file's folder. Labels are names;
/// classes are numbered by name (numerically when every name is an integer). Without a split
/// column every fifth image of each class, in file order, is a test image. Throws siamese::Error
/// naming the file and line on a bad header, a row without a path or label, an unknown split, a
/// duplicated path, a missing image file or a list with no rows.
ImageList read_image_list(const std::string& path);

/// How image data sets are opened (open_data).
struct ImageReadOptions {
  /// size 0 (default): the images are decoded up front, all of one size, held in memory. Otherwise
  /// folder: and list: data sets are image files of any size, decoded in the loader's threads.
  ImageView view;
  /// Bytes of decoded images kept (ImageCache). Default 512 MiB.
  size_t cache_bytes = size_t{512} << 20;
  BadImagePolicy on_bad_image = BadImagePolicy::Fail;
  /// Larger images are refused before decoding. Default kMaxImagePixels.
  uint64_t max_pixels = kMaxImagePixels;
};

}  // namespace siamese
