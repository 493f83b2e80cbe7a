#pragma once
/// \file index.h  A persistent index of embeddings for similarity search: FAISS underneath (chosen
/// by a factory string), metadata (key, label, class name, time added) beside the vectors, both
/// saved together in one SQLite file written atomically. No FAISS or SQLite type appears here.
///
/// Processes sharing one index file: readers (load) never see a half-written file, since save
/// replaces it by rename; they see it as it was before or after a write. Writers that change the
/// file (update, save) are exclusive: they hold an advisory lock (flock) on PATH.lock beside it,
/// update() from loading the index to writing it back, so that concurrent updates from any number
/// of processes are applied one after another, each to the result of the one before, and none is
/// lost. The lock is advisory (a program that writes the file without this class is not held off)
/// and, on network filesystems, may not hold across machines. PATH.lock is left in place.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "siamese/core/distance.h"

namespace siamese {

struct IndexOptions {
  /// dim: the embedding size D, required (> 0; checked by EmbeddingIndex).
  explicit IndexOptions(int64_t dim) : dim_(dim) {}
  /// FAISS index factory string: "Flat" (exact), "IVF1024,Flat", "HNSW32", "IVF1024,PQ16", ...
  /// Default "Flat".
  TORCH_ARG(std::string, spec) = "Flat";
  /// Embedding size D (the constructor's).
  TORCH_ARG(int64_t, dim) = 0;
  /// The model's distance: Euclidean and squared Euclidean search by L2, cosine by inner product
  /// of L2-normalised vectors. Hits report distances in this measure. Default Euclidean.
  TORCH_ARG(Distance, distance) = Distance::Euclidean;
  /// Fingerprint of the model that made the embeddings (model_fingerprint()); the add and search
  /// overloads that take a fingerprint refuse embeddings of any other model. Default "" (no check).
  TORCH_ARG(std::string, fingerprint) = "";
  /// IVF indexes: inverted lists visited per query (more = slower, closer to exact). Default 16.
  TORCH_ARG(int64_t, nprobe) = 16;
  /// HNSW indexes: size of the search beam (more = slower, closer to exact). Default 64.
  TORCH_ARG(int64_t, ef_search) = 64;
};

/// What the index knows about one stored embedding.
struct IndexItem {
  int64_t id = -1;
  std::string key;    ///< where it came from: a file path, or "FILE#N" for item N of a data file
  int64_t label = -1; ///< class label, -1 when unknown
  std::string added;  ///< UTC time of adding, ISO 8601
  std::string class_name;  ///< the label's class name (add with class names), "" when none is known
};

/// Search-time parameters of one search call, overriding the index's own (IndexOptions) for that
/// call only, so that concurrent searches may use different ones. 0 = the index's own value.
struct SearchParams {
  int64_t nprobe = 0;     ///< IVF indexes: inverted lists visited per query
  int64_t ef_search = 0;  ///< HNSW indexes: size of the search beam
};

/// One search result: the stored item and its distance to the query (the index's Distance).
struct SearchHit {
  IndexItem item;
  double distance = 0;
};

/// Embeddings with ids and metadata. add / remove / search / save / load; every id in the
/// metadata is in the vector index and vice versa, in memory and on disk.
/// Thread safety: the const methods (search, size, items, class_names, options, save) may run
/// concurrently with each other; add, remove and set_search_parameters need the index to
/// themselves (a service guards them with a reader-writer lock). Several processes or threads
/// writing one file: update() (see the file's comment above).
class EmbeddingIndex {
 public:
  /// An empty index. Throws siamese::Error on dim <= 0 or a spec FAISS does not understand.
  explicit EmbeddingIndex(IndexOptions options);
  ~EmbeddingIndex();
  EmbeddingIndex(EmbeddingIndex&&) noexcept;
  EmbeddingIndex& operator=(EmbeddingIndex&&) noexcept;

  /// Loads an index saved by save(). Throws siamese::Error naming the file when it is missing,
  /// truncated or corrupt, not a siamese index, or its vectors and metadata disagree.
  static EmbeddingIndex load(const std::string& path);

  /// Writes vectors and metadata to one file atomically (temporary file, then rename): a crash
  /// mid-write leaves the previous file as it was. Holds the file's writer lock (PATH.lock) while
  /// writing, so it never interleaves with an update() of the same file; a concurrent update then
  /// applies its change to this file. Throws siamese::Error(IOError) naming the file.
  void save(const std::string& path) const;

