#include "siamese/eval/pairs_protocol.h"

#include <map>

#include "siamese/core/distance.h"
#include "siamese/core/error.h"
#include "siamese/model/inputs.h"

namespace siamese {

PairsProtocolResult run_pairs_protocol(SavedModel& model, const std::vector<FilePair>& pairs) {
  if (model.network->takes_sequences()) {
    throw Error(ErrorCode::Unsupported, "pairs protocol: a pairs file names images; this model embeds sequences");
  }
  if (pairs.empty()) throw Error(ErrorCode::InvalidArgument, "pairs protocol: no pairs");
  std::map<std::string, int64_t> row;  // each distinct image embedded once
  std::vector<std::string> files;
  for (const auto& p : pairs) {
    for (const auto* f : {&p.a, &p.b}) {
      if (row.emplace(*f, static_cast<int64_t>(files.size())).second) files.push_back(*f);
    }
  }
  auto e = embed_inputs(model, read_files(files, model));
  PairsProtocolResult r;
  std::vector<int64_t> a, b;
  for (const auto& p : pairs) {
    a.push_back(row[p.a]);
    b.push_back(row[p.b]);
    r.same.push_back(p.same);
    r.fold.push_back(p.fold);
  }
  auto distances = paired_distance(e.index_select(0, torch::tensor(a)), e.index_select(0, torch::tensor(b)),
                                   model.network->options.distance()).to(torch::kFloat64).contiguous();
  r.distance.assign(distances.data_ptr<double>(), distances.data_ptr<double>() + distances.numel());
  r.pairs = static_cast<int64_t>(pairs.size());
  r.images = static_cast<int64_t>(files.size());
  r.folds = r.fold.back() + 1;
  if (r.fold.back() > 0) r.cross_validation = cross_validate(r.distance, r.same, r.fold);
  r.model_threshold = model.threshold;
  r.accuracy_at_model_threshold = accuracy_at(r.distance, r.same, model.threshold);
  r.roc_auc = roc_auc(r.distance, r.same);
  r.eer = equal_error_rate(r.distance, r.same);
  r.tar_at_far_1e_3 = tar_at_far(r.distance, r.same, 1e-3);
  r.roc = roc_curve(r.distance, r.same);
  return r;
}

PairsProtocolResult run_pairs_protocol(SavedModel& model, const std::string& pairs_path, const std::string& root) {
  return run_pairs_protocol(model, read_pairs_file(pairs_path, root));
}

}  // namespace siamese
