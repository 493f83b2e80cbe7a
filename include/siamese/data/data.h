#pragma once
/// \file data.h  Data sets (IDX, image folders), protocol splits and a prefetching loader.

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "siamese/core/log.h"
#include "siamese/data/photos.h"

namespace siamese {

/// A labelled data set: anything that can turn a list of item indices into a model input batch.
/// Image sets implement it here; sequence sets implement it the same way.
/// Thread safety: every const method of every data set here may run concurrently (the loader's
/// workers call gather() at once); nothing modifies a data set after construction.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  /// Class label of every item, [size()], values in [0, num_classes).
  virtual const std::vector<int64_t>& labels() const = 0;
  /// The model inputs of the given items, stacked: [indices.size(), ...] float.
  /// Called from loader worker threads: must not modify the data set.
  virtual torch::Tensor gather(const std::vector<int64_t>& indices) const = 0;
  /// Where the data came from, for messages.
  virtual std::string source() const = 0;
  /// The inputs of a training batch that `draw` numbers (the trainer: epoch and batch): a data set
  /// with random training views (ImageDataset::with_random_crops) draws them from it, so that a
  /// run is the same whichever loader thread gathers the batch. Default: gather(indices).
  virtual torch::Tensor gather_drawn(const std::vector<int64_t>& indices, uint64_t draw) const {
    (void)draw;
    return gather(indices);
  }
};

/// Images, held in memory as uint8 [N, C, H, W], or image files of any size read on demand through
/// a view (photos.h: decoded, resized and cropped in the calling thread, cached); gather() returns
/// float [n, C, H, W] in [0, 1], the evaluation view of image files.
class ImageDataset : public Dataset {
 public:
  ImageDataset() = default;
  /// images: uint8 [N, C, H, W]; labels: N values >= 0. Throws siamese::Error on a mismatch.
  ImageDataset(torch::Tensor images, std::vector<int64_t> labels, std::string source,
               std::vector<std::string> class_names = {});
  /// Item i is file rows[i] of `files`, labelled labels[i].
  ImageDataset(std::shared_ptr<const ImageFiles> files, std::vector<int64_t> rows, std::vector<int64_t> labels,
               std::string source, std::vector<std::string> class_names = {});

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const std::vector<int64_t>& labels() const override { return labels_; }
  torch::Tensor gather(const std::vector<int64_t>& indices) const override;
  /// Training crops drawn from (seed, draw, position) with_random_crops; otherwise gather().
  torch::Tensor gather_drawn(const std::vector<int64_t>& indices, uint64_t draw) const override;
  std::string source() const override { return source_; }

  /// Whether the images are held in memory (images()) rather than read from files.
  bool in_memory() const { return files_ == nullptr; }
  /// uint8 [N, C, H, W] of images in memory. Throws siamese::Error(Internal) for image files.
  const torch::Tensor& images() const;
  /// [C, H, W] of every input gather() returns.
  std::vector<int64_t> input_shape() const;
  /// uint8 [n, C, H, W]: the items as the model sees them outside training.
  torch::Tensor pixels(const std::vector<int64_t>& indices) const;
  /// The file of item i; "" for images in memory.
  std::string item_path(int64_t i) const;
  /// The image files read, shared by every subset; null for images in memory.
  const std::shared_ptr<const ImageFiles>& files() const { return files_; }
  /// Names of the classes by label (image folders); empty for IDX data.
  const std::vector<std::string>& class_names() const { return class_names_; }
  /// The items at the given indices, in that order (image files: the same files, shared).
  ImageDataset subset(const std::vector<int64_t>& indices, const std::string& what) const;
  /// The same items, whose gather_drawn draws training views: random-resized crops of image files,
  /// seeded by `seed`. Images in memory are returned as they are (their augmentation is augment.h's).
  ImageDataset with_random_crops(uint64_t seed) const;
  /// Per-channel mean and standard deviation of the pixels scaled to [0, 1] (image files: of the
  /// evaluation views of at most 2000 items spread over the set).
  std::pair<std::vector<double>, std::vector<double>> channel_stats() const;

 private:
  torch::Tensor images_;
  std::shared_ptr<const ImageFiles> files_;
  std::vector<int64_t> rows_;  ///< image files: the file of each item
  bool random_crops_ = false;
  uint64_t seed_ = 0;
  std::vector<int64_t> labels_;
  std::string source_;
  std::vector<std::string> class_names_;
};

