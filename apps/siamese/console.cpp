#include "console.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "siamese/core/error.h"
#include "siamese/report/run_report.h"

namespace siamese::cli {

namespace {
std::string duration(double seconds) {
  const auto s = static_cast<long long>(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  return buf;
}
}  // namespace

Console::Console(bool quiet) : quiet_(quiet), tty_(::isatty(2) != 0) {}

void Console::log(LogLevel level, const std::string& message) {
  if (quiet_ && level == LogLevel::Progress) return;
  if (bar_shown_) std::fputs("\r\033[K", stderr);
  bar_shown_ = false;
  std::fprintf(stderr, "%s%s\n", level == LogLevel::Warning ? "warning: " : "", message.c_str());
}

void Console::on_step(const StepProgress& p) {
  if (quiet_ || !tty_) return;
  const int width = 24;
  const int filled = static_cast<int>(width * p.step / std::max<int64_t>(1, p.steps));
  std::fprintf(stderr, "\repoch %lld/%lld [%s%s] %lld/%lld loss %.4f %6.0f img/s ETA %s  ",
               static_cast<long long>(p.epoch), static_cast<long long>(p.epochs), std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<long long>(p.step),
               static_cast<long long>(p.steps), p.mean_loss, p.images_per_second, duration(p.eta_seconds).c_str());
  bar_shown_ = true;
}

void Console::count(const std::string& task, int64_t done, int64_t total) {
  if (quiet_) return;
  if (!tty_) return Logger::count(task, done, total);
  const auto now = std::chrono::steady_clock::now();
  if (done < total && now - bar_drawn_ < std::chrono::milliseconds(100)) return;
  bar_drawn_ = now;
  if (done >= total) {  // a finished task leaves no bar behind
    if (bar_shown_) std::fputs("\r\033[K", stderr);
    bar_shown_ = false;
    return;
  }
  const int width = 24;
  const int filled = static_cast<int>(width * done / std::max<int64_t>(1, total));
  std::fprintf(stderr, "\r\033[K%s [%s%s] %lld/%lld", task.c_str(), std::string(filled, '=').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<long long>(done), static_cast<long long>(total));
  bar_shown_ = true;
}

void check_output(const std::string& out, bool force, const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (!in.empty() && fs::is_regular_file(in, ec) && fs::equivalent(out, in, ec) && !ec) {
      throw Error(ErrorCode::InvalidArgument, out, "is the input file " + in + "; refusing to overwrite it");
    }
  }
  std::error_code ec;
  if (!force && fs::exists(fs::symlink_status(out, ec))) {
    throw Error(ErrorCode::InvalidArgument, out, "exists; pass --force to replace it");
  }
}

void print_summary(const EvalReport& test, const std::optional<EvalReport>& reference, const std::string& data,
                   const std::string& report_path) {
  const auto model = nlohmann::json::parse(to_json(test, false));
  const auto ref = reference ? nlohmann::json::parse(to_json(*reference, false)) : nlohmann::json::object();
  std::printf("%s on %s: %lld test items, %lld pairs\n", test.protocol.c_str(), data.c_str(),
              static_cast<long long>(test.test_images), static_cast<long long>(test.test_pairs));
  std::printf("  %-22s %8s%s\n", "", "model", reference ? "  raw pixels" : "");
  for (const auto& [key, label] : summary_metrics()) {
    if (!model.contains(key)) continue;
    std::printf("  %-22s %8.4f", label.c_str(), model[key].get<double>());
    if (reference && ref.contains(key)) std::printf("  %10.4f", ref[key].get<double>());
    std::printf("\n");
  }
  if (!report_path.empty()) std::printf("report: %s\n", report_path.c_str());
  std::fflush(stdout);
}

}  // namespace siamese::cli
