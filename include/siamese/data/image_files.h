#pragma once
// Which files the image readers take: one list for folders, pairs files and CLI inputs.

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <string>

namespace siamese {

/// Image file extensions read, lower case, in the order pairs files try them.
inline constexpr std::array<const char*, 6> kImageExtensions = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".webp"};

/// Whether the file's extension (any case) is one of kImageExtensions.
inline bool is_image_file(const std::filesystem::path& path) {
  auto ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find_if(kImageExtensions.begin(), kImageExtensions.end(), [&](const char* e) { return ext == e; }) !=
         kImageExtensions.end();
}

}  // namespace siamese