/// Class augmentation (as in few-shot work on Omniglot): every image of `base` once per rotation
/// by 0°, 90°, 180°, 270° (rotations = 4; 2 gives 0° and 180°), each rotation a class of its own:
/// item r·N + i is image i rotated by r quarter turns (r·2 for rotations = 2), labelled
/// label(i) + r·C, C = the largest label + 1. More classes to tell apart, so the network learns
/// features that serve classes it never saw. Throws siamese::Error on non-square images with
/// rotations = 4, or rotations other than 1, 2, 4.
class RotatedClasses : public Dataset {
 public:
  RotatedClasses(const ImageDataset& base, int64_t rotations);
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const std::vector<int64_t>& labels() const override { return labels_; }
  torch::Tensor gather(const std::vector<int64_t>& indices) const override;
  torch::Tensor gather_drawn(const std::vector<int64_t>& indices, uint64_t draw) const override;
  std::string source() const override;

 private:
  std::vector<int64_t> base_items(const std::vector<int64_t>& indices) const;
  torch::Tensor turned(torch::Tensor x, const std::vector<int64_t>& indices) const;

  const ImageDataset& base_;
  int64_t rotations_;
  std::vector<int64_t> labels_;
};

/// Reads an IDX image file (magic 0x00000803, uint8 [N, H, W]) and its IDX label file
/// (magic 0x00000801, uint8 [N]); either may be gzip-compressed. Throws siamese::Error naming the
/// file on a missing file, a wrong magic number, a truncated body or a count mismatch.
ImageDataset read_idx(const std::string& images_path, const std::string& labels_path);

/// Reads root/<class>/<image>.{png,jpg,jpeg,bmp,pgm}: one class per sub-folder, sorted by name.
/// A folder in place of an image is one sequence of frames (root/<class>/<sequence>/<frame>): its
/// frames, sorted by name, are laid side by side into one image, which the hybrid encoder
/// (--frames = frames per sequence) cuts back into frames.
/// All images must share size and channel count (1 or 3). Throws siamese::Error naming the file
/// on an unreadable image, a size or channel mismatch, fewer than 2 classes, or a class with
/// fewer than 2 images (it could give no positive pair). The images read are counted to `logger`.
ImageDataset read_image_folder(const std::string& root, Logger& logger = silent_logger());

/// The bytes of an image file (PNG, JPEG, BMP or PGM/PPM, 8-bit, 1 or 3 channels), decoded:
/// uint8 [C, H, W], channels in RGB order. `name` names it in errors. Throws siamese::Error:
/// Corruption for bytes that are empty, truncated, damaged, of another format or with a header
/// that gives no readable size (checked before decoding, as is the pixel count); InvalidArgument
/// when its header declares more than `max_pixels` pixels (checked before decoding); Unsupported
/// for 16-bit or 4-channel images. May run concurrently.
torch::Tensor decode_image(const std::string& bytes, const std::string& name, uint64_t max_pixels = kMaxImagePixels);

/// Reads one image file as float [1, C, H, W] in [0, 1]; throws siamese::Error naming the file
/// if it cannot be read or is not channels × height × width. Like read_image_folder it decodes
/// PNG, JPEG, BMP and PGM/PPM only, recognised by their first bytes (Corruption for any other).
torch::Tensor read_image(const std::string& path, int64_t channels, int64_t height, int64_t width);

/// One pair of a pairs file: two image paths, whether they show the same identity, its fold.
struct FilePair {
  std::string a, b;
  bool same = false;
  int64_t fold = 0;
};
/// Reads a pairs file in the LFW format. First line "FOLDS<TAB>N" (N same pairs then N different
/// pairs per fold; a single number N means one fold). Then "name<TAB>i<TAB>j" for a same pair and
/// "name1<TAB>i<TAB>name2<TAB>j" for a different pair; image i of `name` is
/// root/name/name_%04d.{png,jpg,jpeg,bmp,pgm}, whichever exists. Throws siamese::Error naming the
/// file and line on a malformed line, a missing image, or a count that disagrees with the header.
std::vector<FilePair> read_pairs_file(const std::string& path, const std::string& root);

/// A data set's two halves: training images and test images.
struct DataSource {
  ImageDataset train;
  ImageDataset test;
};

/// Opens a data specification:
///   "fashion-mnist"  the Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)
///   "idx:DIR"        DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
///   "folder:DIR"     DIR/train/<class>/ and DIR/test/<class>/
///   "list:FILE"      the images a CSV file lists (read_image_list in photos.h)
/// With options.view.size > 0, folder: and list: data sets are image files of any size read on
/// demand through that view (a folder's frame sub-folders are refused); bad files stop the
/// opening with an error naming the file, or with BadImagePolicy::Skip are left out, their count
/// and the first few reported to `logger` as a warning. Otherwise they are decoded up front and
/// must all be of one size. Long reads report their progress to `logger`.
DataSource open_data(const std::string& spec, Logger& logger = silent_logger(), const ImageReadOptions& options = {});

