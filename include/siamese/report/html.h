#pragma once
/// \file html.h  Pieces of self-contained HTML pages: escaping, inline images (PNG as base64 data
/// URIs), and the page of `siamese search --html`.
/// Thread safety: the free functions are pure; a KeyImages is used by one thread.

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "siamese/core/base64.h"
#include "siamese/data/data.h"
#include "siamese/index/index.h"

namespace siamese {

/// Escapes & < > " for HTML text and attribute values.
std::string html_escape(const std::string& text);


/// PNG bytes of one image, uint8 [C, H, W] with C = 1 (grey) or 3 (RGB). Throws siamese::Error
/// (InvalidArgument) on another shape or type.
std::vector<unsigned char> encode_png(const torch::Tensor& image);

/// "data:image/png;base64,..." of encode_png(image), for <img src> and SVG <image href>.
std::string png_data_uri(const torch::Tensor& image);

/// The images that keys of read_inputs (model/inputs.h) point to: an image file's path, or
/// "SPEC:SPLIT#N" for item N of a data set, whose data sets it opens once each and keeps.
class KeyImages {
 public:
  /// PNG bytes of the key's image. Throws siamese::Error naming the key when it names no
  /// readable image or no such item.
  std::vector<unsigned char> png(const std::string& key);

 private:
  std::map<std::string, DataSource> opened_;
};

/// The page of `siamese search --html`: each query in a row, followed by its neighbours with
/// their distances and labels. Image models show the images (`images`), sequence models the keys
/// (the text, the FASTA ID, ...). query_keys.size() == hits.size().
std::string search_page(const std::vector<std::string>& query_keys, const std::vector<std::vector<SearchHit>>& hits,
                        const std::string& index_path, bool sequences, KeyImages& images);

}  // namespace siamese
