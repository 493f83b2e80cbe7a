// siamese: train, evaluate and use Siamese networks from the command line.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <opencv2/core/utils/logger.hpp>
#include <new>
#include <string>
#include <vector>

#include "commands.h"
#include "siamese/core/error.h"
#include "siamese/core/system.h"

namespace {

/// `siamese bogus`: name the unknown command and list the real ones, instead of CLI11's "A
/// subcommand is required" (its first argument that is not a flag is taken as a subcommand).
void check_command(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return;
  std::string names;
  for (const auto* sub : app.get_subcommands({})) {
    if (sub->check_name(argv[1])) return;
    if (sub->get_group().empty()) continue;  // hidden (track-train: reached through train --task tracking)
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  throw CLI::ValidationError(std::string("unknown command '") + argv[1] + "' (commands: " + names + ")");
}

/// " train" when the command line named a subcommand: where its --help is.
std::string help_command(const CLI::App& app) {
  std::string path;
  for (const auto* sub = &app; !sub->get_subcommands().empty();) {
    sub = sub->get_subcommands().front();
    path += " " + sub->get_name();
  }
  return path;
}

/// `siamese train --task tracking ...` is the track-train command: the rest of the line is its.
std::vector<char*> route_task(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  if (argc < 2 || std::string(argv[1]) != "train") return args;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    const bool pair = a == "--task" && i + 1 < argc && std::string(argv[i + 1]) == "tracking";
    if (pair || a == "--task=tracking") {
      static char command[] = "track-train";
      args[1] = command;
      args.erase(args.begin() + i, args.begin() + i + (pair ? 2 : 1));
      break;
    }
  }
  return args;
}

}  // namespace

int main(int argc, char** argv) {
  // Training frees and reallocates the same large buffers every step. With glibc's defaults the
  // freed top of the heap goes back to the kernel and is faulted in again, page by page, on the
  // next step: most of an LSTM epoch's time. Keeping up to 1 GiB of freed heap halves it.
  // Setting these switches off glibc's adaptive mmap threshold, which would otherwise rise to the
  // size of the buffers freed: without a threshold of our own every block over 128 KiB (a ResNet's
  // activations) is a fresh mmap, zero-filled page by page each step (ResNet-18 training at 112 px
  // spent 40% of its time in page faults; 1.45x faster with this).
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  // Every command computes with the same threads as `train` by default, so that `eval` and
  // `report` reproduce the figures a run printed (train --threads sets its own).
  siamese::set_compute_threads(0);
  // OpenCV's own warning lines (a missing thumbnail, an odd file) would come before ours: every
  // failure is reported once, by the library's error.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  // And FFmpeg's, under OpenCV's video reader ("moov atom not found"): `track` says it once.
  setenv("OPENCV_FFMPEG_LOGLEVEL", "-8", /*overwrite=*/0);
  CLI::App app{"siamese: similarity learning with Siamese networks (train, eval, embed, verify, index, search, oneshot, report, augment-preview, serve, track, track-eval)"};
  app.require_subcommand(1);
  // `siamese train --config FILE` falls through to this option; the file's [train] section sets
  // train's flags (TOML or INI: `epochs = 3`, `conv-channels = [16, 32]`).
  app.set_config("--config", "", "read flags from a TOML/INI file; a [train] section sets train's flags");
  app.fallthrough();
  app.allow_config_extras(CLI::config_extras_mode::error);
  siamese::cli::add_train(app);
  siamese::cli::add_eval(app);
  siamese::cli::add_embed(app);
  siamese::cli::add_verify(app);
  siamese::cli::add_augment_preview(app);
  siamese::cli::add_index(app);
  siamese::cli::add_search(app);
  siamese::cli::add_oneshot(app);
  siamese::cli::add_report(app);
  siamese::cli::add_serve(app);
  siamese::cli::add_track(app);
  siamese::cli::add_track_eval(app);
  siamese::cli::add_track_train(app);
  // Exit status: 0 success, 1 bad input or a failed read or write, 2 a wrong command line
  // (README "Exit status"). Every error is one line on stderr.
  try {
    auto args = route_task(argc, argv);
    check_command(app, static_cast<int>(args.size()), args.data());
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ConfigError& e) {  // CLI11 says "INI was not able to parse train.KEY"
    std::string what = e.what();
    const std::string prefix = "INI was not able to parse ";
    if (what.rfind(prefix, 0) == 0) what = "--config: unknown key '" + what.substr(prefix.size()) + "' (the keys are the flags, without --)";
    std::fprintf(stderr, "siamese: usage error: %s (see siamese%s --help)\n", what.c_str(), help_command(app).c_str());
    return 2;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "siamese: usage error: %s (see siamese%s --help)\n", e.what(), help_command(app).c_str());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "siamese: error: out of memory\n");
    return 1;
  } catch (const siamese::Error& e) {
    std::fprintf(stderr, "siamese: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "siamese: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "siamese: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
