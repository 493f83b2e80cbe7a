#include "siamese/data/data.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <opencv2/imgcodecs.hpp>
#include <set>
#include <sstream>

#include "siamese/core/atomic_file.h"
#include "detail/decode.h"
#include "siamese/data/image_files.h"
#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"
#include "siamese/data/sampler.h"

namespace fs = std::filesystem;

namespace siamese {

namespace {

/// Whole file through zlib, which reads gzip and plain files alike.
std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  if (!fs::exists(path)) throw Error(ErrorCode::NotFound, path, "no such file");
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) throw Error(ErrorCode::IOError, path, "cannot open");
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  while (true) {
    const int n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      std::string why = gzerror(f, &code);
      gzclose(f);
      throw Error(ErrorCode::Corruption, path, "corrupt or truncated gzip data (" + why + ")");
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  gzclose(f);
  return bytes;
}

uint32_t big_endian(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

/// Parses an IDX file of unsigned bytes with the expected number of dimensions.
std::pair<std::vector<int64_t>, std::vector<uint8_t>> parse_idx(const std::string& path, int dims) {
  auto bytes = read_maybe_gzip(path);
  const size_t header = 4 + 4 * static_cast<size_t>(dims);
  if (bytes.size() < header) {
    throw Error(ErrorCode::Corruption, path, "truncated IDX header (" + std::to_string(bytes.size()) + " bytes)");
  }
  const uint32_t magic = big_endian(bytes, 0);
  const uint32_t expected = 0x00000800u | static_cast<uint32_t>(dims);
  if (magic != expected) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "wrong IDX magic number 0x%08x (expected 0x%08x, unsigned bytes, %d dims)",
                  magic, expected, dims);
    throw Error(ErrorCode::Corruption, path, buf);
  }
  std::vector<int64_t> shape;
  size_t count = 1;
  for (int d = 0; d < dims; ++d) {
    shape.push_back(big_endian(bytes, 4 + 4 * d));
    const auto size = static_cast<size_t>(shape.back());
    if (size > 0 && count > bytes.size() / size) {  // more than the file holds (and no wrap-around)
      throw Error(ErrorCode::Corruption, path,
                  "truncated: the header declares more data bytes than the file's " + std::to_string(bytes.size()));
    }
    count *= size;
  }
  if (bytes.size() - header != count) {
    throw Error(ErrorCode::Corruption, path,
                std::string(bytes.size() - header < count ? "truncated" : "trailing bytes") + ": expected " +
                    std::to_string(count) + " data bytes, found " + std::to_string(bytes.size() - header));
  }
  return {shape, std::vector<uint8_t>(bytes.begin() + header, bytes.end())};
}

}  // namespace

ImageDataset read_idx(const std::string& images_path, const std::string& labels_path) {
  auto [shape, pixels] = parse_idx(images_path, 3);
  auto [label_shape, label_bytes] = parse_idx(labels_path, 1);
  if (label_shape[0] != shape[0]) {
    throw Error(ErrorCode::InvalidArgument, labels_path,
                std::to_string(label_shape[0]) + " labels for " + std::to_string(shape[0]) + " images in " +
                    images_path);
  }
  auto images = torch::from_blob(pixels.data(), {shape[0], 1, shape[1], shape[2]}, torch::kUInt8).clone();
  std::vector<int64_t> labels(label_bytes.begin(), label_bytes.end());
  return ImageDataset(images, std::move(labels), images_path);
}

