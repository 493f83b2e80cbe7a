#include "siamese/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "siamese/core/enum_table.h"
#include "siamese/core/error.h"
#include "siamese/data/sampler.h"

namespace siamese {

RetrievalMetrics retrieval_metrics(const torch::Tensor& embeddings, const std::vector<int64_t>& labels,
                                   Distance distance) {
  const int64_t n = embeddings.size(0);
  if (n != static_cast<int64_t>(labels.size()) || n < 2) {
    throw Error(ErrorCode::InvalidArgument, "retrieval: need embeddings [N >= 2, D] with N labels");
  }
  auto lab = torch::tensor(labels, torch::kInt64);
  auto counts = torch::bincount(lab);
  auto others = counts.index_select(0, lab) - 1;  // R of each query
  const int64_t k = std::min<int64_t>(n - 1, std::max<int64_t>(5, others.max().item<int64_t>()));
  double hits1 = 0, hits5 = 0, ap_sum = 0;
  int64_t ap_count = 0;
  auto class_hits = torch::zeros({counts.size(0)}, torch::kFloat64);
  torch::NoGradGuard no_grad;
  const int64_t block = 256;
  auto e = embeddings.to(torch::kFloat32);
  auto ranks = torch::arange(1, k + 1, torch::kFloat64).unsqueeze(0);
  for (int64_t s = 0; s < n; s += block) {
    const int64_t m = std::min(block, n - s);
    auto d = pairwise_distance(e.slice(0, s, s + m), e, distance);
    d.index_put_({torch::arange(m), torch::arange(s, s + m)}, std::numeric_limits<float>::infinity());
    auto nn = std::get<1>(d.topk(k, 1, /*largest=*/false, /*sorted=*/true));
    auto match = lab.index_select(0, nn.reshape(-1)).view({m, k}).eq(lab.slice(0, s, s + m).unsqueeze(1));
    auto mf = match.to(torch::kFloat64);
    hits1 += mf.select(1, 0).sum().item<double>();
    class_hits.index_add_(0, lab.slice(0, s, s + m), mf.select(1, 0));
    hits5 += match.slice(1, 0, std::min<int64_t>(5, k)).any(1).to(torch::kFloat64).sum().item<double>();
    auto r = others.slice(0, s, s + m).to(torch::kFloat64).unsqueeze(1);
    auto within = (ranks <= r).to(torch::kFloat64);
    auto precision = mf.cumsum(1) / ranks;
    auto ap = (precision * mf * within).sum(1) / r.squeeze(1).clamp_min(1);
    auto has = r.squeeze(1) > 0;
    ap_sum += ap.masked_select(has).sum().item<double>();
    ap_count += has.sum().item<int64_t>();
  }
  auto by_class = (class_hits / counts.to(torch::kFloat64).clamp_min(1)).contiguous();
  return {hits1 / n, hits5 / n, ap_count > 0 ? ap_sum / ap_count : 0.0,
          std::vector<double>(by_class.data_ptr<double>(), by_class.data_ptr<double>() + by_class.numel())};
}

Pairs balanced_pairs(const std::vector<int64_t>& labels, int64_t count, uint64_t seed) {
  const auto by_class = indices_by_class(labels);
  std::vector<int64_t> anchors;  // items with a same-class partner
  for (const auto& c : by_class) {
    if (c.size() >= 2) anchors.insert(anchors.end(), c.begin(), c.end());
  }
  int64_t classes = 0;
  for (const auto& c : by_class) classes += c.empty() ? 0 : 1;
  if (anchors.empty() || classes < 2) {
    throw Error(ErrorCode::InvalidArgument, "pairs: need 2 classes and a class with 2 items");
  }
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  Pairs pairs;
  for (int64_t i = 0; i < count; ++i) {
    const bool positive = i < count / 2;
    int64_t a = positive ? anchors[uniform(anchors.size())] : static_cast<int64_t>(uniform(labels.size()));
    int64_t b = a;
    if (positive) {
      const auto& same = by_class[labels[a]];
      while (b == a) b = same[uniform(same.size())];
    } else {
      while (labels[b] == labels[a]) b = static_cast<int64_t>(uniform(labels.size()));
    }
    pairs.a.push_back(a);
    pairs.b.push_back(b);
    pairs.same.push_back(positive ? 1 : 0);
  }
  return pairs;
}

std::vector<double> pair_distances(const torch::Tensor& embeddings, const Pairs& pairs, Distance distance) {
  torch::NoGradGuard no_grad;
  const auto a = torch::tensor(pairs.a, torch::kInt64), b = torch::tensor(pairs.b, torch::kInt64);
  // The pairs' rows gathered a chunk at a time: wide rows (raw pixels of photographs, 37,632
  // values at 112 px) times 10,000 pairs would be gigabytes at once.
  const int64_t rows = std::max<int64_t>(1, kValuesPerPass / std::max<int64_t>(1, embeddings.size(1)));
  std::vector<double> out;
  out.reserve(pairs.a.size());
  for (int64_t start = 0; start < a.size(0); start += rows) {
    const auto n = std::min(rows, a.size(0) - start);
    auto d = paired_distance(embeddings.index_select(0, a.narrow(0, start, n)),
                             embeddings.index_select(0, b.narrow(0, start, n)), distance)
                 .to(torch::kFloat64)
                 .contiguous();
    out.insert(out.end(), d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  }
  return out;
}

namespace {

void check_scores(const std::vector<double>& distance, const std::vector<uint8_t>& same) {
  if (distance.size() != same.size()) {
    throw Error(ErrorCode::InvalidArgument, "verification: distances and labels differ in count");
  }
  const auto pos = std::count(same.begin(), same.end(), 1);
  if (pos == 0 || pos == static_cast<int64_t>(same.size())) {
    throw Error(ErrorCode::InvalidArgument, "verification: need both same and different pairs");
  }
  for (double d : distance) {
    if (std::isnan(d)) throw Error(ErrorCode::InvalidArgument, "verification: NaN distance (diverged model?)");
  }
}

std::vector<size_t> ascending(const std::vector<double>& distance) {
  std::vector<size_t> order(distance.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return distance[i] < distance[j]; });
  return order;
}

}  // namespace

Roc roc_curve(const std::vector<double>& distance, const std::vector<uint8_t>& same) {
  check_scores(distance, same);
  const double pos = static_cast<double>(std::count(same.begin(), same.end(), 1));
  const double neg = static_cast<double>(same.size()) - pos;
  auto order = ascending(distance);
  Roc roc;
  roc.threshold.push_back(-std::numeric_limits<double>::infinity());
  roc.fpr.push_back(0);
  roc.tpr.push_back(0);
  double tp = 0, fp = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    (same[order[i]] ? tp : fp) += 1;
    if (i + 1 < order.size() && distance[order[i + 1]] == distance[order[i]]) continue;  // ties: one point
    roc.threshold.push_back(distance[order[i]]);
    roc.fpr.push_back(fp / neg);
    roc.tpr.push_back(tp / pos);
  }
  return roc;
}

