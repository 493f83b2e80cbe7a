#include "siamese/model/backbones.h"

#include <torch/script.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "siamese/core/archive_file.h"
#include "siamese/core/error.h"

namespace siamese {

namespace {

namespace F = torch::nn::functional;

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(false));
}

/// torchvision's BasicBlock (two 3×3 convolutions) or Bottleneck (1×1, 3×3 with the stride, 1×1
/// to 4 × planes: ResNet v1.5), each followed by batch norm, the shortcut a 1×1 convolution and
/// batch norm ("downsample") where the shape changes.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t in, int64_t planes, int64_t stride, bool bottleneck) : bottleneck_(bottleneck) {
    const int64_t out = bottleneck ? planes * 4 : planes;
    if (bottleneck) {
      conv1 = register_module("conv1", conv(in, planes, 1, 1));
      bn1 = register_module("bn1", torch::nn::BatchNorm2d(planes));
      conv2 = register_module("conv2", conv(planes, planes, 3, stride));
      bn2 = register_module("bn2", torch::nn::BatchNorm2d(planes));
      conv3 = register_module("conv3", conv(planes, out, 1, 1));
      bn3 = register_module("bn3", torch::nn::BatchNorm2d(out));
    } else {
      conv1 = register_module("conv1", conv(in, planes, 3, stride));
      bn1 = register_module("bn1", torch::nn::BatchNorm2d(planes));
      conv2 = register_module("conv2", conv(planes, planes, 3, 1));
      bn2 = register_module("bn2", torch::nn::BatchNorm2d(planes));
    }
    if (stride != 1 || in != out) {
      downsample = register_module("downsample", torch::nn::Sequential(conv(in, out, 1, stride), torch::nn::BatchNorm2d(out)));
    }
  }

  torch::Tensor forward(torch::Tensor x) {
    auto y = torch::relu(bn1(conv1(x)));
    y = bn2(conv2(y));
    if (bottleneck_) y = bn3(conv3(torch::relu(y)));
    return torch::relu(y + (downsample ? downsample->forward(x) : x));
  }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};

 private:
  bool bottleneck_;
};
TORCH_MODULE(Block);

/// Blocks per stage of each depth.
std::vector<int64_t> stages(int64_t depth) {
  if (depth == 18) return {2, 2, 2, 2};
  if (depth == 34 || depth == 50) return {3, 4, 6, 3};
  throw Error(ErrorCode::InvalidArgument, "resnet encoder: depth " + std::to_string(depth) + " (18, 34 or 50)");
}

torch::Tensor pooled_embedding(const torch::Tensor& maps, torch::nn::Sequential& head, bool normalize) {
  auto e = head->forward(F::adaptive_avg_pool2d(maps, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1));
  return normalize ? F::normalize(e, F::NormalizeFuncOptions().dim(1)) : e;
}

/// The last line of an exception's message: TorchScript errors carry the script's traceback first.
std::string last_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string text = c10 ? c10->what_without_backtrace() : e.what();
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  const auto cut = text.rfind('\n');
  return cut == std::string::npos ? text : text.substr(cut + 1);
}

void check_image_batch(const torch::Tensor& x, int64_t channels, int64_t smallest, const char* encoder) {
  if (x.dim() != 4 || x.size(1) != channels || x.size(2) < smallest || x.size(3) < smallest) {
    throw Error(ErrorCode::InvalidArgument, std::string(encoder) + " encoder: expected input [N, " + std::to_string(channels) +
                                                ", H >= " + std::to_string(smallest) + ", W >= " + std::to_string(smallest) +
                                                "], got " + c10::str(x.sizes()));
  }
}

}  // namespace

torch::nn::Sequential embedding_head(int64_t features, const CnnEncoderOptions& options) {
  if (options.embedding_dim() < 1) throw Error(ErrorCode::InvalidArgument, "encoder: embedding_dim must be >= 1");
  torch::nn::Sequential head;
  if (options.hidden() > 0) {
    head->push_back(torch::nn::Linear(features, options.hidden()));
    head->push_back(torch::nn::ReLU());
    features = options.hidden();
  }
  head->push_back(torch::nn::Linear(features, options.embedding_dim()));
  return head;
}

