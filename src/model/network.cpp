#include "siamese/model/network.h"

#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"
#include "siamese/model/backbones.h"

#include <limits>
#include <numeric>

namespace siamese {

CnnEncoderImpl::CnnEncoderImpl(CnnEncoderOptions options_) : options(std::move(options_)) { reset(); }

void CnnEncoderImpl::reset() {
  if (options.conv_channels().empty() || options.embedding_dim() < 1 || options.in_channels() < 1) {
    throw Error(ErrorCode::InvalidArgument,
                "cnn encoder: need at least one conv block, in_channels >= 1 and embedding_dim >= 1");
  }
  features = torch::nn::Sequential();
  int64_t channels = options.in_channels();
  int64_t h = options.height();
  int64_t w = options.width();
  for (int64_t out : options.conv_channels()) {
    if (h < 2 || w < 2) {
      throw Error(ErrorCode::InvalidArgument,
                  "cnn encoder: " + std::to_string(options.conv_channels().size()) +
                      " pooling blocks shrink a " + std::to_string(options.height()) + "x" +
                      std::to_string(options.width()) + " input below 1 pixel; use fewer --conv-channels");
    }
    features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, 3).padding(1).bias(false)));
    features->push_back(torch::nn::BatchNorm2d(out));
    features->push_back(torch::nn::ReLU());
    features->push_back(torch::nn::MaxPool2d(2));
    channels = out;
    h /= 2;
    w /= 2;
  }
  head = torch::nn::Sequential(torch::nn::Flatten());
  int64_t width = channels * h * w;
  if (options.hidden() > 0) {
    head->push_back(torch::nn::Linear(width, options.hidden()));
    head->push_back(torch::nn::ReLU());
    width = options.hidden();
  }
  head->push_back(torch::nn::Linear(width, options.embedding_dim()));
  register_module("features", features);
  register_module("head", head);
}

torch::Tensor CnnEncoderImpl::forward(torch::Tensor x) {
  if (x.dim() != 4 || x.size(1) != options.in_channels() || x.size(2) != options.height() ||
      x.size(3) != options.width()) {
    throw Error(ErrorCode::InvalidArgument,
                "cnn encoder: expected input [N, " + std::to_string(options.in_channels()) + ", " +
                    std::to_string(options.height()) + ", " + std::to_string(options.width()) + "], got " +
                    c10::str(x.sizes()));
  }
  auto e = head->forward(features->forward(x));
  if (options.normalize()) {
    e = torch::nn::functional::normalize(e, torch::nn::functional::NormalizeFuncOptions().dim(1));
  }
  return e;
}

constexpr EnumNames<Cell, 2> kCellNames{{{Cell::Lstm, "lstm"}, {Cell::Gru, "gru"}}};
constexpr EnumNames<Pooling, 3> kPoolingNames{{{Pooling::Last, "last"}, {Pooling::Mean, "mean"}, {Pooling::Max, "max"}}};
constexpr EnumNames<EncoderKind, 9> kEncoderNames{
    {{EncoderKind::Cnn, "cnn"}, {EncoderKind::Lstm, "lstm"}, {EncoderKind::Gru, "gru"}, {EncoderKind::Hybrid, "hybrid"},
     {EncoderKind::Resnet18, "resnet18"}, {EncoderKind::Resnet34, "resnet34"}, {EncoderKind::Resnet50, "resnet50"},
     {EncoderKind::Convnet, "convnet"}, {EncoderKind::TorchScript, "torchscript"}}};

Cell parse_cell(const std::string& name) { return parse_enum(kCellNames, name, "cell"); }
std::string to_string(Cell cell) { return enum_name(kCellNames, cell); }
Pooling parse_pooling(const std::string& name) { return parse_enum(kPoolingNames, name, "pooling"); }
std::string to_string(Pooling pooling) { return enum_name(kPoolingNames, pooling); }
EncoderKind parse_encoder(const std::string& name) { return parse_enum(kEncoderNames, name, "encoder"); }
std::string to_string(EncoderKind encoder) { return enum_name(kEncoderNames, encoder); }

