#include "detail/item_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"

namespace fs = std::filesystem;

namespace siamese::serve {

namespace {

// A log record: u32 payload length, u32 CRC-32 of the payload, then the payload: u8 operation,
// u32 key length, key; for a put also u32 class-name length, class name, u32 D, D float32.
// Integers and floats in this machine's byte order: the log never leaves the machine.
constexpr uint8_t kPut = 1, kRemove = 2;

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }

void put_string(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

/// Reads the fields of one payload in order; false once a field runs past its end.
struct Reader {
  const std::string& bytes;
  size_t at = 0;
  bool u32(uint32_t& v) {
    if (bytes.size() - at < 4) return false;
    std::memcpy(&v, bytes.data() + at, 4);
    at += 4;
    return true;
  }
  bool string(std::string& s) {
    uint32_t n = 0;
    if (!u32(n) || bytes.size() - at < n) return false;
    s = bytes.substr(at, n);
    at += n;
    return true;
  }
};

uint32_t crc_of(const std::string& bytes) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

[[noreturn]] void io_error(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::IOError, path, what + " (" + std::strerror(errno) + ")");
}

}  // namespace

ItemStore::ItemStore(const std::string& path, int64_t dim, Distance distance, std::string fingerprint, int64_t snapshot_every,
                     Logger& logger)
    : path_(path), wal_path_(path + ".wal"), fingerprint_(std::move(fingerprint)), snapshot_every_(std::max<int64_t>(1, snapshot_every)), logger_(logger) {
  if (fs::exists(path_)) {
    index_.emplace(EmbeddingIndex::load(path_));
    index_->check_fingerprint(fingerprint_);
  } else {
    index_.emplace(IndexOptions(dim).distance(distance).fingerprint(fingerprint_));
    index_->save(path_);
    logger_.info("serve: created the empty index " + path_ + " (Flat)");
  }
  for (const auto& item : index_->items()) ids_[item.key] = item.id;
  wal_fd_ = ::open(wal_path_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (wal_fd_ < 0) io_error(wal_path_, "cannot open the write-ahead log");
  if (::flock(wal_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(wal_fd_);
    wal_fd_ = -1;
    throw Error(ErrorCode::IOError, wal_path_, "held by another running siamese serve (one service per index file)");
  }
  replay();
}

ItemStore::~ItemStore() {
  if (wal_fd_ >= 0) ::close(wal_fd_);
}

void ItemStore::replay() {
  const std::string log = read_file(wal_path_);
  size_t at = 0;
  int64_t applied = 0;
  while (log.size() - at >= 8) {
    uint32_t length = 0, crc = 0;
    std::memcpy(&length, log.data() + at, 4);
    std::memcpy(&crc, log.data() + at + 4, 4);
    const bool whole = log.size() - at - 8 >= length;
    const std::string payload = whole ? log.substr(at + 8, length) : "";
    if (!whole || crc_of(payload) != crc) {
      if (!whole || at + 8 + length == log.size()) break;  // the last record, cut by a crash
      throw Error(ErrorCode::Corruption, wal_path_, "damaged record at byte " + std::to_string(at) + " (CRC mismatch)");
    }
    Reader r{payload};
    std::string key, class_name;
    const uint8_t op = payload.empty() ? 0 : static_cast<uint8_t>(payload[0]);
    r.at = 1;
    if (!r.string(key)) throw Error(ErrorCode::Corruption, wal_path_, "malformed record at byte " + std::to_string(at));
    if (op == kPut) {
      uint32_t d = 0;
      if (!r.string(class_name) || !r.u32(d) || d != index_->options().dim() || payload.size() - r.at != d * 4ull) {
        throw Error(ErrorCode::Corruption, wal_path_, "malformed put at byte " + std::to_string(at));
      }
      auto v = torch::empty({static_cast<int64_t>(d)}, torch::kFloat32);
      std::memcpy(v.data_ptr<float>(), payload.data() + r.at, d * 4ull);
      apply_put(key, v, class_name);
    } else if (op == kRemove) {
      apply_remove(key);
    } else {
      throw Error(ErrorCode::Corruption, wal_path_, "unknown operation at byte " + std::to_string(at));
    }
    ++applied;
    at += 8 + length;
  }
  if (at < log.size()) {
    logger_.warning("serve: " + wal_path_ + ": dropped " + std::to_string(log.size() - at) +
                    " bytes of a record cut by a crash (never acknowledged)");
    if (::ftruncate(wal_fd_, static_cast<off_t>(at)) != 0 || ::fsync(wal_fd_) != 0) io_error(wal_path_, "cannot cut the torn record");
  }
  since_snapshot_ = applied;
  if (applied > 0) logger_.info("serve: replayed " + std::to_string(applied) + " logged changes over " + path_);
}

void ItemStore::append(const std::string& payload) {
  std::string record;
  put_u32(record, static_cast<uint32_t>(payload.size()));
  put_u32(record, crc_of(payload));
  record += payload;
  const off_t before = ::lseek(wal_fd_, 0, SEEK_END);
  size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(wal_fd_, record.data() + done, record.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      if (before >= 0 && ::ftruncate(wal_fd_, before) != 0) {}  // keep the log a sequence of whole records
      errno = err;
      io_error(wal_path_, "cannot append to the write-ahead log");
    }
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(wal_fd_) != 0) io_error(wal_path_, "cannot flush the write-ahead log");
}

int64_t ItemStore::apply_put(const std::string& key, const torch::Tensor& embedding, const std::string& class_name) {
  std::unique_lock<std::shared_mutex> lock(index_mutex_);
  const auto it = ids_.find(key);
  if (it != ids_.end()) {
    index_->remove({it->second});
    ids_.erase(it);
  }
  const auto labels = class_name.empty() ? std::vector<int64_t>{-1} : std::vector<int64_t>{0};
  const auto names = class_name.empty() ? std::vector<std::string>{} : std::vector<std::string>{class_name};
  return ids_[key] = index_->add(embedding.reshape({1, -1}), {key}, labels, names, fingerprint_).at(0);
}

bool ItemStore::apply_remove(const std::string& key) {
  std::unique_lock<std::shared_mutex> lock(index_mutex_);
  const auto it = ids_.find(key);
  if (it == ids_.end()) return false;
  index_->remove({it->second});
  ids_.erase(it);
  return true;
}

std::pair<IndexItem, bool> ItemStore::put(const std::string& key, const torch::Tensor& embedding, const std::string& class_name) {
  const auto v = embedding.to(torch::kFloat32).contiguous().reshape({-1});
  if (v.numel() != index_->options().dim()) {
    throw Error(ErrorCode::InvalidArgument, "embedding: " + std::to_string(v.numel()) + " values; the index holds " +
                                                std::to_string(index_->options().dim()));
  }
  if (!torch::isfinite(v).all().item<bool>()) throw Error(ErrorCode::InvalidArgument, "embedding: holds NaN or infinity");
  std::lock_guard<std::mutex> writer(write_mutex_);
  std::string payload(1, static_cast<char>(kPut));
  put_string(payload, key);
  put_string(payload, class_name);
  put_u32(payload, static_cast<uint32_t>(v.numel()));
  payload.append(reinterpret_cast<const char*>(v.data_ptr<float>()), static_cast<size_t>(v.numel()) * 4);
  bool created = false;
  {
    std::shared_lock<std::shared_mutex> lock(index_mutex_);
    created = !ids_.count(key);
  }
  append(payload);
  const int64_t id = apply_put(key, v, class_name);
  IndexItem item;
  {
    std::shared_lock<std::shared_mutex> lock(index_mutex_);
    item = index_->item(id);
  }
  if (++since_snapshot_ >= snapshot_every_) snapshot_locked();
  return {item, created};
}

bool ItemStore::remove(const std::string& key) {
  std::lock_guard<std::mutex> writer(write_mutex_);
  {
    std::shared_lock<std::shared_mutex> lock(index_mutex_);
    if (!ids_.count(key)) return false;
  }
  std::string payload(1, static_cast<char>(kRemove));
  put_string(payload, key);
  append(payload);
  apply_remove(key);
  if (++since_snapshot_ >= snapshot_every_) snapshot_locked();
  return true;
}

std::optional<StoredItem> ItemStore::get(const std::string& key) const {
  std::shared_lock<std::shared_mutex> lock(index_mutex_);
  const auto it = ids_.find(key);
  if (it == ids_.end()) return std::nullopt;
  StoredItem out;
  out.item = index_->item(it->second);
  out.embedding = index_->vectors({it->second})[0];
  return out;
}

std::vector<SearchHit> ItemStore::search(const torch::Tensor& query, int64_t k, const SearchParams& params) const {
  std::shared_lock<std::shared_mutex> lock(index_mutex_);
  if (index_->size() == 0) throw Error(ErrorCode::NotFound, "the index holds no items yet");
  index_->check_fingerprint(fingerprint_);
  return index_->search(query.reshape({1, -1}), std::min(k, index_->size()), params).at(0);
}

int64_t ItemStore::size() const {
  std::shared_lock<std::shared_mutex> lock(index_mutex_);
  return index_->size();
}

IndexOptions ItemStore::options() const {
  std::shared_lock<std::shared_mutex> lock(index_mutex_);
  return index_->options();
}

void ItemStore::snapshot() {
  std::lock_guard<std::mutex> writer(write_mutex_);
  snapshot_locked();
}

void ItemStore::snapshot_locked() {
  {
    std::shared_lock<std::shared_mutex> lock(index_mutex_);  // searches go on meanwhile
    index_->save(path_);
  }
  // Every change in the log is in the file now: replaying it again would change nothing.
  if (::ftruncate(wal_fd_, 0) != 0 || ::fsync(wal_fd_) != 0) io_error(wal_path_, "cannot empty the write-ahead log");
  since_snapshot_ = 0;
}

}  // namespace siamese::serve
