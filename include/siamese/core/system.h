#pragma once
/// \file system.h  What a run records about where it ran: the machine and the build.
/// Thread safety: pure reads; any calls may run concurrently.

#include <string>

namespace siamese {

/// "CPU model, N cores, LibTorch X.Y.Z", e.g. "AMD EPYC 7B13, 2 cores, LibTorch 1.13.1"
/// (the CPU model from /proc/cpuinfo where there is one).
std::string machine_description();

/// The git commit the library was configured from (`git describe --always --dirty` when CMake
/// ran), or "" when it was not built from a git checkout.
std::string build_commit();

/// The largest resident memory this process has held so far, in MB (getrusage's ru_maxrss).
double peak_memory_mb();

/// Sets LibTorch's intra-op threads (0 = one per core) and keeps OpenBLAS to one thread of its
/// own, so the two never oversubscribe the cores. Results depend on it: float sums split over
/// other thread counts round differently, so every command of a tool calls it the same way.
/// Not thread-safe: call it before computing (it sets process-wide state).
void set_compute_threads(int threads);

}  // namespace siamese
