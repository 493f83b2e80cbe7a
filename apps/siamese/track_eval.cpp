// siamese track-eval: OTB one-pass evaluation of SiamFC and OpenCV's trackers on sequences.
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "console.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/report/svg.h"
#include "siamese/track/evaluation.h"
#include "siamese/track/training.h"

namespace siamese::cli {

namespace {

struct TrackerRuns {
  std::string name;
  std::vector<SequenceRun> runs;
  Curves overall;
  double fps = 0;  ///< every frame over every sequence's tracker time
};

std::vector<std::string> parse_trackers(const std::string& list) {
  std::vector<std::string> names;
  std::stringstream s(list);
  for (std::string name; std::getline(s, name, ',');) {
    if (name != "siamfc") make_baseline(name);  // throws naming an unknown one
    names.push_back(name);
  }
  if (names.empty()) throw CLI::ValidationError("--trackers", "name at least one tracker");
  return names;
}

std::string curves_svg(const std::vector<TrackerRuns>& all, bool success) {
  PlotOptions p;
  p.x_hi = success ? 1 : 50;
  p.title = success ? "Success plot (OTB one-pass)" : "Precision plot (OTB one-pass)";
  p.x_label = success ? "overlap threshold (IoU >)" : "location error threshold (px)";
  p.y_label = success ? "success rate" : "precision";
  Plot plot(p);
  for (size_t t = 0; t < all.size(); ++t) {
    const auto& c = all[t].overall;
    std::vector<double> x, y = success ? c.success : c.precision;
    for (size_t i = 0; i < y.size(); ++i) x.push_back(success ? static_cast<double>(i) / 20 : static_cast<double>(i));
    char label[96];
    std::snprintf(label, sizeof label, "%s [%.3f]", all[t].name.c_str(), success ? c.success_auc : c.precision_20);
    plot.line(x, y, class_color(static_cast<int64_t>(t)), label);
  }
  return plot.str();
}

void print_tables(const std::vector<TrackerRuns>& all, const std::vector<Sequence>& sequences) {
  std::printf("%-24s %6s", "sequence", "frames");
  for (const auto& t : all) std::printf("  %8s AUC   P@20", t.name.c_str());
  std::printf("\n");
  for (size_t s = 0; s < sequences.size(); ++s) {
    std::printf("%-24s %6zu", sequences[s].name.c_str(), sequences[s].frames.size());
    for (const auto& t : all) std::printf("  %12.3f %6.3f", t.runs[s].curves.success_auc, t.runs[s].curves.precision_20);
    std::printf("\n");
  }
  std::printf("\n%zu sequences      success AUC  precision@20  frames/s\n", sequences.size());
  for (const auto& t : all) std::printf("  %-14s %11.4f %13.4f %9.1f\n", t.name.c_str(), t.overall.success_auc, t.overall.precision_20, t.fps);
  const auto find = [&](const std::string& name) -> const TrackerRuns* {
    for (const auto& t : all) if (t.name == name) return &t;
    return nullptr;
  };
  const auto* siamfc = find("siamfc");
  const auto* kcf = find("kcf");
  if (siamfc && kcf) {
    int above = 0;
    for (size_t s = 0; s < sequences.size(); ++s) above += siamfc->runs[s].curves.success_auc > kcf->runs[s].curves.success_auc;
    std::printf("siamfc's success AUC above kcf's on %d of %zu sequences\n", above, sequences.size());
  }
}

nlohmann::json to_json(const std::vector<TrackerRuns>& all, const std::vector<Sequence>& sequences) {
  nlohmann::json j{{"sequences", nlohmann::json::array()}, {"overall", nlohmann::json::object()}};
  for (size_t s = 0; s < sequences.size(); ++s) {
    nlohmann::json row{{"name", sequences[s].name}, {"frames", sequences[s].frames.size()}};
    for (const auto& t : all) {
      row[t.name] = {{"success_auc", t.runs[s].curves.success_auc}, {"precision_20", t.runs[s].curves.precision_20}, {"fps", t.runs[s].fps}};
    }
    j["sequences"].push_back(row);
  }
  for (const auto& t : all) {
    j["overall"][t.name] = {{"success_auc", t.overall.success_auc}, {"precision_20", t.overall.precision_20}, {"fps", t.fps},
                            {"success_curve", t.overall.success}, {"precision_curve", t.overall.precision}};
  }
  return j;
}

}  // namespace

void add_track_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("track-eval", "OTB one-pass evaluation (success, precision) of trackers on sequences with ground truth");
  struct Flags {
    std::string model, sequences, trackers = "siamfc,kcf,csrt,mil,fixed", plots;
    TrackerOptions tracker;
    bool json = false, quiet = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "tracker model (siamese train --task tracking); default: the one siamese ships");
  cmd->add_option("--sequences", f->sequences, "a folder of OTB-layout sequences (SEQ/img/, SEQ/groundtruth_rect.txt)")->required();
  cmd->add_option("--trackers", f->trackers, "which: siamfc, kcf, csrt, mil (OpenCV's), fixed (the first box)")->capture_default_str();
  cmd->add_option("--plots", f->plots, "write PREFIX-success.svg and PREFIX-precision.svg");
  cmd->add_flag("--json", f->json, "print the results as one JSON object (per sequence, overall, curves)");
  cmd->add_flag("--quiet", f->quiet, "no progress output");
  add_tracker_flags(cmd, f->tracker);
  cmd->callback([f]() {
    const auto names = parse_trackers(f->trackers);
    Console console(f->quiet);
    const auto sequences = read_sequences(f->sequences);
    SiamFC model{nullptr};
    for (const auto& name : names) {
      if (name == "siamfc") model = tracker_model(f->model);
    }
    std::vector<TrackerRuns> all;
    for (const auto& name : names) {
      TrackerRuns t{name, {}, {}, 0};
      double frames = 0, seconds = 0;
      std::vector<Curves> curves;
      for (size_t s = 0; s < sequences.size(); ++s) {
        auto tracker = name == "siamfc" ? make_siamfc_tracker(model, f->tracker) : make_baseline(name);
        t.runs.push_back(run_sequence(*tracker, sequences[s]));
        curves.push_back(t.runs.back().curves);
        frames += static_cast<double>(sequences[s].frames.size());
        seconds += static_cast<double>(sequences[s].frames.size()) / std::max(1e-9, t.runs.back().fps);
        console.count(name, static_cast<int64_t>(s + 1), static_cast<int64_t>(sequences.size()));
      }
      t.overall = mean_curves(curves);
      t.fps = frames / std::max(1e-9, seconds);
      all.push_back(std::move(t));
    }
    if (!f->plots.empty()) {
      write_text_atomically(f->plots + "-success.svg", curves_svg(all, true));
      write_text_atomically(f->plots + "-precision.svg", curves_svg(all, false));
    }
    if (f->json) {
      std::printf("%s\n", to_json(all, sequences).dump().c_str());
    } else {
      print_tables(all, sequences);
    }
  });
}

}  // namespace siamese::cli