  /// Loads the index in `path`, applies change(index) and saves it back, holding the file's writer
  /// lock (PATH.lock, flock) from before the load to after the save: concurrent updates of one file
  /// from several processes or threads are applied one after another, none lost. When `change`
  /// throws, the file is left as it was and the exception propagates. `change` should be quick
  /// (embed before calling): other writers wait for it. Throws siamese::Error as load() and save().
  static void update(const std::string& path, const std::function<void(EmbeddingIndex&)>& change);

  /// Adds embeddings [N, D] (float, any device) with their keys and labels (N each); returns the
  /// ids given to them (consecutive, never reused). Indexes that need training (IVF, PQ) train on
  /// the first vectors added: throws siamese::Error when there are too few for the spec.
  std::vector<int64_t> add(const torch::Tensor& embeddings, const std::vector<std::string>& keys,
                           const std::vector<int64_t>& labels);

  /// add() for embeddings of the model whose fingerprint is `fingerprint`: first
  /// check_fingerprint(fingerprint), then the same. Throws siamese::Error(InvalidArgument) naming
  /// both fingerprints when they differ; the index is then unchanged.
  std::vector<int64_t> add(const torch::Tensor& embeddings, const std::vector<std::string>& keys,
                           const std::vector<int64_t>& labels, const std::string& fingerprint);

  /// add() for items of named classes, with the fingerprint check: labels[i] indexes
  /// `class_names` (-1: unlabelled). A name the index already holds keeps its label; each name new
  /// to it gets the next label above every label in use (items' and names'), in the order of
  /// `class_names`, so that folders added in several calls file a shared class name under one
  /// label and different names never share one. An index with no labels yet keeps the labels as
  /// given. Throws siamese::Error(InvalidArgument) on a label outside [-1, class_names.size());
  /// the index is then unchanged, as on any other failure.
  std::vector<int64_t> add(const torch::Tensor& embeddings, const std::vector<std::string>& keys,
                           const std::vector<int64_t>& labels, const std::vector<std::string>& class_names,
                           const std::string& fingerprint);

  /// Removes the items with these ids; unknown ids are ignored. Returns how many were removed.
  int64_t remove(const std::vector<int64_t>& ids);

  /// The k nearest stored items of each query, nearest first: queries [Q, D] -> Q lists of at most
  /// min(k, size()) hits. Throws siamese::Error on an empty index, k < 1 or a dimension mismatch.
  std::vector<std::vector<SearchHit>> search(const torch::Tensor& queries, int64_t k) const;
  /// search() with this call's own search parameters, as if the index were set to them (the index
  /// itself is unchanged). An HNSW search with its own ef_search runs alone: FAISS 1.7.3 reads part
  /// of the beam size from the index, so the call sets it and puts it back, while other searches
  /// wait. Throws siamese::Error(InvalidArgument) on a negative value, or a value the index type
  /// does not use (nprobe on a Flat index, say).
  std::vector<std::vector<SearchHit>> search(const torch::Tensor& queries, int64_t k, const SearchParams& params) const;
  /// search() for queries embedded by the model whose fingerprint is `fingerprint`: first
  /// check_fingerprint(fingerprint), then the same.
  std::vector<std::vector<SearchHit>> search(const torch::Tensor& queries, int64_t k,
                                             const std::string& fingerprint) const;

  /// Refuses embeddings of another model: when options().fingerprint() is not empty and differs
  /// from `fingerprint` (an empty one included), throws siamese::Error(InvalidArgument) naming
  /// both fingerprints, and the index file when the index was loaded from one. An index without a
  /// fingerprint accepts any. Callers may check once before embedding many inputs.
  void check_fingerprint(const std::string& fingerprint) const;

  /// The metadata of the item `id`. Throws siamese::Error(NotFound) when the index does not hold it.
  IndexItem item(int64_t id) const;
  /// The stored vectors of these ids, [ids.size(), D], as the index holds them (L2-normalised for
  /// cosine; approximate for PQ and SQ codes). Throws siamese::Error: NotFound naming an id the
  /// index does not hold, Unsupported for an index type that cannot reconstruct vectors.
  torch::Tensor vectors(const std::vector<int64_t>& ids) const;

  int64_t size() const;
  const IndexOptions& options() const;
  /// Sets the search-time parameters (IVF nprobe, HNSW ef_search) kept in options().
  void set_search_parameters(int64_t nprobe, int64_t ef_search);
  /// Metadata of every stored item, by ascending id.
  std::vector<IndexItem> items() const;
  /// The class names the index knows, by label (kept when their items are removed: a label is
  /// never given to another name).
  const std::map<int64_t, std::string>& class_names() const;

 private:
  struct State;
  explicit EmbeddingIndex(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace siamese
