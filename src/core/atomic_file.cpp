#include "siamese/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "siamese/core/error.h"

namespace fs = std::filesystem;

namespace siamese {

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  try {
    write(tmp);
    const int fd = ::open(tmp.c_str(), O_RDONLY);
    if (fd < 0 || ::fsync(fd) != 0) {
      if (fd >= 0) ::close(fd);
      throw Error(ErrorCode::IOError, tmp, "cannot flush to disk");
    }
    ::close(fd);
    fs::rename(tmp, path);
  } catch (const c10::Error& e) {
    fs::remove(tmp);
    throw Error(ErrorCode::IOError, path, std::string("cannot write: ") + e.what_without_backtrace());
  } catch (const fs::filesystem_error& e) {
    fs::remove(tmp);
    throw Error(ErrorCode::IOError, path, std::string("cannot write: ") + e.what());
  } catch (...) {
    fs::remove(tmp);
    throw;
  }
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_atomically(path, [&text](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.close();
    if (!out) throw Error(ErrorCode::IOError, tmp, "cannot write");
  });
}

}  // namespace siamese
