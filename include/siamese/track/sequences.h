#pragma once
/// \file sequences.h  Tracking sequences in the OTB layout (SEQ/img/*.jpg|png and
/// SEQ/groundtruth_rect.txt) and the frames of a folder or a video, read as tensors.
///
/// Thread safety: the functions may run concurrently; a FrameSource is read by one thread.

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "siamese/track/tracker.h"

namespace siamese {

/// One sequence: its frames in name order and the object's box in each.
struct Sequence {
  std::string name;                 ///< the folder's name
  std::string dir;                  ///< the folder
  std::vector<std::string> frames;  ///< image files of DIR/img, in name order
  std::vector<Box> boxes;           ///< ground truth, one box a frame
};

/// The boxes of a ground-truth file: one "x,y,w,h" a line (commas, tabs or spaces between the
/// values), blank lines at the end ignored. Throws Error(Corruption) naming the file and the line
/// for a missing, malformed or non-finite value, a negative size or any text after the fourth value.
std::vector<Box> read_boxes(const std::string& path);

/// DIR/img/*.png|jpg|jpeg|bmp|pgm|webp (data/image_files.h) in name order and DIR/groundtruth_rect.txt. Throws
/// Error(NotFound) when either is missing or img holds no image, Error(Corruption) when the file
/// has fewer or more rows than there are frames (or read_boxes refuses it).
Sequence read_sequence(const std::string& dir);

/// Every sub-folder of `dir` ("sequences:DIR" or DIR) that holds a groundtruth_rect.txt, in name
/// order. Throws Error(NotFound) when `dir` is missing or holds no sequence.
std::vector<Sequence> read_sequences(const std::string& dir);

/// An image file as RGB [3, H, W] uint8. Throws Error(Corruption) naming the file when OpenCV
/// cannot read it.
torch::Tensor read_frame(const std::string& path);

/// The image files of a folder, in name order (the extensions of read_sequence).
std::vector<std::string> image_files(const std::string& dir);

/// The frames of a folder of images (name order) or of a video OpenCV can open through FFmpeg, one at a time,
/// all of the first frame's size.
class FrameSource {
 public:
  /// Throws Error(NotFound) for a missing path or a folder without images, Error(InvalidArgument)
  /// for a file OpenCV cannot open as a video.
  explicit FrameSource(const std::string& path);
  ~FrameSource();
  FrameSource(const FrameSource&) = delete;
  FrameSource& operator=(const FrameSource&) = delete;
  /// The next frame, RGB [3, H, W] uint8, or nullopt after the last. Throws Error(Corruption)
  /// naming the frame's index (and file) when it cannot be read or differs in size from frame 0.
  std::optional<torch::Tensor> next();
  /// The index of the frame next() returned last (0-based).
  int64_t index() const { return index_; }
  /// The video's frame rate, or 0 for a folder (or a video that does not say).
  double fps() const;
  const std::string& path() const { return path_; }

 private:
  struct Video;
  std::string path_;
  std::vector<std::string> files_;
  std::unique_ptr<Video> video_;
  int64_t index_ = -1, width_ = 0, height_ = 0;
};

}  // namespace siamese
