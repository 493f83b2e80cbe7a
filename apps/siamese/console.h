#pragma once
// The CLI's side of the library's Logger and TrainObserver: messages on stderr, and on a terminal
// a one-line progress bar that each message first clears.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "siamese/core/log.h"
#include "siamese/eval/metrics.h"
#include "siamese/train/loop.h"

namespace siamese::cli {

class Console : public Logger, public TrainObserver {
 public:
  /// quiet: drop LogLevel::Progress messages and the bar (info and warnings still print).
  explicit Console(bool quiet);
  void log(LogLevel level, const std::string& message) override;
  void on_step(const StepProgress& progress) override;
  /// On a terminal a bar redrawn at most 10 times a second; otherwise Logger's lines.
  void count(const std::string& task, int64_t done, int64_t total) override;

 private:
  bool quiet_;
  bool tty_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point bar_drawn_{};
};

/// Refuses to write `out` over one of `inputs` (files the command reads; never, whatever
/// --force says) or over an existing file or link without `force`: throws siamese::Error.
void check_output(const std::string& out, bool force, const std::vector<std::string>& inputs = {});

/// The summary `train` and `eval` end with, on stdout: each metric rounded to 4 decimals in an
/// aligned column, the protocol's non-learned reference beside it where there is one, then the
/// report's path when one was written.
void print_summary(const EvalReport& test, const std::optional<EvalReport>& reference, const std::string& data,
                   const std::string& report_path = "");

}  // namespace siamese::cli
