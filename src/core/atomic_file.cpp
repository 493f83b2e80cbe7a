#include "siamese/core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "siamese/core/error.h"

namespace fs = std::filesystem;

namespace siamese {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw Error(ErrorCode::IOError, path, what + " (" + std::strerror(err) + ")");
}

/// Writes every byte to `fd`, retrying short writes and EINTR. False, errno set, on a failure.
bool write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

/// Where the bytes for `shown` (the path the caller gave) go.
struct Target {
  std::string shown;    ///< the caller's path, named in errors
  std::string file;     ///< after following symbolic links
  bool in_place = false;  ///< an existing device or FIFO: written to, never replaced
};

Target resolve(const std::string& path) {
  Target t{path, path, false};
  fs::path p = path;
  for (int hops = 0;; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) break;  // not there yet: a new regular file
    if (S_ISLNK(st.st_mode)) {
      if (hops == 40) throw Error(ErrorCode::IOError, path, "too many levels of symbolic links");
      std::error_code ec;
      const fs::path link = fs::read_symlink(p, ec);
      if (ec) throw Error(ErrorCode::IOError, path, "cannot read the symbolic link (" + ec.message() + ")");
      p = link.is_absolute() ? link : p.parent_path() / link;
      continue;
    }
    if (S_ISDIR(st.st_mode)) throw Error(ErrorCode::IOError, path, "is a folder, not a file");
    t.in_place = !S_ISREG(st.st_mode);
    break;
  }
  t.file = p.string();
  return t;
}

/// Writes `bytes` into an existing device or FIFO.
void write_in_place(const Target& t, const std::string& bytes) {
  const int fd = ::open(t.file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(t.shown, "cannot open for writing", errno);
  if (!write_all(fd, bytes.data(), bytes.size())) {
    const int err = errno;
    ::close(fd);
    fail(t.shown, "cannot write", err);
  }
  if (::close(fd) != 0) fail(t.shown, "cannot write", errno);
}

bool all_digits(const std::string& s) {
  if (s.empty() || s.size() > 9) return false;  // pids have at most 7 digits on Linux
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

/// Removes the regular files named exactly FILE.tmp.DIGITS whose process no longer exists.
void remove_stale_temporaries(const std::string& file) {
  const fs::path target(file);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0 || !all_digits(name.substr(prefix.size()))) continue;
    const auto pid = static_cast<pid_t>(std::stol(name.substr(prefix.size())));
    if (pid <= 0 || pid == ::getpid()) continue;
    std::error_code type_ec;
    if (!fs::is_regular_file(fs::symlink_status(it->path(), type_ec))) continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      std::error_code remove_ec;
      fs::remove(it->path(), remove_ec);  // best effort: another writer may have removed it
    }
  }
}

/// `e` with the temporary name in its path replaced by `shown`.
Error naming(const Error& e, const std::string& tmp, const std::string& shown) {
  if (e.path() != tmp) return e;
  const std::string what = e.what();
  return Error(e.code(), shown, what.substr(std::min(what.size(), tmp.size() + 2)));
}

/// Runs `write(tmp)` and turns any failure into a siamese::Error naming `shown`; removes `tmp` then.
void write_temporary(const std::string& shown, const std::string& tmp,
                     const std::function<void(const std::string&)>& write) {
  try {
    write(tmp);
    return;
  } catch (const Error& e) {
    ::unlink(tmp.c_str());
    throw naming(e, tmp, shown);
  } catch (const c10::Error& e) {
    ::unlink(tmp.c_str());
    throw Error(ErrorCode::IOError, shown, std::string("cannot write (") + e.what_without_backtrace() + ")");
  } catch (const fs::filesystem_error& e) {
    ::unlink(tmp.c_str());
    throw Error(ErrorCode::IOError, shown, "cannot write (" + e.code().message() + ")");
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

/// Replaces the regular file t.file (or makes it) by what `write` writes: temporary, fsync, rename.
void replace_file(const Target& t, const std::function<void(const std::string&)>& write) {
  remove_stale_temporaries(t.file);
  const std::string tmp = t.file + ".tmp." + std::to_string(::getpid());
  write_temporary(t.shown, tmp, write);
  struct stat old {};
  const bool existed = ::stat(t.file.c_str(), &old) == 0;
  int err = 0;
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
  } else {
    if (existed) (void)::fchmod(fd, old.st_mode & 07777);  // the replaced file's permissions
    if (::fsync(fd) != 0) err = errno;
    ::close(fd);
  }
  if (err != 0 || ::rename(tmp.c_str(), t.file.c_str()) != 0) {
    const int e = err != 0 ? err : errno;
    ::unlink(tmp.c_str());
    fail(t.shown, err != 0 ? "cannot flush to disk" : "cannot rename " + tmp + " onto it", e);
  }
  // The rename itself reaches the disk with the folder. Best effort: the file is already replaced.
  const fs::path dir = fs::path(t.file).has_parent_path() ? fs::path(t.file).parent_path() : fs::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string read_all(const std::string& shown, const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(ErrorCode::IOError, shown, "cannot read back what was written");
  return bytes;
}

}  // namespace

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(ErrorCode::NotFound, path, "no such file");
  if (fs::is_directory(path, ec)) throw Error(ErrorCode::IOError, path, "is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open", errno);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(path, "cannot read", errno ? errno : EIO);
  return bytes;
}

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& write) {
  const Target t = resolve(path);
  if (!t.in_place) {
    replace_file(t, write);
    return;
  }
  // A device or FIFO: made in the temporary folder, then written through.
  const std::string tmp =
      (fs::temp_directory_path() / ("siamese-" + std::to_string(::getpid()) + "-" + fs::path(t.file).filename().string()))
          .string();
  write_temporary(t.shown, tmp, write);
  std::string bytes;
  try {
    bytes = read_all(t.shown, tmp);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  ::unlink(tmp.c_str());
  write_in_place(t, bytes);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const Target t = resolve(path);
  if (t.in_place) {
    write_in_place(t, bytes);
    return;
  }
  replace_file(t, [&](const std::string& tmp) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail(path, "cannot create " + tmp, errno);
    if (!write_all(fd, bytes.data(), bytes.size())) {
      const int err = errno;
      ::close(fd);
      fail(path, "cannot write", err);
    }
    if (::close(fd) != 0) fail(path, "cannot write", errno);
  });
}

void write_text_atomically(const std::string& path, const std::string& text) { write_file_atomically(path, text); }

}  // namespace siamese
