#pragma once
/// \file log.h  Where the library's messages go. The library prints nothing itself: long-running
/// calls (training, index building) take a Logger and report through it; the CLI prints to
/// stderr, a service would forward to its own log, a test can collect the lines.

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
