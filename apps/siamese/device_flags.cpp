// --device and --amp, shared by train, eval, embed, index build, index add, search, oneshot and
// serve; --int8 on all of them but train.
#include "commands.h"
#include "siamese/core/error.h"
#include "siamese/model/device.h"

namespace siamese::cli {

void add_device_flags(CLI::App* cmd, DeviceFlags& flags, bool int8) {
  cmd->add_option("--device", flags.device,
                  "cpu | cuda | cuda:N | auto (a GPU where this build has CUDA and one is visible, else the CPU)")
      ->capture_default_str()->group("Device");
  cmd->add_flag("--amp", flags.amp,
                "mixed precision: bfloat16 autocast for convolutions and matrix products (float32 losses and "
                "optimiser); on the CPU it pays where the CPU has bfloat16 instructions (docs/performance.md)")
      ->group("Device");
  if (!int8) return;
  cmd->add_flag("--int8", flags.int8,
                "int8 inference on the CPU for \"cnn\" models: quantized convolutions and dense layer, with the "
                "activation ranges training stored in the model; embeddings differ slightly from float32 ones, so "
                "embed a gallery and its queries alike (docs/performance.md)")
      ->excludes("--amp")
      ->group("Device");
}

void place_model(SavedModel& model, const DeviceFlags& flags) {
  // --int8 computes on the CPU only, where "auto" goes; another device is refused before anything moves.
  const auto device = flags.int8 && flags.device == "auto" ? c10::Device(c10::kCPU) : parse_device(flags.device);
  if (flags.int8 && !device.is_cpu()) throw Error(ErrorCode::Unsupported, "--int8 runs on the CPU only (use --device cpu)");
  model.network->place(device, flags.amp);
  if (flags.int8) model.network->use_int8(true);
}

}  // namespace siamese::cli
