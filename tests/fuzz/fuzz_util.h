#pragma once
// Helpers shared by the fuzz targets (tests/fuzz/*_fuzz.cpp): the input written to a file of this
// process's own temporary folder, for parsers that read a path, and the exceptions that count as a
// parser's clean refusal of bad input.

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace siamese::fuzz {

/// This process's folder for its inputs, /tmp/siamese-fuzz-<pid>/, created on first use and
/// removed at exit (one per process, so that parallel fuzzers never share a file).
inline const std::filesystem::path& work_dir() {
  struct Dir {
    std::filesystem::path path;
    Dir() : path(std::filesystem::temp_directory_path() / ("siamese-fuzz-" + std::to_string(getpid()))) {
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static Dir dir;
  return dir.path;
}

/// Writes `size` bytes to work_dir()/name (replacing what the previous input left there), returns its path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const auto path = work_dir() / name;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path.string();
}

/// Runs `parse()`; the exceptions a parser throws to refuse bad input (siamese::Error, and the
/// c10::Error and std::exception that LibTorch, FAISS and CLI11 throw underneath it) are ignored:
/// only crashes, sanitizer reports, hangs and leaks end a fuzz run.
template <typename Parse>
int refuse_quietly(Parse&& parse) {
  try {
    parse();
  } catch (const std::exception&) {  // siamese::Error and c10::Error derive from std::exception
  }
  return 0;
}

}  // namespace siamese::fuzz
