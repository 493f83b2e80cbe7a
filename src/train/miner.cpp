#include "siamese/train/miner.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <limits>

#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"

namespace siamese {

constexpr EnumNames<MinerKind, 5> kMinerKindNames{{{MinerKind::All, "all"}, {MinerKind::BatchHard, "batch-hard"}, {MinerKind::SemiHard, "semi-hard"}, {MinerKind::HardPairs, "hard-pairs"}, {MinerKind::DistanceWeighted, "distance-weighted"}}};

MinerKind parse_miner(const std::string& name) { return parse_enum(kMinerKindNames, name, "miner"); }

std::string to_string(MinerKind miner) { return enum_name(kMinerKindNames, miner); }

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Masks {
  torch::Tensor pos, neg;  // [B, B] bool: same class (not self), other class
};

Masks label_masks(const torch::Tensor& labels) {
  auto same = labels.unsqueeze(0) == labels.unsqueeze(1);
  return {same.logical_and(torch::eye(labels.size(0), same.options()).logical_not()), same.logical_not()};
}

Masks masks_of(const torch::Tensor& d, const torch::Tensor& labels) {
  if (d.dim() != 2 || d.size(0) != d.size(1) || labels.dim() != 1 || labels.size(0) != d.size(0)) {
    throw Error(ErrorCode::InvalidArgument,
                "miner: expected distances [B, B] and labels [B], got " + c10::str(d.sizes()) + " and " +
                    c10::str(labels.sizes()));
  }
  return label_masks(labels);
}

MinedTriplets empty_triplets() {
  auto e = torch::empty({0}, torch::kInt64);
  return {e, e, e};
}

/// Per anchor: index of its nearest negative, and whether it has any negative.
std::pair<torch::Tensor, torch::Tensor> nearest_negative(const torch::Tensor& d, const Masks& m) {
  return {d.masked_fill(m.neg.logical_not(), kInf).argmin(1), m.neg.any(1)};
}

/// Picks, for every positive pair (a, p), a negative with `choose(a [m], rows [m, B], d_ap [m, 1],
/// neg [m, B])`, which returns (negative [m], found [m] bool). Positive pairs go in blocks so that
/// memory stays O(B²).
template <typename Choose>
MinedTriplets per_positive_pair(const torch::Tensor& d, const Masks& m, Choose choose) {
  auto pairs = m.pos.nonzero();
  if (pairs.size(0) == 0) return empty_triplets();
  const int64_t b = d.size(0);
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(1, b));
  std::vector<torch::Tensor> as, ps, ns;
  for (int64_t s = 0; s < pairs.size(0); s += block) {
    auto chunk = pairs.slice(0, s, std::min(pairs.size(0), s + block));
    auto a = chunk.select(1, 0).contiguous(), p = chunk.select(1, 1).contiguous();
    auto rows = d.index_select(0, a);
    auto [n, found] = choose(a, rows, rows.gather(1, p.unsqueeze(1)), m.neg.index_select(0, a));
    as.push_back(a.masked_select(found));
    ps.push_back(p.masked_select(found));
    ns.push_back(n.masked_select(found));
  }
  return {torch::cat(as), torch::cat(ps), torch::cat(ns)};
}

}  // namespace

