#pragma once
/// \file miner.h  Online mining: which pairs or triplets of a labelled batch of embeddings count.
/// Thread safety: pure functions of their arguments (seeded); any calls may run concurrently.
///
/// Miners look at the detached distance matrix of the batch and return indices; the loss is then
/// computed on the chosen pairs/triplets only, with gradients flowing through the embeddings.

#include <torch/torch.h>

#include <string>

#include "siamese/core/distance.h"
#include "siamese/train/loss.h"
#include "siamese/data/sampler.h"

namespace siamese {

enum class MinerKind {
  All,               ///< every valid pair / triplet (batch_contrastive_loss, batch_triplet_loss)
  BatchHard,         ///< per anchor: its farthest positive and nearest negative (Hermans et al. 2017)
  SemiHard,          ///< per positive pair: the nearest negative farther than the positive but within the margin (FaceNet)
  HardPairs,         ///< all positive pairs and as many of the nearest negative pairs (dlib's metric loss)
  DistanceWeighted,  ///< per positive pair: a negative drawn with weight 1/q(d) of unit-sphere distances (Wu et al. 2017)
};
/// Parses "all", "batch-hard", "semi-hard", "hard-pairs", "distance-weighted".
MinerKind parse_miner(const std::string& name);
std::string to_string(MinerKind miner);

/// Triplets of batch indices, each [T] int64: anchor, positive (same class), negative (other class).
struct MinedTriplets {
  torch::Tensor anchor, positive, negative;
  int64_t size() const { return anchor.size(0); }
};

/// Pairs of batch indices, each [M] int64, and same [M] (1 = same class).
struct MinedPairs {
  torch::Tensor first, second, same;
  int64_t size() const { return first.size(0); }
};

/// What the miners need besides the distances.
struct MinerOptions {
  /// Semi-hard window: negatives with d(a,p) < d(a,n) < d(a,p) + margin. Default 0.2.
  TORCH_ARG(double, margin) = 0.2;
  /// Distance-weighted: seed of the sampling, embedding dimension n of the unit-sphere density
  /// q(d) ∝ d^(n−2) (1 − d²/4)^((n−3)/2), distances below `cutoff` count as `cutoff`, and
  /// negatives at or beyond `nonzero_loss_cutoff` are never drawn. Defaults 0, 64, 0.5, 1.4.
  TORCH_ARG(uint64_t, seed) = 0;
  TORCH_ARG(int64_t, dim) = 64;
  TORCH_ARG(double, cutoff) = 0.5;
  TORCH_ARG(double, nonzero_loss_cutoff) = 1.4;
};

/// Chooses triplets from distances [B, B] (detached) and labels [B]. Not for MinerKind::All, whose
/// O(B³) triplets the batch losses handle without listing them. HardPairs as triplets: every
/// positive pair with the anchor's nearest negative.
MinedTriplets mine_triplets(MinerKind miner, const torch::Tensor& distances, const torch::Tensor& labels,
                            const MinerOptions& options = {});

/// Chooses pairs: HardPairs gives every positive pair (i < j) and the same number of the nearest
/// negative pairs; the triplet miners give (a, p, same) and (a, n, different) of their triplets.
MinedPairs mine_pairs(MinerKind miner, const torch::Tensor& distances, const torch::Tensor& labels,
                      const MinerOptions& options = {});

/// A loss and how many of its terms were non-zero ("active").
struct MinedLoss {
  torch::Tensor loss;    ///< scalar, attached to the graph
  int64_t active = 0;    ///< pairs/triplets with non-zero loss
  int64_t selected = 0;  ///< pairs/triplets the miner chose (all valid ones for MinerKind::All)
};

/// The loss of a labelled batch under a miner: embeddings [B, D], labels [B].
/// MinerKind::All gives batch_contrastive_loss / batch_triplet_loss, or ntxent_loss at
/// `temperature` (the ntxent loss weighs every pair itself and takes no other miner); the others
/// mine on detached distances and average the loss over the chosen pairs (contrastive) or
/// triplets (triplet). The loss margin is also the semi-hard window, and the embedding size is the
/// distance-weighted dimension.
MinedLoss mined_loss(LossKind loss, MinerKind miner, const torch::Tensor& embeddings, const torch::Tensor& labels,
                     Distance distance, double margin, uint64_t seed = 0, double temperature = 0.1);

/// Offline mining: for every row of embeddings [N, D], the `per_item` nearest rows with another
/// label, nearest first. Works in blocks of rows: memory O(block · N), not O(N²).
/// Throws siamese::Error when an item has fewer than `per_item` items of other classes.
HardNegatives mine_hard_negatives(const torch::Tensor& embeddings, const std::vector<int64_t>& labels,
                                  Distance distance, int64_t per_item);

}  // namespace siamese
