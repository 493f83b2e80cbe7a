// Throughput of the default CNN Siamese network on 2 cores: training steps (forward + backward +
// Adam step, P×K batch, all-pairs contrastive loss) and embedding (inference); and of the LSTM
// and bag-of-tokens encoders on variable-length sequences (BM_Rnn*, BM_Bag*; first argument: the
// longest length T). Each siamese benchmark has a reference: the same architecture written directly
// with torch::nn and the same loss written with torch::cdist, run in the same process, so the ratio
// shows the library's cost.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "siamese/train/loss.h"
#include "siamese/model/network.h"

namespace {

constexpr int64_t kTrainBatch = 160;  // P×K = 10×16, the training default
constexpr int64_t kEmbedBatch = 512;

siamese::SiameseNetwork make_siamese() {
  torch::manual_seed(0);
  return siamese::SiameseNetwork(
      siamese::SiameseNetworkOptions().cnn(siamese::CnnEncoderOptions().normalize(true)));
}

torch::nn::Sequential make_reference() {
  torch::manual_seed(0);
  namespace nn = torch::nn;
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1).bias(false)), nn::BatchNorm2d(32),
                        nn::ReLU(), nn::MaxPool2d(2),
                        nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1).bias(false)), nn::BatchNorm2d(64),
                        nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(64 * 7 * 7, 256), nn::ReLU(),
                        nn::Linear(256, 64));
}

torch::Tensor batch_inputs(int64_t n) { return torch::rand({n, 1, 28, 28}); }
torch::Tensor batch_labels(int64_t n) { return torch::arange(n) % 10; }

void BM_TrainStep_Siamese(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  auto net = make_siamese();
  torch::optim::Adam opt(net->parameters(), 1e-3);
  auto x = batch_inputs(kTrainBatch);
  auto y = batch_labels(kTrainBatch);
  for (auto _ : state) {
    auto loss = siamese::batch_contrastive_loss(net->embed(x), y, siamese::Distance::Euclidean, 1.0);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  state.SetItemsProcessed(state.iterations() * kTrainBatch);
  state.counters["pairs/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * kTrainBatch *
                                                     (kTrainBatch - 1) / 2, benchmark::Counter::kIsRate);
}

void BM_TrainStep_Reference(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  auto net = make_reference();
  torch::optim::Adam opt(net->parameters(), 1e-3);
  auto x = (batch_inputs(kTrainBatch) - 0.29) / 0.35;
  auto y = batch_labels(kTrainBatch);
  auto same = (y.unsqueeze(0) == y.unsqueeze(1));
  auto upper = torch::ones({kTrainBatch, kTrainBatch}, torch::kBool).triu(1);
  for (auto _ : state) {
    auto e = torch::nn::functional::normalize(net->forward(x), torch::nn::functional::NormalizeFuncOptions().dim(1));
    auto d = torch::cdist(e, e);
    auto pos = d.masked_select(same & upper).pow(2).mean() / 2;
    auto neg = (1.0 - d.masked_select(~same & upper)).clamp_min(0).pow(2).mean() / 2;
    auto loss = pos + neg;
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  state.SetItemsProcessed(state.iterations() * kTrainBatch);
}

void BM_Embed_Siamese(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  auto net = make_siamese();
  net->eval();
  torch::NoGradGuard no_grad;
  auto x = batch_inputs(kEmbedBatch);
  for (auto _ : state) benchmark::DoNotOptimize(net->embed(x));
  state.SetItemsProcessed(state.iterations() * kEmbedBatch);
}

void BM_Embed_Reference(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(0)));
  auto net = make_reference();
  net->eval();
  torch::NoGradGuard no_grad;
  auto x = batch_inputs(kEmbedBatch);
  for (auto _ : state) {
    benchmark::DoNotOptimize(torch::nn::functional::normalize(
        net->forward((x - 0.29) / 0.35), torch::nn::functional::NormalizeFuncOptions().dim(1)));
  }
  state.SetItemsProcessed(state.iterations() * kEmbedBatch);
}

// The recurrent encoder on variable-length sequences: a training step (forward + backward) of a
// bidirectional LSTM (8 features per step, hidden 128, mean pooling, 64 items of T/2 to T steps).
// The reference runs the same torch::nn::LSTM over packed sequences (pack_padded_sequence), the
// usual way to keep padding out, with the same pooling and head.
constexpr int64_t kRnnBatch = 64;

std::pair<torch::Tensor, torch::Tensor> rnn_batch(int64_t steps) {
  torch::manual_seed(0);
  auto lengths = torch::randint(steps / 2, steps + 1, {kRnnBatch}, torch::kInt64);
  auto x = torch::randn({kRnnBatch, steps, 8});
  auto real = torch::arange(steps).unsqueeze(0) < lengths.unsqueeze(1);
  return {torch::cat({real.unsqueeze(2).to(torch::kFloat32), x * real.unsqueeze(2)}, 2), lengths};
}