RnnEncoderImpl::RnnEncoderImpl(RnnEncoderOptions options_) : options(std::move(options_)) { reset(); }

void RnnEncoderImpl::reset() {
  const auto& o = options;
  if (o.hidden() < 1 || o.layers() < 0 || o.embedding_dim() < 1 || o.vocab_size() < 0 ||
      (o.vocab_size() == 0 && o.features() < 1) || (o.vocab_size() > 0 && o.token_dim() < 1)) {
    throw Error(ErrorCode::InvalidArgument,
                "rnn encoder: hidden, embedding_dim and features (or token_dim) must be >= 1, layers >= 0");
  }
  if (o.layers() == 0 && o.pooling() == Pooling::Last) {
    throw Error(ErrorCode::InvalidArgument,
                "rnn encoder: with 0 recurrent layers there is no final state; use pooling mean or max");
  }
  if (o.conv_channels() > 0 && (o.conv_kernel() < 1 || o.conv_kernel() % 2 == 0 || o.conv_stride() < 1 || o.conv_pool() < 1)) {
    throw Error(ErrorCode::InvalidArgument, "rnn encoder: conv kernel must be odd and >= 1, stride and pool >= 1");
  }
  int64_t width = o.features();
  if (o.vocab_size() > 0) {
    embedding = register_module("embedding", torch::nn::Embedding(o.vocab_size(), o.token_dim()));
    width = o.token_dim();
  }
  if (o.conv_channels() > 0) {
    conv = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(width, o.conv_channels(), o.conv_kernel())
                                                         .padding(o.conv_kernel() / 2)
                                                         .stride(o.conv_stride())));
    width = o.conv_channels();
  }
  const double dropout = o.layers() > 1 ? o.dropout() : 0.0;
  if (o.layers() == 0) {
    head = register_module("head", torch::nn::Linear(width, o.embedding_dim()));
    return;
  }
  if (o.cell() == Cell::Lstm) {
    lstm = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(width, o.hidden())
                                                       .num_layers(o.layers())
                                                       .batch_first(true)
                                                       .bidirectional(o.bidirectional())
                                                       .dropout(dropout)));
  } else {
    gru = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(width, o.hidden())
                                                    .num_layers(o.layers())
                                                    .batch_first(true)
                                                    .bidirectional(o.bidirectional())
                                                    .dropout(dropout)));
  }
  head = register_module("head", torch::nn::Linear(o.hidden() * (o.bidirectional() ? 2 : 1), o.embedding_dim()));
}

std::pair<torch::Tensor, torch::Tensor> RnnEncoderImpl::recurrent_layers(torch::Tensor x, const torch::Tensor& lengths) {
  const auto& o = options;
  const int64_t n = x.size(0), steps = x.size(1);
  // Item i's steps in reverse order, its padding left at the end: a permutation of each row.
  auto t = torch::arange(steps, lengths.options()).unsqueeze(0);
  auto last_step = (lengths - 1).unsqueeze(1);
  auto reversed_order = torch::where(t <= last_step, last_step - t, t);
  auto reverse = [&](const torch::Tensor& y) { return y.gather(1, reversed_order.unsqueeze(2).expand_as(y)); };
  auto params = lstm ? lstm->named_parameters() : gru->named_parameters();
  auto direction = [&](const torch::Tensor& input, int64_t layer, const std::string& suffix) {
    const auto l = std::to_string(layer) + suffix;
    std::vector<torch::Tensor> w{params["weight_ih_l" + l], params["weight_hh_l" + l], params["bias_ih_l" + l],
                                 params["bias_hh_l" + l]};
    auto h0 = torch::zeros({1, n, o.hidden()}, input.options());
    if (lstm) return std::get<0>(torch::lstm(input, {h0, h0}, w, true, 1, 0.0, is_training(), false, true));
    return std::get<0>(torch::gru(input, h0, w, true, 1, 0.0, is_training(), false, true));
  };
  torch::Tensor forward_out, backward_out;
  for (int64_t layer = 0; layer < o.layers(); ++layer) {
    if (layer > 0 && o.dropout() > 0) x = torch::dropout(x, o.dropout(), is_training());
    forward_out = direction(x, layer, "");
    if (o.bidirectional()) {
      backward_out = reverse(direction(reverse(x), layer, "_reverse"));
      x = torch::cat({forward_out, backward_out}, 2);
    } else {
      x = forward_out;
    }
  }
  // The final state of each direction: the forward pass at the last real step, the backward pass at step 0.
  auto last = forward_out.gather(1, last_step.view({n, 1, 1}).expand({n, 1, o.hidden()})).squeeze(1);
  if (o.bidirectional()) last = torch::cat({last, backward_out.select(1, 0)}, 1);
  return {x, last};
}

