// The CPU levers of issue 21 on siamese's own code path, in one process, interleaved: the default
// CNN (conv 32, 64; dense 256; 64-d, L2-normalised) embedding batches of 512 and taking training
// steps on P×K = 10×16 batches with the default all-triplets loss and Adam, in float32 (the
// reference), under inference mode, in channels-last memory format (weights and input), and under
// --amp (bfloat16 autocast; SiameseNetwork::embed makes the input channels-last), alone and with
// channels-last weights; and training steps with the all-triplets loss as it was before it counted
// violated triplets by binary search (every triplet tested: O(B³), kept here as cubic_triplet_loss);
// and embedding under --int8 (quantize.h).
// Prints one JSON object a variant: its best and median
// images/s over --reps rounds. bench/levers runs it under thread settings and writes
// docs/performance.md.
//
//   siamese_levers_bench [--reps 5] [--seconds 1.5] [--threads 0 (one a core)]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "siamese/core/distance.h"
#include "siamese/model/device.h"
#include "siamese/model/network.h"
#include "siamese/model/quantize.h"
#include "siamese/train/loss.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kEmbedBatch = 512, kTrainBatch = 160;

struct Variant {
  std::string name;
  bool amp = false, channels_last = false, inference_mode = false, cubic_loss = false, int8 = false;
};

/// siamese::batch_triplet_loss as it was: each anchor block's [rows, B, B] violated-triplet tensor
/// summed into the same counts that the library now gets from sorted rows.
torch::Tensor cubic_triplet_loss(const torch::Tensor& e, const torch::Tensor& labels, double margin) {
  const auto b = e.size(0);
  auto d = siamese::pairwise_distance(e, e, siamese::Distance::Euclidean);
  auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  auto pos = same.logical_and(torch::eye(b, same.options()).logical_not());
  auto neg = same.logical_not();
  auto count_p = torch::zeros({b, b}, d.options()), count_n = torch::zeros({b, b}, d.options());
  {
    torch::NoGradGuard no_grad;
    auto dd = d.detach();
    const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / (b * b));
    for (int64_t start = 0; start < b; start += block) {
      const int64_t end = std::min(b, start + block);
      auto rows = dd.slice(0, start, end);
      auto valid = pos.slice(0, start, end).unsqueeze(2).logical_and(neg.slice(0, start, end).unsqueeze(1));
      auto violated = (rows.unsqueeze(2) - rows.unsqueeze(1) + margin > 0).logical_and(valid).to(d.dtype());
      count_p.slice(0, start, end).copy_(violated.sum(2));
      count_n.slice(0, start, end).copy_(violated.sum(1));
    }
  }
  const double active = count_p.sum().item<double>();
  if (active == 0) return d.sum() * 0;
  return ((count_p * d).sum() - (count_n * d).sum() + margin * active) / active;
}

siamese::SiameseNetwork make_network(const Variant& v) {
  torch::manual_seed(0);
  siamese::SiameseNetwork net(siamese::SiameseNetworkOptions().cnn(siamese::CnnEncoderOptions().normalize(true)));
  net->place(c10::kCPU, v.amp);
  if (v.int8) {  // calibrated as the trainer does, here on random images
    net->eval();
    net->options.int8_ranges(siamese::int8_ranges(*net, torch::rand({256, 1, 28, 28})));
    net->use_int8(true);
  }
  if (v.channels_last) {
    torch::NoGradGuard no_grad;
    for (auto& p : net->parameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(c10::MemoryFormat::ChannelsLast));
    }
  }
  return net;
}

torch::Tensor inputs(const Variant& v, int64_t n) {
  torch::manual_seed(1);
  auto x = torch::rand({n, 1, 28, 28});
  return v.channels_last ? x.contiguous(c10::MemoryFormat::ChannelsLast) : x;
}

/// Images/s of `step` (which handles `images` images) run for about `seconds`.
double rate(const std::function<void()>& step, int64_t images, double seconds) {
  step();  // warm-up: oneDNN primitives, autocast's weight casts
  int64_t done = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    step();
    done += images;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  }
  return static_cast<double>(done) / elapsed;
}

double embed_rate(const Variant& v, double seconds) {
  auto net = make_network(v);
  net->eval();
  const auto x = inputs(v, kEmbedBatch);
  return rate([&] {
    if (v.inference_mode) {
      c10::InferenceMode guard;
      (void)net->embed(x);
    } else {
      torch::NoGradGuard no_grad;
      (void)net->embed(x);
    }
  }, kEmbedBatch, seconds);
}

double train_rate(const Variant& v, double seconds) {
  auto net = make_network(v);
  net->train();
  torch::optim::Adam adam(net->parameters(), torch::optim::AdamOptions(2e-3));
  const auto x = inputs(v, kTrainBatch);
  const auto y = torch::arange(kTrainBatch) % 10;
  return rate([&] {
    auto e = net->embed(x);
    auto loss = v.cubic_loss ? cubic_triplet_loss(e, y, 0.2) : siamese::batch_triplet_loss(e, y, siamese::Distance::Euclidean, 0.2);
    adam.zero_grad();
    loss.backward();
    adam.step();
  }, kTrainBatch, seconds);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 5, threads = 0;
  double seconds = 1.5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--reps N] [--seconds S] [--threads T]\n", argv[0]);
      return 2;
    }
  }
  if (reps < 1 || !(seconds > 0) || threads < 0) {
    std::fprintf(stderr, "%s: --reps >= 1, --seconds > 0, --threads >= 0\n", argv[0]);
    return 2;
  }
  // 0: one thread a core, as siamese's CLI sets (set_compute_threads); LibTorch's own default may
  // be fewer (it counts one on these 2-core machines).
  at::set_num_threads(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  const std::vector<Variant> variants = {{"float32"},
                                         {"inference mode", false, false, true},
                                         {"channels-last", false, true, false},
                                         {"--amp: bf16 autocast, channels-last input", true, false, false},
                                         {"--amp + channels-last weights", true, true, false},
                                         {"float32, the loss testing every triplet (before: O(B³))", false, false, false, true},
                                         {"--int8: quantized convolutions and hidden layer", false, false, false, false, true}};
  std::vector<std::vector<double>> embed(variants.size()), train(variants.size());
  for (int r = 0; r < reps; ++r) {  // interleaved: drift of the machine hits every variant alike
    for (size_t i = 0; i < variants.size(); ++i) {
      if (!variants[i].cubic_loss) embed[i].push_back(embed_rate(variants[i], seconds));
      if (!variants[i].inference_mode && !variants[i].int8) train[i].push_back(train_rate(variants[i], seconds));
    }
  }
  for (size_t i = 0; i < variants.size(); ++i) {
    std::printf("{\"variant\": \"%s\", \"threads\": %d", variants[i].name.c_str(), at::get_num_threads());
    if (!embed[i].empty()) {
      std::printf(", \"embed_best\": %.1f, \"embed_median\": %.1f", *std::max_element(embed[i].begin(), embed[i].end()),
                  median(embed[i]));
    }
    if (!train[i].empty()) {
      std::printf(", \"train_best\": %.1f, \"train_median\": %.1f", *std::max_element(train[i].begin(), train[i].end()),
                  median(train[i]));
    }
    std::printf("}\n");
  }
  return 0;
}
