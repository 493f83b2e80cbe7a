#include "siamese/train/loss.h"

#include <cmath>
#include <limits>

#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"

namespace siamese {

constexpr EnumNames<LossKind, 3> kLossKindNames{{{LossKind::Contrastive, "contrastive"}, {LossKind::Triplet, "triplet"}, {LossKind::NTXent, "ntxent"}}};

LossKind parse_loss(const std::string& name) { return parse_enum(kLossKindNames, name, "loss"); }

std::string to_string(LossKind loss) { return enum_name(kLossKindNames, loss); }

torch::Tensor ntxent_loss(const torch::Tensor& embeddings, const torch::Tensor& labels, double temperature,
                          int64_t* active) {
  if (embeddings.dim() != 2 || labels.dim() != 1 || labels.size(0) != embeddings.size(0)) {
    throw Error(ErrorCode::InvalidArgument,
                "ntxent_loss: expected embeddings [B, D] and labels [B], got " + c10::str(embeddings.sizes()) +
                    " and " + c10::str(labels.sizes()));
  }
  if (!(temperature > 0)) throw Error(ErrorCode::InvalidArgument, "ntxent_loss: temperature must be > 0");
  const auto b = embeddings.size(0);
  auto z = torch::nn::functional::normalize(embeddings, torch::nn::functional::NormalizeFuncOptions().dim(1));
  auto self = torch::eye(b, torch::TensorOptions().dtype(torch::kBool).device(embeddings.device()));
  auto s = z.matmul(z.t()).div(temperature).masked_fill(self, -std::numeric_limits<double>::infinity());
  auto log_prob = s - s.logsumexp(1, /*keepdim=*/true);
  auto pos = labels.unsqueeze(1).eq(labels.unsqueeze(0)).logical_and(self.logical_not());
  auto count = pos.sum(1);
  auto has = count.gt(0);
  if (active) *active = has.sum().item<int64_t>();
  auto per_item = -log_prob.masked_fill(pos.logical_not(), 0).sum(1) / count.clamp_min(1);
  if (!has.any().item<bool>()) return embeddings.sum() * 0;
  return per_item.masked_select(has).mean();
}

torch::Tensor contrastive_loss(const torch::Tensor& distances, const torch::Tensor& similar, double margin) {
  if (distances.dim() != 1 || similar.sizes() != distances.sizes()) {
    throw Error(ErrorCode::InvalidArgument,
                "contrastive_loss: expected distances [N] and labels [N], got " +
                    c10::str(distances.sizes()) + " and " + c10::str(similar.sizes()));
  }
  auto y = similar.to(distances.dtype());
  auto hinge = (margin - distances).clamp_min(0);
  return (y * distances.pow(2) + (1 - y) * hinge.pow(2)).mul(0.5).mean();
}

torch::Tensor triplet_loss(const torch::Tensor& d_ap, const torch::Tensor& d_an, double margin) {
  if (d_ap.dim() != 1 || d_an.sizes() != d_ap.sizes()) {
    throw Error(ErrorCode::InvalidArgument,
                "triplet_loss: expected d_ap [N] and d_an [N], got " + c10::str(d_ap.sizes()) +
                    " and " + c10::str(d_an.sizes()));
  }
  return (d_ap - d_an + margin).clamp_min(0).mean();
}

namespace {

void check_batch(const torch::Tensor& embeddings, const torch::Tensor& labels) {
  if (embeddings.dim() != 2 || labels.dim() != 1 || labels.size(0) != embeddings.size(0)) {
    throw Error(ErrorCode::InvalidArgument,
                "batch loss: expected embeddings [B, D] and labels [B], got " +
                    c10::str(embeddings.sizes()) + " and " + c10::str(labels.sizes()));
  }
}

}  // namespace

torch::Tensor batch_contrastive_loss(const torch::Tensor& embeddings, const torch::Tensor& labels,
                                     Distance distance, double margin, int64_t* active) {
  check_batch(embeddings, labels);
  const auto b = embeddings.size(0);
  auto d = pairwise_distance(embeddings, embeddings, distance);
  auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  auto upper = torch::ones({b, b}, same.options()).triu(1);
  auto pos = same.logical_and(upper);
  auto neg = same.logical_not().logical_and(upper);
  if (active != nullptr) {
    auto dd = d.detach();
    *active = (dd.gt(0).logical_and(pos).sum() + dd.lt(margin).logical_and(neg).sum()).item<int64_t>();
  }
  auto zero = d.sum() * 0;  // keeps the result attached to the graph when a term is empty
  auto pos_term = pos.any().item<bool>() ? d.masked_select(pos).pow(2).mul(0.5).mean() : zero;
  auto neg_term = neg.any().item<bool>()
                      ? (margin - d.masked_select(neg)).clamp_min(0).pow(2).mul(0.5).mean()
                      : zero;
  return pos_term + neg_term;
}

torch::Tensor batch_triplet_loss(const torch::Tensor& embeddings, const torch::Tensor& labels,
                                 Distance distance, double margin, int64_t* active_out) {
  check_batch(embeddings, labels);
  const auto b = embeddings.size(0);
  auto d = pairwise_distance(embeddings, embeddings, distance);
  auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  auto pos = same.logical_and(torch::eye(b, same.options()).logical_not());
  auto neg = same.logical_not();

  if (!std::isfinite(margin)) throw Error(ErrorCode::InvalidArgument, "batch loss: the margin is not a finite number");
  // A triplet (a, p, n) violates the margin when d(a, n) < s(a, p) = d(a, p) + margin, s rounded
  // once for both counts: count_p[a, p] = #negatives n violating with p, count_n[a, n] =
  // #positives p violating with n. Each is a binary search in the anchor's sorted negative
  // distances (sorted s of its positives): O(B² log B) time and O(B²) memory, where testing
  // every triplet is O(B³).
  torch::Tensor count_p, count_n;
  {
    torch::NoGradGuard no_grad;
    const auto dd = d.detach();
    const auto s = dd + margin;
    const double inf = std::numeric_limits<double>::infinity();
    const auto neg_sorted = std::get<0>(dd.masked_fill(neg.logical_not(), inf).sort(1));
    const auto pos_sorted = std::get<0>(s.masked_fill(pos.logical_not(), -inf).sort(1));
    count_p = torch::searchsorted(neg_sorted, s).masked_fill_(pos.logical_not(), 0);
    count_n = (b - torch::searchsorted(pos_sorted, dd, /*out_int32=*/false, /*right=*/true)).masked_fill_(neg.logical_not(), 0);
  }
  const int64_t active = count_p.sum().item<int64_t>();  // exact: int64 counts
  if (active_out != nullptr) *active_out = active;
  if (active == 0) return d.sum() * 0;
  return ((count_p.to(d.dtype()) * d).sum() - (count_n.to(d.dtype()) * d).sum() + margin * static_cast<double>(active)) /
         static_cast<double>(active);
}

}  // namespace siamese
