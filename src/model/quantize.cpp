#include "siamese/model/quantize.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <string>

#include "siamese/core/error.h"
#include "siamese/model/network.h"

namespace siamese {

namespace {

namespace F = torch::nn::functional;

/// A quantized operator called through the dispatcher's boxed interface: the packed-weight types
/// it takes and returns are not in LibTorch's public headers.
/// LibTorch's own errors come back as one siamese::Error line.
c10::IValue call(const char* name, const char* overload, std::vector<c10::IValue> args) {
  try {
    const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, overload);
    op.callBoxed(&args);
    return args.back();
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw Error(ErrorCode::Unsupported, std::string("--int8: ") + name + ": " + what.substr(0, what.find('\n')));
  }
}

std::shared_ptr<CnnEncoderImpl> cnn_of(const SiameseNetworkImpl& net) {
  auto cnn = std::dynamic_pointer_cast<CnnEncoderImpl>(net.encoder);
  if (!cnn) {
    throw Error(ErrorCode::Unsupported, "--int8: only the \"cnn\" encoder runs in int8; this model's is \"" +
                                            to_string(net.options.encoder()) + "\"");
  }
  return cnn;
}

/// The ranges a model of this configuration carries: one a conv block, one for the hidden layer.
size_t range_count(const CnnEncoderOptions& o) { return o.conv_channels().size() + (o.hidden() > 0 ? 1 : 0); }

/// The engine for quantized operators: oneDNN where this LibTorch has it, else FBGEMM, else QNNPACK.
at::QEngine best_engine() {
  const auto& engines = at::globalContext().supportedQEngines();
  for (auto e : {at::QEngine::ONEDNN, at::QEngine::FBGEMM, at::QEngine::QNNPACK}) {
    if (std::find(engines.begin(), engines.end(), e) != engines.end()) return e;
  }
  throw Error(ErrorCode::Unsupported, "--int8: this LibTorch has no quantized engine (oneDNN, FBGEMM or QNNPACK)");
}

/// LibTorch's quantized engine is process-wide: it is set only while weights are packed (the
/// packed weights keep their engine), under a lock, and put back afterwards.
class EngineScope {
 public:
  explicit EngineScope(at::QEngine engine) : lock_(mutex()), before_(at::globalContext().qEngine()) {
    if (before_ != engine) at::globalContext().setQEngine(engine);
  }
  ~EngineScope() {
    if (at::globalContext().qEngine() != before_) at::globalContext().setQEngine(before_);
  }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  std::lock_guard<std::mutex> lock_;
  at::QEngine before_;
};

/// Weights [O, ...] as int8 with one symmetric scale an output channel.
torch::Tensor per_channel_int8(const torch::Tensor& w) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < w.dim(); ++d) dims.push_back(d);
  const auto scales = (w.abs().amax(dims) / 127).clamp_min(std::numeric_limits<float>::epsilon()).to(torch::kDouble);
  return at::quantize_per_channel(w.contiguous(), scales, torch::zeros({w.size(0)}, torch::kLong), 0, torch::kQInt8);
}

/// The uint8 levels of activations: 255, or 127 on FBGEMM, whose uint8 x int8 pair sums would
/// saturate 16 bits without AVX-512 VNNI (PyTorch's reduce_range).
int levels(at::QEngine engine) { return engine == at::QEngine::FBGEMM ? 127 : 255; }

/// The scale of a uint8 activation in [0, range] (after a ReLU, zero point 0).
double relu_scale(double range, int levels) { return std::max(range, 1e-6) / levels; }

}  // namespace

bool int8_supported(const SiameseNetworkImpl& net) {
  return std::dynamic_pointer_cast<CnnEncoderImpl>(net.encoder) != nullptr;
}

std::vector<double> int8_ranges(SiameseNetworkImpl& net, const torch::Tensor& images) {
  auto cnn = cnn_of(net);
  if (images.dim() != 4 || images.size(0) == 0) {
    throw Error(ErrorCode::InvalidArgument, "int8 calibration: expected images [N > 0, C, H, W], got " + c10::str(images.sizes()));
  }
  if (net.is_training()) {
    throw Error(ErrorCode::InvalidArgument, "int8 calibration: the network is in training mode; call eval() first");
  }
  torch::NoGradGuard no_grad;
  const size_t blocks = cnn->options.conv_channels().size();
  std::vector<double> ranges(blocks + (cnn->options.hidden() > 0 ? 1 : 0), 0.0);
  for (const auto& part : images.split(64)) {  // activations of 64 images at a time, whatever their size
    auto x = (part.to(net.device(), torch::kFloat32) - net.input_mean) / net.input_std;
    for (size_t b = 0; b < blocks; ++b) {  // conv, batch norm, ReLU, 2x2 max pool
      x = torch::relu(cnn->features[4 * b + 1]->as<torch::nn::BatchNorm2dImpl>()->forward(
          cnn->features[4 * b]->as<torch::nn::Conv2dImpl>()->forward(x)));
      ranges[b] = std::max(ranges[b], x.max().item<double>());
      x = F::max_pool2d(x, F::MaxPool2dFuncOptions(2));
    }
    if (cnn->options.hidden() > 0) {
      auto hidden = cnn->head[1]->as<torch::nn::LinearImpl>();
      ranges[blocks] = std::max(ranges[blocks], torch::relu(hidden->forward(x.flatten(1))).max().item<double>());
    }
  }
  for (double r : ranges) {
    if (!std::isfinite(r)) throw Error(ErrorCode::InvalidArgument, "int8 calibration: an activation is not finite (the network has diverged)");
  }
  return ranges;
}

