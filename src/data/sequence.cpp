#include "siamese/data/sequence.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "siamese/core/error.h"

namespace fs = std::filesystem;

namespace siamese {

std::string LoadSummary::to_string() const {
  std::ostringstream s;
  s << items << " items";
  if (skipped_empty > 0) s << ", " << skipped_empty << " empty skipped";
  if (truncated > 0) s << ", " << truncated << " truncated to --max-length";
  if (unknown_tokens > 0) s << ", " << unknown_tokens << " unknown tokens as <unk>";
  if (only_unknown > 0) s << ", " << only_unknown << " items with no known token";
  return s.str();
}

namespace {

void add(LoadSummary& to, const LoadSummary& from) {
  to.items += from.items;
  to.skipped_empty += from.skipped_empty;
  to.truncated += from.truncated;
  to.unknown_tokens += from.unknown_tokens;
  to.only_unknown += from.only_unknown;
}

/// Splits one UTF-8 string into code points (a malformed byte counts as one character).
std::vector<std::string> characters(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    n = std::min(n, text.size() - i);
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

std::ifstream open_text(const std::string& path) {
  if (!fs::exists(path)) throw Error(ErrorCode::NotFound, path, "no such file");
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::IOError, path, "cannot read");
  return in;
}

/// The files of `dir` ending in `ext`, sorted by name. Throws naming the folder when it is missing
/// or holds none.
std::vector<fs::path> files_in(const std::string& dir, const std::string& ext, const std::string& what) {
  if (!fs::is_directory(dir)) throw Error(ErrorCode::NotFound, dir, "no such folder of " + ext + " " + what);
  std::vector<fs::path> files;
  try {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file() && e.path().extension() == ext) files.push_back(e.path());
    }
  } catch (const fs::filesystem_error& e) {
    throw Error(ErrorCode::IOError, dir, std::string("cannot list the folder (") + e.what() + ")");
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(ErrorCode::NotFound, dir, "no " + ext + " files");
  return files;
}

std::string where(const std::string& path, int64_t line) { return path + ":" + std::to_string(line) + ": "; }

/// Class ids from names: the index of each name among the sorted distinct names.
std::vector<int64_t> class_ids(const std::vector<std::string>& names, std::vector<std::string>* sorted) {
  std::set<std::string> distinct(names.begin(), names.end());
  sorted->assign(distinct.begin(), distinct.end());
  std::vector<int64_t> ids;
  ids.reserve(names.size());
  for (const auto& n : names) ids.push_back(std::lower_bound(sorted->begin(), sorted->end(), n) - sorted->begin());
  return ids;
}

}  // namespace

std::vector<std::string> tokenize(const std::string& text, const std::string& tokens) {
  if (tokens == "char") return characters(text);
  if (tokens == "word") {
    std::istringstream s(text);
    std::vector<std::string> out;
    for (std::string w; s >> w;) out.push_back(w);
    return out;
  }
  if (tokens.rfind("kmer", 0) == 0 && tokens.size() == 5 && tokens[4] >= '1' && tokens[4] <= '8') {
    const size_t k = tokens[4] - '0';
    if (text.size() <= k) return {text};
    std::vector<std::string> out;
    out.reserve(text.size() - k + 1);
    for (size_t i = 0; i + k <= text.size(); ++i) out.push_back(text.substr(i, k));
    return out;
  }
  throw Error(ErrorCode::InvalidArgument, "unknown tokens '" + tokens + "' (expected char, word or kmer1 ... kmer8)");
}

