// siamese track, track-eval and train --task tracking (track-train): SiamFC on frames and sequences.
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "console.h"
#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/core/system.h"
#include "siamese/report/svg.h"
#include "siamese/track/evaluation.h"
#include "siamese/track/sequences.h"
#include "siamese/track/training.h"

namespace fs = std::filesystem;

namespace siamese::cli {

namespace {

/// The tracker that ships with siamese (models/tracker.pt, trained by scripts/tracking-model):
/// installed beside the binary's share folder, or in the source tree it was built from.
std::string default_tracker() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto installed = exe.parent_path().parent_path() / "share" / "siamese" / "tracker.pt";
    if (fs::exists(installed)) return installed.string();
  }
  return SIAMESE_DEFAULT_TRACKER;
}

}  // namespace

SiamFC tracker_model(const std::string& path) { return load_tracker(path.empty() ? default_tracker() : path); }

void add_tracker_flags(CLI::App* cmd, TrackerOptions& t) {
  const std::string group = "Tracker (SiamFC-3s; defaults are the reference's)";
  cmd->add_option("--scales", t.scales(), "search regions a frame (odd)")->capture_default_str()->check(in_range(1, 99))->group(group);
  cmd->add_option("--scale-step", t.scale_step(), "ratio between successive scales")->capture_default_str()->check(in_range(1, 10))->group(group);
  cmd->add_option("--scale-penalty", t.scale_penalty(), "the other scales' peaks are multiplied by it")->capture_default_str()->check(in_range(0, 1))->group(group);
  cmd->add_option("--scale-lr", t.scale_lr(), "share by which the size follows the best scale")->capture_default_str()->check(in_range(0, 1))->group(group);
  cmd->add_option("--window-influence", t.window_influence(), "weight of the cosine window on the score map")->capture_default_str()->check(in_range(0, 1))->group(group);
  cmd->add_option("--upscale", t.upscale(), "score maps upsampled (bicubic) by this factor")->capture_default_str()->check(in_range(1, 64))->group(group);
}

namespace {

Box parse_box(const std::vector<double>& v) {
  if (v.size() != 4) throw CLI::ValidationError("--init", "expected x,y,w,h (4 numbers), got " + std::to_string(v.size()));
  return {v[0], v[1], v[2], v[3]};
}

/// Draws the box and score on a copy of the frame, BGR for OpenCV's writers.
cv::Mat rendered(const torch::Tensor& frame, const Box& b, double score) {
  const auto hwc = frame.permute({1, 2, 0}).contiguous();
  const cv::Mat rgb(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC3, hwc.data_ptr<uint8_t>());
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::rectangle(bgr, cv::Rect2d(b.x, b.y, b.w, b.h), cv::Scalar(0, 255, 0), 2);
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", score);
  cv::putText(bgr, text, cv::Point(static_cast<int>(b.x), std::max(12, static_cast<int>(b.y) - 4)), cv::FONT_HERSHEY_SIMPLEX, 0.45,
              cv::Scalar(0, 255, 0), 1);
  return bgr;
}

/// --render: a video (by its extension) or a folder of numbered PNGs, written under a temporary
/// name and moved into place only when every frame is done.
class Renderer {
 public:
  Renderer(const std::string& out, double fps) : out_(out), video_(fs::path(out).has_extension()) {
    tmp_ = (fs::path(out).parent_path() / (".tmp-" + std::to_string(::getpid()) + "-" + fs::path(out).filename().string())).string();
    if (!video_) fs::create_directories(tmp_);
    fps_ = fps > 0 ? fps : 25;
  }
  ~Renderer() {
    std::error_code ec;
    if (!done_) fs::remove_all(tmp_, ec);
  }
  void add(const cv::Mat& frame) {
    if (!video_) {
      char name[32];
      std::snprintf(name, sizeof name, "%05lld.png", static_cast<long long>(count_++));
      if (!cv::imwrite((fs::path(tmp_) / name).string(), frame)) throw Error(ErrorCode::IOError, out_, "cannot write a rendered frame");
      return;
    }
    if (!writer_.isOpened()) {
      const auto ext = fs::path(out_).extension().string();
      const int fourcc = ext == ".avi" ? cv::VideoWriter::fourcc('M', 'J', 'P', 'G') : cv::VideoWriter::fourcc('m', 'p', '4', 'v');
      if (!writer_.open(tmp_, cv::CAP_FFMPEG, fourcc, fps_, frame.size())) {
        throw Error(ErrorCode::IOError, out_, "OpenCV cannot write a video of this kind (try .mp4 or .avi, or a folder)");
      }
    }
    writer_.write(frame);
    ++count_;
  }
  void finish() {
    writer_.release();
    std::error_code ec;
    if (!video_ && fs::exists(out_)) fs::remove_all(out_, ec);
    fs::rename(tmp_, out_);
    done_ = true;
  }

