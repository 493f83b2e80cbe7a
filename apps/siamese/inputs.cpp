#include "inputs.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "siamese/data/image_files.h"
#include "siamese/core/error.h"
#include "siamese/eval/metrics.h"

namespace fs = std::filesystem;

namespace siamese::cli {

namespace {

torch::Tensor to_uint8(const torch::Tensor& unit) { return unit.mul(255.0).round().clamp(0, 255).to(torch::kUInt8); }

/// Reads the files into `in` (labels already set, -1 for none).
Inputs read_files_as(const std::vector<std::string>& files, Inputs in, const SavedModel& model) {
  const auto& c = model.network->options.cnn();
  std::vector<torch::Tensor> images;
  for (const auto& f : files) images.push_back(to_uint8(read_image(f, c.in_channels(), c.height(), c.width())));
  std::vector<int64_t> dataset_labels;
  for (auto l : in.labels) dataset_labels.push_back(std::max<int64_t>(l, 0));
  in.items = std::make_shared<ImageDataset>(torch::cat(images), dataset_labels, files.empty() ? "" : files[0], in.class_names);
  in.keys = files;
  return in;
}

void check_split(const std::string& split) {
  if (split != "train" && split != "test") {
    throw Error(ErrorCode::InvalidArgument, "unknown split '" + split + "' (train or test)");
  }
}

/// One text per non-blank line, unlabelled.
TextItems read_plain_lines(const std::string& path) {
  std::ifstream file(path);
  if (!file) throw Error(ErrorCode::IOError, path, "cannot read");
  TextItems items;
  items.source = path;
  for (std::string line; std::getline(file, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    items.texts.push_back(line);
    items.labels.emplace_back();
  }
  return items;
}

Inputs read_sequence_inputs(const std::string& what, const SavedModel& model, const std::string& split) {
  const auto& net = model.network->options;
  const bool text = !net.tokens().empty();
  const auto max_length = nlohmann::json::parse(model.info).value("max_length", int64_t{0});
  const auto ext = fs::path(what).extension().string();
  bool labelled = true;
  SequenceDataset data;
  if (is_sequence_spec(what)) {
    check_split(split);
    auto s = open_model_sequences(model, what);
    data = split == "train" ? std::move(s.train) : std::move(s.test);
  } else if (text && !fs::is_directory(what)) {
    TextItems items;
    if (!fs::exists(what)) {  // the text itself
      items.texts = {what};
      items.labels = {""};
      labelled = false;
    } else if (ext == ".fasta" || ext == ".fa" || ext == ".fna") {
      items = read_fasta(what, /*require_labels=*/false);
      const auto unlabelled = std::count(items.labels.begin(), items.labels.end(), "");
      if (unlabelled > 0 && unlabelled < static_cast<int64_t>(items.labels.size())) {
        throw Error(ErrorCode::InvalidArgument, what,
                    std::to_string(unlabelled) + " of " + std::to_string(items.labels.size()) +
                        " records have no label ('>ID LABEL'); label all or none");
      }
      labelled = unlabelled == 0;
    } else if (ext == ".tsv") {
      items = read_text_lines(what);
    } else {
      items = read_plain_lines(what);
      labelled = false;
    }
    if (items.texts.empty()) throw Error(ErrorCode::InvalidArgument, what, "no sequences");
    LoadSummary summary;
    data = encode_text(items, Vocabulary(net.vocabulary()), net.tokens(), max_length, &summary);
    if (summary.only_unknown > 0) {  // all <unk>: two such items of one length embed alike, say what they may
      if (fs::exists(what)) {
        std::cerr << "warning: " << what << ": " << summary.only_unknown << " of " << summary.items
                  << " items have no token the model knows (all read as <unk>): their embeddings tell nothing of "
                     "their content\n";
      } else {
        std::cerr << "warning: '" << what << "' has no token the model knows (all read as <unk>): its embedding "
                     "tells nothing of its content\n";
      }
    }
  } else if (text) {
    throw Error(ErrorCode::InvalidArgument, what,
                "a folder; this text model reads a .fasta, .tsv or text file, a spec, or a text");
  } else if (fs::is_regular_file(what) && ext == ".csv") {
    data = read_series_csv(what, max_length);
  } else if (fs::is_directory(what)) {
    bool strokes = false;
    for (const auto& e : fs::directory_iterator(what)) strokes = strokes || e.path().extension() == ".jhf";
    data = strokes ? read_strokes(what, max_length) : read_series_files(what, max_length);
  } else {
    if (!fs::exists(what)) throw Error(ErrorCode::NotFound, what, "no such file or folder");
    throw Error(ErrorCode::InvalidArgument, what,
                "this numeric sequence model reads a .csv file (a series per row), a folder of .csv files (a series "
                "each) or a folder of .jhf strokes");
  }
  if (!text && data.features() != net.rnn().features()) {
    throw Error(ErrorCode::InvalidArgument, what,
                std::to_string(data.features()) + " feature(s) per step; the model reads " +
                    std::to_string(net.rnn().features()));
  }
  Inputs in;
  for (int64_t i = 0; i < data.size(); ++i) in.keys.push_back(data.name(i));
  in.labels = data.labels();
  if (labelled) {
    in.class_names = data.class_names();
  } else {
    in.labels.assign(in.labels.size(), -1);
  }
  in.items = std::make_shared<SequenceDataset>(std::move(data));
  return in;
}

}  // namespace

Inputs read_inputs(const std::string& what, const SavedModel& model, const std::string& split) {
  if (model.network->takes_sequences()) return read_sequence_inputs(what, model, split);
  Inputs in;
  std::vector<std::string> files;
  if (fs::is_regular_file(what)) {
    files.push_back(what);
    in.labels.push_back(-1);
  } else if (fs::is_directory(what)) {
    std::vector<fs::path> found;
    for (const auto& e : fs::recursive_directory_iterator(what)) {
      if (e.is_regular_file() && is_image_file(e.path())) found.push_back(e.path());
    }
    std::sort(found.begin(), found.end());
    std::map<std::string, int64_t> classes;  // first-level sub-folder -> label
    for (const auto& p : found) {
      auto rel = fs::relative(p, what);
      if (rel.has_parent_path()) classes.emplace(rel.begin()->string(), 0);
    }
    for (auto& [name, label] : classes) {
      label = static_cast<int64_t>(in.class_names.size());
      in.class_names.push_back(name);
    }
    for (const auto& p : found) {
      auto rel = fs::relative(p, what);
      files.push_back(p.string());
      in.labels.push_back(rel.has_parent_path() ? classes.at(rel.begin()->string()) : -1);
    }
    if (files.empty()) throw Error(ErrorCode::NotFound, what, "no images (.png .jpg .jpeg .bmp .pgm) in this folder");
  } else if (what.find(':') != std::string::npos || what == "fashion-mnist") {
    check_split(split);
    auto source = open_data(what);
    auto images = std::make_shared<ImageDataset>(split == "train" ? std::move(source.train) : std::move(source.test));
    in.labels = images->labels();
    in.class_names = images->class_names();
    for (int64_t i = 0; i < images->size(); ++i) in.keys.push_back(what + ":" + split + "#" + std::to_string(i));
    in.items = images;
    return in;
  } else {
    throw Error(ErrorCode::NotFound, what, "no such file or folder");
  }
  return read_files_as(files, std::move(in), model);
}

Inputs read_files(const std::vector<std::string>& files, const SavedModel& model) {
  Inputs in;
  in.labels.assign(files.size(), -1);
  return read_files_as(files, std::move(in), model);
}

torch::Tensor embed_inputs(SavedModel& model, const Inputs& inputs) { return embed_dataset(model.network, *inputs.items); }

SequenceSplits open_model_sequences(const SavedModel& model, const std::string& spec) {
  const auto& net = model.network->options;
  const auto info = nlohmann::json::parse(model.info);
  return open_sequences(spec, info.value("validation_size", int64_t{5000}), info.value("max_length", int64_t{0}),
                        net.tokens(), net.vocabulary());
}

std::vector<unsigned char> png_for_key(const std::string& key) {
  static std::map<std::string, DataSource> opened;  // data sets, opened once per process
  const auto hash = key.rfind('#');
  const auto colon = key.rfind(':', hash);
  if (hash != std::string::npos && colon != std::string::npos && !fs::exists(key)) {
    const std::string spec = key.substr(0, colon), split = key.substr(colon + 1, hash - colon - 1);
    auto it = opened.find(spec);
    if (it == opened.end()) it = opened.emplace(spec, open_data(spec)).first;
    const auto& set = split == "test" ? it->second.test : it->second.train;
    const int64_t i = std::stoll(key.substr(hash + 1));
    if (i < 0 || i >= set.size()) throw Error(ErrorCode::NotFound, key, "no such item");
    auto hwc = set.images()[i].permute({1, 2, 0}).contiguous();
    cv::Mat mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), hwc.size(2) == 3 ? CV_8UC3 : CV_8UC1,
                hwc.data_ptr<uint8_t>());
    if (mat.channels() == 3) cv::cvtColor(mat, mat, cv::COLOR_RGB2BGR);
    std::vector<unsigned char> png;
    cv::imencode(".png", mat, png);
    return png;
  }
  cv::Mat mat = cv::imread(key, cv::IMREAD_UNCHANGED);
  if (mat.empty()) {
    throw Error(fs::exists(key) ? ErrorCode::Corruption : ErrorCode::NotFound, key, "cannot read this image");
  }
  std::vector<unsigned char> png;
  cv::imencode(".png", mat, png);
  return png;
}

}  // namespace siamese::cli