siamese::RnnEncoder make_rnn() {
  torch::manual_seed(0);
  return siamese::RnnEncoder(siamese::RnnEncoderOptions().features(8).hidden(128).embedding_dim(64));
}

void BM_RnnTrainStep_Siamese(benchmark::State& state) {
  at::set_num_threads(2);
  auto enc = make_rnn();
  auto [x, lengths] = rnn_batch(state.range(0));
  for (auto _ : state) {
    enc->zero_grad();
    enc->forward(x).pow(2).sum().backward();
  }
  state.SetItemsProcessed(state.iterations() * kRnnBatch);
}

void BM_RnnTrainStep_Reference(benchmark::State& state) {
  namespace rnn = torch::nn::utils::rnn;
  at::set_num_threads(2);
  auto enc = make_rnn();  // its lstm and head modules, run the packed way
  auto [x, lengths] = rnn_batch(state.range(0));
  auto steps = x.narrow(2, 1, 8);
  auto real = x.select(2, 0).unsqueeze(2);
  for (auto _ : state) {
    enc->zero_grad();
    auto packed = rnn::pack_padded_sequence(steps, lengths, /*batch_first=*/true, /*enforce_sorted=*/false);
    auto out = std::get<0>(rnn::pad_packed_sequence(std::get<0>(enc->lstm->forward_with_packed_input(packed)), true));
    auto pooled = (out * real.narrow(1, 0, out.size(1))).sum(1) / lengths.to(torch::kFloat32).unsqueeze(1);
    enc->head->forward(pooled).pow(2).sum().backward();
  }
  state.SetItemsProcessed(state.iterations() * kRnnBatch);
}

// A bag of tokens (--layers 0, mean pooling): 64 items of T/2 to T tokens (arguments: T, then the
// vocabulary size), 1,024-wide token vectors, a training step (forward, backward). The reference
// gathers every token's vector and averages them, as siamese does when the vocabulary is large next to T.
std::pair<torch::Tensor, torch::Tensor> token_batch(int64_t steps, int64_t vocab) {
  torch::manual_seed(0);
  auto lengths = torch::randint(steps / 2, steps + 1, {kRnnBatch}, torch::kInt64);
  auto real = torch::arange(steps).unsqueeze(0) < lengths.unsqueeze(1);
  auto ids = torch::randint(1, vocab, {kRnnBatch, steps}, torch::kInt64) * real;  // no <unk>, which a bag leaves out
  return {torch::stack({real.to(torch::kFloat32), ids.to(torch::kFloat32)}, 2), lengths};
}

siamese::RnnEncoder make_bag(int64_t vocab) {
  torch::manual_seed(0);
  return siamese::RnnEncoder(
      siamese::RnnEncoderOptions().vocab_size(vocab).token_dim(1024).layers(0).embedding_dim(1024));
}

void BM_BagTrainStep_Siamese(benchmark::State& state) {
  at::set_num_threads(2);
  auto enc = make_bag(state.range(1));
  auto x = token_batch(state.range(0), state.range(1)).first;
  for (auto _ : state) {
    enc->zero_grad();
    enc->forward(x).pow(2).sum().backward();
  }
  state.SetItemsProcessed(state.iterations() * kRnnBatch);
}

void BM_BagTrainStep_Reference(benchmark::State& state) {
  at::set_num_threads(2);
  auto enc = make_bag(state.range(1));
  auto [x, lengths] = token_batch(state.range(0), state.range(1));
  auto ids = x.select(2, 1).to(torch::kInt64);
  auto real = x.select(2, 0).unsqueeze(2);
  for (auto _ : state) {
    enc->zero_grad();
    auto pooled = (enc->embedding->forward(ids) * real).sum(1) / lengths.to(torch::kFloat32).unsqueeze(1);
    enc->head->forward(pooled).pow(2).sum().backward();
  }
  state.SetItemsProcessed(state.iterations() * kRnnBatch);
}

}  // namespace

BENCHMARK(BM_RnnTrainStep_Siamese)->Arg(94)->Arg(376)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_RnnTrainStep_Reference)->Arg(94)->Arg(376)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
// 16S genes as 6-mers (~1,500 steps; 4,096 or, with ambiguity codes, ~15,000 tokens); sentences as words.
BENCHMARK(BM_BagTrainStep_Siamese)->Args({1500, 4096})->Args({1500, 16384})->Args({40, 16384})
    ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_BagTrainStep_Reference)->Args({1500, 4096})->Args({1500, 16384})->Args({40, 16384})
    ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

// Argument: intra-op threads. Run with --benchmark_enable_random_interleaving=true and several
// --benchmark_repetitions so that each siamese/reference pair sees the same machine conditions
// (scripts/results does); compare medians.
BENCHMARK(BM_TrainStep_Siamese)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_TrainStep_Reference)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Embed_Siamese)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK(BM_Embed_Reference)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->MinTime(1.0);
BENCHMARK_MAIN();