namespace {

/// The entries of a folder; one that cannot be listed (permissions) is an IOError naming it.
std::vector<fs::directory_entry> entries_of(const fs::path& dir) {
  try {
    return std::vector<fs::directory_entry>(fs::directory_iterator(dir), fs::directory_iterator());
  } catch (const fs::filesystem_error& e) {
    throw Error(ErrorCode::IOError, dir.string(), std::string("cannot list the folder (") + e.what() + ")");
  }
}

/// An image file -> uint8 [C, H, W].
torch::Tensor load_mat(const std::string& path, cv::Mat& mat) { return detail::decode_mat(read_file(path), path, mat, kMaxImagePixels); }

/// A folder holding one sequence of frames: its images, sorted by name, side by side [C, H, F·W].
torch::Tensor load_frames(const fs::path& dir, cv::Mat& mat) {
  std::vector<fs::path> files;
  for (const auto& e : entries_of(dir)) {
    if (e.is_regular_file() && is_image_file(e.path())) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    throw Error(ErrorCode::InvalidArgument, dir.string(),
                "a sequence folder without frames (.png .jpg .jpeg .bmp .pgm .webp)");
  }
  std::vector<torch::Tensor> frames;
  for (const auto& f : files) {
    frames.push_back(load_mat(f.string(), mat));
    if (frames.back().sizes() != frames[0].sizes()) {
      throw Error(ErrorCode::InvalidArgument, f.string(),
                  "frame is " + c10::str(frames.back().sizes()) + " (C, H, W) but " + files[0].string() + " is " +
                      c10::str(frames[0].sizes()) + "; the frames of a sequence must match");
    }
  }
  return torch::cat(frames, 2);
}

}  // namespace

