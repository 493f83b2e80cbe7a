#pragma once
// The subcommands of the `siamese` tool: each registers its flags and an action on the app.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "siamese/model/model_file.h"
#include "siamese/track/siamfc.h"
#include "siamese/track/tracker.h"

namespace siamese::cli {

void add_train(CLI::App& app);
void add_eval(CLI::App& app);
void add_embed(CLI::App& app);
void add_verify(CLI::App& app);
void add_augment_preview(CLI::App& app);
void add_index(CLI::App& app);
void add_search(CLI::App& app);
void add_oneshot(CLI::App& app);
void add_report(CLI::App& app);
void add_serve(CLI::App& app);
void add_track(CLI::App& app);
void add_track_eval(CLI::App& app);
void add_track_train(CLI::App& app);  ///< reached as `train --task tracking` (main.cpp)

/// --device, --amp (device.h) and, on commands that only embed, --int8 (quantize.h): where a
/// command's network computes, and in what precision.
struct DeviceFlags {
  std::string device = "cpu";
  bool amp = false;
  bool int8 = false;
};
void add_device_flags(CLI::App* cmd, DeviceFlags& flags, bool int8 = true);
/// `model`'s network moved where the flags say (SiameseNetworkImpl::place, use_int8).
void place_model(SavedModel& model, const DeviceFlags& flags);

/// The tracker model in `path`, or the one siamese ships (models/tracker.pt) when it is empty.
SiamFC tracker_model(const std::string& path);
/// The SiamFC-3s tracker's flags (--scales, --scale-step, ...), defaults from TrackerOptions.
void add_tracker_flags(CLI::App* cmd, TrackerOptions& options);

/// This command line run again in `processes` local processes that train together (ranks 0 ..
/// processes-1, torchrun's environment, a free port of 127.0.0.1), their output forwarded. When
/// one fails the others are stopped. Returns the first failure's exit status, 0 when all succeed.
int launch_local(int processes);
/// In a process launch_local started: it stops (SIGTERM) when the launcher dies.
void stop_with_launcher();

/// The check of a numeric flag: its value (each value, for a list) must be a number in [lo, hi]
/// (above lo when lo_open). Anything else, "-5", "1e30", "abc", is a usage error naming the flag
/// (exit 2), before the value is converted, so that nothing wraps or is clamped.
inline CLI::Validator in_range(double lo, double hi, bool lo_open = false) {
  auto number = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return std::string(buf);
  };
  const std::string range = (lo_open ? "> " : ">= ") + number(lo) + " and <= " + number(hi);
  return CLI::Validator(
      [lo, hi, lo_open, range](std::string& s) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(s, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != s.size()) return "'" + s + "' is not a number";
        if (!(lo_open ? v > lo : v >= lo) || !(v <= hi)) return s + " is out of range: must be " + range;
        return std::string();
      },
      "in [" + number(lo) + ", " + number(hi) + "]");
}

/// Limits shared by many flags: counts of items, and seeds (64-bit, stored as signed in JSON).
constexpr double kMaxCount = 1e12;
constexpr double kMaxSeed = 9.2e18;

}  // namespace siamese::cli