torch::Tensor RnnEncoderImpl::forward(torch::Tensor x) {
  const auto& o = options;
  const int64_t features = o.vocab_size() > 0 ? 1 : o.features();
  if (x.dim() != 3 || x.size(2) != 1 + features || x.size(1) < 1) {
    throw Error(ErrorCode::InvalidArgument,
                "rnn encoder: expected a sequence batch [N, T, " + std::to_string(1 + features) +
                    "] (mask column + " + std::to_string(features) + " feature(s)), got " + c10::str(x.sizes()));
  }
  // The pooled features [N, width] through the head, normalised if asked: the embedding [N, embedding_dim].
  auto project = [&](const torch::Tensor& pooled) {
    auto e = head->forward(pooled);
    if (o.normalize()) e = torch::nn::functional::normalize(e, torch::nn::functional::NormalizeFuncOptions().dim(1));
    return e;
  };
  auto mask = x.select(2, 0) > 0.5;  // [N, T]
  auto lengths = mask.sum(1).to(torch::kCPU, torch::kInt64);
  if ((lengths < 1).any().item<bool>()) throw Error(ErrorCode::InvalidArgument, "rnn encoder: a sequence has no steps");
  torch::Tensor h;
  torch::Tensor bag;  // a bag of tokens: the steps it pools, [N, T] bool
  if (o.vocab_size() > 0) {
    auto ids = x.select(2, 1).round().to(torch::kInt64);
    if ((ids < 0).logical_or(ids >= o.vocab_size()).any().item<bool>()) {
      throw Error(ErrorCode::InvalidArgument,
                  "rnn encoder: token id outside the vocabulary of " + std::to_string(o.vocab_size()));
    }
    if (o.layers() == 0 && o.conv_channels() == 0) {
      // The known tokens (id 0 is <unk>); all of the item's steps when it has none.
      bag = mask.logical_and(ids != 0);
      bag = torch::where(bag.any(1, true), bag, mask);
      if (o.pooling() == Pooling::Mean && o.vocab_size() <= 64 * x.size(1)) {
        // A bag of tokens averaged is the item's token counts times the embedding table: one matrix product
        // instead of an [N, T, token_dim] gather, the same numbers. Its cost grows with the vocabulary, the
        // gather's with T: on 2 cores the two break even near a vocabulary of ~100 T (bench/, BM_Bag*), so
        // the product is used up to 64 T, where it is still the faster.
        const auto& table = embedding->weight;
        auto counts = torch::zeros({x.size(0), o.vocab_size()}, table.options()).scatter_add_(1, ids, bag.to(table.dtype()));
        return project(counts.mm(table) / counts.sum(1, true));
      }
    }
    h = embedding->forward(ids);
  } else {
    h = x.narrow(2, 1, features);
  }
  h = h * mask.unsqueeze(2).to(h.scalar_type());  // padding is exactly zero, as beyond a lone item's end
  // 1 on each item's first `lengths` steps of y [N, T, C], else 0: [N, T, 1] in y's type.
  auto real_steps = [&lengths](const torch::Tensor& y) {
    return (torch::arange(y.size(1)).unsqueeze(0) < lengths.unsqueeze(1)).to(y.device(), y.scalar_type()).unsqueeze(2);
  };
  if (o.conv_channels() > 0) {
    h = torch::relu(conv->forward(h.transpose(1, 2))).transpose(1, 2);
    const int64_t k = o.conv_kernel(), s = o.conv_stride(), p = o.conv_pool();
    lengths = (lengths + 2 * (k / 2) - k).div(s, "floor") + 1;
    if (p > 1) {
      // Steps past an item's end become 0, which no window's max (of ReLU outputs) can exceed, so a
      // partial last window sees exactly the item's own steps, batched or alone.
      h = h * real_steps(h);
      h = torch::nn::functional::max_pool1d(h.transpose(1, 2),
                                            torch::nn::functional::MaxPool1dFuncOptions(p).stride(p).ceil_mode(true))
              .transpose(1, 2);
      lengths = (lengths + p - 1).div(p, "floor");
    }
  }
  // With no recurrent layers the token (or convolution) features are pooled directly: a bag of tokens.
  auto [out, last] = o.layers() > 0 ? recurrent_layers(h, lengths.to(h.device())) : std::make_pair(h, torch::Tensor());
  torch::Tensor pooled;
  if (o.pooling() == Pooling::Last) {
    pooled = last;
  } else {
    auto real = bag.defined() ? bag.unsqueeze(2).to(out.scalar_type()) : real_steps(out);
    if (o.pooling() == Pooling::Mean) {
      pooled = (out * real).sum(1) / real.sum(1);
    } else {
      pooled = std::get<0>(out.masked_fill(real == 0, -std::numeric_limits<double>::infinity()).max(1));
    }
  }
  return project(pooled);
}

