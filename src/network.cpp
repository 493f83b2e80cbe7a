#include "siamese/network.h"

#include "siamese/error.h"

namespace siamese {

CnnEncoderImpl::CnnEncoderImpl(CnnEncoderOptions options_) : options(std::move(options_)) { reset(); }

void CnnEncoderImpl::reset() {
  if (options.conv_channels().empty() || options.embedding_dim() < 1 || options.in_channels() < 1) {
    throw Error("cnn encoder: need at least one conv block, in_channels >= 1 and embedding_dim >= 1");
  }
  features = torch::nn::Sequential();
  int64_t channels = options.in_channels();
  int64_t h = options.height();
  int64_t w = options.width();
  for (int64_t out : options.conv_channels()) {
    if (h < 2 || w < 2) {
      throw Error("cnn encoder: " + std::to_string(options.conv_channels().size()) +
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
    throw Error("cnn encoder: expected input [N, " + std::to_string(options.in_channels()) + ", " +
                std::to_string(options.height()) + ", " + std::to_string(options.width()) + "], got " +
                c10::str(x.sizes()));
  }
  auto e = head->forward(features->forward(x));
  if (options.normalize()) {
    e = torch::nn::functional::normalize(e, torch::nn::functional::NormalizeFuncOptions().dim(1));
  }
  return e;
}

SiameseNetworkImpl::SiameseNetworkImpl(SiameseNetworkOptions options_) : options(std::move(options_)) {
  if (options.encoder() != "cnn") {
    throw Error("unknown encoder '" + options.encoder() + "' (expected cnn)");
  }
  encoder = std::make_shared<CnnEncoderImpl>(options.cnn());
  register_module("encoder", encoder);
  const auto channels = options.cnn().in_channels();
  auto per_channel = [channels](const std::vector<double>& v, const char* what) {
    if (v.size() != 1 && static_cast<int64_t>(v.size()) != channels) {
      throw Error(std::string("network: ") + what + " needs 1 or " + std::to_string(channels) + " values");
    }
    auto t = torch::tensor(v, torch::kFloat32);
    return (v.size() == 1 ? t.expand({channels}).clone() : t).view({1, channels, 1, 1});
  };
  input_mean = register_buffer("input_mean", per_channel(options.input_mean(), "input_mean"));
  input_std = register_buffer("input_std", per_channel(options.input_std(), "input_std"));
  if ((input_std <= 0).any().item<bool>()) throw Error("network: input_std must be positive");
}

torch::Tensor SiameseNetworkImpl::embed(torch::Tensor x) {
  return encoder->forward((x - input_mean) / input_std);
}

torch::Tensor SiameseNetworkImpl::forward(torch::Tensor a, torch::Tensor b) {
  const auto n = a.size(0);
  auto e = embed(torch::cat({a, b}));
  return paired_distance(e.slice(0, 0, n), e.slice(0, n), options.distance());
}

std::tuple<torch::Tensor, torch::Tensor> SiameseNetworkImpl::forward(torch::Tensor a, torch::Tensor p,
                                                                     torch::Tensor n) {
  const auto count = a.size(0);
  auto e = embed(torch::cat({a, p, n}));
  auto ea = e.slice(0, 0, count);
  return {paired_distance(ea, e.slice(0, count, 2 * count), options.distance()),
          paired_distance(ea, e.slice(0, 2 * count), options.distance())};
}

}  // namespace siamese