ImageDataset read_image_folder(const std::string& root, Logger& logger) {
  if (!fs::is_directory(root)) throw Error(ErrorCode::NotFound, root, "no such folder");
  std::vector<fs::path> class_dirs;
  for (const auto& e : entries_of(root)) {
    if (e.is_directory()) class_dirs.push_back(e.path());
  }
  std::sort(class_dirs.begin(), class_dirs.end());
  if (class_dirs.size() < 2) {
    throw Error(ErrorCode::InvalidArgument, root,
                "found " + std::to_string(class_dirs.size()) +
                    " class folder(s); need at least 2 (root/<class>/<image>)");
  }
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  std::vector<std::string> names;
  cv::Mat mat;
  std::vector<int64_t> shape;
  std::string first;
  std::vector<std::vector<fs::path>> files_by_class;
  size_t total = 0;
  for (const auto& dir : class_dirs) {
    auto& files = files_by_class.emplace_back();
    for (const auto& e : entries_of(dir)) {
      if ((e.is_regular_file() && is_image_file(e.path())) || e.is_directory()) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    if (files.size() < 2) {
      throw Error(ErrorCode::InvalidArgument, dir.string(),
                  "class has " + std::to_string(files.size()) + " image(s); need at least 2 to form a positive pair");
    }
    total += files.size();
  }
  for (size_t c = 0; c < class_dirs.size(); ++c) {
    for (const auto& f : files_by_class[c]) {
      auto t = fs::is_directory(f) ? load_frames(f, mat) : load_mat(f.string(), mat);
      if (shape.empty()) {
        shape = t.sizes().vec();
        first = f.string();
      } else if (t.sizes().vec() != shape) {
        throw Error(ErrorCode::InvalidArgument, f.string(),
                    "image is " + c10::str(t.sizes()) + " (C, H, W) but " + first + " is " +
                        c10::str(c10::IntArrayRef(shape)) +
                        "; all images must match (sequence folders: the same number of frames of one size)");
      }
      images.push_back(t);
      labels.push_back(static_cast<int64_t>(c));
      logger.count("reading " + root, static_cast<int64_t>(images.size()), static_cast<int64_t>(total));
    }
    names.push_back(class_dirs[c].filename().string());
  }
  return ImageDataset(torch::stack(images), std::move(labels), root, std::move(names));
}

torch::Tensor decode_image(const std::string& bytes, const std::string& name, uint64_t max_pixels) {
  cv::Mat mat;
  return detail::decode_mat(bytes, name, mat, max_pixels);
}

torch::Tensor read_image(const std::string& path, int64_t channels, int64_t height, int64_t width) {
  cv::Mat mat;
  auto t = load_mat(path, mat);
  if (t.size(0) != channels || t.size(1) != height || t.size(2) != width) {
    throw Error(ErrorCode::InvalidArgument, path,
                "image is " + std::to_string(t.size(0)) + "x" + std::to_string(t.size(1)) + "x" +
                    std::to_string(t.size(2)) + " (channels x height x width); the model expects " +
                    std::to_string(channels) + "x" + std::to_string(height) + "x" + std::to_string(width));
  }
  return t.unsqueeze(0).to(torch::kFloat32).div(255.0);
}

std::vector<FilePair> read_pairs_file(const std::string& path, const std::string& root) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::NotFound, path, "cannot open pairs file");
  std::string line;
  int64_t folds = 1, per_fold = 0, number = 1;
  auto where = [&] { return path + ":" + std::to_string(number) + ": "; };
  if (!std::getline(in, line)) throw Error(ErrorCode::Corruption, path, "empty pairs file");
  {
    std::istringstream header(line);
    int64_t a = 0, b = 0;
    if (!(header >> a) || a < 1) {
      throw Error(ErrorCode::Corruption, where() + "expected 'FOLDS<TAB>N' or 'N', got '" + line + "'");
    }
    if (header >> b) {
      if (b < 1) {
        throw Error(ErrorCode::Corruption, where() + "a fold needs N >= 1 pairs of each kind, got '" + line + "'");
      }
      folds = a;
      per_fold = b;
    } else {
      per_fold = a / 2;  // one fold: N pairs, half same and half different
      if (a % 2) throw Error(ErrorCode::Corruption, where() + "a single-fold header needs an even count, got " + line);
    }
    if (per_fold > std::numeric_limits<int64_t>::max() / 2 / folds) {  // folds · 2 · per_fold would overflow
      throw Error(ErrorCode::Corruption, where() + "the header promises more pairs than can be counted: '" + line + "'");
    }
  }
  auto image = [&](const std::string& name, const std::string& index) {
    char file[32];
    int i = 0;
    try {
      i = std::stoi(index);
    } catch (const std::exception&) {
      throw Error(ErrorCode::Corruption, where() + "'" + index + "' is not an image number");
    }
    for (const char* ext : kImageExtensions) {
      std::snprintf(file, sizeof file, "_%04d%s", i, ext);
      auto p = fs::path(root) / name / (name + file);
      if (fs::exists(p)) return p.string();
    }
    std::snprintf(file, sizeof file, "_%04d.png", i);
    throw Error(ErrorCode::NotFound,
                where() + (fs::path(root) / name / (name + file)).string() +
                    ": no such image (nor .jpg, .jpeg, .bmp, .pgm)");
  };
  std::vector<FilePair> pairs;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string x; fields >> x;) f.push_back(x);
    const int64_t fold = static_cast<int64_t>(pairs.size()) / (2 * per_fold);
    if (f.size() == 3) {
      pairs.push_back({image(f[0], f[1]), image(f[0], f[2]), true, fold});
    } else if (f.size() == 4) {
      pairs.push_back({image(f[0], f[1]), image(f[2], f[3]), false, fold});
    } else {
      throw Error(ErrorCode::Corruption, where() + "expected 'name i j' or 'name1 i name2 j', got '" + line + "'");
    }
  }
  if (static_cast<int64_t>(pairs.size()) != folds * 2 * per_fold) {
    throw Error(ErrorCode::Corruption, path,
                "the header promises " + std::to_string(folds * 2 * per_fold) + " pairs, the file has " +
                    std::to_string(pairs.size()));
  }
  return pairs;
}

namespace {

std::string idx_file(const std::string& dir, const std::string& stem) {
  for (const auto& name : {stem + ".gz", stem}) {
    if (fs::exists(fs::path(dir) / name)) return (fs::path(dir) / name).string();
  }
  return (fs::path(dir) / (stem + ".gz")).string();  // reported as missing by read_idx
}

DataSource open_idx_dir(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(ErrorCode::NotFound, dir, "no such folder");
  return {read_idx(idx_file(dir, "train-images-idx3-ubyte"), idx_file(dir, "train-labels-idx1-ubyte")),
          read_idx(idx_file(dir, "t10k-images-idx3-ubyte"), idx_file(dir, "t10k-labels-idx1-ubyte"))};
}

}  // namespace

