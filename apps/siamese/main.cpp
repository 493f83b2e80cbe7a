// siamese: train, evaluate and use Siamese networks from the command line.
#include <malloc.h>

#include <cstdio>

#include "commands.h"
#include "siamese/core/error.h"
#include "siamese/core/system.h"

int main(int argc, char** argv) {
  // Training frees and reallocates the same large buffers every step. With glibc's defaults the
  // freed top of the heap goes back to the kernel and is faulted in again, page by page, on the
  // next step: most of an LSTM epoch's time. Keeping up to 1 GiB of freed heap halves it.
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
  // Every command computes with the same threads as `train` by default, so that `eval` and
  // `report` reproduce the figures a run printed (train --threads sets its own).
  siamese::set_compute_threads(0);
  CLI::App app{"siamese: similarity learning with Siamese networks (train, eval, embed, verify, index, search, oneshot, report, augment-preview)"};
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
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