struct QuantizedCnn::Impl {
  CnnEncoderOptions options;
  torch::Tensor mean, std;          // [1, C, 1, 1]
  double input_scale = 1;
  int64_t input_zero = 0;
  std::vector<c10::IValue> convs;   // packed conv + folded batch norm, one a block
  std::vector<double> conv_scales;  // their outputs' scales
  c10::IValue hidden;               // packed hidden dense layer (none when options.hidden() == 0)
  double hidden_scale = 1;
  torch::Tensor last_weight, last_bias;  // the last dense layer, float32
};

QuantizedCnn::QuantizedCnn(SiameseNetworkImpl& net) {
  auto cnn = cnn_of(net);
  if (!net.device().is_cpu()) throw Error(ErrorCode::Unsupported, "--int8 runs on the CPU only (use --device cpu)");
  const auto& ranges = net.options.int8_ranges();
  if (ranges.empty()) {
    throw Error(ErrorCode::InvalidArgument, "--int8: this model carries no int8 calibration (models saved by siamese "
                                            "train before it had one): retrain it, or set options.int8_ranges from "
                                            "int8_ranges() in the library (quantize.h)");
  }
  if (ranges.size() != range_count(cnn->options)) {
    throw Error(ErrorCode::InvalidArgument, "--int8: the model's int8 calibration has " + std::to_string(ranges.size()) +
                                                " ranges; its network needs " + std::to_string(range_count(cnn->options)));
  }
  const auto engine = best_engine();
  const int q = levels(engine);
  EngineScope scope(engine);
  torch::NoGradGuard no_grad;
  auto impl = std::make_shared<Impl>();
  impl->options = cnn->options;
  impl->mean = net.input_mean.detach().clone();
  impl->std = net.input_std.detach().clone();
  // Inputs in [0, 1] normalised; the range keeps 0, which padding stands for.
  const double lo = std::min(0.0, ((0 - impl->mean) / impl->std).min().item<double>());
  const double hi = std::max(0.0, ((1 - impl->mean) / impl->std).max().item<double>());
  impl->input_scale = std::max(hi - lo, 1e-6) / q;
  impl->input_zero = std::clamp<int64_t>(std::llround(-lo / impl->input_scale), 0, q);
  for (size_t b = 0; b < cnn->options.conv_channels().size(); ++b) {
    auto conv = cnn->features[4 * b]->as<torch::nn::Conv2dImpl>();
    auto bn = cnn->features[4 * b + 1]->as<torch::nn::BatchNorm2dImpl>();
    const auto gain = bn->weight / (bn->running_var + bn->options.eps()).sqrt();
    const auto weight = conv->weight * gain.view({-1, 1, 1, 1});
    const auto bias = bn->bias - bn->running_mean * gain;
    const auto ones = [] { return c10::List<int64_t>(std::vector<int64_t>{1, 1}); };  // CnnEncoderImpl's 3x3
    impl->convs.push_back(call("quantized::conv2d_prepack", "",  // convolutions: stride, padding, dilation 1
                               {per_channel_int8(weight), bias.contiguous(), ones(), ones(), ones(), int64_t{1}}));
    impl->conv_scales.push_back(relu_scale(ranges[b], q));
  }
  size_t last = 1;
  if (cnn->options.hidden() > 0) {
    auto hidden = cnn->head[1]->as<torch::nn::LinearImpl>();
    impl->hidden = call("quantized::linear_prepack", "", {per_channel_int8(hidden->weight), hidden->bias.contiguous()});
    impl->hidden_scale = relu_scale(ranges.back(), q);
    last = 3;
  }
  auto out = cnn->head[last]->as<torch::nn::LinearImpl>();
  impl->last_weight = out->weight.detach().clone();
  impl->last_bias = out->bias.detach().clone();
  impl_ = impl;
}

torch::Tensor QuantizedCnn::embed(const torch::Tensor& x_in) const {
  const auto& o = impl_->options;
  if (x_in.dim() != 4 || x_in.size(1) != o.in_channels() || x_in.size(2) != o.height() || x_in.size(3) != o.width()) {
    throw Error(ErrorCode::InvalidArgument, "cnn encoder: expected input [N, " + std::to_string(o.in_channels()) + ", " +
                                                std::to_string(o.height()) + ", " + std::to_string(o.width()) +
                                                "], got " + c10::str(x_in.sizes()));
  }
  torch::NoGradGuard no_grad;
  const auto x = (x_in.to(torch::kCPU, torch::kFloat32) - impl_->mean) / impl_->std;
  auto q = at::quantize_per_tensor(x, impl_->input_scale, impl_->input_zero, torch::kQUInt8);
  for (size_t b = 0; b < impl_->convs.size(); ++b) {
    q = call("quantized::conv2d_relu", "new", {q, impl_->convs[b], impl_->conv_scales[b], int64_t{0}}).toTensor();
    q = at::max_pool2d(q, {2, 2}, {2, 2}, {0, 0}, {1, 1});  // every size given: the quantized kernel expands none
  }
  q = q.contiguous().reshape({q.size(0), -1});
  if (o.hidden() > 0) q = call("quantized::linear_relu", "", {q, impl_->hidden, impl_->hidden_scale, int64_t{0}}).toTensor();
  auto e = torch::linear(q.dequantize(), impl_->last_weight, impl_->last_bias);
  return o.normalize() ? F::normalize(e, F::NormalizeFuncOptions().dim(1)) : e;
}

}  // namespace siamese
