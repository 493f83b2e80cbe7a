#include "siamese/index/index.h"

#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <shared_mutex>

#include "siamese/core/atomic_file.h"
#include "siamese/core/checksum.h"
#include "siamese/core/error.h"

namespace siamese {

namespace {

/// FAISS ids are int64_t in every version (faiss::Index::idx_t in 1.7, faiss::idx_t later).
using FaissId = int64_t;

constexpr const char* kFormat = "siamese-index";
constexpr int kFormatVersion = 1;

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

/// The FAISS index itself, under any id-mapping or pre-transform wrapper.
faiss::Index* innermost(faiss::Index* index) {
  for (;;) {
    if (auto* m = dynamic_cast<faiss::IndexIDMap2*>(index)) {
      index = m->index;
    } else if (auto* p = dynamic_cast<faiss::IndexPreTransform*>(index)) {
      index = p->index;
    } else {
      return index;
    }
  }
}

/// Refuses a factory string with a count of 0 ("PQ0", "IVF0", "HNSW0"): every number in one counts
/// something (lists, sub-quantizers, bits, neighbours, dimensions), and FAISS accepts some zeros,
/// then divides by them or reads out of bounds (a crash, not an exception).
void check_factory_counts(const std::string& spec) {
  for (size_t i = 0; i < spec.size();) {
    if (!std::isdigit(static_cast<unsigned char>(spec[i]))) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < spec.size() && std::isdigit(static_cast<unsigned char>(spec[end]))) ++end;
    if (spec.find_first_not_of('0', i) >= end) {
      throw Error(ErrorCode::InvalidArgument, "index: '" + spec + "' has a count of 0 (" + spec.substr(0, end) +
                                                  "...); every number in a FAISS factory string must be >= 1");
    }
    i = end;
  }
  // HNSW with M = 1 neighbour per node: FAISS 1.7.3 draws levels with 1 / log(M) = inf and
  // allocates without bound while adding (found by fuzz_index_spec, "HNSW1").
  for (size_t at = spec.find("HNSW"); at != std::string::npos; at = spec.find("HNSW", at + 4)) {
    size_t end = at + 4;
    while (end < spec.size() && std::isdigit(static_cast<unsigned char>(spec[end]))) ++end;
    if (end > at + 4 && end - at - 4 < 6 && std::stoi(spec.substr(at + 4, end - at - 4)) < 2) {
      throw Error(ErrorCode::InvalidArgument, "index: '" + spec + "': HNSW needs at least 2 neighbours per node (HNSW2 or more; HNSW32 is usual)");
    }
  }
}

/// A FAISS index for the options. IVF indexes take ids themselves; every other kind is wrapped in
/// an IndexIDMap2 (ids, and reconstruction by id for removal by rebuilding).
std::unique_ptr<faiss::Index> make_faiss(const IndexOptions& o) {
  if (o.dim() <= 0) {
    throw Error(ErrorCode::InvalidArgument, "index: embedding dimension must be > 0, got " + std::to_string(o.dim()));
  }
  const bool l1 = o.distance() == Distance::Manhattan || o.distance() == Distance::MaLSTM;
  const auto metric = o.distance() == Distance::Cosine ? faiss::METRIC_INNER_PRODUCT
                      : l1                             ? faiss::METRIC_L1
                                                       : faiss::METRIC_L2;
  check_factory_counts(o.spec());
  std::unique_ptr<faiss::Index> index;
  try {
    index.reset(faiss::index_factory(static_cast<int>(o.dim()), o.spec().c_str(), metric));
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::InvalidArgument,
                "index: '" + o.spec() + "' is not an index FAISS can build (" + e.msg +
                    "); try Flat, IVF1024,Flat, HNSW32 or IVF1024,PQ16");
  }
  if (dynamic_cast<faiss::IndexIVF*>(index.get())) return index;
  auto wrapped = std::make_unique<faiss::IndexIDMap2>(index.release());
  wrapped->own_fields = true;
  return wrapped;
}

void apply_search_parameters(faiss::Index* index, const IndexOptions& o) {
  faiss::Index* inner = innermost(index);
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(inner)) ivf->nprobe = static_cast<size_t>(std::max<int64_t>(1, o.nprobe()));
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(inner)) hnsw->hnsw.efSearch = static_cast<int>(std::max<int64_t>(1, o.ef_search()));
}