MinedTriplets mine_triplets(MinerKind miner, const torch::Tensor& distances, const torch::Tensor& labels,
                            const MinerOptions& options) {
  torch::NoGradGuard no_grad;
  auto d = distances.detach().to(torch::kFloat64);
  auto m = masks_of(d, labels);
  switch (miner) {
    case MinerKind::All:
      throw Error(ErrorCode::InvalidArgument, "miner: 'all' lists no triplets; use batch_triplet_loss / mined_loss");
    case MinerKind::BatchHard: {
      auto hardest_positive = d.masked_fill(m.pos.logical_not(), -kInf).argmax(1);
      auto [hardest_negative, has_negative] = nearest_negative(d, m);
      auto anchors = m.pos.any(1).logical_and(has_negative).nonzero().squeeze(1);
      return {anchors, hardest_positive.index_select(0, anchors), hardest_negative.index_select(0, anchors)};
    }
    case MinerKind::SemiHard: {
      const double margin = options.margin();
      return per_positive_pair(d, m, [margin](const torch::Tensor&, const torch::Tensor& rows,
                                              const torch::Tensor& d_ap, const torch::Tensor& neg) {
        auto window = neg.logical_and(rows > d_ap).logical_and(rows < d_ap + margin);
        auto [value, n] = rows.masked_fill(window.logical_not(), kInf).min(1);
        return std::make_pair(n, torch::isfinite(value));
      });
    }
    case MinerKind::HardPairs: {
      // Not a structured binding: lambdas capture those only from C++20 (clang rejects it in C++17).
      const auto negatives = nearest_negative(d, m);
      const auto& nearest = negatives.first;
      const auto& has_negative = negatives.second;
      return per_positive_pair(d, m, [&](const torch::Tensor& a, const torch::Tensor&, const torch::Tensor&,
                                         const torch::Tensor&) {
        return std::make_pair(nearest.index_select(0, a), has_negative.index_select(0, a));
      });
    }
    case MinerKind::DistanceWeighted: {
      if (options.dim() < 2) {
        throw Error(ErrorCode::InvalidArgument, "distance-weighted miner: embedding dimension must be >= 2");
      }
      const double n = static_cast<double>(options.dim());
      auto c = d.clamp_min(options.cutoff());
      // Weight 1 / q(d): log w = (2 − n) log d − ((n − 3) / 2) log(1 − d²/4), normalised per row.
      auto log_w = (2.0 - n) * c.log() - ((n - 3.0) / 2.0) * (1.0 - 0.25 * c.pow(2)).clamp_min(1e-8).log();
      auto allowed = m.neg.logical_and(d < options.nonzero_loss_cutoff());
      log_w = log_w.masked_fill(allowed.logical_not(), -kInf);
      auto row_max = std::get<0>(log_w.max(1, true)).clamp_min(-1e300);
      auto weights = (log_w - row_max).exp().masked_fill(allowed.logical_not(), 0);
      auto has = allowed.any(1);
      // Rows without an allowed negative get uniform weights (never used: `found` is false there).
      weights = torch::where(has.unsqueeze(1), weights, torch::ones_like(weights));
      auto gen = at::detail::createCPUGenerator(options.seed());
      return per_positive_pair(d, m, [&](const torch::Tensor& a, const torch::Tensor&, const torch::Tensor&,
                                         const torch::Tensor&) {
        auto picked = torch::multinomial(weights.index_select(0, a), 1, true, gen).squeeze(1);
        return std::make_pair(picked, has.index_select(0, a));
      });
    }
  }
  return empty_triplets();
}

MinedPairs mine_pairs(MinerKind miner, const torch::Tensor& distances, const torch::Tensor& labels,
                      const MinerOptions& options) {
  if (miner != MinerKind::HardPairs) {
    auto t = mine_triplets(miner, distances, labels, options);
    const auto count = t.size();
    return {torch::cat({t.anchor, t.anchor}), torch::cat({t.positive, t.negative}),
            torch::cat({torch::ones({count}, torch::kInt64), torch::zeros({count}, torch::kInt64)})};
  }
  torch::NoGradGuard no_grad;
  auto d = distances.detach().to(torch::kFloat64);
  auto m = masks_of(d, labels);
  auto upper = torch::ones_like(m.pos).triu(1);
  auto pos = m.pos.logical_and(upper).nonzero();
  auto neg = m.neg.logical_and(upper).nonzero();
  const int64_t count = std::min(pos.size(0), neg.size(0));
  auto neg_d = d.index({neg.select(1, 0), neg.select(1, 1)});
  auto nearest = std::get<1>(neg_d.topk(count, 0, /*largest=*/false, /*sorted=*/true));
  auto hard = neg.index_select(0, nearest);
  return {torch::cat({pos.select(1, 0), hard.select(1, 0)}), torch::cat({pos.select(1, 1), hard.select(1, 1)}),
          torch::cat({torch::ones({pos.size(0)}, torch::kInt64), torch::zeros({count}, torch::kInt64)})};
}