/// "folder:DIR" and "list:FILE" as image files of any size read through options.view (whose size
/// must be > 0; a list: without one is refused): what open_data gives for them. The train and test
/// splits share one ImageFiles, so one cache; classes are numbered over both (folders: by name,
/// the union of train/ and test/). The training items interleave the classes (every class's first
/// image, then every class's second, ...), so that the last ones, which validate, hold them all. Throws siamese::Error naming the file or folder: a bad image
/// (BadImagePolicy::Fail), a frame sub-folder, fewer than 2 classes, a training class with fewer
/// than 2 images (after skipping), no test images.
DataSource open_image_files(const std::string& spec, const ImageReadOptions& options, Logger& logger = silent_logger());

/// Which images train, validate and test (DESIGN §6).
enum class Protocol { Seen, Unseen };
Protocol parse_protocol(const std::string& name);  ///< "fmnist-seen" | "fmnist-unseen"
std::string to_string(Protocol protocol);

/// Class -> share of its training images kept (SplitOptions::imbalance).
using Imbalance = std::map<int64_t, double>;

struct SplitOptions {
  /// fmnist-seen: all classes everywhere; fmnist-unseen: unseen classes only in test.
  TORCH_ARG(Protocol, protocol) = Protocol::Seen;
  /// Classes held out of training and validation under fmnist-unseen. Default {5, 6, 7, 8, 9}.
  TORCH_ARG(std::vector<int64_t>, unseen_classes) = std::vector<int64_t>{5, 6, 7, 8, 9};
  /// Validation images: the last `validation_size` training images. Default 5000.
  TORCH_ARG(int64_t, validation_size) = 5000;
  /// If > 0, keep only the first `subset` images of each split (quick runs, tests). Default 0.
  TORCH_ARG(int64_t, subset) = 0;
  /// Deliberate imbalance: class -> share of its training images kept (the first ones, at least
  /// 2). E.g. {0: 0.01} keeps 1% of class 0. Validation and test are untouched. Default none.
  TORCH_ARG(Imbalance, imbalance);
};

/// Parses "CLASS:SHARE[,CLASS:SHARE...]" (e.g. "0:0.01"); "" gives none. Throws siamese::Error on
/// a malformed entry or a share outside (0, 1].
Imbalance parse_imbalance(const std::string& spec);
std::string to_string(const Imbalance& imbalance);

struct Splits {
  ImageDataset train;
  ImageDataset validation;
  ImageDataset test;
};

/// fmnist-seen: train = training images but the last validation_size, validation = those,
/// test = the test images. fmnist-unseen: the same, with the unseen classes removed from train and
/// validation and test keeping only them. Throws siamese::Error if a split ends up empty or with
/// fewer than 2 classes.
Splits make_splits(const DataSource& data, const SplitOptions& options);

/// One batch delivered by the Loader.
struct Batch {
  int64_t number = 0;            ///< position in the plan
  torch::Tensor inputs;          ///< [n, ...] float
  torch::Tensor labels;          ///< [n] int64
  std::vector<int64_t> indices;  ///< data set indices, as planned
  /// For tasks whose items pair two unlike inputs (tracking, track/training.h): the second input
  /// of each item [n, ...] and each item's target [n, ...] (score-map labels); undefined otherwise.
  torch::Tensor second, targets;
};

/// Materialises planned batches on worker threads, in plan order, keeping at most `prefetch`
/// batches ready ahead of the consumer, so training never waits on data while workers keep up.
/// Thread safety: one consumer thread calls next(); the workers are the loader's own.
class Loader {
 public:
  /// Turns a gathered batch into model inputs on a worker thread (augmentation): (inputs, batch
  /// number) -> inputs. Must be thread-safe and depend only on its arguments.
  using Transform = std::function<torch::Tensor(const torch::Tensor& inputs, int64_t number)>;

  /// plan: the item indices of each batch. data must outlive the loader. workers >= 1.
  /// Batch i is gathered with data.gather_drawn(plan[i], draw_base + i).
  Loader(const Dataset& data, std::vector<std::vector<int64_t>> plan, int workers = 1, int prefetch = 4,
         Transform transform = {}, uint64_t draw_base = 0);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// The next batch in plan order, or nullopt after the last. Rethrows a worker's exception.
  std::optional<Batch> next();

 private:
  void work();

  const Dataset& data_;
  std::vector<std::vector<int64_t>> plan_;
  int prefetch_;
  Transform transform_;
  uint64_t draw_base_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable space_;
  std::map<int64_t, Batch> done_;
  int64_t claimed_ = 0;
  int64_t consumed_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace siamese
