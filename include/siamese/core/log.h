#pragma once
/// \file log.h  Where the library's messages go. The library prints nothing itself: long-running
/// calls (training, index building) take a Logger and report through it; the CLI prints to
/// stderr, a service would forward to its own log, a test can collect the lines.

#include <chrono>
#include <cstdint>
#include <string>

namespace siamese {

/// Progress: per-epoch reports a quiet caller drops; Info: what a run is doing (opened data,
/// resumed, stopped early); Warning: something the user should act on.
enum class LogLevel { Progress, Info, Warning };

/// Receives messages, one line each, without a trailing newline.
/// Thread safety: the library calls log() from the thread that made the call it was given to.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(LogLevel level, const std::string& message) = 0;
  void progress(const std::string& message) { log(LogLevel::Progress, message); }
  void info(const std::string& message) { log(LogLevel::Info, message); }
  void warning(const std::string& message) { log(LogLevel::Warning, message); }

  /// A long task's progress: `done` of `total` units of `task` (e.g. "embedding", counted in
  /// items). Long loops call it often (every batch or file), from one thread at a time; a new
  /// task name starts a new task. The default sends a Progress line ("embedding: 12000/60000
  /// (20%)") once the task has run for count_every, then every count_every, and a last one when a
  /// task that printed is done: quick tasks print nothing. A terminal's logger may draw a bar.
  virtual void count(const std::string& task, int64_t done, int64_t total);

 protected:
  std::chrono::milliseconds count_every{5000};  ///< interval of count()'s lines

 private:
  std::string counted_task_;
  std::chrono::steady_clock::time_point counted_at_{};
  bool counted_printed_ = false;
};

/// Discards every message: the default wherever a Logger is optional.
Logger& silent_logger();

/// Prints each message on its own line to stderr, warnings prefixed with "warning: ". Safe to
/// share between threads (one fprintf per message).
class StderrLogger : public Logger {
 public:
  void log(LogLevel level, const std::string& message) override;
};

}  // namespace siamese