DataSource open_data(const std::string& spec, Logger& logger, const ImageReadOptions& options) {
  const bool files = spec.rfind("list:", 0) == 0 || (spec.rfind("folder:", 0) == 0 && options.view.size > 0);
  if (files) return open_image_files(spec, options, logger);
  if (spec == "fashion-mnist") {
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    if (!fs::is_directory(dir)) {
      throw Error(ErrorCode::NotFound, dir,
                  "not found; install it with 'apt-get install dataset-fashion-mnist' (make deps does)");
    }
    return open_idx_dir(dir);
  }
  if (spec.rfind("idx:", 0) == 0) return open_idx_dir(spec.substr(4));
  if (spec.rfind("folder:", 0) == 0) {
    const auto dir = fs::path(spec.substr(7));
    if (!fs::is_directory(dir / "train") || !fs::is_directory(dir / "test")) {
      throw Error(ErrorCode::NotFound, dir.string(),
                  "a folder data set needs train/<class>/ and test/<class>/ sub-folders");
    }
    return {read_image_folder((dir / "train").string(), logger), read_image_folder((dir / "test").string(), logger)};
  }
  throw Error(ErrorCode::InvalidArgument,
              "unknown data '" + spec + "' (images: fashion-mnist, idx:DIR, folder:DIR or list:FILE; sequences: text:DIR, "
              "fasta:DIR, strokes:DIR or csv:DIR)");
}

constexpr EnumNames<Protocol, 2> kProtocolNames{{{Protocol::Seen, "fmnist-seen"}, {Protocol::Unseen, "fmnist-unseen"}}};

Protocol parse_protocol(const std::string& name) { return parse_enum(kProtocolNames, name, "protocol"); }

std::string to_string(Protocol protocol) { return enum_name(kProtocolNames, protocol); }

Imbalance parse_imbalance(const std::string& spec) {
  Imbalance m;
  std::stringstream list(spec);
  std::string entry;
  while (std::getline(list, entry, ',')) {
    const auto colon = entry.find(':');
    try {
      if (colon == std::string::npos) throw std::invalid_argument("no colon");
      size_t a = 0, b = 0;
      const auto c = std::stoll(entry.substr(0, colon), &a);
      const auto share = std::stod(entry.substr(colon + 1), &b);
      if (a != colon || b != entry.size() - colon - 1 || c < 0) throw std::invalid_argument("junk");
      if (!(share > 0 && share <= 1)) {
        throw Error(ErrorCode::InvalidArgument, "imbalance: '" + entry + "': the share kept must be in (0, 1]");
      }
      m[c] = share;
    } catch (const std::logic_error&) {
      throw Error(ErrorCode::InvalidArgument, "imbalance: '" + entry + "' is not CLASS:SHARE (e.g. 0:0.01)");
    }
  }
  return m;
}

std::string to_string(const Imbalance& imbalance) {
  std::string s;
  for (const auto& [c, share] : imbalance) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%lld:%.9g", s.empty() ? "" : ",", static_cast<long long>(c), share);
    s += buf;
  }
  return s;
}