/// index->search() with one call's parameters. FAISS 1.7.3's IndexIDMap2 refuses parameters, so
/// the index it wraps is searched and its ids mapped through id_map, as IndexIDMap2 itself does.
/// Its HNSW search reads part of the beam size from the index even when the call gives its own, so
/// a call with its own ef_search sets the index to it and searches alone (`guard` exclusive);
/// every other search holds `guard` shared.
void faiss_search(faiss::Index* index, const std::string& spec, const SearchParams& p, std::shared_mutex& guard, int64_t n, const float* x,
                  int64_t k, float* distances, FaissId* ids) {
  if (p.nprobe < 0 || p.ef_search < 0) throw Error(ErrorCode::InvalidArgument, "index: nprobe and ef_search must be >= 1");
  faiss::Index* inner = innermost(index);
  auto* ivf = dynamic_cast<faiss::IndexIVF*>(inner);
  auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(inner);
  if (p.nprobe > 0 && !ivf) {
    throw Error(ErrorCode::InvalidArgument, "index: nprobe applies to IVF indexes; this one is '" + spec + "'" + (hnsw ? " (give ef_search)" : ""));
  }
  if (p.ef_search > 0 && !hnsw) {
    throw Error(ErrorCode::InvalidArgument, "index: ef_search applies to HNSW indexes; this one is '" + spec + "'" + (ivf ? " (give nprobe)" : ""));
  }
  if (p.ef_search > 0 && p.ef_search != hnsw->hnsw.efSearch) {
    std::unique_lock<std::shared_mutex> alone(guard);
    const int own = hnsw->hnsw.efSearch;
    hnsw->hnsw.efSearch = static_cast<int>(std::min<int64_t>(p.ef_search, 1 << 20));
    try {
      index->search(n, x, k, distances, ids);
    } catch (...) {
      hnsw->hnsw.efSearch = own;
      throw;
    }
    hnsw->hnsw.efSearch = own;
    return;
  }
  std::shared_lock<std::shared_mutex> shared(guard);
  if (p.nprobe == 0) return index->search(n, x, k, distances, ids);
  faiss::SearchParametersIVF params;
  params.nprobe = static_cast<size_t>(p.nprobe);
  const auto* map = dynamic_cast<const faiss::IndexIDMap2*>(index);
  if (!map) return index->search(n, x, k, distances, ids, &params);
  map->index->search(n, x, k, distances, ids, &params);
  for (int64_t i = 0; i < n * k; ++i) ids[i] = ids[i] < 0 ? -1 : map->id_map[static_cast<size_t>(ids[i])];
}

/// Embeddings as float CPU rows, normalised for cosine. Throws on a shape mismatch or non-finite value.
torch::Tensor prepare(const torch::Tensor& x, const IndexOptions& o, const char* what) {
  if (x.dim() != 2 || x.size(1) != o.dim()) {
    throw Error(ErrorCode::InvalidArgument,
                std::string("index: ") + what + " must be [N, " + std::to_string(o.dim()) + "], got " +
                    std::to_string(x.dim()) + "-d " +
                    (x.dim() == 2 ? "[" + std::to_string(x.size(0)) + ", " + std::to_string(x.size(1)) + "]"
                                  : std::string("tensor")));
  }
  auto y = x.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  if (!torch::isfinite(y).all().item<bool>()) {
    throw Error(ErrorCode::InvalidArgument, std::string("index: ") + what + " hold NaN or infinite values");
  }
  if (o.distance() == Distance::Cosine) y = torch::nn::functional::normalize(y, torch::nn::functional::NormalizeFuncOptions().dim(1)).contiguous();
  return y;
}

