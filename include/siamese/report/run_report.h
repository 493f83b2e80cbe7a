#pragma once
/// \file run_report.h  One self-contained HTML page per run: the run's options and machine, its
/// epochs, the test metrics beside the protocol's non-learned reference, ROC curve, pair-distance
/// histograms, Recall@1 per class, a 2-D map of the test embeddings (PCA) with thumbnails on
/// hover, nearest-neighbour grids, the most confused classes, and one-shot episodes on
/// unseen-class protocols. Images are inline (PNG data URIs), plots are inline SVG, the style is
/// inline CSS; the page has no script and loads nothing from the network.
/// Thread safety: render_run_report may run concurrently on one model in eval mode (it embeds
/// through embed_dataset); the other functions are pure or read files only.

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "siamese/core/log.h"
#include "siamese/eval/metrics.h"
#include "siamese/model/inputs.h"
#include "siamese/model/model_file.h"

namespace siamese {

/// The records `siamese train` leaves in a run folder, as text; a file that is absent stays "".
struct RunRecord {
  std::string folder;        ///< the run folder ("" for a model without one)
  std::string config_json;   ///< config.json: every option of the run, one flat object
  std::string history_csv;   ///< history.csv: one row per epoch, with a header
  std::string metrics_json;  ///< metrics.json: the test metrics, training time, machine, commit
};
/// Reads dir's config.json, history.csv and metrics.json (those that exist). Throws
/// siamese::Error (NotFound) when dir is not a folder, (IOError) when a file exists but cannot
/// be read.
RunRecord read_run_record(const std::string& dir);

/// What the page samples. Every draw is seeded, so one run gives one page.
struct ReportOptions {
  /// Test items drawn on the embedding map, each with its thumbnail (its text for sequence
  /// models) shown on hover. Default 1000.
  TORCH_ARG(int64_t, samples) = 1000;
  /// Sample queries of the nearest-neighbour grid, and neighbours per query. Defaults 8 and 8.
  TORCH_ARG(int64_t, queries) = 8;
  TORCH_ARG(int64_t, neighbours) = 8;
  /// One-shot (5-way 1-shot) episodes shown on unseen-class protocols and sequences. Default 3.
  TORCH_ARG(int64_t, episodes) = 3;
  /// Balanced test pairs of the ROC curve and histograms (seed 0, as evaluate). Default 10000.
  TORCH_ARG(int64_t, test_pairs) = 10000;
  /// Seed of the samples, queries and episodes. Default 0.
  TORCH_ARG(uint64_t, seed) = 0;
};

/// Figures the caller has already computed (train and eval print them), shown as given instead
/// of being computed again.
struct ReportFigures {
  std::optional<EvalReport> test;       ///< the model's metrics on data.test (evaluate)
  std::optional<EvalReport> reference;  ///< raw_pixel_reference on data.test
};

/// The page for `model` on `data` (its test split is embedded; validation calibrates the
/// raw-pixel reference), with the run's records where there are any. Progress goes to `logger`.
/// Throws siamese::Error on data the model cannot embed, or a test split with fewer than 2
/// classes.
std::string render_run_report(SavedModel& model, const TrainedData& data, const RunRecord& run,
                              const ReportOptions& options = {}, const ReportFigures& figures = {},
                              Logger& logger = silent_logger());

/// The metrics a summary shows, in this order: (key in to_json(EvalReport), name for people).
/// The page's metrics table and the CLI's summary both read it.
const std::vector<std::pair<std::string, std::string>>& summary_metrics();

/// The first two principal components of the rows of x [N, D] (N >= 2, D >= 1): returns [N, 2],
/// the rows centred and projected on the two eigenvectors of the covariance with the largest
/// eigenvalues (one column of zeros when D == 1). Each axis' sign makes its largest-magnitude
/// loading positive, so the map does not flip between runs.
torch::Tensor pca_2d(const torch::Tensor& x);

/// The nearest other item of every row of e [N, D] (N >= 2) by `distance`, and for the rows in
/// `queries` their `k` nearest other items, nearest first. Computed in blocks of rows.
struct Neighbours {
  std::vector<int64_t> nearest;                ///< [N]: index of each row's nearest other row
  std::vector<std::vector<int64_t>> of_query;  ///< [queries.size()][min(k, N − 1)]
  std::vector<std::vector<double>> distance;   ///< their distances
};
Neighbours nearest_neighbours(const torch::Tensor& e, Distance distance, const std::vector<int64_t>& queries, int64_t k);

}  // namespace siamese
