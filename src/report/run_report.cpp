#include "siamese/report/run_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/core/system.h"
#include "siamese/report/html.h"
#include "siamese/report/plots.h"
#include "siamese/report/svg.h"

namespace fs = std::filesystem;

namespace siamese {

namespace {

std::string read_if_there(const fs::path& path) {
  return fs::exists(path) ? read_file(path.string()) : "";
}

std::string num(double v, const char* format = "%.4f") {
  char buf[48];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

/// history.csv as columns: header name -> one value per row (NaN where a cell is not a number).
std::map<std::string, std::vector<double>> csv_columns(const std::string& csv, std::vector<std::string>& order) {
  std::map<std::string, std::vector<double>> columns;
  std::istringstream in(csv);
  std::string line;
  if (!std::getline(in, line)) return columns;
  std::istringstream header(line);
  for (std::string name; std::getline(header, name, ',');) order.push_back(name);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream row(line);
    std::string cell;
    for (const auto& name : order) {
      if (!std::getline(row, cell, ',')) cell.clear();
      char* end = nullptr;
      const double v = std::strtod(cell.c_str(), &end);
      columns[name].push_back(end != cell.c_str() ? v : NAN);
    }
  }
  return columns;
}

/// Everything the sections draw from: the test split's embeddings and what was computed on them.
struct Context {
  Context(SavedModel& m, const TrainedData& d, const RunRecord& r, const ReportOptions& o)
      : model(m), data(d), run(r), options(o) {}
  SavedModel& model;
  const TrainedData& data;
  const RunRecord& run;
  const ReportOptions& options;
  Distance distance = Distance::Euclidean;
  torch::Tensor e;                  // [N, D] test embeddings
  std::vector<int64_t> labels;      // [N]
  std::vector<std::string> names;   // class names by label
  EvalReport test;
  std::optional<EvalReport> reference;
  Pairs pairs;
  std::vector<double> pair_distance;
  std::vector<int64_t> queries;     // rows of the neighbour grid
  Neighbours neighbours;
  std::map<int64_t, std::string> thumbs;  // row -> <img> / text, made once
  std::map<int64_t, std::string> uris;    // row -> PNG data URI (image data), made once
  bool few_shot = false;
};

const std::vector<std::string>& fashion_mnist_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

std::vector<std::string> class_names(const TrainedData& data, int64_t classes) {
  std::vector<std::string> names;
  if (const auto* images = dynamic_cast<const ImageDataset*>(data.test.get())) names = images->class_names();
  if (const auto* seqs = dynamic_cast<const SequenceDataset*>(data.test.get())) names = seqs->class_names();
  if (names.empty() && data.spec == "fashion-mnist") names = fashion_mnist_names();
  for (int64_t c = static_cast<int64_t>(names.size()); c < classes; ++c) names.push_back("class " + std::to_string(c));
  return names;
}

std::string class_name(const Context& c, int64_t label) {
  return label >= 0 && label < static_cast<int64_t>(c.names.size()) ? c.names[static_cast<size_t>(label)]
                                                                     : std::to_string(label);
}

/// Row i's image as a PNG data URI (image data only).
const std::string& image_uri(Context& c, int64_t i) {
  auto it = c.uris.find(i);
  if (it != c.uris.end()) return it->second;
  const auto& images = dynamic_cast<const ImageDataset&>(*c.data.test);
  return c.uris.emplace(i, png_data_uri(images.pixels({i})[0])).first->second;
}

/// Row i shown on the page: an <img> for image data, the item's text for sequences.
const std::string& thumb(Context& c, int64_t i) {
  auto it = c.thumbs.find(i);
  if (it != c.thumbs.end()) return it->second;
  std::string html;
  const std::string title = html_escape(class_name(c, c.labels[static_cast<size_t>(i)]));
  if (dynamic_cast<const ImageDataset*>(c.data.test.get()) != nullptr) {
    html = "<img class=\"th\" src=\"" + image_uri(c, i) + "\" title=\"" + title + "\" alt=\"" + title + "\">";
  } else if (const auto* seqs = dynamic_cast<const SequenceDataset*>(c.data.test.get())) {
    std::string text = seqs->name(i);
    if (text.size() > 80) text = text.substr(0, 77) + "...";
    html = "<span class=\"tx\" title=\"" + title + "\">" + html_escape(text) + "</span>";
  } else {
    html = "<span class=\"tx\">#" + std::to_string(i) + "</span>";
  }
  return c.thumbs.emplace(i, html).first->second;
}

std::vector<int64_t> draw(int64_t n, int64_t count, uint64_t seed) {
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(std::min(n, std::max<int64_t>(count, 0))));
  return all;
}

std::string section(const std::string& id, const std::string& title, const std::string& body) {
  return "<section id=\"" + id + "\"><h2>" + html_escape(title) + "</h2>\n" + body + "</section>\n";
}

std::string run_section(const Context& c) {
  std::string h = "<table class=\"kv\">";
  auto row = [&h](const std::string& k, const std::string& v) {
    h += "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>";
  };
  row("run folder", c.run.folder.empty() ? "(none: a model and data given)" : c.run.folder);
  row("data", c.data.spec);
  row("protocol", c.test.protocol);
  row("test items", std::to_string(c.labels.size()) + " in " + std::to_string(c.test.recall_at_1_by_class.size()) + " classes");
  nlohmann::json metrics = nlohmann::json::object();
  if (!c.run.metrics_json.empty()) metrics = nlohmann::json::parse(c.run.metrics_json, nullptr, false);
  if (metrics.is_discarded()) metrics = nlohmann::json::object();
  row("machine", metrics.value("machine", machine_description() + " (where the report was made)"));
  row("commit", metrics.value("commit", build_commit().empty() ? std::string("unknown") : build_commit()));
  if (metrics.contains("train_seconds")) {
    row("training", num(metrics.value("train_seconds", 0.0), "%.0f s") + ", " +
                        num(metrics.value("train_images_per_second", 0.0), "%.0f images/s") + ", " +
                        std::to_string(metrics.value("epochs", 0)) + " epochs" +
                        (metrics.value("stopped_early", false) ? " (stopped early)" : "") + ", " +
                        std::to_string(metrics.value("threads", 0)) + " threads");
  }
  row("threshold", num(c.model.threshold, "%.6f"));
  h += "</table>\n";
  if (!c.run.config_json.empty()) {
    auto config = nlohmann::ordered_json::parse(c.run.config_json, nullptr, false);
    if (config.is_object()) {
      h += "<details open><summary>every option (config.json)</summary><div class=\"opts\">";
      for (const auto& [k, v] : config.items()) {
        h += "<div><b>" + html_escape(k) + "</b> " + html_escape(v.is_string() ? v.get<std::string>() : v.dump()) + "</div>";
      }
      h += "</div></details>\n";
    }
  }
  return section("run", "The run", h);
}

std::string epochs_section(const Context& c) {
  std::vector<std::string> order;
  auto col = csv_columns(c.run.history_csv, order);
  if (order.empty() || col["epoch"].empty()) {
    return section("epochs", "Epochs", "<p>No history.csv: this model was not trained in a run folder.</p>");
  }
  const auto& x = col["epoch"];
  std::vector<double> wait_share;
  for (size_t i = 0; i < x.size(); ++i) {
    const double s = col["seconds"].size() > i ? col["seconds"][i] : NAN;
    wait_share.push_back(s > 0 && col["data_wait_seconds"].size() > i ? col["data_wait_seconds"][i] / s : NAN);
  }
  std::string h = "<div class=\"plots\">";
  h += lines_svg("training loss", "epoch", x, {{"loss", "#4e79a7", col["loss"]}});
  h += lines_svg("learning rate", "epoch", x, {{"lr", "#f28e2b", col["lr"]}}, true);
  h += lines_svg("validation", "epoch", x,
                 {{"Recall@1", "#4e79a7", col["val_recall_at_1"]}, {"MAP@R", "#59a14f", col["val_map_at_r"]},
                  {"ROC AUC", "#e15759", col["val_roc_auc"]}});
  h += lines_svg("images/s", "epoch", x, {{"images/s", "#76b7b2", col["images_per_second"]}}, true);
  h += lines_svg("data wait (share of epoch time)", "epoch", x, {{"data wait", "#b07aa1", wait_share}}, true);
  h += "</div>\n<table class=\"num\"><tr>";
  for (const auto& name : order) h += "<th>" + html_escape(name) + "</th>";
  h += "</tr>";
  for (size_t i = 0; i < x.size(); ++i) {
    h += "<tr>";
    for (const auto& name : order) {
      const double v = col[name].size() > i ? col[name][i] : NAN;
      h += "<td>" + (std::isnan(v) ? std::string() : num(v, std::fabs(v) >= 1000 || v == std::floor(v) ? "%.0f" : "%.4g")) + "</td>";
    }
    h += "</tr>";
  }
  return section("epochs", "Epochs", h + "</table>\n");
}

std::string metrics_section(const Context& c) {
  const auto model = nlohmann::json::parse(to_json(c.test, false));
  const auto ref = c.reference ? nlohmann::json::parse(to_json(*c.reference, false)) : nlohmann::json::object();
  std::string h = "<table class=\"num\"><tr><th>metric</th><th>model</th>";
  if (c.reference) h += "<th>raw pixels (no learning)</th>";
  h += "</tr>";
  for (const auto& [key, label] : summary_metrics()) {
    if (!model.contains(key)) continue;
    h += "<tr><th>" + label + "</th><td>" + num(model[key].get<double>()) + "</td>";
    if (c.reference) h += "<td>" + (ref.contains(key) ? num(ref[key].get<double>()) : std::string("-")) + "</td>";
    h += "</tr>";
  }
  h += "</table>\n<p>" + std::to_string(c.test.test_images) + " test items, " + std::to_string(c.test.test_pairs) +
       " balanced test pairs (seed 0). " +
       (c.reference ? "Raw pixels: the test images' pixels in [0, 1] as embeddings, Euclidean distance, threshold "
                      "calibrated on the validation images."
                    : "This protocol has no non-learned reference.") +
       "</p>\n";
  return section("metrics", "Test metrics", h);
}

std::string verification_section(const Context& c) {
  const auto roc = roc_curve(c.pair_distance, c.pairs.same);
  auto marker = operating_point(c.pair_distance, c.pairs.same, c.model.threshold);
  marker.label = "calibrated threshold " + num(c.model.threshold);
  std::string h = "<div class=\"plots\">" + roc_svg(roc, roc_auc(c.pair_distance, c.pairs.same), marker) +
                  distance_histogram_svg(c.pair_distance, c.pairs.same, c.model.threshold) + "</div>\n";
  return section("verification", "Verification: ROC and pair distances", h);
}

std::string per_class_section(const Context& c) {
  std::vector<int64_t> labels;
  std::vector<std::string> names;
  std::vector<double> values;
  std::map<int64_t, int64_t> count;
  for (auto l : c.labels) ++count[l];
  std::string table = "<table class=\"num\"><tr><th>class</th><th>test items</th><th>Recall@1</th></tr>";
  for (const auto& [label, recall] : c.test.recall_at_1_by_class) {
    labels.push_back(label);
    names.push_back(class_name(c, label));
    values.push_back(recall);
    table += "<tr><th><span class=\"sw\" style=\"background:" + class_color(label) + "\"></span>" +
             html_escape(class_name(c, label)) + "</th><td>" + std::to_string(count[label]) + "</td><td>" + num(recall) +
             "</td></tr>";
  }
  return section("per-class", "Recall@1 per class",
                 "<div class=\"plots\">" + class_bars_svg("Recall@1 by class", labels, names, values) + table +
                     "</table></div>\n");
}

std::string map_section(Context& c) {
  const auto rows = draw(c.e.size(0), c.options.samples(), c.options.seed());
  auto index = torch::tensor(rows, torch::kLong);
  auto xy = pca_2d(c.e.index_select(0, index)).contiguous();
  const auto x = xy.select(1, 0), y = xy.select(1, 1);
  const double pad_x = std::max(1e-6, (x.max() - x.min()).item<double>() * 0.05);
  const double pad_y = std::max(1e-6, (y.max() - y.min()).item<double>() * 0.05);
  PlotOptions o;
  o.width = 720;
  o.height = 600;
  o.x_lo = x.min().item<double>() - pad_x;
  o.x_hi = x.max().item<double>() + pad_x;
  o.y_lo = y.min().item<double>() - pad_y;
  o.y_hi = y.max().item<double>() + pad_y;
  o.title = "test embeddings, first two principal components";
  o.x_label = "PC 1";
  o.y_label = "PC 2";
  Plot plot(o);
  const bool images = dynamic_cast<const ImageDataset*>(c.data.test.get()) != nullptr;
  auto acc = xy.accessor<float, 2>();
  for (size_t k = 0; k < rows.size(); ++k) {
    const int64_t i = rows[k];
    const int64_t label = c.labels[static_cast<size_t>(i)];
    const double px = plot.px(acc[static_cast<int64_t>(k)][0]), py = plot.py(acc[static_cast<int64_t>(k)][1]);
    std::string extra;
    if (images) {
      char pos[160];
      std::snprintf(pos, sizeof pos, "<rect x=\"%.1f\" y=\"%.1f\" width=\"60\" height=\"60\" fill=\"#fff\" stroke=\"#333\"/><image x=\"%.1f\" y=\"%.1f\" width=\"56\" height=\"56\" href=\"",
                    px + 6, py - 66, px + 8, py - 64);
      extra = pos + image_uri(c, i) + "\"/>";
    }
    std::string tip = class_name(c, label);
    if (const auto* seqs = dynamic_cast<const SequenceDataset*>(c.data.test.get())) tip += ": " + seqs->name(i);
    plot.point(acc[static_cast<int64_t>(k)][0], acc[static_cast<int64_t>(k)][1], 3, class_color(label), tip, extra);
  }
  std::string legend = "<p class=\"legend\">";
  int shown = 0;
  for (const auto& [label, recall] : c.test.recall_at_1_by_class) {
    if (++shown > 20) break;
    legend += "<span class=\"sw\" style=\"background:" + class_color(label) + "\"></span>" + html_escape(class_name(c, label)) + " ";
  }
  return section("map", "Map of the test embeddings (PCA)",
                 "<p>" + std::to_string(rows.size()) + " test items drawn at random (seed " + std::to_string(c.options.seed()) +
                     "); point at one to see it.</p>" + legend + "</p>\n" + plot.str());
}

std::string neighbours_section(Context& c) {
  std::string h = "<table class=\"grid\">";
  for (size_t q = 0; q < c.queries.size(); ++q) {
    const int64_t i = c.queries[q];
    h += "<tr><td class=\"query\">" + thumb(c, i) + "<br>" + html_escape(class_name(c, c.labels[static_cast<size_t>(i)])) + "</td>";
    for (size_t k = 0; k < c.neighbours.of_query[q].size(); ++k) {
      const int64_t j = c.neighbours.of_query[q][k];
      const bool right = c.labels[static_cast<size_t>(j)] == c.labels[static_cast<size_t>(i)];
      h += std::string("<td class=\"") + (right ? "right" : "wrong") + "\">" + thumb(c, j) + "<br>" +
           num(c.neighbours.distance[q][k], "%.3f") + "</td>";
    }
    h += "</tr>\n";
  }
  return section("neighbours", "Nearest neighbours of sample queries",
                 "<p>Each row: a test query (left), then its nearest other test items, nearest first; a green frame "
                 "shares the query's class, a red one does not.</p>" + h + "</table>\n");
}

std::string confusions_section(Context& c) {
  std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> confused;  // (query class, neighbour class) -> queries
  for (size_t i = 0; i < c.labels.size(); ++i) {
    const int64_t j = c.neighbours.nearest[i];
    if (c.labels[static_cast<size_t>(j)] != c.labels[i]) confused[{c.labels[i], c.labels[static_cast<size_t>(j)]}].push_back(static_cast<int64_t>(i));
  }
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::vector<int64_t>>> top(confused.begin(), confused.end());
  std::stable_sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  if (top.size() > 6) top.resize(6);
  std::string h = "<table class=\"grid\"><tr><th>query class → nearest item's class</th><th>queries</th><th>examples (query | its nearest)</th></tr>";
  for (const auto& [classes, rows] : top) {
    h += "<tr><th>" + html_escape(class_name(c, classes.first)) + " → " + html_escape(class_name(c, classes.second)) +
         "</th><td>" + std::to_string(rows.size()) + "</td><td>";
    for (size_t k = 0; k < rows.size() && k < 4; ++k) {
      h += "<span class=\"pair\">" + thumb(c, rows[k]) + thumb(c, c.neighbours.nearest[static_cast<size_t>(rows[k])]) + "</span>";
    }
    h += "</td></tr>\n";
  }
  if (top.empty()) h += "<tr><td colspan=\"3\">No test item's nearest neighbour is of another class.</td></tr>";
  return section("confusions", "Most confused classes", h + "</table>\n");
}

std::string oneshot_section(Context& c) {
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (size_t i = 0; i < c.labels.size(); ++i) by_class[c.labels[i]].push_back(static_cast<int64_t>(i));
  std::vector<int64_t> usable;
  for (const auto& [label, rows] : by_class) {
    if (rows.size() >= 2) usable.push_back(label);
  }
  if (usable.size() < 5) return section("oneshot", "One-shot episodes", "<p>Fewer than 5 test classes with 2 items.</p>");
  std::mt19937_64 rng(c.options.seed() + 1);
  std::string h = "<table class=\"grid\">";
  for (int64_t ep = 0; ep < c.options.episodes(); ++ep) {
    std::shuffle(usable.begin(), usable.end(), rng);
    std::vector<int64_t> support, query, support_labels;
    for (int w = 0; w < 5; ++w) {
      auto rows = by_class[usable[static_cast<size_t>(w)]];
      std::shuffle(rows.begin(), rows.end(), rng);
      support.push_back(rows[0]);
      query.push_back(rows[1]);
      support_labels.push_back(usable[static_cast<size_t>(w)]);
    }
    auto pick = [&](const std::vector<int64_t>& r) { return c.e.index_select(0, torch::tensor(r, torch::kLong)); };
    const auto answers = classify_by_support(pick(query), pick(support), support_labels, c.distance, SupportRule::ClassMean, -1);
    h += "<tr><th>episode " + std::to_string(ep + 1) + "<br>support</th>";
    for (auto s : support) h += "<td>" + thumb(c, s) + "<br>" + html_escape(class_name(c, c.labels[static_cast<size_t>(s)])) + "</td>";
    h += "</tr><tr><th>queries</th>";
    for (size_t q = 0; q < query.size(); ++q) {
      const bool right = answers[q].label == c.labels[static_cast<size_t>(query[q])];
      h += std::string("<td class=\"") + (right ? "right" : "wrong") + "\">" + thumb(c, query[q]) + "<br>→ " +
           html_escape(class_name(c, answers[q].label)) + "</td>";
    }
    h += "</tr>\n";
  }
  return section("oneshot", "One-shot episodes (5-way 1-shot, classes never seen in training)",
                 "<p>Each query goes to the support item (one per class) nearest to it; green when right.</p>" + h +
                     "</table>\n");
}

const char* const style =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1400px}h1{font-size:22px}h2{font-size:18px;"
    "border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}table{border-collapse:collapse;margin:8px 0}"
    "th,td{padding:3px 8px;font-size:13px;text-align:left;vertical-align:top}table.num td{text-align:right;"
    "font-variant-numeric:tabular-nums}table.num tr:nth-child(even),table.kv tr:nth-child(even){background:#f4f4f4}"
    ".opts{columns:3;column-gap:24px;font-size:12px;margin:6px 0}.opts div{break-inside:avoid;overflow-wrap:anywhere;padding:1px 0}.plots{display:flex;flex-wrap:wrap;gap:12px;"
    "align-items:flex-start}.plot{background:#fff;border:1px solid #eee}img.th{width:56px;height:56px;"
    "image-rendering:pixelated;display:block;margin:auto}.tx{display:inline-block;max-width:160px;font-size:11px}"
    "table.grid td{text-align:center;font-size:11px;border:3px solid transparent}td.right{border-color:#59a14f!important}"
    "td.wrong{border-color:#e15759!important}td.query{background:#eef}.pair{display:inline-block;margin:2px 8px 2px 0;"
    "border:1px solid #ccc}.pair img.th{display:inline-block}.sw{display:inline-block;width:10px;height:10px;"
    "margin:0 4px 0 8px}.pt .hover{display:none}.pt:hover .hover{display:inline}.pt:hover circle{stroke:#000}";

}  // namespace