/// A SQLite connection that closes itself; every failure becomes a siamese::Error naming the file.
class Db {
 public:
  Db(const std::string& path, int flags) : path_(path) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) fail(ErrorCode::IOError, "cannot open");
  }
  ~Db() { sqlite3_close(db_); }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  void exec(const std::string& sql) {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      fail(ErrorCode::IOError, "cannot run '" + sql + "'");
    }
  }
  sqlite3_stmt* prepare(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK) {
      fail(ErrorCode::Corruption, "not a siamese index");
    }
    return s;
  }
  /// `otherwise` is the category when SQLite's error code tells none (e.g. a missing table).
  [[noreturn]] void fail(ErrorCode otherwise, const std::string& what) {
    ErrorCode code = otherwise;
    switch (db_ ? sqlite3_errcode(db_) & 0xff : SQLITE_OK) {
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB: code = ErrorCode::Corruption; break;
      case SQLITE_IOERR:
      case SQLITE_FULL:
      case SQLITE_CANTOPEN:
      case SQLITE_PERM:
      case SQLITE_READONLY: code = ErrorCode::IOError; break;
      default: break;
    }
    throw Error(code, path_, what + " (" + (db_ ? sqlite3_errmsg(db_) : "no connection") + ")");
  }
  sqlite3* get() { return db_; }

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

/// A prepared statement, finalised on scope exit.
struct Stmt {
  Db& db;
  sqlite3_stmt* s;
  Stmt(Db& d, const std::string& sql) : db(d), s(d.prepare(sql)) {}
  ~Stmt() { sqlite3_finalize(s); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  bool step() {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) db.fail(ErrorCode::IOError, "read/write failed");
    return false;
  }
  void done() {
    step();
    sqlite3_reset(s);
  }
  std::string text(int col) {
    const auto* p = sqlite3_column_text(s, col);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
};

/// The writer lock of an index file: an exclusive flock on PATH.lock beside the file `path`
/// finally names (so that two names of one file share a lock), held for the object's life.
class WriterLock {
 public:
  explicit WriterLock(const std::string& path) : path_(path) {
    std::error_code ec;
    auto real = std::filesystem::weakly_canonical(path, ec);
    lock_path_ = (ec ? std::filesystem::path(path) : real).string() + ".lock";
    fd_ = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open the lock file " + lock_path_);
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd_);
      errno = err;
      fail("cannot lock " + lock_path_);
    }
  }
  ~WriterLock() { ::close(fd_); }  // closing releases the lock
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::IOError, path_, what + " (" + std::strerror(errno) + ")");
  }
  std::string path_, lock_path_;
  int fd_ = -1;
};

