#include "detail/decode.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "siamese/core/error.h"

namespace siamese::detail {

namespace {

/// A PNG's chunks (length, type, data, CRC) must all be whole, with right CRCs, up to IEND:
/// a truncated or damaged file gets our one-line error instead of libpng's own lines on stderr.
void check_png(const std::string& path, const std::string& bytes) {
  static const std::string signature("\x89PNG\r\n\x1a\n", 8);
  if (bytes.compare(0, 8, signature) != 0) return;  // not a PNG: the decoder decides
  auto u32 = [&](size_t at) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + at;
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
  };
  for (size_t at = 8;;) {
    if (bytes.size() - at < 12) throw Error(ErrorCode::Corruption, path, "truncated PNG (it ends before its IEND chunk)");
    const uint64_t length = u32(at);
    if (length > bytes.size() - at - 12) throw Error(ErrorCode::Corruption, path, "truncated PNG (a chunk runs past the end of the file)");
    const auto* chunk = reinterpret_cast<const Bytef*>(bytes.data() + at + 4);
    if (crc32(0, chunk, static_cast<uInt>(length + 4)) != u32(at + 8 + length)) {
      throw Error(ErrorCode::Corruption, path, "damaged PNG (chunk " + bytes.substr(at + 4, 4) + " fails its CRC)");
    }
    if (bytes.compare(at + 4, 4, "IEND") == 0) return;
    at += 12 + length;
  }
}

bool is_jpeg(const std::string& bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  return bytes.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

bool is_webp(const std::string& bytes) { return bytes.size() >= 16 && bytes.compare(0, 4, "RIFF") == 0 && bytes.compare(8, 4, "WEBP") == 0; }

/// Whether the bytes start with the signature OpenCV's PNG, JPEG, BMP, PGM/PPM or WebP decoder
/// takes, checked as OpenCV does, so that one of those decodes it. Other files never reach OpenCV:
/// it picks its decoder by content, and its others (DICOM, TIFF, EXR, ...) are third-party code we
/// do not fuzz; GDCM hangs on a file holding "DICM" at byte 128.
bool looks_like_supported_image(const std::string& bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const auto n = bytes.size();
  const bool png = n >= 8 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0;
  const bool bmp = n >= 2 && b[0] == 'B' && b[1] == 'M';
  const bool pnm = n >= 3 && b[0] == 'P' && b[1] >= '1' && b[1] <= '6' && std::isspace(b[2]);
  return png || is_jpeg(bytes) || bmp || pnm || is_webp(bytes);
}

/// Width and height of a WebP file: its first chunk, lossy (VP8), lossless (VP8L) or extended (VP8X).
DeclaredSize webp_size(const std::string& bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  const auto le = [&](size_t at, int size) {
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; --i) v = v << 8 | b[at + i];
    return v;
  };
  if (n >= 30 && bytes.compare(12, 4, "VP8 ") == 0 && b[23] == 0x9d && b[24] == 0x01 && b[25] == 0x2a) {
    return {le(26, 2) & 0x3fff, le(28, 2) & 0x3fff};
  }
  if (n >= 25 && bytes.compare(12, 4, "VP8L") == 0 && b[20] == 0x2f) {
    const uint64_t bits = le(21, 4);
    return {(bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1};
  }
  if (n >= 30 && bytes.compare(12, 4, "VP8X") == 0) return {le(24, 3) + 1, le(27, 3) + 1};
  return {};
}

/// Width and height as the header of a PNG, JPEG, BMP, PNM or WebP file declares them; 0 × 0 when
/// the header says nothing readable (the decoder then refuses the file).
DeclaredSize declared_size(const std::string& bytes) {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  const auto be = [&](size_t at, int size) {
    uint64_t v = 0;
    for (int i = 0; i < size; ++i) v = v << 8 | b[at + i];
    return v;
  };
  const auto le32 = [&](size_t at) {
    return static_cast<int32_t>(b[at] | b[at + 1] << 8 | b[at + 2] << 16 | static_cast<uint32_t>(b[at + 3]) << 24);
  };
  if (n < 3) return {};
  if (is_webp(bytes)) return webp_size(bytes);
  if (n >= 24 && b[0] == 0x89) return bytes.compare(12, 4, "IHDR") == 0 ? DeclaredSize{be(16, 4), be(20, 4)} : DeclaredSize{};  // PNG: IHDR first
  if (n >= 26 && b[0] == 'B') {
    return {static_cast<uint64_t>(std::abs(static_cast<int64_t>(le32(18)))), static_cast<uint64_t>(std::abs(static_cast<int64_t>(le32(22))))};
  }
  if (n >= 3 && b[0] == 0xFF) {  // JPEG: the first start-of-frame segment
    for (size_t at = 2; at + 9 <= n && b[at] == 0xFF;) {
      if (b[at + 1] == 0xFF) {  // fill byte before a marker
        ++at;
        continue;
      }
      const int marker = b[at + 1];
      if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) return {be(at + 7, 2), be(at + 5, 2)};
      at += 2 + be(at + 2, 2);
    }
    return {};
  }
  std::istringstream header(bytes.substr(2, 256));  // PNM: "P5 [# comment] WIDTH HEIGHT ..."
  uint64_t size[2] = {0, 0};
  for (auto& v : size) {
    while (header >> std::ws && header.peek() == '#') header.ignore(256, '\n');
    if (!(header >> v)) return {};
  }
  return {size[0], size[1]};
}

/// Decodes with OpenCV, its exceptions and empty results as one Corruption error naming `path`.
void imdecode_into(const std::string& bytes, const std::string& path, int flags, cv::Mat& mat) {
  try {
    mat = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data())), flags);
  } catch (const cv::Exception& e) {
    throw Error(ErrorCode::Corruption, path, std::string("cannot decode the image (") + e.err + ")");
  }
  if (mat.empty()) throw Error(ErrorCode::Corruption, path, "cannot decode the image (damaged, or not an image)");
}

