#include "siamese/data/photos.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "siamese/core/atomic_file.h"
#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"
#include "siamese/data/data.h"
#include "detail/decode.h"
#include "siamese/data/image_files.h"

namespace fs = std::filesystem;

namespace siamese {

namespace {

constexpr EnumNames<BadImagePolicy, 2> kBadImageNames{{{BadImagePolicy::Fail, "fail"}, {BadImagePolicy::Skip, "skip"}}};

/// The columns of a CSV line (no quoting: paths with commas are not supported), trimmed.
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::stringstream in(line);
  for (std::string field; std::getline(in, field, ',');) {
    const auto begin = field.find_first_not_of(" \t\r");
    const auto end = field.find_last_not_of(" \t\r");
    fields.push_back(begin == std::string::npos ? "" : field.substr(begin, end - begin + 1));
  }
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

bool all_integers(const std::set<std::string>& names) {
  return std::all_of(names.begin(), names.end(), [](const std::string& s) {
    return !s.empty() && s.size() < 18 && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
  });
}

/// Class names sorted by name, or numerically when every name is an integer.
std::vector<std::string> sorted_classes(const std::set<std::string>& names) {
  std::vector<std::string> sorted(names.begin(), names.end());
  if (all_integers(names)) {
    std::sort(sorted.begin(), sorted.end(), [](const std::string& a, const std::string& b) { return std::stoll(a) < std::stoll(b); });
  }
  return sorted;
}

/// The images of root/<class>/ added to `list` (test or not), labelled by `label_of`.
void add_class_folders(const fs::path& root, bool test, const std::map<std::string, int64_t>& label_of, ImageList& list) {
  for (const auto& [name, label] : label_of) {
    const auto dir = root / name;
    if (!fs::is_directory(dir)) continue;
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir)) {
      std::error_code error;  // a dangling link or a link loop is no folder: check_image_file says what it is
      if (e.is_directory(error)) {
        throw Error(ErrorCode::InvalidArgument, e.path().string(),
                    "a sequence of frames: sequence folders need images of one size (leave out --image-size)");
      }
      if (is_image_file(e.path())) files.push_back(e.path().string());
    }
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      list.paths.push_back(std::move(f));
      list.labels.push_back(label);
      list.test.push_back(test);
    }
  }
}

/// DIR/train/<class>/ and DIR/test/<class>/ as one list, classes numbered by name over both.
ImageList list_folder(const fs::path& dir) {
  if (!fs::is_directory(dir / "train") || !fs::is_directory(dir / "test")) {
    throw Error(ErrorCode::NotFound, dir.string(), "a folder data set needs train/<class>/ and test/<class>/ sub-folders");
  }
  std::set<std::string> names;
  try {
    for (const auto* split : {"train", "test"}) {
      for (const auto& e : fs::directory_iterator(dir / split)) {
        if (e.is_directory()) names.insert(e.path().filename().string());
      }
    }
    ImageList list;
    list.class_names.assign(names.begin(), names.end());
    std::map<std::string, int64_t> label_of;
    for (size_t c = 0; c < list.class_names.size(); ++c) label_of[list.class_names[c]] = static_cast<int64_t>(c);
    add_class_folders(dir / "train", false, label_of, list);
    add_class_folders(dir / "test", true, label_of, list);
    return list;
  } catch (const fs::filesystem_error& e) {
    throw Error(ErrorCode::IOError, e.path1().string(), std::string("cannot list the folder (") + e.code().message() + ")");
  }
}

/// check_image_file of every listed file, on all cores: the problem of each ("" when none).
std::vector<std::string> check_files(const ImageList& list, uint64_t max_pixels, Logger& logger, const std::string& task) {
  std::vector<std::string> problems(list.paths.size());
  const size_t threads = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  constexpr size_t kBlock = 512;
  for (size_t begin = 0; begin < list.paths.size(); begin += kBlock) {
    const size_t end = std::min(list.paths.size(), begin + kBlock);
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (size_t i = begin + t; i < end; i += threads) problems[i] = check_image_file(list.paths[i], max_pixels);
      });
    }
    for (auto& thread : pool) thread.join();
    logger.count(task, static_cast<int64_t>(end), static_cast<int64_t>(list.paths.size()));
  }
  return problems;
}