Vocabulary::Vocabulary(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {
  if (tokens_.empty() || tokens_[0] != "<unk>") {
    throw Error(ErrorCode::InvalidArgument, "vocabulary: the first token must be <unk>");
  }
  for (size_t i = 0; i < tokens_.size(); ++i) ids_.emplace(tokens_[i], static_cast<int64_t>(i));
}

Vocabulary Vocabulary::build(const std::vector<std::vector<std::string>>& items, int64_t min_count) {
  std::map<std::string, int64_t> counts;
  for (const auto& item : items) {
    for (const auto& t : item) ++counts[t];
  }
  std::vector<std::pair<int64_t, std::string>> order;
  for (const auto& [t, c] : counts) {
    if (c >= min_count && t != "<unk>") order.emplace_back(-c, t);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::string> tokens{"<unk>"};
  for (const auto& o : order) tokens.push_back(o.second);
  return Vocabulary(std::move(tokens));
}

int64_t Vocabulary::id(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? 0 : it->second;
}

SequenceDataset::SequenceDataset(std::vector<torch::Tensor> steps, std::vector<int64_t> labels, std::string source,
                                 std::vector<std::string> class_names, bool tokens, std::vector<std::string> names)
    : steps_(std::move(steps)), labels_(std::move(labels)), source_(std::move(source)),
      class_names_(std::move(class_names)), tokens_(tokens), names_(std::move(names)) {
  if (steps_.size() != labels_.size() || (!names_.empty() && names_.size() != steps_.size())) {
    throw Error(ErrorCode::InvalidArgument, source_,
                std::to_string(steps_.size()) + " sequences but " + std::to_string(labels_.size()) + " labels and " +
                    std::to_string(names_.size()) + " names");
  }
  for (size_t i = 0; i < steps_.size(); ++i) {
    const auto& s = steps_[i];
    if (s.dim() != 2 || s.size(0) < 1 || s.scalar_type() != torch::kFloat32) {
      throw Error(ErrorCode::InvalidArgument, source_,
                  "sequence " + std::to_string(i) + " must be float [T >= 1, F], got " + c10::str(s.sizes()));
    }
    if (i == 0) features_ = s.size(1);
    if (s.size(1) != features_) {
      throw Error(ErrorCode::InvalidArgument, source_,
                  "sequence " + std::to_string(i) + " has " + std::to_string(s.size(1)) +
                      " features per step, the first has " + std::to_string(features_));
    }
    if (labels_[i] < 0) {
      throw Error(ErrorCode::InvalidArgument, source_, "negative label " + std::to_string(labels_[i]));
    }
  }
  if (tokens_ && features_ > 1) {
    throw Error(ErrorCode::InvalidArgument, source_, "token sequences have 1 feature (the id) per step");
  }
}

torch::Tensor SequenceDataset::gather(const std::vector<int64_t>& indices) const {
  int64_t longest = 1;
  for (auto i : indices) longest = std::max(longest, steps_.at(i).size(0));
  auto out = torch::zeros({static_cast<int64_t>(indices.size()), longest, 1 + features_});
  for (size_t j = 0; j < indices.size(); ++j) {
    const auto& s = steps_[indices[j]];
    auto row = out[j].narrow(0, 0, s.size(0));
    row.select(1, 0).fill_(1);
    row.narrow(1, 1, features_).copy_(s);
  }
  return out;
}

std::string SequenceDataset::name(int64_t i) const {
  return names_.empty() ? source_ + "#" + std::to_string(i) : names_.at(static_cast<size_t>(i));
}

SequenceDataset SequenceDataset::subset(const std::vector<int64_t>& indices, const std::string& what) const {
  std::vector<torch::Tensor> steps;
  std::vector<int64_t> labels;
  std::vector<std::string> names;
  for (auto i : indices) {
    steps.push_back(steps_.at(i));
    labels.push_back(labels_.at(i));
    names.push_back(name(i));
  }
  return SequenceDataset(std::move(steps), std::move(labels), source_ + " (" + what + ")", class_names_, tokens_,
                         std::move(names));
}

std::pair<std::vector<double>, std::vector<double>> SequenceDataset::feature_stats() const {
  if (tokens_ || steps_.empty()) return {std::vector<double>(std::max<int64_t>(1, features_), 0.0),
                                         std::vector<double>(std::max<int64_t>(1, features_), 1.0)};
  auto all = torch::cat(steps_).to(torch::kFloat64);
  auto mean = all.mean(0), std = all.std(0, /*unbiased=*/false).clamp_min(1e-6);
  std::vector<double> m(mean.data_ptr<double>(), mean.data_ptr<double>() + features_);
  std::vector<double> s(std.data_ptr<double>(), std.data_ptr<double>() + features_);
  return {m, s};
}

namespace {

/// Text pairs "a<TAB>b<TAB>same" become labelled items: each distinct text once, labelled by the
/// group that same = 1 pairs join it to (union-find), "group1", "group2", … in order of first
/// appearance. A different pair inside one group contradicts the file.
TextItems pairs_to_items(const std::string& path, const std::vector<std::array<std::string, 3>>& pairs,
                         const std::vector<int64_t>& line_numbers) {
  std::map<std::string, size_t> index;
  std::vector<std::string> texts;
  std::vector<size_t> parent;
  auto id = [&](const std::string& t) {
    auto [it, added] = index.emplace(t, texts.size());
    if (added) texts.push_back(t), parent.push_back(parent.size());
    return it->second;
  };
  std::function<size_t(size_t)> root = [&](size_t i) { return parent[i] == i ? i : parent[i] = root(parent[i]); };
  for (const auto& p : pairs) {
    const auto a = id(p[0]), b = id(p[1]);
    if (p[2] == "1") parent[root(a)] = root(b);
  }
  for (size_t k = 0; k < pairs.size(); ++k) {
    if (pairs[k][2] == "0" && root(index[pairs[k][0]]) == root(index[pairs[k][1]])) {
      throw Error(ErrorCode::InvalidArgument,
                  where(path, line_numbers[k]) + "a different pair whose texts other lines make the same");
    }
  }
  TextItems items;
  items.source = path;
  std::map<size_t, std::string> group;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto g = group.emplace(root(i), "group" + std::to_string(group.size() + 1)).first->second;
    items.texts.push_back(texts[i]);
    items.labels.push_back(g);
  }
  return items;
}

}  // namespace

TextItems read_text_lines(const std::string& path) {
  auto in = open_text(path);
  TextItems items;
  items.source = path;
  std::vector<std::array<std::string, 3>> pairs;
  std::vector<int64_t> pair_lines;
  std::string line;
  int64_t skipped = 0;
  int mode = 0;  // 1: labelled lines, 2: pairs
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      ++skipped;
      continue;
    }
    const auto tab = line.rfind('\t');
    if (tab == std::string::npos) {
      throw Error(ErrorCode::Corruption, where(path, number) + "expected text<TAB>label, found no tab");
    }
    auto label = line.substr(tab + 1);
    auto text = line.substr(0, tab);
    const auto first_tab = text.rfind('\t');
    const bool pair = first_tab != std::string::npos && (label == "0" || label == "1");
    if (mode != 0 && mode != (pair ? 2 : 1)) {
      throw Error(ErrorCode::Corruption,
                  where(path, number) + "mixes labelled lines (text<TAB>label) and pairs (a<TAB>b<TAB>same)");
    }
    mode = pair ? 2 : 1;
    if (pair) {
      const auto a = text.substr(0, first_tab), b = text.substr(first_tab + 1);
      if (a.find_first_not_of(' ') == std::string::npos || b.find_first_not_of(' ') == std::string::npos) {
        throw Error(ErrorCode::Corruption, where(path, number) + "a pair with an empty text");
      }
      pairs.push_back({a, b, label});
      pair_lines.push_back(number);
      continue;
    }
    if (label.find_first_not_of(' ') == std::string::npos) {
      throw Error(ErrorCode::Corruption, where(path, number) + "empty label");
    }
    if (text.find_first_not_of(" \t") == std::string::npos) {
      ++skipped;
      continue;
    }
    items.texts.push_back(std::move(text));
    items.labels.push_back(std::move(label));
  }
  if (!pairs.empty()) items = pairs_to_items(path, pairs, pair_lines);
  items.summary.skipped_empty = skipped;
  items.summary.items = static_cast<int64_t>(items.texts.size());
  return items;
}

