// One rank of the loopback all-reduce benchmark (bench/distributed starts WORLD_SIZE of them with
// torchrun's environment): ProcessGroup::all_reduce_sum of float32 tensors from 4 KiB to 64 MiB,
// the median of --reps timed calls after 3 untimed ones. Rank 0 prints one JSON line per size:
// {"bytes": B, "ranks": N, "seconds": median}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "siamese/core/error.h"
#include "siamese/train/distributed.h"

int main(int argc, char** argv) {
  try {
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
    auto options = siamese::group_options_from_environment();
    options.timeout = std::chrono::seconds(60);
    at::set_num_threads(1);
    siamese::ProcessGroup group(options);
    for (int64_t bytes = 4096; bytes <= (int64_t{64} << 20); bytes *= 4) {
      std::vector<torch::Tensor> tensors{torch::ones({bytes / 4})};
      std::vector<double> seconds;
      for (int i = 0; i < reps + 3; ++i) {
        const auto start = std::chrono::steady_clock::now();
        group.all_reduce_sum(tensors);
        if (i >= 3) seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      std::nth_element(seconds.begin(), seconds.begin() + seconds.size() / 2, seconds.end());
      if (group.rank() == 0) {
        std::printf("{\"bytes\": %lld, \"ranks\": %d, \"seconds\": %.9f}\n", static_cast<long long>(bytes), group.size(),
                    seconds[seconds.size() / 2]);
      }
    }
  } catch (const siamese::Error& e) {
    std::fprintf(stderr, "allreduce_bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