const std::vector<std::pair<std::string, std::string>>& summary_metrics() {
  static const std::vector<std::pair<std::string, std::string>> rows = {
      {"recall_at_1", "Recall@1"},         {"recall_at_5", "Recall@5"},
      {"map_at_r", "MAP@R"},               {"verification_accuracy", "verification accuracy"},
      {"roc_auc", "ROC AUC"},              {"eer", "equal error rate"},
      {"tar_at_far_1e-3", "TAR at FAR 1e-3"}, {"oneshot_5way_1shot", "5-way 1-shot"},
      {"oneshot_5way_5shot", "5-way 5-shot"}, {"oneshot_20way_1shot", "20-way 1-shot"},
      {"threshold", "threshold"}};
  return rows;
}

RunRecord read_run_record(const std::string& dir) {
  if (!fs::is_directory(dir)) throw Error(ErrorCode::NotFound, dir, "not a run folder");
  RunRecord r;
  r.folder = dir;
  r.config_json = read_if_there(fs::path(dir) / "config.json");
  r.history_csv = read_if_there(fs::path(dir) / "history.csv");
  r.metrics_json = read_if_there(fs::path(dir) / "metrics.json");
  return r;
}

torch::Tensor pca_2d(const torch::Tensor& x) {
  if (x.dim() != 2 || x.size(0) < 2 || x.size(1) < 1) throw Error(ErrorCode::InvalidArgument, "pca_2d: needs [N >= 2, D >= 1]");
  auto centred = x.to(torch::kDouble) - x.to(torch::kDouble).mean(0, true);
  auto cov = centred.t().mm(centred) / static_cast<double>(x.size(0) - 1);
  auto [values, vectors] = torch::linalg_eigh(cov);  // ascending eigenvalues
  const int64_t d = x.size(1);
  auto axes = d >= 2 ? vectors.narrow(1, d - 2, 2).flip({1}) : torch::cat({vectors, torch::zeros_like(vectors)}, 1);
  for (int64_t k = 0; k < 2; ++k) {
    auto column = axes.select(1, k);
    const auto biggest = column.abs().argmax().item<int64_t>();
    if (column[biggest].item<double>() < 0) column.mul_(-1);
  }
  return centred.mm(axes).to(torch::kFloat);
}