TextItems read_fasta(const std::string& path, bool require_labels) {
  auto in = open_text(path);
  TextItems items;
  items.source = path;
  std::string line;
  int64_t header_line = 0;
  auto close_record = [&] {
    if (header_line > 0 && items.texts.back().empty()) {
      throw Error(ErrorCode::Corruption,
                  where(path, header_line) + "record '" + items.names.back() + "' has no sequence");
    }
  };
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] == '>') {
      close_record();
      std::istringstream fields(line.substr(1));
      std::string id, label;
      if (!(fields >> id) || (!(fields >> label) && require_labels)) {
        throw Error(ErrorCode::Corruption, where(path, number) + "header needs '>ID LABEL', got '" + line + "'");
      }
      items.texts.emplace_back();
      items.labels.push_back(label);
      items.names.push_back(id);
      header_line = number;
      continue;
    }
    std::string residues;
    for (char c : line) {
      if (std::isalpha(static_cast<unsigned char>(c))) residues += static_cast<char>(std::toupper(c));
    }
    if (residues.empty()) continue;
    if (header_line == 0) {
      throw Error(ErrorCode::Corruption, where(path, number) + "sequence before the first '>' header");
    }
    items.texts.back() += residues;
  }
  close_record();
  items.summary.items = static_cast<int64_t>(items.texts.size());
  return items;
}