double roc_auc(const std::vector<double>& distance, const std::vector<uint8_t>& same) {
  auto roc = roc_curve(distance, same);
  double area = 0;  // trapezoids: equals the Mann–Whitney statistic with ties counted half
  for (size_t i = 1; i < roc.fpr.size(); ++i) {
    area += (roc.fpr[i] - roc.fpr[i - 1]) * (roc.tpr[i] + roc.tpr[i - 1]) / 2;
  }
  return area;
}

double equal_error_rate(const std::vector<double>& distance, const std::vector<uint8_t>& same) {
  auto roc = roc_curve(distance, same);
  for (size_t i = 1; i < roc.fpr.size(); ++i) {
    const double gap = roc.fpr[i] - (1 - roc.tpr[i]);  // FAR − FRR, rising with the threshold
    if (gap >= 0) {
      const double prev = roc.fpr[i - 1] - (1 - roc.tpr[i - 1]);
      const double t = prev == gap ? 0 : -prev / (gap - prev);
      return roc.fpr[i - 1] + t * (roc.fpr[i] - roc.fpr[i - 1]);
    }
  }
  return 1.0;
}

double tar_at_far(const std::vector<double>& distance, const std::vector<uint8_t>& same, double far) {
  auto roc = roc_curve(distance, same);
  double best = 0;
  for (size_t i = 0; i < roc.fpr.size(); ++i) {
    if (roc.fpr[i] <= far) best = std::max(best, roc.tpr[i]);
  }
  return best;
}

bool all_at_one_distance(const std::vector<double>& distance) {
  if (distance.empty()) return false;
  const auto [lo, hi] = std::minmax_element(distance.begin(), distance.end());
  return *hi - *lo <= 1e-6 * std::max(1.0, std::abs(*hi));
}

