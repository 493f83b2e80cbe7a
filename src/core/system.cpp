#include "siamese/core/system.h"

#include <dlfcn.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <thread>

#ifndef SIAMESE_COMMIT
#define SIAMESE_COMMIT ""
#endif

namespace siamese {

std::string machine_description() {
  std::string cpu;
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; cpu.empty() && std::getline(info, line);) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      cpu = line.substr(line.find(':') + 1);
      cpu.erase(0, cpu.find_first_not_of(" \t"));
    }
  }
  if (cpu.empty()) cpu = "unknown CPU";
  return cpu + ", " + std::to_string(std::thread::hardware_concurrency()) + " cores, LibTorch " + TORCH_VERSION;
}

std::string build_commit() { return SIAMESE_COMMIT; }

double peak_memory_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

void set_compute_threads(int threads) {
  at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  using SetThreads = void (*)(int);
  if (auto openblas = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) openblas(1);
}

}  // namespace siamese
