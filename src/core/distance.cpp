#include "siamese/core/distance.h"

#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"

namespace siamese {

constexpr EnumNames<Distance, 5> kDistanceNames{{{Distance::Euclidean, "euclidean"}, {Distance::SqEuclidean, "sqeuclidean"}, {Distance::Cosine, "cosine"}, {Distance::Manhattan, "manhattan"}, {Distance::MaLSTM, "malstm"}}};

Distance parse_distance(const std::string& name) { return parse_enum(kDistanceNames, name, "distance"); }

std::string to_string(Distance distance) { return enum_name(kDistanceNames, distance); }

namespace {
constexpr double kMinSquared = 1e-12;

void check_rows(const torch::Tensor& x, const torch::Tensor& y) {
  if (x.dim() != 2 || y.dim() != 2 || x.size(1) != y.size(1)) {
    throw Error(ErrorCode::InvalidArgument,
                "distance: expected embeddings [N, D] and [M, D], got " + c10::str(x.sizes()) +
                    " and " + c10::str(y.sizes()));
  }
}
}  // namespace

torch::Tensor pairwise_distance(const torch::Tensor& x, const torch::Tensor& y, Distance distance) {
  check_rows(x, y);
  if (distance == Distance::Cosine) {
    auto xn = torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1));
    auto yn = torch::nn::functional::normalize(y, torch::nn::functional::NormalizeFuncOptions().dim(1));
    return 1 - xn.matmul(yn.t());
  }
  if (distance == Distance::Manhattan || distance == Distance::MaLSTM) {
    auto l1 = torch::cdist(x.unsqueeze(0), y.unsqueeze(0), 1).squeeze(0);
    return distance == Distance::Manhattan ? l1 : 1 - torch::exp(-l1);
  }
  // ‖x‖² + ‖y‖² − 2 x·y: one matrix product instead of an [N, M, D] difference tensor.
  auto squared = (x.pow(2).sum(1, true) + y.pow(2).sum(1).unsqueeze(0) - 2 * x.matmul(y.t())).clamp_min(0);
  if (distance == Distance::SqEuclidean) return squared;
  return squared.clamp_min(kMinSquared).sqrt();
}

torch::Tensor paired_distance(const torch::Tensor& a, const torch::Tensor& b, Distance distance) {
  check_rows(a, b);
  if (a.size(0) != b.size(0)) {
    throw Error(ErrorCode::InvalidArgument,
                "distance: paired embeddings differ in count: " + c10::str(a.sizes()) + " vs " +
                    c10::str(b.sizes()));
  }
  if (distance == Distance::Cosine) {
    return 1 - torch::cosine_similarity(a, b, 1);
  }
  if (distance == Distance::Manhattan || distance == Distance::MaLSTM) {
    auto l1 = (a - b).abs().sum(1);
    return distance == Distance::Manhattan ? l1 : 1 - torch::exp(-l1);
  }
  auto squared = (a - b).pow(2).sum(1);
  if (distance == Distance::SqEuclidean) return squared;
  return squared.clamp_min(kMinSquared).sqrt();
}

}  // namespace siamese