double calibrate_threshold(const std::vector<double>& distance, const std::vector<uint8_t>& same) {
  check_scores(distance, same);
  auto order = ascending(distance);
  const double neg = static_cast<double>(std::count(same.begin(), same.end(), 0));
  double correct = neg;  // threshold below every distance: all "different"
  double best = correct;
  double threshold = distance[order[0]] - 1e-6;
  for (size_t i = 0; i < order.size(); ++i) {
    correct += same[order[i]] ? 1 : -1;
    if (i + 1 < order.size() && distance[order[i + 1]] == distance[order[i]]) continue;
    if (correct > best) {
      best = correct;
      threshold = i + 1 < order.size() ? (distance[order[i]] + distance[order[i + 1]]) / 2 : distance[order[i]];
    }
  }
  return threshold;
}

double accuracy_at(const std::vector<double>& distance, const std::vector<uint8_t>& same, double threshold) {
  if (distance.empty() || distance.size() != same.size()) {
    throw Error(ErrorCode::InvalidArgument, "accuracy: empty or mismatched pairs");
  }
  int64_t right = 0;
  for (size_t i = 0; i < distance.size(); ++i) right += ((distance[i] <= threshold) == (same[i] != 0)) ? 1 : 0;
  return static_cast<double>(right) / static_cast<double>(distance.size());
}

double few_shot_accuracy(const torch::Tensor& embeddings, const std::vector<int64_t>& labels,
                         Distance distance, int64_t n_way, int64_t k_shot, int64_t episodes, uint64_t seed) {
  const auto by_class = indices_by_class(labels);
  std::vector<int64_t> usable;  // classes with K supports and a query
  for (size_t c = 0; c < by_class.size(); ++c) {
    if (static_cast<int64_t>(by_class[c].size()) > k_shot) usable.push_back(static_cast<int64_t>(c));
  }
  if (static_cast<int64_t>(usable.size()) < n_way) {
    throw Error(ErrorCode::InvalidArgument,
                "few-shot: " + std::to_string(n_way) + "-way " + std::to_string(k_shot) + "-shot needs " +
                    std::to_string(n_way) + " classes with " + std::to_string(k_shot + 1) + "+ items, found " +
                    std::to_string(usable.size()));
  }
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(seed);
  int64_t right = 0;
  for (int64_t e = 0; e < episodes; ++e) {
    std::vector<int64_t> classes = usable;
    std::shuffle(classes.begin(), classes.end(), rng);
    std::vector<torch::Tensor> means;
    std::vector<int64_t> queries;
    for (int64_t c = 0; c < n_way; ++c) {
      std::vector<int64_t> picked;
      std::sample(by_class[classes[c]].begin(), by_class[classes[c]].end(), std::back_inserter(picked),
                  k_shot + 1, rng);
      std::shuffle(picked.begin(), picked.end(), rng);
      queries.push_back(picked.back());
      picked.pop_back();
      means.push_back(embeddings.index_select(0, torch::tensor(picked, torch::kInt64)).mean(0));
    }
    auto d = pairwise_distance(embeddings.index_select(0, torch::tensor(queries, torch::kInt64)),
                               torch::stack(means), distance);
    auto guess = d.argmin(1);
    right += guess.eq(torch::arange(n_way)).sum().item<int64_t>();
  }
  return static_cast<double>(right) / static_cast<double>(episodes * n_way);
}

CrossValidation cross_validate(const std::vector<double>& distance, const std::vector<uint8_t>& same,
                               const std::vector<int64_t>& fold) {
  if (distance.size() != same.size() || distance.size() != fold.size()) {
    throw Error(ErrorCode::InvalidArgument, "cross-validation: distance, same and fold must have one entry per pair");
  }
  const int64_t folds = fold.empty() ? 0 : *std::max_element(fold.begin(), fold.end()) + 1;
  if (folds < 2) {
    throw Error(ErrorCode::InvalidArgument, "cross-validation needs at least 2 folds, got " + std::to_string(folds));
  }
  CrossValidation cv;
  for (int64_t k = 0; k < folds; ++k) {
    std::vector<double> train_d, test_d;
    std::vector<uint8_t> train_s, test_s;
    for (size_t i = 0; i < distance.size(); ++i) {
      (fold[i] == k ? test_d : train_d).push_back(distance[i]);
      (fold[i] == k ? test_s : train_s).push_back(same[i]);
    }
    if (test_d.empty()) {
      throw Error(ErrorCode::InvalidArgument, "cross-validation: fold " + std::to_string(k) + " has no pairs");
    }
    const double t = calibrate_threshold(train_d, train_s);
    cv.fold_threshold.push_back(t);
    cv.fold_accuracy.push_back(accuracy_at(test_d, test_s, t));
  }
  for (double a : cv.fold_accuracy) cv.accuracy_mean += a / static_cast<double>(folds);
  for (double a : cv.fold_accuracy) cv.accuracy_std += (a - cv.accuracy_mean) * (a - cv.accuracy_mean) / static_cast<double>(folds);
  cv.accuracy_std = std::sqrt(cv.accuracy_std);
  return cv;
}

