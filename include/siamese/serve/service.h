#pragma once
/// \file service.h  The HTTP service (`siamese serve`): a trained model, and optionally its
/// gallery index, behind a JSON API (docs/service.md). Requests that arrive together are embedded
/// in one forward pass (dynamic batching); searches run concurrently. No HTTP type appears here.

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "siamese/core/log.h"
#include "siamese/model/model_file.h"

namespace siamese {

/// How the service listens, batches and limits requests. Every field has a default.
struct ServiceOptions {
  /// Address to bind. Default "127.0.0.1" (loopback only).
  TORCH_ARG(std::string, host) = "127.0.0.1";
  /// TCP port; 0 = any free port (Service::port() says which). Default 8080.
  TORCH_ARG(int, port) = 8080;
  /// Threads that read and answer requests. Default 8.
  TORCH_ARG(int, threads) = 8;
  /// Most inputs embedded in one forward pass. 1 turns batching off. Default 64.
  TORCH_ARG(int64_t, max_batch) = 64;
  /// How long the batcher waits for more inputs once it has one, in milliseconds. Default 2.
  TORCH_ARG(double, max_delay_ms) = 2.0;
  /// Most inputs waiting to be embedded; past it requests get 429 with Retry-After. Default 1024.
  TORCH_ARG(int64_t, max_queue) = 1024;
  /// Largest request body in bytes (413 beyond). Default 16 MiB.
  TORCH_ARG(int64_t, max_body_bytes) = 16 << 20;
  /// Most inputs in one /v1/embed request. Default 256.
  TORCH_ARG(int64_t, max_inputs) = 256;
  /// Most pixels an uploaded image may declare (refused before decoding). Default 50 M.
  TORCH_ARG(int64_t, max_pixels) = 50'000'000;
  /// Longest text, in bytes. Default 65536.
  TORCH_ARG(int64_t, max_text_bytes) = 65536;
  /// Largest k of /v1/search. Default 1000.
  TORCH_ARG(int64_t, max_k) = 1000;
  /// Seconds a request may wait for its embeddings before 503. Default 30.
  TORCH_ARG(double, timeout_s) = 30.0;
  /// Index changes (PUT, DELETE of items) between two snapshots of the index file; each change is
  /// in the write-ahead log (INDEX.wal) before it is acknowledged. Default 1000.
  TORCH_ARG(int64_t, snapshot_every) = 1000;
  /// API keys that may read (embed, compare, search, info). Empty with read_write_keys empty: no
  /// key is asked for, and the service refuses to bind anything but a loopback address.
  TORCH_ARG(std::vector<std::string>, read_keys) = {};
  /// API keys that may also write (index items).
  TORCH_ARG(std::vector<std::string>, read_write_keys) = {};
};

/// Reads API keys from a file: one per line, "KEY" (read-only) or "rw KEY" / "ro KEY"; blank
/// lines and lines starting with # are skipped. Sets options.read_keys and read_write_keys.
/// Throws siamese::Error naming the file when it is missing, holds no key, or a key is shorter
/// than 16 characters.
void read_api_keys(const std::string& path, ServiceOptions& options);

/// The service. Construction loads nothing and binds nothing; start() binds and serves in
/// background threads until stop() or destruction.
/// Thread safety: start, stop and wait are called from one thread; requests are served
/// concurrently. The model is used by the batcher thread only; index searches run concurrently
/// under a reader lock.
class Service {
 public:
  /// `model` in eval mode (load_model returns it so); `index_path` "" for none. The index is
  /// loaded by start(), and must hold embeddings of this model (fingerprint check).
  Service(SavedModel model, std::string index_path, ServiceOptions options, Logger& logger);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  /// Loads the index, binds host:port and starts serving. Returns the port bound. Throws
  /// siamese::Error: IOError when the address cannot be bound, InvalidArgument for a host other
  /// than loopback without API keys, and what EmbeddingIndex::load throws.
  int start();
  /// Stops accepting, lets the requests in flight finish, stops the batcher. Idempotent.
  void stop();
  /// Blocks until stop() has been called (from another thread or a signal handler's thread).
  void wait();
  /// The port bound by start(); 0 before.
  int port() const;
  /// Every route the service answers, as {method, path} with OpenAPI path templates
  /// ("/v1/items/{key}"): the list /openapi.json must document.
  static std::vector<std::pair<std::string, std::string>> routes();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace siamese