bool has_table(Db& db, const std::string& name) {
  Stmt q(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?");
  sqlite3_bind_text(q.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
  return q.step();
}

}  // namespace

struct EmbeddingIndex::State {
  IndexOptions options{0};
  std::unique_ptr<faiss::Index> index;
  std::map<int64_t, IndexItem> items;
  std::map<int64_t, std::string> class_names;  ///< label -> class name, for labels added with names
  int64_t next_id = 0;
  std::string path;  ///< the file it was loaded from; "" for an index built in memory
  mutable std::shared_mutex search_guard;  ///< see faiss_search()

  std::string class_name(int64_t label) const {
    auto it = class_names.find(label);
    return it == class_names.end() ? "" : it->second;
  }
  /// Writes the index into the (new, empty) SQLite file `file`.
  void write(const std::string& file) const;
};

namespace {
/// One digest over a file's records (its meta rows but this digest, the items, the class names):
/// a flipped bit in a key, a label or a header value is found like one in the vectors.
uint64_t records_digest(const std::map<std::string, std::string>& meta, const std::map<int64_t, IndexItem>& items,
                        const std::map<int64_t, std::string>& class_names) {
  std::string s;
  auto field = [&s](const std::string& v) { s += std::to_string(v.size()) + ":" + v; };
  for (const auto& [k, v] : meta) {
    if (k != "records_fnv1a") field(k), field(v);
  }
  for (const auto& [id, it] : items) field(std::to_string(id)), field(it.key), field(std::to_string(it.label)), field(it.added);
  for (const auto& [label, name] : class_names) field(std::to_string(label)), field(name);
  return fnv1a(s.data(), s.size());
}
}  // namespace

EmbeddingIndex::EmbeddingIndex(IndexOptions options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  state_->index = make_faiss(state_->options);
  apply_search_parameters(state_->index.get(), state_->options);
}

EmbeddingIndex::EmbeddingIndex(std::unique_ptr<State> state) : state_(std::move(state)) {}
EmbeddingIndex::~EmbeddingIndex() = default;
EmbeddingIndex::EmbeddingIndex(EmbeddingIndex&&) noexcept = default;
EmbeddingIndex& EmbeddingIndex::operator=(EmbeddingIndex&&) noexcept = default;

int64_t EmbeddingIndex::size() const { return static_cast<int64_t>(state_->items.size()); }
const IndexOptions& EmbeddingIndex::options() const { return state_->options; }

void EmbeddingIndex::set_search_parameters(int64_t nprobe, int64_t ef_search) {
  state_->options.nprobe(nprobe).ef_search(ef_search);
  apply_search_parameters(state_->index.get(), state_->options);
}

const std::map<int64_t, std::string>& EmbeddingIndex::class_names() const { return state_->class_names; }

std::vector<IndexItem> EmbeddingIndex::items() const {
  std::vector<IndexItem> out;
  out.reserve(state_->items.size());
  for (const auto& [id, item] : state_->items) out.push_back(item);
  return out;
}

std::vector<int64_t> EmbeddingIndex::add(const torch::Tensor& embeddings, const std::vector<std::string>& keys,
                                         const std::vector<int64_t>& labels) {
  auto& s = *state_;
  auto x = prepare(embeddings, s.options, "embeddings to add");
  const int64_t n = x.size(0);
  if (static_cast<int64_t>(keys.size()) != n || static_cast<int64_t>(labels.size()) != n) {
    throw Error(ErrorCode::InvalidArgument,
                "index: " + std::to_string(n) + " embeddings but " + std::to_string(keys.size()) + " keys and " +
                    std::to_string(labels.size()) + " labels");
  }
  if (n == 0) return {};
  const float* data = x.data_ptr<float>();
  try {
    if (!s.index->is_trained) s.index->train(n, data);
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::InvalidArgument,
                "index: cannot train '" + s.options.spec() + "' on the first " + std::to_string(n) + " embeddings (" +
                    e.msg + "); add more at once, or use fewer lists (IVF) or Flat");
  }
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = s.next_id + i;
  s.index->add_with_ids(n, data, ids.data());
  const std::string now = utc_now();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t label = labels[static_cast<size_t>(i)];
    s.items[ids[static_cast<size_t>(i)]] =
        IndexItem{ids[static_cast<size_t>(i)], keys[static_cast<size_t>(i)], label, now, s.class_name(label)};
  }
  s.next_id += n;
  return ids;
}

std::vector<int64_t> EmbeddingIndex::add(const torch::Tensor& embeddings, const std::vector<std::string>& keys,
                                         const std::vector<int64_t>& labels, const std::string& fingerprint) {
  check_fingerprint(fingerprint);
  return add(embeddings, keys, labels);
}

std::vector<int64_t> EmbeddingIndex::add(const torch::Tensor& embeddings, const std::vector<std::string>& keys,
                                         const std::vector<int64_t>& labels, const std::vector<std::string>& class_names,
                                         const std::string& fingerprint) {
  check_fingerprint(fingerprint);
  auto& s = *state_;
  for (int64_t label : labels) {
    if (label < -1 || label >= static_cast<int64_t>(class_names.size())) {
      throw Error(ErrorCode::InvalidArgument, "index: label " + std::to_string(label) + " names none of the " +
                                                  std::to_string(class_names.size()) + " classes given");
    }
  }
  // Each name: the label the index has for it, or the next one above every label in use.
  int64_t top = -1;
  for (const auto& [id, item] : s.items) top = std::max(top, item.label);
  if (!s.class_names.empty()) top = std::max(top, s.class_names.rbegin()->first);
  std::map<std::string, int64_t> by_name;
  for (const auto& [label, name] : s.class_names) by_name.emplace(name, label);
  auto names = s.class_names;
  std::vector<int64_t> label_of(class_names.size());
  for (size_t c = 0; c < class_names.size(); ++c) {
    auto [it, added] = by_name.emplace(class_names[c], top + 1);
    if (added) names[++top] = class_names[c];
    label_of[c] = it->second;
  }
  std::vector<int64_t> mapped(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) mapped[i] = labels[i] < 0 ? -1 : label_of[static_cast<size_t>(labels[i])];
  std::swap(s.class_names, names);
  try {
    return add(embeddings, keys, mapped);
  } catch (...) {
    std::swap(s.class_names, names);  // unchanged on failure
    throw;
  }
}