/// `list` without the files check_files finds bad: an error naming the first (Fail), or a warning
/// counting them and naming the first few (Skip).
ImageList without_bad_files(const ImageList& list, const std::vector<std::string>& problems, BadImagePolicy policy, Logger& logger) {
  ImageList kept;
  kept.class_names = list.class_names;
  std::vector<std::string> skipped;
  for (size_t i = 0; i < list.paths.size(); ++i) {
    if (problems[i].empty()) {
      kept.paths.push_back(list.paths[i]);
      kept.labels.push_back(list.labels[i]);
      kept.test.push_back(list.test[i]);
      continue;
    }
    if (policy == BadImagePolicy::Fail) {
      throw Error(ErrorCode::Corruption, list.paths[i], problems[i] + " (--on-bad-image skip leaves such files out)");
    }
    skipped.push_back(list.paths[i] + " (" + problems[i] + ")");
  }
  if (!skipped.empty()) {
    std::string first;
    for (size_t i = 0; i < std::min<size_t>(3, skipped.size()); ++i) first += (i ? ", " : "") + skipped[i];
    logger.warning("skipped " + std::to_string(skipped.size()) + " of " + std::to_string(list.paths.size()) +
                   " image files that cannot be used: " + first + (skipped.size() > 3 ? ", ..." : ""));
  }
  return kept;
}

/// Every class with training images has at least 2 (a positive pair); there are 2 classes or more.
void check_classes(const ImageList& list, const std::string& source) {
  std::vector<int64_t> train(list.class_names.size(), 0), test(list.class_names.size(), 0);
  for (size_t i = 0; i < list.paths.size(); ++i) ++(list.test[i] ? test : train)[list.labels[i]];
  for (size_t c = 0; c < train.size(); ++c) {
    if (train[c] == 1 || (train[c] == 0 && test[c] == 0)) {
      throw Error(ErrorCode::InvalidArgument, source,
                  "class '" + list.class_names[c] + "' has " + std::to_string(train[c]) +
                      " training image(s); need at least 2 to form a positive pair");
    }
  }
  if (list.class_names.size() < 2) {
    throw Error(ErrorCode::InvalidArgument, source, "found " + std::to_string(list.class_names.size()) + " class(es); need at least 2");
  }
  if (std::count(test.begin(), test.end(), 0) == static_cast<long>(test.size())) throw Error(ErrorCode::InvalidArgument, source, "no test images");
}

}  // namespace

BadImagePolicy parse_bad_image_policy(const std::string& name) { return parse_enum(kBadImageNames, name, "--on-bad-image"); }
std::string to_string(BadImagePolicy policy) { return enum_name(kBadImageNames, policy); }

int64_t ImageView::resize_side() const {
  return std::max<int64_t>(size, static_cast<int64_t>(std::lround(static_cast<double>(size) / eval_resize)));
}

void ImageView::check() const {
  if (size != 0 && (size < 8 || size > 4096)) {
    throw Error(ErrorCode::InvalidArgument, "--image-size " + std::to_string(size) + ": must be 0 (as they are) or 8 to 4096 pixels");
  }
  if (channels != 1 && channels != 3) throw Error(ErrorCode::InvalidArgument, "--channels " + std::to_string(channels) + ": must be 1 or 3");
  if (!(eval_resize > 0 && eval_resize <= 1)) {
    throw Error(ErrorCode::InvalidArgument, "--eval-resize " + std::to_string(eval_resize) + ": the share of the resized image cropped, in (0, 1]");
  }
  if (!(crop_min > 0 && crop_min <= crop_max && crop_max <= 1)) {
    throw Error(ErrorCode::InvalidArgument, "--crop-scale: need 0 < MIN <= MAX <= 1 (a share of the image's area)");
  }
}

std::pair<double, double> parse_crop_scale(const std::string& text) {
  const auto fields = csv_fields(text);
  try {
    if (fields.size() != 2) throw std::invalid_argument("two numbers");
    size_t a = 0, b = 0;
    const double lo = std::stod(fields[0], &a), hi = std::stod(fields[1], &b);
    if (a != fields[0].size() || b != fields[1].size()) throw std::invalid_argument("junk");
    return {lo, hi};
  } catch (const std::logic_error&) {
    throw Error(ErrorCode::InvalidArgument, "--crop-scale '" + text + "' is not MIN,MAX (e.g. 0.35,1)");
  }
}