 private:
  std::string out_, tmp_;
  bool video_;
  double fps_ = 25;
  cv::VideoWriter writer_;
  int64_t count_ = 0;
  bool done_ = false;
};

}  // namespace

void add_track(CLI::App& app) {
  auto* cmd = app.add_subcommand("track", "follow an object through a folder of frames or a video with a SiamFC tracker");
  struct Flags {
    std::string model, frames, out, render;
    std::vector<double> init;
    TrackerOptions tracker;
    bool force = false, quiet = false;
  };
  auto f = std::make_shared<Flags>();
  cmd->add_option("--model", f->model, "tracker model (siamese train --task tracking); default: the one siamese ships (models/tracker.pt)");
  cmd->add_option("--frames", f->frames, "a folder of frames (png, jpg, bmp, pgm, webp; name order) or a video OpenCV reads")->required();
  cmd->add_option("--init", f->init, "the object's box in frame 0: x,y,w,h (pixels, top-left corner)")->delimiter(',')->required()
      ->check(in_range(-1e6, 1e6));
  cmd->add_option("--out", f->out, "CSV of the boxes: frame,x,y,w,h,score (frame 0 = --init)");
  cmd->add_option("--render", f->render, "draw box and score on every frame: a video (out.mp4, out.avi) or a folder of PNGs");
  cmd->add_flag("--force", f->force, "replace --out or --render when they exist");
  cmd->add_flag("--quiet", f->quiet, "no progress output");
  add_tracker_flags(cmd, f->tracker);
  cmd->callback([f]() {
    const Box first = parse_box(f->init);
    if (!f->out.empty()) check_output(f->out, f->force, {f->frames});
    if (!f->render.empty()) check_output(f->render, f->force, {f->frames});
    Console console(f->quiet);
    Tracker tracker(tracker_model(f->model), f->tracker);
    FrameSource frames(f->frames);
    std::unique_ptr<Renderer> render;
    if (!f->render.empty()) render = std::make_unique<Renderer>(f->render, frames.fps());
    std::ostringstream csv;
    csv << "frame,x,y,w,h,score\n";
    double seconds = 0;
    int64_t n = 0;
    while (auto frame = frames.next()) {
      const auto start = std::chrono::steady_clock::now();
      TrackResult r{first, 1};
      if (n == 0) {
        tracker.init(*frame, first);
      } else {
        r = tracker.update(*frame);
      }
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      char row[160];
      std::snprintf(row, sizeof row, "%lld,%.2f,%.2f,%.2f,%.2f,%.4f\n", static_cast<long long>(n), r.box.x, r.box.y, r.box.w, r.box.h, r.score);
      csv << row;
      if (render) render->add(rendered(*frame, r.box, r.score));
      if (++n % 50 == 0) console.count("tracking", n, 0);
    }
    if (!f->out.empty()) write_text_atomically(f->out, csv.str());
    if (render) render->finish();
    if (f->out.empty()) std::fputs(csv.str().c_str(), stdout);
    std::fprintf(stderr, "tracked %lld frames at %.1f frames/s (tracker only)%s%s\n", static_cast<long long>(n),
                 static_cast<double>(n) / std::max(1e-9, seconds), f->out.empty() ? "" : ("; boxes in " + f->out).c_str(),
                 f->render.empty() ? "" : ("; rendered to " + f->render).c_str());
  });
}