SequenceDataset encode_text(const TextItems& items, const Vocabulary& vocabulary, const std::string& tokens,
                            int64_t max_length, LoadSummary* summary) {
  LoadSummary s;
  std::vector<std::string> names;
  auto labels = class_ids(items.labels, &names);
  std::vector<torch::Tensor> steps;
  steps.reserve(items.texts.size());
  for (const auto& text : items.texts) {
    auto t = tokenize(text, tokens);
    if (max_length > 0 && static_cast<int64_t>(t.size()) > max_length) {
      t.resize(max_length);
      ++s.truncated;
    }
    std::vector<float> ids;
    ids.reserve(t.size());
    for (const auto& token : t) {
      const auto id = vocabulary.id(token);
      s.unknown_tokens += id == 0 ? 1 : 0;
      ids.push_back(static_cast<float>(id));
    }
    if (ids.empty()) ids.push_back(0);  // only white space under "word": one <unk>
    s.only_unknown += std::all_of(ids.begin(), ids.end(), [](float id) { return id == 0; }) ? 1 : 0;
    steps.push_back(torch::tensor(ids).view({-1, 1}));
  }
  s.items = static_cast<int64_t>(steps.size());
  if (summary) add(*summary, s);
  return SequenceDataset(std::move(steps), std::move(labels), items.source, std::move(names), true,
                         items.names.empty() ? items.texts : items.names);
}