namespace {

CnnEncoderOptions frame_cnn(CnnEncoderOptions cnn, int64_t frames) {
  if (frames < 1 || cnn.width() % frames != 0) {
    throw Error(ErrorCode::InvalidArgument,
                "hybrid encoder: image width " + std::to_string(cnn.width()) + " is not divisible into " +
                    std::to_string(frames) + " frames");
  }
  return cnn.width(cnn.width() / frames).normalize(false);
}

}  // namespace

HybridEncoderImpl::HybridEncoderImpl(CnnEncoderOptions cnn_options, RnnEncoderOptions rnn_options, int64_t frames_)
    : frames(frames_) {
  auto frame = frame_cnn(std::move(cnn_options), frames_);
  cnn = register_module("cnn", CnnEncoder(frame));
  rnn = register_module("rnn", RnnEncoder(rnn_options.vocab_size(0).features(frame.embedding_dim()).conv_channels(0)));
}

torch::Tensor HybridEncoderImpl::forward(torch::Tensor x) {
  const auto& c = cnn->options;
  if (x.dim() != 4 || x.size(1) != c.in_channels() || x.size(2) != c.height() || x.size(3) != c.width() * frames) {
    throw Error(ErrorCode::InvalidArgument,
                "hybrid encoder: expected input [N, " + std::to_string(c.in_channels()) + ", " +
                    std::to_string(c.height()) + ", " + std::to_string(c.width() * frames) + "], got " +
                    c10::str(x.sizes()));
  }
  const auto n = x.size(0);
  // [N, C, H, frames · w] -> [N · frames, C, H, w]: column f of image i is row i · frames + f.
  auto columns = x.reshape({n, c.in_channels(), c.height(), frames, c.width()})
                     .permute({0, 3, 1, 2, 4})
                     .reshape({n * frames, c.in_channels(), c.height(), c.width()});
  auto features = cnn->forward(columns).view({n, frames, -1});
  return rnn->forward(torch::cat({torch::ones({n, frames, 1}, features.options()), features}, 2));
}

