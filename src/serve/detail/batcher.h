#pragma once
// Dynamic batching for the service: inputs of requests that arrive together go through the
// network in one forward pass. One thread owns the model.

#include <torch/torch.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "siamese/model/model_file.h"

namespace siamese::serve {

/// Thrown by Batcher::submit when the queue is full (the service answers 429).
struct QueueFull : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Upper bounds of the batch-size histogram's buckets (Prometheus "le"); the last is +Inf.
inline constexpr std::array<int64_t, 10> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

/// Batch sizes seen so far, for /metrics.
struct BatchStats {
  std::array<int64_t, kBatchBuckets.size() + 1> buckets{};  ///< count per bucket, not cumulative
  int64_t batches = 0;
  int64_t inputs = 0;
};

/// Collects inputs (image_input / text_input items) and embeds them in batches of at most
/// max_batch, waiting at most max_delay_ms after the first for others to join.
/// Thread safety: submit, queued and stats may be called from any thread.
class Batcher {
 public:
  Batcher(SavedModel& model, int64_t max_batch, double max_delay_ms, int64_t max_queue);
  ~Batcher();  ///< stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Embeddings [N, D] of these N >= 1 items, in order, once the batcher has run them. Throws
  /// QueueFull when more than max_queue inputs would be waiting. The future holds the error of
  /// a failed forward pass.
  std::future<torch::Tensor> submit(std::vector<torch::Tensor> items);
  /// Inputs waiting now.
  int64_t queued() const;
  BatchStats stats() const;
  /// Embeds what is queued, then ends the thread; later submits throw QueueFull. Idempotent.
  void stop();

 private:
  struct Request {
    std::vector<torch::Tensor> items;
    std::promise<torch::Tensor> done;
  };
  void run();
  std::vector<Request> next_batch(std::unique_lock<std::mutex>& lock);
  void embed(std::vector<Request>& batch);

  SavedModel& model_;
  const int64_t max_batch_;
  const std::chrono::microseconds max_delay_;
  const int64_t max_queue_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Request> queue_;
  int64_t queued_ = 0;
  bool stopping_ = false;
  BatchStats stats_;
  std::thread thread_;
};

}  // namespace siamese::serve
