#include "siamese/track/siamfc.h"

#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"

namespace siamese {

namespace {

constexpr EnumNames<TrunkKind, 2> kTrunkNames{{{TrunkKind::Compact, "compact"}, {TrunkKind::AlexNet, "alexnet"}}};

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).stride(stride).groups(groups));
}

}  // namespace

TrunkKind parse_trunk(const std::string& name) { return parse_enum(kTrunkNames, name, "trunk"); }
std::string to_string(TrunkKind trunk) { return enum_name(kTrunkNames, trunk); }

std::vector<int64_t> trunk_channels(TrunkKind trunk) {
  // The compact trunk's first convolution, 11 × 11 at full resolution, costs most: few channels there.
  return trunk == TrunkKind::AlexNet ? std::vector<int64_t>{96, 256, 384, 384, 256} : std::vector<int64_t>{24, 64, 96, 96, 64};
}

torch::Tensor cross_correlation(const torch::Tensor& z, const torch::Tensor& x) {
  if (z.dim() != 4 || x.dim() != 4 || z.size(1) != x.size(1) || (z.size(0) != x.size(0) && z.size(0) != 1) ||
      z.size(2) > x.size(2) || z.size(3) > x.size(3)) {
    throw Error(ErrorCode::InvalidArgument, "cross_correlation: exemplar features " + c10::str(z.sizes()) +
                                                " do not fit search features " + c10::str(x.sizes()));
  }
  const auto n = x.size(0), c = x.size(1);
  const auto kernels = z.size(0) == n ? z : z.expand({n, c, z.size(2), z.size(3)});
  // One group per pair: the search maps side by side as channels of one image.
  auto out = torch::conv2d(x.reshape({1, n * c, x.size(2), x.size(3)}), kernels.reshape({n, c, z.size(2), z.size(3)}),
                           torch::Tensor(), at::IntArrayRef{1, 1}, at::IntArrayRef{0, 0}, at::IntArrayRef{1, 1}, n);
  return out.reshape({n, 1, out.size(2), out.size(3)});
}

SiamFCImpl::SiamFCImpl(SiamFCOptions o) : options(o) {
  const auto ch = trunk_channels(o.trunk());
  auto bn = [](int64_t c) { return torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(c).eps(1e-6).momentum(0.05)); };
  auto pool = [] { return torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2)); };
  // The reference's layers: groups of 2 in conv2, conv4, conv5; no ReLU after conv5.
  trunk = register_module("trunk", torch::nn::Sequential(
      conv(3, ch[0], 11, 2, 1), bn(ch[0]), torch::nn::ReLU(), pool(),
      conv(ch[0], ch[1], 5, 1, 2), bn(ch[1]), torch::nn::ReLU(), pool(),
      conv(ch[1], ch[2], 3, 1, 1), bn(ch[2]), torch::nn::ReLU(),
      conv(ch[2], ch[3], 3, 1, 2), bn(ch[3]), torch::nn::ReLU(),
      conv(ch[3], ch[4], 3, 1, 2)));
  bias = register_parameter("bias", torch::zeros({1}));
}

torch::Tensor SiamFCImpl::features(const torch::Tensor& images) {
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) < 87 || images.size(3) < 87) {
    throw Error(ErrorCode::InvalidArgument, "SiamFC: expected images [N, 3, H, W] of at least 87 × 87 pixels, got " +
                                                c10::str(images.sizes()));
  }
  return trunk->forward(images);
}

torch::Tensor SiamFCImpl::score(const torch::Tensor& z, const torch::Tensor& x) {
  return cross_correlation(z, x) * options.score_scale() + bias;
}

torch::Tensor SiamFCImpl::forward(const torch::Tensor& exemplars, const torch::Tensor& searches) {
  return score(features(exemplars), features(searches));
}

}  // namespace siamese