/// An 8-bit cv::Mat (1 or 3 channels, BGR) -> uint8 [C, H, W] RGB, a copy of its own.
torch::Tensor to_tensor(cv::Mat& mat) {
  if (!mat.isContinuous()) mat = mat.clone();
  auto t = torch::from_blob(mat.data, {mat.rows, mat.cols, mat.channels()}, torch::kUInt8);
  if (mat.channels() == 3) t = t.flip({2});  // OpenCV's BGR -> RGB
  // clone: t views mat's buffer, which the next decode into `mat` frees (permute of a 1-channel
  // image is already contiguous, so contiguous() would not copy).
  return t.permute({2, 0, 1}).clone();
}

}  // namespace

DeclaredSize check_image_bytes(const std::string& bytes, const std::string& path, uint64_t max_pixels) {
  check_png(path, bytes);
  if (bytes.empty()) throw Error(ErrorCode::Corruption, path, "empty file, not an image");
  if (!looks_like_supported_image(bytes)) {
    throw Error(ErrorCode::Corruption, path, "cannot decode the image (not a PNG, JPEG, BMP, PGM or WebP file)");
  }
  if (bytes.size() > (size_t{1} << 31) - 1) throw Error(ErrorCode::Unsupported, path, "image file larger than 2 GiB");
  if (is_jpeg(bytes) && bytes.rfind("\xFF\xD9") == std::string::npos) {
    throw Error(ErrorCode::Corruption, path, "truncated JPEG (no end-of-image marker)");
  }
  // Before OpenCV allocates: a size read from the header (a PPM "P3 888848 888 ..." would otherwise
  // allocate gigabytes), and no file whose header we cannot read (OpenCV's parsers are laxer).
  const auto size = declared_size(bytes);
  if (size.pixels() == 0) throw Error(ErrorCode::Corruption, path, "cannot decode the image (its header gives no readable size)");
  if (size.pixels() > max_pixels) {
    throw Error(ErrorCode::InvalidArgument, path,
                "image of " + std::to_string(size.pixels()) + " pixels; at most " + std::to_string(max_pixels) + " are read");
  }
  return size;
}

torch::Tensor decode_mat(const std::string& bytes, const std::string& path, cv::Mat& mat, uint64_t max_pixels) {
  check_image_bytes(bytes, path, max_pixels);
  imdecode_into(bytes, path, cv::IMREAD_UNCHANGED, mat);
  if (mat.depth() != CV_8U) throw Error(ErrorCode::Unsupported, path, "only 8-bit images are supported");
  if (mat.channels() == 4) {
    throw Error(ErrorCode::Unsupported, path, "4-channel image; save it as grey or RGB (1 or 3 channels)");
  }
  return to_tensor(mat);
}

torch::Tensor decode_photo(const std::string& bytes, const std::string& path, int64_t channels, int64_t side,
                           uint64_t max_pixels) {
  const auto size = check_image_bytes(bytes, path, max_pixels);
  int flags = channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR;  // 8-bit, alpha dropped, CMYK converted
  if (is_jpeg(bytes) && side > 0) {
    const uint64_t shorter = std::min(size.width, size.height);
    const int reduced[3][2] = {{8, cv::IMREAD_REDUCED_COLOR_8}, {4, cv::IMREAD_REDUCED_COLOR_4}, {2, cv::IMREAD_REDUCED_COLOR_2}};
    for (const auto& [factor, colour] : reduced) {
      if (shorter / factor >= static_cast<uint64_t>(side)) {
        flags = channels == 1 ? colour - 1 : colour;  // IMREAD_REDUCED_GRAYSCALE_N = IMREAD_REDUCED_COLOR_N - 1
        break;
      }
    }
  }
  cv::Mat mat;
  imdecode_into(bytes, path, flags, mat);
  if (side > 0) {
    const int shorter = std::min(mat.rows, mat.cols);
    const double scale = static_cast<double>(side) / shorter;
    const auto other = [&](int length) { return std::max(1, static_cast<int>(std::lround(length * scale))); };
    const cv::Size to = mat.cols <= mat.rows ? cv::Size(static_cast<int>(side), other(mat.rows)) : cv::Size(other(mat.cols), static_cast<int>(side));
    if (to.width != mat.cols || to.height != mat.rows) {
      cv::Mat resized;
      cv::resize(mat, resized, to, 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
      mat = resized;
    }
  }
  return to_tensor(mat);
}

}  // namespace siamese::detail