SiameseNetworkImpl::SiameseNetworkImpl(SiameseNetworkOptions options_) : options(std::move(options_)) {
  const auto kind = options.encoder();
  int64_t channels = options.cnn().in_channels();
  if (kind == EncoderKind::Cnn) {
    encoder = std::make_shared<CnnEncoderImpl>(options.cnn());
  } else if (kind == EncoderKind::Resnet18 || kind == EncoderKind::Resnet34 || kind == EncoderKind::Resnet50) {
    encoder = std::make_shared<ResnetEncoderImpl>(kind == EncoderKind::Resnet18 ? 18 : kind == EncoderKind::Resnet34 ? 34 : 50, options.cnn());
  } else if (kind == EncoderKind::Convnet) {
    encoder = std::make_shared<ConvnetEncoderImpl>(options.cnn());
  } else if (kind == EncoderKind::TorchScript) {
    if (!options.backbone()) throw Error(ErrorCode::InvalidArgument, "network: the torchscript encoder needs its module (--backbone FILE.pt)");
    encoder = std::make_shared<TorchScriptEncoderImpl>(options.backbone(), options.backbone_source(), options.cnn());
  } else if (kind == EncoderKind::Lstm || kind == EncoderKind::Gru) {
    auto r = options.rnn().cell(kind == EncoderKind::Lstm ? Cell::Lstm : Cell::Gru);
    if (!options.vocabulary().empty()) {
      if (r.vocab_size() != 0 && r.vocab_size() != static_cast<int64_t>(options.vocabulary().size())) {
        throw Error(ErrorCode::InvalidArgument,
                    "network: vocab_size " + std::to_string(r.vocab_size()) + " disagrees with the vocabulary of " +
                        std::to_string(options.vocabulary().size()) + " tokens");
      }
      r.vocab_size(static_cast<int64_t>(options.vocabulary().size()));
    }
    options.rnn(r);
    encoder = std::make_shared<RnnEncoderImpl>(r);
    channels = r.vocab_size() > 0 ? 1 : r.features();
  } else {
    encoder = std::make_shared<HybridEncoderImpl>(options.cnn(), options.rnn(), options.frames());
  }
  register_module("encoder", encoder);
  const bool tokens = takes_sequences() && options.rnn().vocab_size() > 0;
  auto per_channel = [&](const std::vector<double>& v, double fill, const char* what) {
    if (v.size() != 1 && static_cast<int64_t>(v.size()) != channels) {
      throw Error(ErrorCode::InvalidArgument,
                  std::string("network: ") + what + " needs 1 or " + std::to_string(channels) + " values");
    }
    auto t = torch::tensor(v, torch::kFloat64).to(torch::kFloat32);
    t = v.size() == 1 ? t.expand({channels}).clone() : t;
    if (tokens) t.fill_(fill);  // token ids are never normalised
    // Sequences: [1, 1, 1 + F], the mask column passing through unchanged.
    return takes_sequences() ? torch::cat({torch::full({1}, fill), t}).view({1, 1, channels + 1})
                             : t.view({1, channels, 1, 1});
  };
  input_mean = register_buffer("input_mean", per_channel(options.input_mean(), 0.0, "input_mean"));
  input_std = register_buffer("input_std", per_channel(options.input_std(), 1.0, "input_std"));
  if ((input_std <= 0).any().item<bool>()) {
    throw Error(ErrorCode::InvalidArgument, "network: input_std must be positive");
  }
}

bool SiameseNetworkImpl::takes_sequences() const {
  return options.encoder() == EncoderKind::Lstm || options.encoder() == EncoderKind::Gru;
}

