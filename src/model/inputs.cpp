#include "siamese/model/inputs.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "siamese/core/atomic_file.h"
#include "siamese/core/error.h"
#include "siamese/data/image_files.h"

namespace fs = std::filesystem;

namespace siamese {

namespace {

/// The model file's info document (written by the trainer).
nlohmann::json model_info(const SavedModel& model) {
  try {
    return nlohmann::json::parse(model.info);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Corruption, "model info is not JSON (" + std::string(e.what()) + ")");
  }
}

torch::Tensor to_uint8(const torch::Tensor& unit) { return unit.mul(255.0).round().clamp(0, 255).to(torch::kUInt8); }

/// Reads the files into `in` (labels already set, -1 for none).
Inputs read_files_as(const std::vector<std::string>& files, Inputs in, const SavedModel& model, Logger& logger) {
  const auto& c = model.network->options.cnn();
  const auto& view = model.network->options.image_view();
  std::vector<torch::Tensor> images;
  for (const auto& f : files) {
    if (view.size > 0) {
      images.push_back(decode_view(read_file(f), f, view).unsqueeze(0));
    } else {
      images.push_back(to_uint8(read_image(f, c.in_channels(), c.height(), c.width())));
    }
    logger.count("reading images", static_cast<int64_t>(images.size()), static_cast<int64_t>(files.size()));
  }
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

/// A text model's input that is not a spec: a file of texts, or the text itself. Sets `labelled`.
SequenceDataset read_texts(const std::string& what, const SavedModel& model, int64_t max_length, bool& labelled,
                           Logger& logger) {
  const auto& net = model.network->options;
  const auto ext = fs::path(what).extension().string();
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
  auto data = encode_text(items, Vocabulary(net.vocabulary()), net.tokens(), max_length, &summary);
  if (summary.only_unknown > 0) {  // all <unk>: two such items of one length embed alike, say what they may
    if (fs::exists(what)) {
      logger.warning(what + ": " + std::to_string(summary.only_unknown) + " of " + std::to_string(summary.items) +
                     " items have no token the model knows (all read as <unk>): their embeddings tell nothing of "
                     "their content");
    } else {
      logger.warning("'" + what + "' has no token the model knows (all read as <unk>): its embedding "
                     "tells nothing of its content");
    }
  }
  return data;
}

Inputs read_sequence_inputs(const std::string& what, const SavedModel& model, const std::string& split, Logger& logger) {
  const auto& net = model.network->options;
  const bool text = !net.tokens().empty();
  const auto max_length = model_info(model).value("max_length", int64_t{0});
  const auto ext = fs::path(what).extension().string();
  bool labelled = true;
  SequenceDataset data;
  if (fs::is_regular_file(what) && is_image_file(what)) {
    throw Error(ErrorCode::InvalidArgument, what,
                "is an image, but this model reads sequences (" + (text ? "texts: a text, a .tsv, .fasta or text file" : std::string("numbers: a .csv file or a folder of series")) + ")");
  }
  if (is_sequence_spec(what)) {
    check_split(split);
    auto s = open_sequences_as_trained(model, what);
    data = split == "train" ? std::move(s.train) : std::move(s.test);
  } else if (text && !fs::is_directory(what)) {
    data = read_texts(what, model, max_length, labelled, logger);
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

/// The image files of a folder (recursively, sorted), labelled by first-level sub-folder.
Inputs read_image_folder_inputs(const std::string& what, const SavedModel& model, Logger& logger) {
  Inputs in;
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
  std::vector<std::string> files;
  for (const auto& p : found) {
    auto rel = fs::relative(p, what);
    files.push_back(p.string());
    in.labels.push_back(rel.has_parent_path() ? classes.at(rel.begin()->string()) : -1);
  }
  if (files.empty()) throw Error(ErrorCode::NotFound, what, "no images (.png .jpg .jpeg .bmp .pgm .webp) in this folder");
  return read_files_as(files, std::move(in), model, logger);
}

/// The first min(n, size) indices.
std::vector<int64_t> first(int64_t n, int64_t size) {
  std::vector<int64_t> idx(static_cast<size_t>(std::max<int64_t>(0, std::min(n, size))));
  std::iota(idx.begin(), idx.end(), 0);
  return idx;
}

}  // namespace

Inputs read_inputs(const std::string& what, const SavedModel& model, const std::string& split, Logger& logger) {
  if (model.network->takes_sequences()) return read_sequence_inputs(what, model, split, logger);
  if (fs::is_regular_file(what)) {
    Inputs in;
    in.labels.push_back(-1);
    return read_files_as({what}, std::move(in), model, logger);
  }
  if (fs::is_directory(what)) return read_image_folder_inputs(what, model, logger);
  if (what.find(':') != std::string::npos || what == "fashion-mnist") {
    check_split(split);
    auto source = open_data(what, logger, image_read_options(model));
    auto images = std::make_shared<ImageDataset>(split == "train" ? std::move(source.train) : std::move(source.test));
    Inputs in;
    in.labels = images->labels();
    in.class_names = images->class_names();
    for (int64_t i = 0; i < images->size(); ++i) {  // image files are keyed by their paths
      const auto path = images->item_path(i);
      in.keys.push_back(!path.empty() ? path : what + ":" + split + "#" + std::to_string(i));
    }
    in.items = images;
    return in;
  }
  throw Error(ErrorCode::NotFound, what, "no such file or folder");
}

Inputs read_files(const std::vector<std::string>& files, const SavedModel& model, Logger& logger) {
  Inputs in;
  in.labels.assign(files.size(), -1);
  return read_files_as(files, std::move(in), model, logger);
}

torch::Tensor embed_inputs(SavedModel& model, const Inputs& inputs, Logger& logger) {
  return embed_dataset(model.network, *inputs.items, 512, logger);
}

torch::Tensor image_input(const std::string& bytes, const std::string& name, const SavedModel& model, uint64_t max_pixels) {
  if (model.network->takes_sequences()) throw Error(ErrorCode::InvalidArgument, name, "is an image, but this model reads sequences");
  const auto& c = model.network->options.cnn();
  if (model.network->options.image_view().size > 0) return decode_view(bytes, name, model.network->options.image_view(), max_pixels);
  auto image = decode_image(bytes, name, max_pixels);
  if (image.size(0) != c.in_channels() || image.size(1) != c.height() || image.size(2) != c.width()) {
    throw Error(ErrorCode::InvalidArgument, name,
                "image is " + std::to_string(image.size(0)) + "x" + std::to_string(image.size(1)) + "x" +
                    std::to_string(image.size(2)) + " (channels x height x width); the model expects " +
                    std::to_string(c.in_channels()) + "x" + std::to_string(c.height()) + "x" + std::to_string(c.width()));
  }
  return image;
}

torch::Tensor text_input(const std::string& text, const SavedModel& model, bool* unknown_only) {
  const auto& net = model.network->options;
  if (!model.network->takes_sequences() || net.tokens().empty()) throw Error(ErrorCode::InvalidArgument, "a text, but this model does not read texts");
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw Error(ErrorCode::InvalidArgument, "an empty text");
  TextItems items;
  items.texts = {text};
  items.labels = {""};
  LoadSummary summary;
  auto data = encode_text(items, Vocabulary(net.vocabulary()), net.tokens(), model_info(model).value("max_length", int64_t{0}), &summary);
  if (unknown_only) *unknown_only = summary.only_unknown > 0;
  return data.steps().at(0);
}

torch::Tensor series_input(const std::vector<float>& values, int64_t features, const SavedModel& model) {
  const auto& net = model.network->options;
  if (!model.network->takes_sequences() || !net.tokens().empty()) {
    throw Error(ErrorCode::InvalidArgument, std::string("a series, but this model reads ") + (model.network->takes_sequences() ? "texts" : "images"));
  }
  if (values.empty() || features < 1 || values.size() % static_cast<size_t>(features) != 0) throw Error(ErrorCode::InvalidArgument, "an empty series");
  if (features != net.rnn().features()) {
    throw Error(ErrorCode::InvalidArgument,
                std::to_string(features) + " feature(s) per step; the model reads " + std::to_string(net.rnn().features()));
  }
  for (const float v : values) {
    if (!std::isfinite(v)) throw Error(ErrorCode::InvalidArgument, "a series value that is not a finite number");
  }
  auto steps = static_cast<int64_t>(values.size()) / features;
  const auto max_length = model_info(model).value("max_length", int64_t{0});
  if (max_length > 0) steps = std::min(steps, max_length);
  return torch::tensor(values).narrow(0, 0, steps * features).reshape({steps, features}).clone();
}

torch::Tensor input_batch(const SavedModel& model, const std::vector<torch::Tensor>& items) {
  if (items.empty()) throw Error(ErrorCode::InvalidArgument, "no inputs to embed");
  std::vector<int64_t> all(items.size());
  std::iota(all.begin(), all.end(), 0);
  if (!model.network->takes_sequences()) return ImageDataset(torch::stack(items), std::vector<int64_t>(items.size(), 0), "inputs").gather(all);
  const bool tokens = !model.network->options.tokens().empty();
  return SequenceDataset(items, std::vector<int64_t>(items.size(), 0), "inputs", {}, tokens).gather(all);
}

ImageReadOptions image_read_options(const SavedModel& model) {
  ImageReadOptions o;
  o.view = model.network->options.image_view();
  o.on_bad_image = parse_bad_image_policy(model_info(model).value("on_bad_image", "fail"));
  return o;
}

std::string trained_data_spec(const SavedModel& model) { return model_info(model).value("data", "fashion-mnist"); }

SequenceSplits open_sequences_as_trained(const SavedModel& model, const std::string& spec) {
  const auto& net = model.network->options;
  const auto info = model_info(model);
  return open_sequences(spec, info.value("validation_size", int64_t{5000}), info.value("max_length", int64_t{0}),
                        net.tokens(), net.vocabulary());
}

TrainedData open_data_as_trained(const SavedModel& model, const TrainedDataOptions& options, Logger& logger) {
  const auto info = model_info(model);
  TrainedData out;
  out.spec = !options.data().empty() ? options.data() : info.value("data", "fashion-mnist");
  if (is_sequence_spec(out.spec) != model.network->takes_sequences()) {
    throw Error(ErrorCode::InvalidArgument, out.spec,
                model.network->takes_sequences()
                    ? "holds images, but the model reads sequences: give sequence data (text:DIR, fasta:DIR, strokes:DIR or csv:DIR)"
                    : "is sequence data, but the model reads images: give image data (fashion-mnist, idx:DIR or folder:DIR)");
  }
  if (is_sequence_spec(out.spec)) {
    out.sequences = true;
    auto splits = open_sequences_as_trained(model, out.spec);
    auto keep = [&](SequenceDataset& d) {
      if (options.subset() > 0 && d.size() > 0) d = d.subset(first(options.subset(), d.size()), "subset");
      return std::make_shared<SequenceDataset>(std::move(d));
    };
    out.train = keep(splits.train);
    out.validation = keep(splits.validation);
    out.test = keep(splits.test);
    return out;
  }
  out.protocol = options.protocol() ? *options.protocol() : parse_protocol(info.value("protocol", "fmnist-seen"));
  const auto unseen = !options.unseen_classes().empty()
                          ? options.unseen_classes()
                          : info.value("unseen_classes", std::vector<int64_t>{5, 6, 7, 8, 9});
  auto source = open_data(out.spec, logger, image_read_options(model));
  // Other data than the model trained on may be smaller than its validation split: a fifth of
  // it validates (the raw-pixel reference's calibration) instead.
  auto validation = info.value("validation_size", int64_t{5000});
  if (out.spec != info.value("data", "fashion-mnist") && validation >= source.train.size()) {
    validation = std::max<int64_t>(1, source.train.size() / 5);
  }
  auto splits = make_splits(source, SplitOptions()
                                        .protocol(out.protocol)
                                        .unseen_classes(unseen)
                                        .validation_size(validation)
                                        .subset(options.subset()));
  out.train = std::make_shared<ImageDataset>(std::move(splits.train));
  out.validation = std::make_shared<ImageDataset>(std::move(splits.validation));
  out.test = std::make_shared<ImageDataset>(std::move(splits.test));
  return out;
}

}  // namespace siamese
