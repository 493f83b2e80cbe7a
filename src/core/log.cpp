#include "siamese/core/log.h"

#include <cstdio>

namespace siamese {

namespace {
class SilentLogger : public Logger {
 public:
  void log(LogLevel, const std::string&) override {}
  void count(const std::string&, int64_t, int64_t) override {}
};
}  // namespace

void Logger::count(const std::string& task, int64_t done, int64_t total) {
  const auto now = std::chrono::steady_clock::now();
  if (task != counted_task_) counted_task_ = task, counted_at_ = now, counted_printed_ = false;
  const bool finished = done >= total;
  if (finished ? !counted_printed_ : now - counted_at_ < count_every) {
    if (finished) counted_task_.clear();
    return;
  }
  counted_at_ = now;
  counted_printed_ = true;
  if (finished) counted_task_.clear();
  const double share = total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0;
  char buf[96];
  std::snprintf(buf, sizeof buf, ": %lld/%lld (%.0f%%)", static_cast<long long>(done), static_cast<long long>(total), share);
  progress(task + buf);
}

Logger& silent_logger() {
  static SilentLogger logger;
  return logger;
}

void StderrLogger::log(LogLevel level, const std::string& message) {
  std::fprintf(stderr, "%s%s\n", level == LogLevel::Warning ? "warning: " : "", message.c_str());
}

}  // namespace siamese
