#include "siamese/model/device.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "siamese/core/error.h"

namespace siamese {

namespace {

// LibTorch 2.4 names autocast's switches by device type; 1.13 (Debian's) has one per type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_on(bool cuda) { return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU); }
void set_autocast(bool cuda, bool on) { at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, on); }
at::ScalarType autocast_dtype(bool cuda) { return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU); }
void set_autocast_dtype(bool cuda, at::ScalarType t) { at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, t); }
#else
bool autocast_on(bool cuda) { return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }
void set_autocast(bool cuda, bool on) { cuda ? at::autocast::set_enabled(on) : at::autocast::set_cpu_enabled(on); }
at::ScalarType autocast_dtype(bool cuda) {
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
}
void set_autocast_dtype(bool cuda, at::ScalarType t) {
  cuda ? at::autocast::set_autocast_gpu_dtype(t) : at::autocast::set_autocast_cpu_dtype(t);
}
#endif

}  // namespace

bool cuda_available() { return torch::cuda::is_available(); }

c10::Device parse_device(const std::string& spec) {
  if (spec == "cpu") return c10::Device(c10::kCPU);
  if (spec == "auto") return cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  int64_t index = -1;
  if (spec == "cuda") {
    index = 0;
  } else if (spec.rfind("cuda:", 0) == 0 && spec.size() > 5 && spec.size() <= 8 &&
             spec.find_first_not_of("0123456789", 5) == std::string::npos) {
    index = std::stoll(spec.substr(5));
  } else {
    throw Error(ErrorCode::InvalidArgument, "unknown device '" + spec + "' (expected cpu, cuda, cuda:N or auto)");
  }
  if (!cuda_available()) {
    throw Error(ErrorCode::Unsupported,
                "--device " + spec + ": no CUDA GPU here (this LibTorch " +
                    (at::hasCUDA() ? "sees no GPU" : "is built for the CPU only") +
                    "); use --device cpu or auto");
  }
  const auto count = static_cast<int64_t>(torch::cuda::device_count());
  if (index >= count) {
    throw Error(ErrorCode::Unsupported,
                "--device " + spec + ": there " + (count == 1 ? "is 1 GPU" : "are " + std::to_string(count) + " GPUs") +
                    " here (cuda:0 .. cuda:" + std::to_string(count - 1) + ")");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::string to_string(const c10::Device& device) {
  return device.is_cuda() ? "cuda:" + std::to_string(device.has_index() ? device.index() : 0) : "cpu";
}

AutocastGuard::AutocastGuard(c10::Device device, bool enabled) : enabled_(enabled), cuda_(device.is_cuda()) {
  if (!enabled_) return;
  was_on_ = autocast_on(cuda_);
  dtype_before_ = static_cast<int>(autocast_dtype(cuda_));
  set_autocast_dtype(cuda_, at::kBFloat16);
  set_autocast(cuda_, true);
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  // The casts autocast cached (weights in bfloat16) are freed when the outermost guard ends.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(cuda_, was_on_);
  set_autocast_dtype(cuda_, static_cast<at::ScalarType>(dtype_before_));
}

}  // namespace siamese