torch::Tensor SiameseNetworkImpl::embed(torch::Tensor x) {
  if (int8_) return int8_->embed(x);
  x = x.to(device());  // the same tensor when it is there already
  if (!amp_) return encoder->forward((x - input_mean) / input_std);
  // bfloat16 convolutions run 1.3-1.8x faster on channels-last activations (bench/levers); an
  // input in that layout makes oneDNN keep it through the convolutions. float32 gains nothing.
  if (x.dim() == 4) x = x.contiguous(c10::MemoryFormat::ChannelsLast);
  AutocastGuard autocast(x.device(), true);
  return encoder->forward((x - input_mean) / input_std).to(torch::kFloat32);
}

void SiameseNetworkImpl::place(c10::Device device, bool amp) {
  if (amp && int8_) throw Error(ErrorCode::InvalidArgument, "--amp and --int8 exclude each other: choose one");
  if (int8_ && !device.is_cpu()) throw Error(ErrorCode::Unsupported, "--int8 runs on the CPU only (use --device cpu)");
  to(device);
  amp_ = amp;
}

void SiameseNetworkImpl::use_int8(bool on) {
  if (on && amp_) throw Error(ErrorCode::InvalidArgument, "--amp and --int8 exclude each other: choose one");
  int8_ = on ? std::make_shared<const QuantizedCnn>(*this) : nullptr;
}

torch::Tensor SiameseNetworkImpl::feature_maps(torch::Tensor x) {
  if (takes_sequences()) throw Error(ErrorCode::Unsupported, "feature maps: this network reads sequences");
  x = x.to(device());
  return encoder->feature_maps((x - input_mean) / input_std);
}

torch::Tensor EncoderImpl::feature_maps(torch::Tensor) {
  throw Error(ErrorCode::Unsupported, "feature maps: only the resnet and convnet encoders have a convolutional trunk");
}

namespace {

/// Stacks input batches along dim 0; sequence batches [n, T, 1 + F] of different T are first
/// padded (mask 0) to the longest.
torch::Tensor join(std::vector<torch::Tensor> xs) {
  if (xs[0].dim() == 3) {
    int64_t longest = 0;
    for (const auto& x : xs) longest = std::max(longest, x.size(1));
    for (auto& x : xs) {
      if (x.size(1) < longest) x = torch::constant_pad_nd(x, {0, 0, 0, longest - x.size(1)});
    }
  }
  return torch::cat(xs);
}

}  // namespace

torch::Tensor SiameseNetworkImpl::forward(torch::Tensor a, torch::Tensor b) {
  const auto n = a.size(0);
  auto e = embed(join({a, b}));
  return paired_distance(e.slice(0, 0, n), e.slice(0, n), options.distance());
}

std::tuple<torch::Tensor, torch::Tensor> SiameseNetworkImpl::forward(torch::Tensor a, torch::Tensor p,
                                                                     torch::Tensor n) {
  const auto count = a.size(0);
  auto e = embed(join({a, p, n}));
  auto ea = e.slice(0, 0, count);
  return {paired_distance(ea, e.slice(0, count, 2 * count), options.distance()),
          paired_distance(ea, e.slice(0, 2 * count), options.distance())};
}

torch::Tensor embed_dataset(SiameseNetwork& network, const Dataset& data, int64_t batch_size, Logger& logger) {
  if (network->is_training()) {
    throw Error(ErrorCode::InvalidArgument,
                "embed_dataset: the network is in training mode; call network->eval() first (load_model returns "
                "it so). Embedding never switches the mode itself: other threads may be embedding with it.");
  }
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    std::vector<int64_t> idx(std::min(batch_size, data.size() - start));
    std::iota(idx.begin(), idx.end(), start);
    auto x = data.gather(idx);
    const int64_t rows = std::max<int64_t>(1, kValuesPerPass / std::max<int64_t>(1, x[0].numel()));
    for (const auto& part : x.split(rows)) parts.push_back(network->embed(part));
    logger.count("embedding", start + static_cast<int64_t>(idx.size()), data.size());
  }
  if (parts.empty()) throw Error(ErrorCode::InvalidArgument, data.source(), "nothing to embed (empty data set)");
  return torch::cat(parts).to(torch::kCPU);
}

}  // namespace siamese