torch::Tensor centre_crop(const torch::Tensor& image, int64_t size) {
  const int64_t h = image.size(1), w = image.size(2);
  const int64_t top = std::max<int64_t>(0, (h - size) / 2), left = std::max<int64_t>(0, (w - size) / 2);
  auto crop = image.slice(1, top, top + std::min(size, h)).slice(2, left, left + std::min(size, w));
  if (crop.size(1) == size && crop.size(2) == size) return crop;
  // Smaller than the crop (only when resize_side() rounds below size): resized up to it.
  return torch::upsample_bilinear2d(crop.unsqueeze(0).to(torch::kFloat32), {size, size}, false).squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

torch::Tensor random_resized_crop(const torch::Tensor& image, const ImageView& view, std::mt19937_64& rng) {
  const double h = static_cast<double>(image.size(1)), w = static_cast<double>(image.size(2));
  std::uniform_real_distribution<double> share(view.crop_min, view.crop_max), log_ratio(std::log(3.0 / 4.0), std::log(4.0 / 3.0));
  int64_t ch = 0, cw = 0, top = 0, left = 0;
  for (int attempt = 0; attempt < 10 && ch == 0; ++attempt) {  // torchvision's 10 tries, then the centre
    const double area = share(rng) * h * w, ratio = std::exp(log_ratio(rng));
    const auto tw = static_cast<int64_t>(std::lround(std::sqrt(area * ratio))), th = static_cast<int64_t>(std::lround(std::sqrt(area / ratio)));
    if (tw < 1 || th < 1 || tw > w || th > h) continue;
    ch = th;
    cw = tw;
    top = std::uniform_int_distribution<int64_t>(0, static_cast<int64_t>(h) - th)(rng);
    left = std::uniform_int_distribution<int64_t>(0, static_cast<int64_t>(w) - tw)(rng);
  }
  if (ch == 0) {
    ch = cw = static_cast<int64_t>(std::min(h, w));
    top = (static_cast<int64_t>(h) - ch) / 2;
    left = (static_cast<int64_t>(w) - cw) / 2;
  }
  auto crop = image.slice(1, top, top + ch).slice(2, left, left + cw).unsqueeze(0).to(torch::kFloat32);
  auto out = torch::upsample_bilinear2d(crop, {view.size, view.size}, false);
  return out.squeeze(0).round().clamp(0, 255).to(torch::kUInt8);
}

torch::Tensor decode_view(const std::string& bytes, const std::string& name, const ImageView& view, uint64_t max_pixels) {
  view.check();
  if (view.size == 0) throw Error(ErrorCode::InvalidArgument, name, "no image view (size 0)");
  return centre_crop(detail::decode_photo(bytes, name, view.channels, view.resize_side(), max_pixels), view.size);
}

torch::Tensor ImageCache::get(int64_t key) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = entries_.find(key);
  if (found == entries_.end()) return {};
  order_.splice(order_.begin(), order_, found->second.position);
  return found->second.image;
}

void ImageCache::put(int64_t key, const torch::Tensor& image) {
  const size_t bytes = image.nbytes();
  std::lock_guard<std::mutex> lock(mutex_);
  if (bytes > budget_ || entries_.count(key) > 0) return;
  while (bytes_ + bytes > budget_ && !order_.empty()) {
    auto oldest = entries_.find(order_.back());
    bytes_ -= oldest->second.image.nbytes();
    entries_.erase(oldest);
    order_.pop_back();
  }
  order_.push_front(key);
  entries_.emplace(key, Entry{image, order_.begin()});
  bytes_ += bytes;
}

size_t ImageCache::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

ImageFiles::ImageFiles(std::vector<std::string> paths, ImageView view, size_t cache_bytes, uint64_t max_pixels)
    : paths_(std::move(paths)), view_(view), max_pixels_(max_pixels), cache_(cache_bytes) {
  view_.check();
  if (view_.size == 0) throw Error(ErrorCode::InvalidArgument, "image files need a view of a size (--image-size)");
}

torch::Tensor ImageFiles::resized(int64_t i) const {
  auto image = cache_.get(i);
  if (image.defined()) return image;
  const auto& file = path(i);
  image = detail::decode_photo(read_file(file), file, view_.channels, view_.resize_side(), max_pixels_);
  cache_.put(i, image);
  return image;
}

std::string check_image_file(const std::string& path, uint64_t max_pixels) {
  try {
    if (!fs::is_regular_file(path)) return fs::exists(path) ? "not a regular file" : "no such file";
    detail::check_image_bytes(read_file(path), path, max_pixels);
    return "";
  } catch (const Error& e) {
    std::string why = e.what();
    const auto named = why.rfind(path + ": ", 0) == 0 ? path.size() + 2 : 0;  // the path is said by the caller
    return why.substr(named);
  } catch (const fs::filesystem_error& e) {
    return e.code().message();
  }
}

