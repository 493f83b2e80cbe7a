#pragma once
// The service's index with durable writes: every change is appended to a write-ahead log
// (INDEX.wal beside the index file) and flushed to disk before it is applied and acknowledged;
// the log is replayed at start and emptied after each snapshot (the index saved atomically).

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "siamese/core/log.h"
#include "siamese/index/index.h"

namespace siamese::serve {

/// One stored item as GET /v1/items/{key} shows it.
struct StoredItem {
  IndexItem item;
  torch::Tensor embedding;  ///< [D], as the index holds it
};

/// Thread safety: every method may be called from any thread. Reads (search, get, size) run
/// concurrently, also while a snapshot is written; writes (put, remove) run one at a time.
class ItemStore {
 public:
  /// Loads `path` (created empty, Flat, for this model's `dim` and `distance`, when it does not
  /// exist) and replays `path`.wal over it. A torn record at the end of the log (a write cut by a
  /// crash, never acknowledged) is dropped with a warning. Throws siamese::Error naming the file
  /// on a corrupt index or log record, or embeddings of another model (`fingerprint`).
  ItemStore(const std::string& path, int64_t dim, Distance distance, std::string fingerprint, int64_t snapshot_every,
            Logger& logger);
  ~ItemStore();
  ItemStore(const ItemStore&) = delete;
  ItemStore& operator=(const ItemStore&) = delete;

  /// Stores `embedding` [D] under `key` (replacing an item of that key), filed under class
  /// `class_name` ("" for none). Returns the item as stored and whether the key is new. Durable
  /// when it returns.
  std::pair<IndexItem, bool> put(const std::string& key, const torch::Tensor& embedding, const std::string& class_name);
  /// Removes the item of `key`; false when there is none. Durable when it returns.
  bool remove(const std::string& key);
  std::optional<StoredItem> get(const std::string& key) const;
  std::vector<SearchHit> search(const torch::Tensor& query, int64_t k, const SearchParams& params = {}) const;
  int64_t size() const;
  IndexOptions options() const;
  /// Saves the index atomically, then empties the log. Called every snapshot_every writes and by
  /// the service at shutdown.
  void snapshot();

 private:
  /// Returns the id the item got.
  int64_t apply_put(const std::string& key, const torch::Tensor& embedding, const std::string& class_name);
  bool apply_remove(const std::string& key);
  void append(const std::string& record);
  void snapshot_locked();  ///< snapshot() for a caller holding write_mutex_
  void replay();

  std::string path_, wal_path_, fingerprint_;
  int64_t snapshot_every_;
  Logger& logger_;
  std::optional<EmbeddingIndex> index_;
  std::map<std::string, int64_t> ids_;  ///< key -> id
  mutable std::shared_mutex index_mutex_;  ///< shared: reads and snapshots; exclusive: applying a write
  std::mutex write_mutex_;                 ///< one writer at a time, and no write during a snapshot
  int wal_fd_ = -1;
  int64_t since_snapshot_ = 0;
};

}  // namespace siamese::serve