MinedLoss mined_loss(LossKind loss, MinerKind miner, const torch::Tensor& embeddings, const torch::Tensor& labels,
                     Distance distance, double margin, uint64_t seed, double temperature) {
  MinedLoss r;
  if (loss == LossKind::NTXent) {
    if (miner != MinerKind::All) {
      throw Error(ErrorCode::InvalidArgument, "mined_loss: the ntxent loss weighs every pair itself; use miner all");
    }
    r.loss = ntxent_loss(embeddings, labels, temperature, &r.active);
    r.selected = labels.size(0);
    return r;
  }
  if (miner == MinerKind::All) {
    auto m = label_masks(labels);
    if (loss == LossKind::Triplet) {
      r.loss = batch_triplet_loss(embeddings, labels, distance, margin, &r.active);
      r.selected = (m.pos.sum(1) * m.neg.sum(1)).sum().item<int64_t>();
    } else {
      r.loss = batch_contrastive_loss(embeddings, labels, distance, margin, &r.active);
      r.selected = labels.size(0) * (labels.size(0) - 1) / 2;
    }
    return r;
  }
  auto d = pairwise_distance(embeddings, embeddings, distance);
  auto options = MinerOptions().margin(margin).seed(seed).dim(embeddings.size(1));
  torch::Tensor terms;
  // The miners run on the CPU (their seeded draws use a CPU generator); the loss where d is.
  const auto on = [&](const torch::Tensor& index) { return index.to(d.device()); };
  const auto d_cpu = d.detach().cpu();
  const auto labels_cpu = labels.cpu();
  if (loss == LossKind::Triplet) {
    auto t = mine_triplets(miner, d_cpu, labels_cpu, options);
    const auto a = on(t.anchor);
    terms = (d.index({a, on(t.positive)}) - d.index({a, on(t.negative)}) + margin).clamp_min(0);
  } else {
    auto p = mine_pairs(miner, d_cpu, labels_cpu, options);
    auto dd = d.index({on(p.first), on(p.second)});
    auto y = on(p.same).to(dd.dtype());
    terms = (y * dd.pow(2) + (1 - y) * (margin - dd).clamp_min(0).pow(2)) * 0.5;
  }
  r.selected = terms.size(0);
  r.active = terms.detach().gt(0).sum().item<int64_t>();
  r.loss = r.selected > 0 ? terms.mean() : d.sum() * 0;
  return r;
}

HardNegatives mine_hard_negatives(const torch::Tensor& embeddings, const std::vector<int64_t>& labels,
                                  Distance distance, int64_t per_item) {
  const int64_t n = embeddings.size(0);
  if (static_cast<int64_t>(labels.size()) != n) {
    throw Error(ErrorCode::InvalidArgument,
                "offline mining: " + std::to_string(n) + " embeddings but " + std::to_string(labels.size()) +
                    " labels");
  }
  if (per_item < 1) throw Error(ErrorCode::InvalidArgument, "offline mining: negatives per item must be >= 1");
  torch::NoGradGuard no_grad;
  const auto y = torch::tensor(labels, torch::kInt64);
  HardNegatives hard;
  hard.per_item = per_item;
  hard.items.reserve(n * per_item);
  const int64_t block = 1024;
  for (int64_t begin = 0; begin < n; begin += block) {
    const int64_t end = std::min(n, begin + block);
    auto d = pairwise_distance(embeddings.slice(0, begin, end), embeddings, distance);
    auto same = y.slice(0, begin, end).unsqueeze(1).eq(y.unsqueeze(0));
    const auto others = (~same).sum(1).min().item<int64_t>();
    if (others < per_item) {
      throw Error(ErrorCode::InvalidArgument,
                  "offline mining: an item has only " + std::to_string(others) + " items of other classes; " +
                      std::to_string(per_item) + " asked");
    }
    d.masked_fill_(same, std::numeric_limits<float>::infinity());
    auto nearest = std::get<1>(d.topk(per_item, 1, /*largest=*/false, /*sorted=*/true)).contiguous();
    auto* p = nearest.data_ptr<int64_t>();
    hard.items.insert(hard.items.end(), p, p + nearest.numel());
  }
  return hard;
}

}  // namespace siamese