ImageList read_image_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fs::exists(path) ? ErrorCode::IOError : ErrorCode::NotFound, path, fs::exists(path) ? "cannot read the list file" : "no such list file");
  std::string line;
  if (!std::getline(in, line)) throw Error(ErrorCode::InvalidArgument, path, "empty list file (need a header line: path,label[,split])");
  const auto header = csv_fields(line);
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < header.size(); ++i) column[header[i]] = i;
  if (!column.count("path") || !column.count("label") || column.size() != header.size() ||
      column.size() != 2 + column.count("split")) {
    throw Error(ErrorCode::InvalidArgument, path + ":1", "header '" + line + "' must name the columns path and label, and optionally split");
  }
  const fs::path folder = fs::path(path).parent_path();
  std::vector<std::string> names;
  std::set<std::string> classes;
  std::map<std::string, int64_t> seen;  // path -> its line
  ImageList list;
  for (int64_t number = 2; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto where = path + ":" + std::to_string(number);
    const auto fields = csv_fields(line);
    if (fields.size() != header.size()) {
      throw Error(ErrorCode::InvalidArgument, where, "has " + std::to_string(fields.size()) + " fields; the header names " + std::to_string(header.size()));
    }
    const auto& file = fields[column["path"]];
    const auto& label = fields[column["label"]];
    if (file.empty()) throw Error(ErrorCode::InvalidArgument, where, "no path");
    if (label.empty()) throw Error(ErrorCode::InvalidArgument, where, "no label for " + file);
    const auto full = fs::path(file).is_absolute() ? fs::path(file) : folder / file;
    if (!fs::exists(full)) throw Error(ErrorCode::NotFound, where, "no such image file: " + full.string());
    const auto [previous, fresh] = seen.emplace(full.lexically_normal().string(), number);
    if (!fresh) throw Error(ErrorCode::InvalidArgument, where, file + " is listed already, on line " + std::to_string(previous->second));
    bool test = false;
    if (column.count("split")) {
      const auto& split = fields[column["split"]];
      if (split != "train" && split != "test") throw Error(ErrorCode::InvalidArgument, where, "split '" + split + "' is not train or test");
      test = split == "test";
    }
    list.paths.push_back(full.string());
    names.push_back(label);
    list.test.push_back(test);
    classes.insert(label);
  }
  if (list.paths.empty()) throw Error(ErrorCode::InvalidArgument, path, "lists no images");
  list.class_names = sorted_classes(classes);
  std::map<std::string, int64_t> label_of;
  for (size_t c = 0; c < list.class_names.size(); ++c) label_of[list.class_names[c]] = static_cast<int64_t>(c);
  for (const auto& name : names) list.labels.push_back(label_of[name]);
  if (!column.count("split")) {  // every fifth image of each class tests
    std::vector<int64_t> seen_of_class(list.class_names.size(), 0);
    for (size_t i = 0; i < list.paths.size(); ++i) list.test[i] = ++seen_of_class[list.labels[i]] % 5 == 0;
  }
  return list;
}

DataSource open_image_files(const std::string& spec, const ImageReadOptions& options, Logger& logger) {
  const bool is_list = spec.rfind("list:", 0) == 0;
  const std::string source = spec.substr(is_list ? 5 : 7);
  if (options.view.size == 0) {
    throw Error(ErrorCode::InvalidArgument, spec, "a list of images of any size: give the model's input size (--image-size S)");
  }
  options.view.check();
  const auto listed = is_list ? read_image_list(source) : list_folder(source);
  const auto problems = check_files(listed, options.max_pixels, logger, "checking " + source);
  const auto list = without_bad_files(listed, problems, options.on_bad_image, logger);
  check_classes(list, source);
  auto files = std::make_shared<const ImageFiles>(list.paths, options.view, options.cache_bytes, options.max_pixels);
  // Both splits interleave the classes (the first image of every class, then the second, ...), so
  // that the last N training items, the validation split, and the first N of each split under
  // --subset hold every class rather than the last or the first ones.
  std::vector<int64_t> order(list.paths.size()), rank(list.paths.size()), seen(list.class_names.size(), 0);
  for (size_t i = 0; i < order.size(); ++i) {
    order[i] = static_cast<int64_t>(i);
    rank[i] = seen[list.labels[i]]++;
  }
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return list.test[a] != list.test[b] ? !list.test[a] : rank[a] < rank[b];
  });
  std::vector<int64_t> rows[2], labels[2];
  for (const auto i : order) {
    rows[list.test[i]].push_back(i);
    labels[list.test[i]].push_back(list.labels[i]);
  }
  return {ImageDataset(files, rows[0], labels[0], is_list ? source + " (train)" : (fs::path(source) / "train").string(), list.class_names),
          ImageDataset(files, rows[1], labels[1], is_list ? source + " (test)" : (fs::path(source) / "test").string(), list.class_names)};
}

}  // namespace siamese
