#include "detail/batcher.h"

#include <algorithm>

#include "siamese/model/inputs.h"

namespace siamese::serve {

Batcher::Batcher(SavedModel& model, int64_t max_batch, double max_delay_ms, int64_t max_queue)
    : model_(model),
      max_batch_(std::max<int64_t>(1, max_batch)),
      max_delay_(static_cast<int64_t>(std::max(0.0, max_delay_ms) * 1000.0)),
      max_queue_(std::max<int64_t>(1, max_queue)),
      thread_([this] { run(); }) {}

Batcher::~Batcher() { stop(); }

std::future<torch::Tensor> Batcher::submit(std::vector<torch::Tensor> items) {
  Request request{std::move(items), {}};
  auto future = request.done.get_future();
  const auto n = static_cast<int64_t>(request.items.size());
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw QueueFull("the service is shutting down");
    if (queued_ > 0 && queued_ + n > max_queue_) {
      throw QueueFull(std::to_string(queued_) + " inputs are waiting (at most " + std::to_string(max_queue_) + ")");
    }
    queued_ += n;
    queue_.push_back(std::move(request));
  }
  wake_.notify_one();
  return future;
}

int64_t Batcher::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_;
}

BatchStats Batcher::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void Batcher::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

/// The requests of the next forward pass: the first waiting one, then those that arrive within
/// max_delay of it while the batch has room. A request larger than max_batch goes alone.
std::vector<Batcher::Request> Batcher::next_batch(std::unique_lock<std::mutex>& lock) {
  wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
  std::vector<Request> batch;
  if (queue_.empty()) return batch;
  int64_t total = 0;
  const auto deadline = std::chrono::steady_clock::now() + max_delay_;
  while (total < max_batch_) {
    if (queue_.empty() && (stopping_ || !wake_.wait_until(lock, deadline, [&] { return stopping_ || !queue_.empty(); }))) break;
    if (queue_.empty()) break;
    const auto n = static_cast<int64_t>(queue_.front().items.size());
    if (total > 0 && total + n > max_batch_) break;
    total += n;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return batch;
}

void Batcher::embed(std::vector<Request>& batch) {
  std::vector<torch::Tensor> items;
  for (auto& r : batch) items.insert(items.end(), r.items.begin(), r.items.end());
  try {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> parts;
    for (size_t at = 0; at < items.size(); at += static_cast<size_t>(max_batch_)) {
      const auto end = std::min(items.size(), at + static_cast<size_t>(max_batch_));
      std::vector<torch::Tensor> chunk(items.begin() + static_cast<std::ptrdiff_t>(at), items.begin() + static_cast<std::ptrdiff_t>(end));
      parts.push_back(model_.network->embed(input_batch(model_, chunk)).cpu());  // from where the model is placed
      std::lock_guard<std::mutex> lock(mutex_);
      const auto size = static_cast<int64_t>(chunk.size());
      const auto bucket = std::lower_bound(kBatchBuckets.begin(), kBatchBuckets.end(), size) - kBatchBuckets.begin();
      ++stats_.buckets[static_cast<size_t>(bucket)];
      ++stats_.batches;
      stats_.inputs += size;
    }
    const auto all = torch::cat(parts);
    int64_t at = 0;
    for (auto& r : batch) {
      const auto n = static_cast<int64_t>(r.items.size());
      r.done.set_value(all.narrow(0, at, n).clone());
      at += n;
    }
  } catch (...) {
    for (auto& r : batch) {
      try {
        r.done.set_exception(std::current_exception());
      } catch (const std::future_error&) {  // already answered
      }
    }
  }
}

void Batcher::run() {
  for (;;) {
    std::vector<Request> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      batch = next_batch(lock);
      if (batch.empty()) return;  // stopping, nothing left
      for (const auto& r : batch) queued_ -= static_cast<int64_t>(r.items.size());
    }
    embed(batch);
  }
}

}  // namespace siamese::serve