SequenceDataset read_strokes(const std::string& dir, int64_t max_length, LoadSummary* summary) {
  const auto files = files_in(dir, ".jhf", "stroke files");
  LoadSummary s;
  std::vector<torch::Tensor> steps;
  std::vector<std::string> numbers, item_names;
  for (const auto& file : files) {
    auto in = open_text(file.string());
    std::string text, line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      text += line;
    }
    for (size_t i = 0, glyph = 1; i < text.size(); ++glyph) {
      const auto bad = [&](const std::string& what) {
        return Error(ErrorCode::Corruption, file.string(), "glyph " + std::to_string(glyph) + ": " + what);
      };
      if (i + 8 > text.size()) throw bad("truncated header");
      char* end = nullptr;
      const std::string number = text.substr(i, 5), count_text = text.substr(i + 5, 3);
      const long count = std::strtol(count_text.c_str(), &end, 10);
      if (end == count_text.c_str() || count < 1) throw bad("bad vertex count '" + count_text + "'");
      const long id = std::strtol(number.c_str(), &end, 10);
      if (end == number.c_str()) throw bad("bad glyph number '" + number + "'");
      if (i + 8 + 2 * count > text.size()) throw bad("truncated: " + std::to_string(count) + " vertices announced");
      const std::string body = text.substr(i + 8, 2 * count);
      i += 8 + 2 * count;
      std::vector<float> v;  // (dx, dy, pen_up) per step
      float x = 0, y = 0;
      bool lifted = true;
      for (long k = 1; k < count; ++k) {  // pair 0 is the glyph's left and right extent
        if (body[2 * k] == ' ' && body[2 * k + 1] == 'R') {
          lifted = true;
          continue;
        }
        const float px = body[2 * k] - 'R', py = body[2 * k + 1] - 'R';
        v.insert(v.end(), {px - x, py - y, lifted ? 1.0f : 0.0f});
        x = px, y = py, lifted = false;
      }
      if (v.empty()) {
        ++s.skipped_empty;
        continue;
      }
      auto t = torch::tensor(v).view({-1, 3});
      if (max_length > 0 && t.size(0) > max_length) {
        t = t.narrow(0, 0, max_length).clone();
        ++s.truncated;
      }
      steps.push_back(t);
      numbers.push_back(std::to_string(id));
      item_names.push_back(file.filename().string() + ":" + std::to_string(id));
    }
  }
  // Classes by glyph number, in numeric order.
  std::set<long> distinct;
  for (const auto& n : numbers) distinct.insert(std::stol(n));
  std::vector<std::string> names;
  std::map<long, int64_t> ids;
  for (auto n : distinct) ids[n] = static_cast<int64_t>(names.size()), names.push_back(std::to_string(n));
  std::vector<int64_t> labels;
  for (const auto& n : numbers) labels.push_back(ids[std::stol(n)]);
  s.items = static_cast<int64_t>(steps.size());
  if (summary) add(*summary, s);
  return SequenceDataset(std::move(steps), std::move(labels), dir, std::move(names), false, std::move(item_names));
}

namespace {

/// One CSV row "label,v1,...,vK". Returns false for a header (a first row with no number among
/// its values); throws naming the file and line on a missing or non-numeric value, an empty label
/// or no values.
bool parse_row(const std::string& path, int64_t number, const std::string& line, bool first, std::string* label,
               std::vector<float>* values) {
  std::vector<std::string> cells;
  std::stringstream fields(line);
  for (std::string c; std::getline(fields, c, ',');) cells.push_back(c);
  if (line.back() == ',') cells.emplace_back();
  values->clear();
  std::string problem;
  ErrorCode problem_code = ErrorCode::Corruption;  // a malformed cell; a NaN or infinity is bad content
  bool any_number = false;
  for (size_t c = 1; c < cells.size(); ++c) {
    const char* begin = cells[c].c_str();
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    while (*end == ' ') ++end;
    any_number = any_number || end != begin;
    if (!problem.empty()) continue;
    if (cells[c].find_first_not_of(' ') == std::string::npos) {
      problem = "missing value in column " + std::to_string(c + 1);
    } else if (end == begin || *end != '\0' || !std::isfinite(v)) {
      problem = "value '" + cells[c] + "' in column " + std::to_string(c + 1) + " is not a finite number";
      if (end != begin && *end == '\0') problem_code = ErrorCode::InvalidArgument;
    }
    values->push_back(static_cast<float>(v));
  }
  if (first && cells.size() > 1 && !any_number) return false;  // a header, e.g. "label,t0,t1"
  if (!problem.empty()) throw Error(problem_code, where(path, number) + problem);
  if (cells.empty() || cells[0].find_first_not_of(' ') == std::string::npos) {
    throw Error(ErrorCode::Corruption, where(path, number) + "empty label (expected label,v1,v2,...)");
  }
  if (values->empty()) throw Error(ErrorCode::Corruption, where(path, number) + "row has a label but no values");
  *label = cells[0];
  return true;
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t") == std::string::npos; }

}  // namespace

SequenceDataset read_series_csv(const std::string& path, int64_t max_length, LoadSummary* summary) {
  auto in = open_text(path);
  LoadSummary s;
  std::vector<torch::Tensor> steps;
  std::vector<std::string> label_names, item_names;
  std::string line, label;
  std::vector<float> values;
  bool first = true;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (blank(line)) {
      ++s.skipped_empty;
      continue;
    }
    const bool row = parse_row(path, number, line, first, &label, &values);
    first = false;
    if (!row) continue;
    if (max_length > 0 && static_cast<int64_t>(values.size()) > max_length) {
      values.resize(max_length);
      ++s.truncated;
    }
    steps.push_back(torch::tensor(values).view({-1, 1}));
    label_names.push_back(label);
    item_names.push_back(path + ":" + std::to_string(number));
  }
  std::vector<std::string> names;
  auto labels = class_ids(label_names, &names);
  s.items = static_cast<int64_t>(steps.size());
  if (summary) add(*summary, s);
  return SequenceDataset(std::move(steps), std::move(labels), path, std::move(names), false, std::move(item_names));
}

