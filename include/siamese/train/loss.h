#pragma once
/// \file loss.h  (Thread safety: pure functions; any calls may run concurrently.)
/// Contrastive and triplet losses, for explicit pairs/triplets and for every valid
/// pair/triplet inside a labelled batch of embeddings.

#include <torch/torch.h>

#include <string>

#include "siamese/core/distance.h"

namespace siamese {

enum class LossKind { Contrastive, Triplet, NTXent };
/// Parses "contrastive", "triplet" or "ntxent"; throws siamese::Error otherwise.
LossKind parse_loss(const std::string& name);
std::string to_string(LossKind loss);

/// Contrastive loss of Hadsell et al. 2006, averaged over the N pairs:
///   L = Y·D²/2 + (1−Y)·max(0, margin − D)²/2,   Y = 1 for a similar pair.
/// distances [N] (float), similar [N] (0/1, any dtype). Returns a scalar.
torch::Tensor contrastive_loss(const torch::Tensor& distances, const torch::Tensor& similar, double margin);

/// Triplet loss max(0, D(a,p) − D(a,n) + margin), averaged over the N triplets
/// (the reduction of torch::nn::functional::triplet_margin_loss). d_ap [N], d_an [N] -> scalar.
torch::Tensor triplet_loss(const torch::Tensor& d_ap, const torch::Tensor& d_an, double margin);

/// Contrastive loss over all B(B−1)/2 pairs of a labelled batch.
/// embeddings [B, D], labels [B] (int64). The positive pairs and the negative pairs are each
/// averaged, and the two means added, so that the many negatives of a batch do not drown the
/// few positives. Memory O(B²).
/// active (optional): set to the number of pairs with non-zero loss.
torch::Tensor batch_contrastive_loss(const torch::Tensor& embeddings, const torch::Tensor& labels,
                                     Distance distance, double margin, int64_t* active = nullptr);

/// Triplet loss over every valid triplet (a, p, n) of a labelled batch (label(a) = label(p),
/// a ≠ p, label(n) ≠ label(a)), averaged over the triplets with non-zero loss ("batch all",
/// Hermans et al. 2017). embeddings [B, D], labels [B]. O(B² log B) time, O(B²) memory: no
/// [B, B, B] tensor is made; each distance's violated triplets are counted by a binary search in
/// its anchor's sorted row, and the loss is written as a weighted sum of the [B, B] distance
/// matrix, whose gradient equals the triplet sum's.
/// Returns zero (still attached to the graph) when no triplet violates the margin.
/// active (optional): set to the number of triplets with non-zero loss.
torch::Tensor batch_triplet_loss(const torch::Tensor& embeddings, const torch::Tensor& labels,
                                 Distance distance, double margin, int64_t* active = nullptr);

/// Normalised-temperature cross-entropy over a labelled batch (NT-Xent of SimCLR, Chen et al.
/// 2020, in the supervised form of Khosla et al. 2020): with s(i, j) the cosine similarity of
/// embeddings i and j over `temperature`, each item i with positives P(i) (same label, j ≠ i) adds
///   −1/|P(i)| Σ_{p ∈ P(i)} log( exp s(i,p) / Σ_{j ≠ i} exp s(i,j) ),
/// averaged over the items that have a positive. embeddings [B, D], labels [B]. Memory O(B²).
/// active (optional): set to the number of items that have a positive.
torch::Tensor ntxent_loss(const torch::Tensor& embeddings, const torch::Tensor& labels, double temperature,
                          int64_t* active = nullptr);

}  // namespace siamese