void EmbeddingIndex::check_fingerprint(const std::string& fingerprint) const {
  const auto& own = state_->options.fingerprint();
  if (own.empty() || own == fingerprint) return;
  const std::string problem = "built with another model (fingerprint " + own +
                              "); these embeddings come from a model with fingerprint " +
                              (fingerprint.empty() ? std::string("none") : fingerprint);
  if (!state_->path.empty()) throw Error(ErrorCode::InvalidArgument, state_->path, problem);
  throw Error(ErrorCode::InvalidArgument, "index: " + problem);
}

int64_t EmbeddingIndex::remove(const std::vector<int64_t>& ids) {
  auto& s = *state_;
  std::vector<FaissId> present;
  for (int64_t id : ids) {
    if (s.items.count(id)) present.push_back(id);
  }
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());
  if (present.empty()) return 0;
  faiss::IDSelectorBatch selector(present.size(), present.data());
  auto* map = dynamic_cast<faiss::IndexIDMap2*>(s.index.get());
  const bool in_place = !map || dynamic_cast<faiss::IndexFlatCodes*>(map->index);
  if (in_place) {
    s.index->remove_ids(selector);
  } else {
    // Graph indexes (HNSW) cannot delete: rebuild from the stored vectors of the items kept.
    std::vector<FaissId> keep;
    for (const auto& [id, item] : s.items) {
      if (!selector.is_member(id)) keep.push_back(id);
    }
    std::vector<float> vectors(keep.size() * static_cast<size_t>(s.options.dim()));
    try {
      for (size_t i = 0; i < keep.size(); ++i) map->reconstruct(keep[i], vectors.data() + i * static_cast<size_t>(s.options.dim()));
    } catch (const faiss::FaissException& e) {
      throw Error(ErrorCode::Unsupported, "index: '" + s.options.spec() + "' cannot remove items (" + e.msg + ")");
    }
    auto rebuilt = make_faiss(s.options);
    const auto n = static_cast<FaissId>(keep.size());
    if (n > 0) {
      if (!rebuilt->is_trained) rebuilt->train(n, vectors.data());
      rebuilt->add_with_ids(n, vectors.data(), keep.data());
    }
    apply_search_parameters(rebuilt.get(), s.options);
    s.index = std::move(rebuilt);
  }
  for (auto id : present) s.items.erase(id);
  TORCH_INTERNAL_ASSERT(s.index->ntotal == static_cast<FaissId>(s.items.size()));
  return static_cast<int64_t>(present.size());
}

IndexItem EmbeddingIndex::item(int64_t id) const {
  const auto it = state_->items.find(id);
  if (it == state_->items.end()) throw Error(ErrorCode::NotFound, "index: no item with id " + std::to_string(id));
  return it->second;
}

torch::Tensor EmbeddingIndex::vectors(const std::vector<int64_t>& ids) const {
  const auto& s = *state_;
  auto out = torch::empty({static_cast<int64_t>(ids.size()), s.options.dim()}, torch::kFloat32);
  const auto* map = dynamic_cast<const faiss::IndexIDMap2*>(s.index.get());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!s.items.count(ids[i])) throw Error(ErrorCode::NotFound, "index: no item with id " + std::to_string(ids[i]));
    try {
      if (!map) throw faiss::FaissException("no id map");
      map->reconstruct(ids[i], out.data_ptr<float>() + i * static_cast<size_t>(s.options.dim()));
    } catch (const faiss::FaissException& e) {
      throw Error(ErrorCode::Unsupported, "index: '" + s.options.spec() + "' cannot give back its vectors (" + e.msg + ")");
    }
  }
  return out;
}

std::vector<std::vector<SearchHit>> EmbeddingIndex::search(const torch::Tensor& queries, int64_t k) const {
  return search(queries, k, SearchParams{});
}

