// --device and --amp, shared by train, eval, embed, index build, index add, search, oneshot and serve.
#include "commands.h"
#include "siamese/model/device.h"

namespace siamese::cli {

void add_device_flags(CLI::App* cmd, DeviceFlags& flags) {
  cmd->add_option("--device", flags.device,
                  "cpu | cuda | cuda:N | auto (a GPU where this build has CUDA and one is visible, else the CPU)")
      ->capture_default_str()->group("Device");
  cmd->add_flag("--amp", flags.amp,
                "mixed precision: bfloat16 autocast for convolutions and matrix products (float32 losses and "
                "optimiser); on the CPU it pays where the CPU has bfloat16 instructions (docs/performance.md)")
      ->group("Device");
}

void place_model(SavedModel& model, const DeviceFlags& flags) { model.network->place(parse_device(flags.device), flags.amp); }

}  // namespace siamese::cli