Splits make_splits(const DataSource& data, const SplitOptions& options) {
  const int64_t n = data.train.size();
  if (options.validation_size() < 1 || options.validation_size() >= n) {
    throw Error(ErrorCode::InvalidArgument, data.train.source(),
                "validation size " + std::to_string(options.validation_size()) + " must be between 1 and the " +
                    std::to_string(n) + " training images (set --validation-size)");
  }
  const std::set<int64_t> unseen(options.unseen_classes().begin(), options.unseen_classes().end());
  const bool held_out = options.protocol() == Protocol::Unseen;
  auto pick = [&](const ImageDataset& d, int64_t begin, int64_t end, bool want_unseen, const char* what) {
    std::vector<int64_t> idx;
    for (int64_t i = begin; i < end; ++i) {
      if (!held_out || (unseen.count(d.labels()[i]) > 0) == want_unseen) idx.push_back(i);
      if (options.subset() > 0 && static_cast<int64_t>(idx.size()) >= options.subset()) break;
    }
    auto s = d.subset(idx, what);
    std::set<int64_t> classes(s.labels().begin(), s.labels().end());
    if (classes.size() < 2) {
      throw Error(ErrorCode::InvalidArgument, d.source(),
                  std::string("the ") + what + " split has " + std::to_string(s.size()) + " images in " +
                      std::to_string(classes.size()) + " class(es); need at least 2 classes (check --unseen-classes)");
    }
    return s;
  };
  const int64_t cut = n - options.validation_size();
  Splits s{pick(data.train, 0, cut, false, "train"), pick(data.train, cut, n, false, "validation"),
           pick(data.test, 0, data.test.size(), true, "test")};
  if (!options.imbalance().empty()) {
    const auto by_class = indices_by_class(s.train.labels());
    std::vector<int64_t> keep;
    for (size_t c = 0; c < by_class.size(); ++c) {
      const auto& items = by_class[c];
      const auto cut_to = options.imbalance().find(static_cast<int64_t>(c));
      if (cut_to == options.imbalance().end()) {
        keep.insert(keep.end(), items.begin(), items.end());
        continue;
      }
      const auto kept = std::min<int64_t>(static_cast<int64_t>(items.size()),
                                          std::max<int64_t>(2, std::llround(cut_to->second * items.size())));
      keep.insert(keep.end(), items.begin(), items.begin() + kept);
    }
    for (const auto& [c, share] : options.imbalance()) {
      if (c >= static_cast<int64_t>(by_class.size()) || by_class[c].empty()) {
        throw Error(ErrorCode::InvalidArgument, data.train.source(),
                    "--imbalance names class " + std::to_string(c) + ", which has no training images");
      }
    }
    std::sort(keep.begin(), keep.end());
    s.train = s.train.subset(keep, "imbalanced");
  }
  return s;
}

Loader::Loader(const Dataset& data, std::vector<std::vector<int64_t>> plan, int workers, int prefetch,
               Transform transform, uint64_t draw_base)
    : data_(data), plan_(std::move(plan)), prefetch_(std::max(1, prefetch)), transform_(std::move(transform)),
      draw_base_(draw_base) {
  for (int w = 0; w < std::max(1, workers); ++w) threads_.emplace_back([this] { work(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  space_.notify_all();
  for (auto& t : threads_) t.join();
}

void Loader::work() {
  while (true) {
    int64_t number = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [this] { return stop_ || claimed_ - consumed_ < prefetch_; });
      if (stop_ || claimed_ >= static_cast<int64_t>(plan_.size())) return;
      number = claimed_++;
    }
    Batch batch;
    batch.number = number;
    batch.indices = plan_[number];
    try {
      batch.inputs = data_.gather_drawn(batch.indices, draw_base_ + static_cast<uint64_t>(number));
      if (transform_) batch.inputs = transform_(batch.inputs, number);
      std::vector<int64_t> labels;
      labels.reserve(batch.indices.size());
      for (auto i : batch.indices) labels.push_back(data_.labels().at(i));
      batch.labels = torch::tensor(labels, torch::kInt64);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      ready_.notify_all();
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.emplace(number, std::move(batch));
    }
    ready_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (consumed_ >= static_cast<int64_t>(plan_.size())) return std::nullopt;
  ready_.wait(lock, [this] { return error_ || done_.count(consumed_) > 0; });
  if (done_.count(consumed_) == 0) std::rethrow_exception(error_);
  Batch batch = std::move(done_.at(consumed_));
  done_.erase(consumed_);
  ++consumed_;
  lock.unlock();
  space_.notify_all();
  return batch;
}

}  // namespace siamese
