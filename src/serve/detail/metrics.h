#pragma once
// The service's counters, written out in the Prometheus text format for GET /metrics.

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "batcher.h"

namespace siamese::serve {

/// Upper bounds, in seconds, of the latency histogram's buckets; the last is +Inf.
inline constexpr std::array<double, 12> kLatencyBuckets = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                           0.05,   0.1,   0.2,   0.5,   1.0,  5.0};

/// Requests by route and status, and their latencies by route. Thread safety: every method may
/// be called from any thread.
class Metrics {
 public:
  void record(const std::string& route, int status, double seconds);
  /// The whole exposition: these counters, the batcher's and the gauges given.
  std::string text(const BatchStats& batches, int64_t queued, int64_t index_size) const;

 private:
  struct Latency {
    std::array<int64_t, kLatencyBuckets.size() + 1> buckets{};  // not cumulative
    double sum = 0;
    int64_t count = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, Latency> latency_;
};

}  // namespace siamese::serve