constexpr EnumNames<SupportRule, 2> kSupportRuleNames{{{SupportRule::ClassMean, "mean"}, {SupportRule::Nearest, "nearest"}}};

SupportRule parse_support_rule(const std::string& name) { return parse_enum(kSupportRuleNames, name, "support rule"); }

std::vector<SupportMatch> classify_by_support(const torch::Tensor& queries, const torch::Tensor& support,
                                              const std::vector<int64_t>& support_labels, Distance distance,
                                              SupportRule rule, double threshold) {
  if (queries.dim() != 2 || support.dim() != 2 || queries.size(1) != support.size(1) ||
      support.size(0) != static_cast<int64_t>(support_labels.size())) {
    throw Error(ErrorCode::InvalidArgument, "one-shot: queries [Q, D], support [S, D] and S support labels expected");
  }
  std::vector<int64_t> classes(support_labels);
  std::sort(classes.begin(), classes.end());
  classes.erase(std::unique(classes.begin(), classes.end()), classes.end());
  if (classes.size() < 2) {
    throw Error(ErrorCode::InvalidArgument,
                "one-shot: the support set has " + std::to_string(classes.size()) +
                    " class; it needs at least 2 to choose between");
  }
  torch::NoGradGuard no_grad;
  auto labels = torch::tensor(support_labels, torch::kInt64);
  auto q = queries.to(torch::kFloat64), s = support.to(torch::kFloat64);
  std::vector<torch::Tensor> members;  // support rows of each class
  for (int64_t c : classes) members.push_back(labels.eq(c).nonzero().squeeze(1));
  torch::Tensor all;  // [Q, classes]
  if (rule == SupportRule::Nearest) {
    auto d = pairwise_distance(q, s, distance);  // [Q, S]
    std::vector<torch::Tensor> nearest;
    for (const auto& m : members) nearest.push_back(d.index_select(1, m).amin(1));
    all = torch::stack(nearest, 1);
  } else {
    std::vector<torch::Tensor> means;
    for (const auto& m : members) means.push_back(s.index_select(0, m).mean(0));
    all = pairwise_distance(q, torch::stack(means), distance);
  }
  auto [best, at] = all.min(1);
  std::vector<SupportMatch> out;
  for (int64_t q = 0; q < queries.size(0); ++q) {
    const double b = best[q].item<double>();
    const bool none = threshold >= 0 && b > threshold;
    out.push_back({none ? -1 : classes[static_cast<size_t>(at[q].item<int64_t>())], b});
  }
  return out;
}

std::string to_json(const EvalReport& r, bool by_class) {
  nlohmann::ordered_json j;
  j["protocol"] = r.protocol;
  auto put = [&j](const char* key, double v) {
    if (v >= 0) j[key] = v;
  };
  put("recall_at_1", r.recall_at_1);
  put("recall_at_5", r.recall_at_5);
  put("map_at_r", r.map_at_r);
  put("verification_accuracy", r.verification_accuracy);
  put("threshold", r.threshold);
  put("roc_auc", r.roc_auc);
  put("eer", r.eer);
  put("tar_at_far_1e-3", r.tar_at_far_1e_3);
  put("oneshot_5way_1shot", r.oneshot_5way_1shot);
  put("oneshot_5way_5shot", r.oneshot_5way_5shot);
  put("oneshot_20way_1shot", r.oneshot_20way_1shot);
  if (by_class && !r.recall_at_1_by_class.empty()) {
    auto& classes = j["recall_at_1_by_class"] = nlohmann::ordered_json::object();
    for (const auto& [label, recall] : r.recall_at_1_by_class) classes[std::to_string(label)] = recall;
  }
  j["test_images"] = r.test_images;
  j["test_pairs"] = r.test_pairs;
  return j.dump();
}