Neighbours nearest_neighbours(const torch::Tensor& e, Distance distance, const std::vector<int64_t>& queries, int64_t k) {
  const int64_t n = e.size(0);
  if (n < 2) throw Error(ErrorCode::InvalidArgument, "nearest_neighbours: needs 2 items or more");
  Neighbours r;
  r.nearest.resize(static_cast<size_t>(n));
  const int64_t block = 1024;
  for (int64_t start = 0; start < n; start += block) {
    const int64_t rows = std::min(block, n - start);
    auto d = pairwise_distance(e.narrow(0, start, rows), e, distance);
    auto self = torch::arange(start, start + rows, torch::kLong);
    d.index_put_({torch::arange(rows, torch::kLong), self}, INFINITY);
    auto best = d.argmin(1);
    auto a = best.accessor<int64_t, 1>();
    for (int64_t i = 0; i < rows; ++i) r.nearest[static_cast<size_t>(start + i)] = a[i];
  }
  if (!queries.empty()) {
    auto q = e.index_select(0, torch::tensor(queries, torch::kLong));
    auto d = pairwise_distance(q, e, distance);
    for (size_t i = 0; i < queries.size(); ++i) d[static_cast<int64_t>(i)][queries[i]] = INFINITY;
    auto [values, indices] = d.topk(std::min(k, n - 1), 1, /*largest=*/false, /*sorted=*/true);
    for (size_t i = 0; i < queries.size(); ++i) {
      auto vi = values[static_cast<int64_t>(i)].to(torch::kDouble).contiguous();
      auto ii = indices[static_cast<int64_t>(i)].contiguous();
      r.of_query.emplace_back(ii.data_ptr<int64_t>(), ii.data_ptr<int64_t>() + ii.numel());
      r.distance.emplace_back(vi.data_ptr<double>(), vi.data_ptr<double>() + vi.numel());
    }
  }
  return r;
}