std::vector<std::vector<SearchHit>> EmbeddingIndex::search(const torch::Tensor& queries, int64_t k, const SearchParams& params) const {
  const auto& s = *state_;
  if (s.items.empty()) {
    throw Error(ErrorCode::InvalidArgument, "index: the index is empty; add embeddings before searching");
  }
  if (k < 1) throw Error(ErrorCode::InvalidArgument, "index: k must be >= 1, got " + std::to_string(k));
  auto q = prepare(queries, s.options, "queries");
  const int64_t nq = q.size(0);
  const int64_t kk = std::min<int64_t>(k, size());
  std::vector<float> dist(static_cast<size_t>(nq * kk));
  std::vector<FaissId> found(static_cast<size_t>(nq * kk));
  faiss_search(s.index.get(), s.options.spec(), params, s.search_guard, nq, q.data_ptr<float>(), kk, dist.data(), found.data());
  std::vector<std::vector<SearchHit>> out(static_cast<size_t>(nq));
  for (int64_t i = 0; i < nq; ++i) {
    for (int64_t j = 0; j < kk; ++j) {
      const auto at = static_cast<size_t>(i * kk + j);
      auto it = s.items.find(found[at]);
      if (found[at] < 0 || it == s.items.end()) continue;  // approximate indexes may find fewer than k
      const double raw = dist[at];
      double d = raw;
      if (s.options.distance() == Distance::Euclidean) d = std::sqrt(std::max(raw, 0.0));
      if (s.options.distance() == Distance::Cosine) d = 1.0 - raw;
      if (s.options.distance() == Distance::MaLSTM) d = 1.0 - std::exp(-raw);
      out[static_cast<size_t>(i)].push_back(SearchHit{it->second, d});
    }
  }
  return out;
}

std::vector<std::vector<SearchHit>> EmbeddingIndex::search(const torch::Tensor& queries, int64_t k,
                                                           const std::string& fingerprint) const {
  check_fingerprint(fingerprint);
  return search(queries, k);
}