SequenceDataset read_series_files(const std::string& dir, int64_t max_length, LoadSummary* summary) {
  const auto files = files_in(dir, ".csv", "series");
  LoadSummary s;
  std::vector<torch::Tensor> steps;
  std::vector<std::string> label_names, item_names;
  for (const auto& file : files) {
    const auto path = file.string();
    auto in = open_text(path);
    std::vector<float> series, values;
    std::string line, label, series_label;
    size_t features = 0;
    bool first = true;
    for (int64_t number = 1; std::getline(in, line); ++number) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (blank(line)) continue;
      const bool row = parse_row(path, number, line, first, &label, &values);
      first = false;
      if (!row) continue;
      if (series_label.empty()) series_label = label, features = values.size();
      if (label != series_label) {
        throw Error(ErrorCode::Corruption,
                    where(path, number) + "label '" + label + "' differs from the first row's '" + series_label +
                        "' (one series per file)");
      }
      if (values.size() != features) {
        throw Error(ErrorCode::Corruption,
                    where(path, number) + std::to_string(values.size()) + " values, the first row has " +
                        std::to_string(features));
      }
      series.insert(series.end(), values.begin(), values.end());
    }
    if (series.empty()) throw Error(ErrorCode::Corruption, path, "no time steps (expected rows label,f1,...,fF)");
    if (!steps.empty() && static_cast<int64_t>(features) != steps[0].size(1)) {
      throw Error(ErrorCode::InvalidArgument, path,
                  std::to_string(features) + " features per step, " + files[0].string() + " has " +
                      std::to_string(steps[0].size(1)));
    }
    auto t = torch::tensor(series).view({-1, static_cast<int64_t>(features)});
    if (max_length > 0 && t.size(0) > max_length) {
      t = t.narrow(0, 0, max_length).clone();
      ++s.truncated;
    }
    steps.push_back(t);
    label_names.push_back(series_label);
    item_names.push_back(path);
  }
  std::vector<std::string> names;
  auto labels = class_ids(label_names, &names);
  s.items = static_cast<int64_t>(steps.size());
  if (summary) add(*summary, s);
  return SequenceDataset(std::move(steps), std::move(labels), dir, std::move(names), false, std::move(item_names));
}

bool is_sequence_spec(const std::string& spec) {
  for (const char* kind : {"text:", "fasta:", "strokes:", "csv:"}) {
    if (spec.rfind(kind, 0) == 0) return true;
  }
  return false;
}

