#pragma once
/// \file device.h  Where a network computes: the CPU or a CUDA GPU, in float32 or under autocast
/// (mixed precision). Devices travel in options (TrainOptions::runtime, SiameseNetworkImpl::place),
/// never in global state.

#include <c10/core/Device.h>

#include <string>

namespace siamese {

/// Whether this build of LibTorch has CUDA and at least one GPU is visible. Debian's LibTorch is
/// CPU-only: false there.
bool cuda_available();

/// A --device value: "cpu", "cuda" (the first GPU), "cuda:N", or "auto" (the first GPU where
/// cuda_available(), else the CPU). Throws Error(InvalidArgument) for another value ("unknown
/// device 'x' (expected cpu, cuda, cuda:N or auto)") and Error(Unsupported) for a GPU this build or
/// machine does not have (the message says which: no CUDA in this LibTorch, or N GPUs visible).
c10::Device parse_device(const std::string& spec);

/// "cpu", "cuda:0", ...: what parse_device reads back.
std::string to_string(const c10::Device& device);

/// Mixed precision for the ops this thread runs while the guard lives: LibTorch's autocast on
/// `device`'s type (CPU or CUDA) with bfloat16, which needs no loss scaling (float16 would).
/// Matrix products and convolutions run in bfloat16; operators autocast does not list run in
/// their input's type (a sum of a bfloat16 tensor is bfloat16). Nothing
/// happens when `enabled` is false. The state before the guard comes back when it ends (guards
/// nest). Thread safety: autocast state is per thread; a guard touches its own thread's only.
class AutocastGuard {
 public:
  AutocastGuard(c10::Device device, bool enabled);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_ = false, cuda_ = false, was_on_ = false;
  int dtype_before_ = 0;  ///< the thread's autocast dtype before the guard (a c10::ScalarType)
};

}  // namespace siamese