void add_track_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("track-train", "train a SiamFC tracker (siamese train --task tracking)");
  cmd->group("");  // reached through `train --task tracking`
  struct Flags {
    TrackTrainOptions o;
    std::string trunk = to_string(o.trunk), optimizer = to_string(o.optim.optimizer), schedule = to_string(o.optim.schedule), resume;
    bool quiet = false;
  };
  auto f = std::make_shared<Flags>();
  auto& o = f->o;
  cmd->add_option("--data", o.data, "sequences:DIR, one OTB-layout folder per sequence (SEQ/img/, SEQ/groundtruth_rect.txt)")->capture_default_str();
  cmd->add_option("--trunk", f->trunk, "compact | alexnet (the reference's 96-256-384-384-256 channels)")->capture_default_str();
  cmd->add_option("--pairs", o.pairs, "training pairs an epoch")->capture_default_str()->check(in_range(1, kMaxCount));
  cmd->add_option("--batch-size", o.batch_size, "pairs a step")->capture_default_str()->check(in_range(2, 1e6));
  cmd->add_option("--max-gap", o.max_gap, "frames between the two of a pair, at most")->capture_default_str()->check(in_range(1, 1e9));
  cmd->add_option("--validation-sequences", o.validation_sequences, "the last N sequences validate (0: a tenth)")->capture_default_str()->check(in_range(0, 1e9));
  cmd->add_option("--validation-pairs", o.validation_pairs, "validation pairs, drawn once")->capture_default_str()->check(in_range(1, 1e9));
  cmd->add_option("--positive-radius", o.positive_radius, "score cells within this many search-crop pixels of the object are positive")->capture_default_str()->check(in_range(0, 1000, true));
  cmd->add_option("--shift", o.shift, "search crops are centred up to this many crop pixels off the object (each axis)")->capture_default_str()->check(in_range(0, 1000));
  cmd->add_option("--epochs", o.optim.epochs, "epochs")->capture_default_str()->check(in_range(1, 1e6));
  cmd->add_option("--optimizer", f->optimizer, "adam | sgd")->capture_default_str();
  cmd->add_option("--lr", o.optim.lr, "peak learning rate")->capture_default_str()->check(in_range(0, 100, true));
  cmd->add_option("--weight-decay", o.optim.weight_decay, "L2 weight decay")->capture_default_str()->check(in_range(0, 100));
  cmd->add_option("--schedule", f->schedule, "none | step | cosine | plateau")->capture_default_str();
  cmd->add_option("--warmup-steps", o.optim.warmup_steps, "linear LR warm-up steps")->capture_default_str()->check(in_range(0, kMaxCount));
  cmd->add_option("--seed", o.seed, "seed of weights and pairs")->capture_default_str()->check(in_range(0, kMaxSeed));
  cmd->add_option("--threads", o.threads, "compute threads (0 = all cores)")->capture_default_str()->check(in_range(0, 4096));
  cmd->add_option("--out", o.out, "run folder (must not hold a run already)")->capture_default_str();
  cmd->add_option("--resume", f->resume, "continue the interrupted tracking run in DIR (its own flags are used)");
  cmd->add_flag("--quiet", f->quiet, "no progress output");
  cmd->callback([f, cmd]() {
    Console console(f->quiet);
    TrackTrainResult r;
    if (!f->resume.empty()) {
      for (const auto* option : cmd->get_options()) {
        const auto name = option->get_name();
        if (option->count() > 0 && name != "--resume" && name != "--quiet" && name != "--help") {
          throw CLI::ValidationError("--resume", "the run continues with the flags it was started with; " + name + " cannot be changed");
        }
      }
      r = resume_tracker(f->resume, console, &console);
    } else {
      f->o.trunk = parse_trunk(f->trunk);
      f->o.optim.optimizer = parse_optimizer(f->optimizer);
      f->o.optim.schedule = parse_schedule(f->schedule);
      r = train_tracker(f->o, console, &console);
    }
    const std::string out = f->resume.empty() ? f->o.out : f->resume;
    const auto best = r.history.empty() ? EpochRecord{} : *std::max_element(r.history.begin(), r.history.end(), [](const auto& a, const auto& b) {
      return a.val_recall_at_1 < b.val_recall_at_1;
    });
    std::fprintf(stderr, "trained %.0f s at %.0f pairs/s; model.pt and history.csv in %s\n", r.train_seconds, r.pairs_per_second, out.c_str());
    std::printf("best epoch %lld: validation hit@16px %.4f, hit@8px %.4f, cell AUC %.4f\n", static_cast<long long>(best.epoch),
                best.val_recall_at_1, best.val_map_at_r, best.val_roc_auc);
  });
}

}  // namespace siamese::cli