ResnetEncoderImpl::ResnetEncoderImpl(int64_t depth_, CnnEncoderOptions options_) : depth(depth_), options(std::move(options_)) {
  const auto blocks = stages(depth);
  const bool bottleneck = depth >= 50;
  if (options.in_channels() < 1) throw Error(ErrorCode::InvalidArgument, "resnet encoder: in_channels must be >= 1");
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels(), 64, 7).stride(2).padding(3).bias(false)));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(64));
  int64_t in = 64;
  for (size_t s = 0; s < blocks.size(); ++s) {
    const int64_t planes = int64_t{64} << s;
    torch::nn::Sequential layer;
    for (int64_t b = 0; b < blocks[s]; ++b) {
      layer->push_back(Block(in, planes, b == 0 && s > 0 ? 2 : 1, bottleneck));
      in = bottleneck ? planes * 4 : planes;
    }
    layers.push_back(register_module("layer" + std::to_string(s + 1), layer));
  }
  for (auto& module : modules(false)) {  // torchvision's initialisation
    if (auto* c = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
  head = register_module("head", embedding_head(in, options));
}

torch::Tensor ResnetEncoderImpl::feature_maps(torch::Tensor x) {
  check_image_batch(x, options.in_channels(), 32, "resnet");
  x = F::max_pool2d(torch::relu(bn1(conv1(x))), F::MaxPool2dFuncOptions(3).stride(2).padding(1));
  for (auto& layer : layers) x = layer->forward(x);
  return x;
}

torch::Tensor ResnetEncoderImpl::forward(torch::Tensor x) { return pooled_embedding(feature_maps(x), head, options.normalize()); }

ConvnetEncoderImpl::ConvnetEncoderImpl(CnnEncoderOptions options_) : options(std::move(options_)) {
  if (options.conv_channels().empty() || options.in_channels() < 1) {
    throw Error(ErrorCode::InvalidArgument, "convnet encoder: need at least one conv block and in_channels >= 1");
  }
  features = torch::nn::Sequential();
  int64_t channels = options.in_channels();
  for (int64_t out : options.conv_channels()) {
    features->push_back(conv(channels, out, 3, 1));
    features->push_back(torch::nn::BatchNorm2d(out));
    features->push_back(torch::nn::ReLU());
    features->push_back(torch::nn::MaxPool2d(2));
    channels = out;
  }
  head = embedding_head(channels, options);
  register_module("features", features);
  register_module("head", head);
}

torch::Tensor ConvnetEncoderImpl::feature_maps(torch::Tensor x) {
  check_image_batch(x, options.in_channels(), int64_t{1} << options.conv_channels().size(), "convnet");
  return features->forward(x);
}

torch::Tensor ConvnetEncoderImpl::forward(torch::Tensor x) { return pooled_embedding(feature_maps(x), head, options.normalize()); }

TorchScriptEncoderImpl::TorchScriptEncoderImpl(std::shared_ptr<const std::string> script, const std::string& source,
                                               CnnEncoderOptions options_)
    : options(std::move(options_)), source_(source) {
  if (!script || script->empty()) throw Error(ErrorCode::InvalidArgument, source, "no TorchScript module");
  check_archive_bytes(*script, source, "TorchScript file");
  try {
    std::istringstream in(*script);
    module = std::make_shared<torch::jit::Module>(torch::jit::load(in));
  } catch (const std::exception& e) {
    throw Error(ErrorCode::InvalidArgument, source,
                "not a TorchScript module (torch.jit.save(torch.jit.script(model)) in Python writes one): " + last_line(e));
  }
  std::set<std::string> names;
  auto name_of = [&](const std::string& dotted) {
    std::string name = "script_" + dotted;
    std::replace(name.begin(), name.end(), '.', '_');
    if (!names.insert(name).second) throw Error(ErrorCode::Unsupported, source, "two of its tensors are both named " + name);
    return name;
  };
  for (const auto& p : module->named_parameters(true)) register_parameter(name_of(p.name), p.value, p.value.requires_grad());
  for (const auto& b : module->named_buffers(true)) register_buffer(name_of(b.name), b.value);
  torch::Tensor probe;
  {
    torch::NoGradGuard no_grad;
    module->eval();
    probe = run(torch::zeros({2, options.in_channels(), options.height(), options.width()}));
    module->train(is_training());
  }
  const int64_t width = probe.dim() == 4 ? probe.size(1) : probe.size(-1);
  head = register_module("head", embedding_head(width, options));
}

torch::Tensor TorchScriptEncoderImpl::run(const torch::Tensor& x) {
  c10::IValue out;
  try {
    out = module->forward({x});
  } catch (const std::exception& e) {
    throw Error(ErrorCode::InvalidArgument, source_, "the TorchScript module fails on input " + c10::str(x.sizes()) + ": " + last_line(e));
  }
  if (!out.isTensor() || (out.toTensor().dim() != 2 && out.toTensor().dim() != 4) || out.toTensor().size(0) != x.size(0)) {
    throw Error(ErrorCode::InvalidArgument, source_,
                "the TorchScript module's output for input " + c10::str(x.sizes()) + " is " +
                    (out.isTensor() ? c10::str(out.toTensor().sizes()) : std::string(out.tagKind())) +
                    "; it must be [N, F] (features) or [N, C, h, w] (feature maps)");
  }
  return out.toTensor();
}

torch::Tensor TorchScriptEncoderImpl::feature_maps(torch::Tensor x) {
  auto out = run(x);
  if (out.dim() != 4) throw Error(ErrorCode::Unsupported, source_, "the TorchScript module gives vectors, not feature maps");
  return out;
}

torch::Tensor TorchScriptEncoderImpl::forward(torch::Tensor x) {
  auto out = run(x);
  if (out.dim() == 4) out = F::adaptive_avg_pool2d(out, F::AdaptiveAvgPool2dFuncOptions(1)).flatten(1);
  auto e = head->forward(out);
  return options.normalize() ? F::normalize(e, F::NormalizeFuncOptions().dim(1)) : e;
}

void TorchScriptEncoderImpl::train(bool on) {
  EncoderImpl::train(on);
  if (module) module->train(on);
}

}  // namespace siamese