void EmbeddingIndex::State::write(const std::string& file) const {
  const auto& s = *this;
  faiss::VectorIOWriter writer;
  faiss::write_index(s.index.get(), &writer);
  {
    std::remove(file.c_str());
    Db db(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    // Atomicity comes from the rename; the temporary file needs no journal.
    db.exec("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;");
    db.exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "CREATE TABLE items(id INTEGER PRIMARY KEY, key TEXT NOT NULL, label INTEGER NOT NULL, added TEXT NOT NULL);"
            "CREATE TABLE vectors(data BLOB NOT NULL);"
            "CREATE TABLE classes(label INTEGER PRIMARY KEY, name TEXT NOT NULL);");
    db.exec("BEGIN");
    {
      Stmt meta(db, "INSERT INTO meta VALUES(?, ?)");
      std::map<std::string, std::string> rows = {
          {"format", kFormat},
          {"version", std::to_string(kFormatVersion)},
          {"spec", s.options.spec()},
          {"dim", std::to_string(s.options.dim())},
          {"distance", to_string(s.options.distance())},
          {"fingerprint", s.options.fingerprint()},
          {"nprobe", std::to_string(s.options.nprobe())},
          {"ef_search", std::to_string(s.options.ef_search())},
          {"next_id", std::to_string(s.next_id)},
          {"count", std::to_string(s.items.size())},
          {"vectors_bytes", std::to_string(writer.data.size())},
          {"vectors_fnv1a", std::to_string(fnv1a(writer.data.data(), writer.data.size()))}};
      rows["records_fnv1a"] = std::to_string(records_digest(rows, s.items, s.class_names));
      for (const auto& [k, v] : rows) {
        sqlite3_bind_text(meta.s, 1, k.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(meta.s, 2, v.c_str(), -1, SQLITE_TRANSIENT);
        meta.done();
      }
      Stmt item(db, "INSERT INTO items VALUES(?, ?, ?, ?)");
      for (const auto& [id, it] : s.items) {
        sqlite3_bind_int64(item.s, 1, id);
        sqlite3_bind_text(item.s, 2, it.key.c_str(), -1, SQLITE_STATIC);
        sqlite3_bind_int64(item.s, 3, it.label);
        sqlite3_bind_text(item.s, 4, it.added.c_str(), -1, SQLITE_STATIC);
        item.done();
      }
      Stmt cls(db, "INSERT INTO classes VALUES(?, ?)");
      for (const auto& [label, name] : s.class_names) {
        sqlite3_bind_int64(cls.s, 1, label);
        sqlite3_bind_text(cls.s, 2, name.c_str(), -1, SQLITE_STATIC);
        cls.done();
      }
      Stmt blob(db, "INSERT INTO vectors VALUES(?)");
      sqlite3_bind_blob64(blob.s, 1, writer.data.data(), writer.data.size(), SQLITE_STATIC);
      blob.done();
    }
    db.exec("COMMIT");
  }
}

void EmbeddingIndex::save(const std::string& path) const {
  WriterLock lock(path);
  write_atomically(path, [&](const std::string& tmp) { state_->write(tmp); });
}

void EmbeddingIndex::update(const std::string& path, const std::function<void(EmbeddingIndex&)>& change) {
  WriterLock lock(path);  // before the load: a second writer reads what the first wrote
  auto index = load(path);
  change(index);
  write_atomically(path, [&](const std::string& tmp) { index.state_->write(tmp); });
}

EmbeddingIndex EmbeddingIndex::load(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) throw Error(ErrorCode::NotFound, path, "no such index file");
  Db db(path, SQLITE_OPEN_READONLY);
  std::map<std::string, std::string> meta;
  {
    Stmt q(db, "SELECT key, value FROM meta");
    while (q.step()) meta[q.text(0)] = q.text(1);
  }
  if (meta["format"] != kFormat) throw Error(ErrorCode::Corruption, path, "not a siamese index (no format mark)");
  if (meta["version"] != std::to_string(kFormatVersion)) {
    throw Error(ErrorCode::Unsupported, path,
                "index format version " + meta["version"] + ", this build reads " + std::to_string(kFormatVersion));
  }
  auto state = std::make_unique<State>();
  try {
    state->options.spec(meta.at("spec"))
        .dim(std::stoll(meta.at("dim")))
        .distance(parse_distance(meta.at("distance")))
        .fingerprint(meta.at("fingerprint"))
        .nprobe(std::stoll(meta.at("nprobe")))
        .ef_search(std::stoll(meta.at("ef_search")));
    state->next_id = std::stoll(meta.at("next_id"));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::Corruption, path, std::string("corrupt index header (") + e.what() + ")");
  }
  {
    Stmt q(db, "SELECT id, key, label, added FROM items ORDER BY id");
    while (q.step()) {
      IndexItem item{sqlite3_column_int64(q.s, 0), q.text(1), sqlite3_column_int64(q.s, 2), q.text(3), ""};
      state->items[item.id] = item;
    }
  }
  if (has_table(db, "classes")) {  // files written before class names were stored have none
    Stmt q(db, "SELECT label, name FROM classes");
    while (q.step()) state->class_names[sqlite3_column_int64(q.s, 0)] = q.text(1);
    for (auto& [id, item] : state->items) item.class_name = state->class_name(item.label);
  }
  if (meta.count("records_fnv1a") > 0 &&  // files written before it was stored have none
      meta["records_fnv1a"] != std::to_string(records_digest(meta, state->items, state->class_names))) {
    throw Error(ErrorCode::Corruption, path, "the index records are damaged (their checksum differs from the header)");
  }
  faiss::VectorIOReader reader;
  {
    Stmt q(db, "SELECT data FROM vectors");
    if (!q.step()) throw Error(ErrorCode::Corruption, path, "the index holds no vector data (truncated?)");
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(q.s, 0));
    reader.data.assign(p, p + sqlite3_column_bytes(q.s, 0));
  }
  if (std::to_string(reader.data.size()) != meta["vectors_bytes"] ||
      std::to_string(fnv1a(reader.data.data(), reader.data.size())) != meta["vectors_fnv1a"]) {
    throw Error(ErrorCode::Corruption, path, "the vector data is damaged (size or checksum differs from the header)");
  }
  try {
    state->index.reset(faiss::read_index(&reader));
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::Corruption, path, "cannot read the vector index (" + e.msg + ")");
  }
  if (state->index->d != state->options.dim() || state->index->ntotal != static_cast<FaissId>(state->items.size()) ||
      std::to_string(state->items.size()) != meta["count"]) {
    throw Error(ErrorCode::Corruption, path,
                "vectors (" + std::to_string(state->index->ntotal) + ") and metadata (" +
                    std::to_string(state->items.size()) + " items, header " + meta["count"] + ") disagree");
  }
  apply_search_parameters(state->index.get(), state->options);
  state->path = path;
  return EmbeddingIndex(std::move(state));
}

}  // namespace siamese
