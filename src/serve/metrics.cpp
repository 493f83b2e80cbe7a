#include "detail/metrics.h"

#include <algorithm>
#include <cstdio>

namespace siamese::serve {

namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

/// Cumulative "_bucket" lines of a histogram with per-bucket counts `counts` (last: +Inf).
template <typename Bounds, typename Counts>
std::string buckets(const std::string& name, const std::string& labels, const Bounds& bounds, const Counts& counts) {
  std::string out;
  int64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    const std::string le = i < bounds.size() ? number(static_cast<double>(bounds[i])) : "+Inf";
    out += name + "_bucket{" + labels + (labels.empty() ? "" : ",") + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  return out;
}

}  // namespace

void Metrics::record(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  auto& l = latency_[route];
  const auto bucket = std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds) - kLatencyBuckets.begin();
  ++l.buckets[static_cast<size_t>(bucket)];
  l.sum += seconds;
  ++l.count;
}

std::string Metrics::text(const BatchStats& batches, int64_t queued, int64_t index_size) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out = "# HELP siamese_requests_total Requests answered, by route and HTTP status.\n"
                    "# TYPE siamese_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    out += "siamese_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(count) + "\n";
  }
  out += "# HELP siamese_request_duration_seconds Time from reading a request to answering it, by route.\n"
         "# TYPE siamese_request_duration_seconds histogram\n";
  for (const auto& [route, l] : latency_) {
    const std::string labels = "route=\"" + route + "\"";
    out += buckets("siamese_request_duration_seconds", labels, kLatencyBuckets, l.buckets);
    out += "siamese_request_duration_seconds_sum{" + labels + "} " + number(l.sum) + "\n";
    out += "siamese_request_duration_seconds_count{" + labels + "} " + std::to_string(l.count) + "\n";
  }
  out += "# HELP siamese_batch_size Inputs per forward pass of the batcher.\n# TYPE siamese_batch_size histogram\n";
  out += buckets("siamese_batch_size", "", kBatchBuckets, batches.buckets);
  out += "siamese_batch_size_sum " + std::to_string(batches.inputs) + "\nsiamese_batch_size_count " +
         std::to_string(batches.batches) + "\n";
  out += "# HELP siamese_queue_depth Inputs waiting for the batcher.\n# TYPE siamese_queue_depth gauge\n";
  out += "siamese_queue_depth " + std::to_string(queued) + "\n";
  out += "# HELP siamese_index_items Items in the index.\n# TYPE siamese_index_items gauge\n";
  out += "siamese_index_items " + std::to_string(index_size) + "\n";
  return out;
}

}  // namespace siamese::serve
