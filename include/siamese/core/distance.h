#pragma once
/// \file distance.h  Distances between embeddings, as pairwise matrices or row by row.
/// Thread safety: pure functions of their arguments; any calls may run concurrently.

#include <torch/torch.h>

#include <string>

namespace siamese {

/// How dissimilarity is measured. Every choice grows with dissimilarity: cosine is 1 − cos,
/// Manhattan is ‖a − b‖₁, and MaLSTM is 1 − exp(−‖a − b‖₁), one minus the Manhattan similarity of
/// the MaLSTM sentence model (Mueller & Thyagarajan 2016), in [0, 1).
enum class Distance { Euclidean, SqEuclidean, Cosine, Manhattan, MaLSTM };

/// Parses "euclidean", "sqeuclidean", "cosine", "manhattan" or "malstm"; throws siamese::Error otherwise.
Distance parse_distance(const std::string& name);
std::string to_string(Distance distance);

/// All distances between the rows of x [N, D] and y [M, D]: returns [N, M].
/// Euclidean uses sqrt(max(d², 1e-12)) so that its gradient stays finite at zero distance.
torch::Tensor pairwise_distance(const torch::Tensor& x, const torch::Tensor& y, Distance distance);

/// Distances between matching rows: a [N, D], b [N, D] -> [N].
torch::Tensor paired_distance(const torch::Tensor& a, const torch::Tensor& b, Distance distance);

}  // namespace siamese
