// Logger::count: the progress lines long tasks send, and the quiet of short ones.
#include "siamese/core/log.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

using namespace siamese;

namespace {

class Lines : public Logger {
 public:
  explicit Lines(int every_ms) { count_every = std::chrono::milliseconds(every_ms); }
  void log(LogLevel level, const std::string& message) override {
    EXPECT_EQ(level, LogLevel::Progress);
    lines.push_back(message);
  }
  std::vector<std::string> lines;
};

}  // namespace

TEST(LoggerCount, QuickTasksPrintNothing) {
  Lines logger(5000);
  for (int i = 1; i <= 1000; ++i) logger.count("reading images", i, 1000);
  EXPECT_TRUE(logger.lines.empty());
}

TEST(LoggerCount, ALongTaskPrintsEveryIntervalThenItsEnd) {
  Lines logger(30);
  logger.count("embedding", 100, 400);  // starts the clock
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  logger.count("embedding", 200, 400);  // 60 ms in: a line
  logger.count("embedding", 300, 400);  // just after it: none
  logger.count("embedding", 400, 400);  // done, and it printed: the last line
  EXPECT_EQ(logger.lines, (std::vector<std::string>{"embedding: 200/400 (50%)", "embedding: 400/400 (100%)"}));
  logger.count("scoring", 1, 2);  // a new task starts its own clock
  logger.count("scoring", 2, 2);
  EXPECT_EQ(logger.lines.size(), 2u);
}

TEST(LoggerCount, ATaskDoneAtItsFirstCallPrintsNothing) {
  Lines every(0);  // every call is due
  every.count("x", 3, 3);
  every.count("y", 1, 3);
  EXPECT_EQ(every.lines, (std::vector<std::string>{"y: 1/3 (33%)"}));
}