namespace {

/// Indices of the items of the last classes (by id) that together hold >= `wanted` items.
std::vector<bool> validation_items(const std::vector<int64_t>& labels, int64_t wanted, const std::string& source) {
  std::map<int64_t, int64_t, std::greater<>> per_class;
  for (auto l : labels) ++per_class[l];
  std::set<int64_t> chosen;
  int64_t taken = 0;
  for (const auto& [c, n] : per_class) {
    if (taken >= wanted) break;
    chosen.insert(c);
    taken += n;
  }
  const auto n = static_cast<int64_t>(labels.size());
  if (wanted < 1 || chosen.size() < 2 || n - taken < 2 || chosen.size() + 2 > per_class.size()) {
    throw Error(ErrorCode::InvalidArgument, source,
                "cannot hold out " + std::to_string(wanted) + " of its " + std::to_string(n) +
                    " items as whole validation classes and keep 2 classes to train on (set --validation-size)");
  }
  std::vector<bool> in(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) in[i] = chosen.count(labels[i]) > 0;
  return in;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> partition(const std::vector<bool>& in) {
  std::pair<std::vector<int64_t>, std::vector<int64_t>> p;
  for (size_t i = 0; i < in.size(); ++i) (in[i] ? p.second : p.first).push_back(static_cast<int64_t>(i));
  return p;
}

}  // namespace

SequenceSplits open_sequences(const std::string& spec, int64_t validation_size, int64_t max_length,
                              std::string tokens, const std::vector<std::string>& vocabulary) {
  if (!is_sequence_spec(spec)) {
    throw Error(ErrorCode::InvalidArgument,
                "not a sequence data spec: '" + spec + "' (expected text:, fasta:, strokes: or csv:)");
  }
  const auto colon = spec.find(':');
  const std::string kind = spec.substr(0, colon);
  const fs::path dir = spec.substr(colon + 1);
  if (!fs::is_directory(dir)) throw Error(ErrorCode::NotFound, dir.string(), "no such folder (data spec " + spec + ")");
  SequenceSplits out;
  if (kind == "text" || kind == "fasta") {
    const std::string ext = kind == "text" ? ".tsv" : ".fasta";
    auto read = [&](const std::string& name) {
      auto items = kind == "text" ? read_text_lines((dir / (name + ext)).string())
                                  : read_fasta((dir / (name + ext)).string());
      out.summary.skipped_empty += items.summary.skipped_empty;
      if (items.texts.empty()) throw Error(ErrorCode::InvalidArgument, (dir / (name + ext)).string(), "holds no sequences");
      return items;
    };
    auto train_items = read("train");
    auto test_items = read("test");
    out.tokens = tokens.empty() ? "char" : tokens;
    std::vector<std::string> names;
    const auto labels = class_ids(train_items.labels, &names);
    const auto [train_idx, val_idx] = partition(validation_items(labels, validation_size, train_items.source));
    auto pick = [&](const std::vector<int64_t>& idx, const std::string& what) {
      TextItems t;
      t.source = train_items.source + " (" + what + ")";
      for (auto i : idx) {
        t.texts.push_back(train_items.texts[i]);
        t.labels.push_back(train_items.labels[i]);
        if (!train_items.names.empty()) t.names.push_back(train_items.names[i]);
      }
      return t;
    };
    const auto train_part = pick(train_idx, "train"), val_part = pick(val_idx, "validation");
    Vocabulary vocab;
    if (vocabulary.empty()) {
      std::vector<std::vector<std::string>> tokenized;
      for (const auto& t : train_part.texts) tokenized.push_back(tokenize(t, out.tokens));
      vocab = Vocabulary::build(tokenized);
    } else {
      vocab = Vocabulary(vocabulary);
    }
    out.vocabulary = vocab.tokens();
    out.train = encode_text(train_part, vocab, out.tokens, max_length, &out.summary);
    out.validation = encode_text(val_part, vocab, out.tokens, max_length, &out.summary);
    out.test = encode_text(test_items, vocab, out.tokens, max_length, &out.summary);
  } else {
    if (!tokens.empty()) {
      throw Error(ErrorCode::InvalidArgument, "--tokens applies to text and fasta data, not " + kind);
    }
    auto read = [&](const std::string& name) {
      if (kind == "strokes") return read_strokes((dir / name).string(), max_length, &out.summary);
      if (fs::is_directory(dir / name)) return read_series_files((dir / name).string(), max_length, &out.summary);
      return read_series_csv((dir / (name + ".csv")).string(), max_length, &out.summary);
    };
    auto train = read("train");
    out.test = read("test");
    const auto [train_idx, val_idx] = partition(validation_items(train.labels(), validation_size, train.source()));
    out.train = train.subset(train_idx, "train");
    out.validation = train.subset(val_idx, "validation");
  }
  for (const auto* s : {&out.train, &out.validation, &out.test}) {
    if (s->size() < 2) throw Error(ErrorCode::InvalidArgument, s->source(), "fewer than 2 sequences");
  }
  return out;
}

}  // namespace siamese