EvalReport evaluate(SiameseNetwork& network, const Dataset& test, double threshold, const EvalOptions& options,
                    Logger& logger) {
  auto e = embed_dataset(network, test, 512, logger);
  if (!torch::isfinite(e).all().item<bool>()) {
    throw Error(ErrorCode::InvalidArgument, test.source() + ": the model gives NaN/inf embeddings");
  }
  return evaluate_embeddings(e, test.labels(), network->options.distance(), threshold, options);
}

EvalReport evaluate_embeddings(const torch::Tensor& e, const std::vector<int64_t>& labels, Distance distance,
                               double threshold, const EvalOptions& options) {
  if (e.dim() != 2 || e.size(0) != static_cast<int64_t>(labels.size())) {
    throw Error(ErrorCode::InvalidArgument, "evaluate: needs embeddings [N, D] with one label per row");
  }
  if (!torch::isfinite(e).all().item<bool>()) throw Error(ErrorCode::InvalidArgument, "evaluate: NaN/inf embeddings");
  EvalReport r;
  auto retrieval = retrieval_metrics(e, labels, distance);
  r.recall_at_1 = retrieval.recall_at_1;
  r.recall_at_5 = retrieval.recall_at_5;
  for (auto label : labels) r.recall_at_1_by_class[label] = retrieval.recall_at_1_by_class.at(label);
  r.map_at_r = retrieval.map_at_r;
  auto pairs = balanced_pairs(labels, options.test_pairs(), options.pair_seed());
  auto d = pair_distances(e, pairs, distance);
  r.threshold = threshold;
  r.verification_accuracy = accuracy_at(d, pairs.same, threshold);
  r.roc_auc = roc_auc(d, pairs.same);
  r.eer = equal_error_rate(d, pairs.same);
  r.tar_at_far_1e_3 = tar_at_far(d, pairs.same, 1e-3);
  if (options.few_shot()) {
    r.oneshot_5way_1shot = few_shot_accuracy(e, labels, distance, 5, 1, options.episodes(), options.pair_seed());
    auto classes_with = [&](int64_t items) {
      std::map<int64_t, int64_t> count;
      for (auto l : labels) ++count[l];
      return std::count_if(count.begin(), count.end(), [&](const auto& c) { return c.second >= items; });
    };
    if (classes_with(6) >= 5) {
      r.oneshot_5way_5shot = few_shot_accuracy(e, labels, distance, 5, 5, options.episodes(), options.pair_seed());
    }
    if (classes_with(2) >= 20) {
      r.oneshot_20way_1shot = few_shot_accuracy(e, labels, distance, 20, 1, options.episodes(), options.pair_seed());
    }
  }
  r.test_images = e.size(0);
  r.test_pairs = options.test_pairs();
  return r;
}

std::optional<EvalReport> raw_pixel_reference(const Dataset& test, const Dataset& validation, const EvalOptions& options,
                                              int64_t calibration_pairs) {
  const auto* t = dynamic_cast<const ImageDataset*>(&test);
  const auto* v = dynamic_cast<const ImageDataset*>(&validation);
  if (t == nullptr || v == nullptr) return std::nullopt;
  auto pixels = [](const ImageDataset& d) {
    std::vector<int64_t> all(static_cast<size_t>(d.size()));
    std::iota(all.begin(), all.end(), 0);
    return d.pixels(all).reshape({d.size(), -1}).to(torch::kFloat) / 255.0;
  };
  const auto pv = pixels(*v);
  const auto calibration = balanced_pairs(v->labels(), calibration_pairs, 1);
  const double threshold =
      calibrate_threshold(pair_distances(pv, calibration, Distance::Euclidean), calibration.same);
  return evaluate_embeddings(pixels(*t), t->labels(), Distance::Euclidean, threshold, options);
}

double calibrate_on(SiameseNetwork& network, const Dataset& validation, int64_t pairs) {
  auto e = embed_dataset(network, validation);
  auto p = balanced_pairs(validation.labels(), pairs, 1);
  return calibrate_threshold(pair_distances(e, p, network->options.distance()), p.same);
}

}  // namespace siamese