std::string render_run_report(SavedModel& model, const TrainedData& data, const RunRecord& run,
                              const ReportOptions& options, const ReportFigures& figures, Logger& logger) {
  if (!data.test) throw Error(ErrorCode::InvalidArgument, "report: no test split");
  Context c(model, data, run, options);
  c.distance = model.network->options.distance();
  c.labels = data.test->labels();
  c.few_shot = data.sequences || data.protocol == Protocol::Unseen;
  logger.info("report: embedding " + std::to_string(data.test->size()) + " test items of " + data.test->source());
  c.e = embed_dataset(model.network, *data.test);
  const auto eval = EvalOptions().test_pairs(options.test_pairs()).few_shot(c.few_shot);
  c.test = figures.test ? *figures.test : evaluate_embeddings(c.e, c.labels, c.distance, model.threshold, eval);
  c.test.protocol = data.sequences ? "sequences" : to_string(data.protocol);
  if (figures.reference) {
    c.reference = figures.reference;
  } else if (data.validation) {
    c.reference = raw_pixel_reference(*data.test, *data.validation, eval);
  }
  c.names = class_names(data, *std::max_element(c.labels.begin(), c.labels.end()) + 1);
  c.pairs = balanced_pairs(c.labels, options.test_pairs(), 0);
  c.pair_distance = pair_distances(c.e, c.pairs, c.distance);
  c.queries = draw(c.e.size(0), options.queries(), options.seed() + 2);
  c.neighbours = nearest_neighbours(c.e, c.distance, c.queries, options.neighbours());
  std::string title = run.folder.empty() ? data.spec : run.folder;
  std::string page = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>siamese run " +
                     html_escape(title) + "</title><style>" + style + "</style></head><body>\n<h1>siamese run " +
                     html_escape(title) + "</h1>\n";
  page += run_section(c) + epochs_section(c) + metrics_section(c) + verification_section(c) + per_class_section(c) +
          map_section(c) + neighbours_section(c) + confusions_section(c);
  if (c.few_shot) page += oneshot_section(c);
  return page + "</body></html>\n";
}

}  // namespace siamese
