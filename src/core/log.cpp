#include "siamese/core/log.h"

#include <cstdio>

namespace siamese {

namespace {
class SilentLogger : public Logger {
 public:
  void log(LogLevel, const std::string&) override {}
};
}  // namespace

Logger& silent_logger() {
  static SilentLogger logger;
  return logger;
}

void StderrLogger::log(LogLevel level, const std::string& message) {
  std::fprintf(stderr, "%s%s\n", level == LogLevel::Warning ? "warning: " : "", message.c_str());
}

}  // namespace siamese
