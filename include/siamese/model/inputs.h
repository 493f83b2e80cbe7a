#pragma once
/// \file inputs.h  What a user points a trained model at (an image file, a folder of images, a data
/// set spec, texts, sequence files), read the way the model expects its inputs, and the data a
/// model was trained on, reopened the way its training opened it (the model file's `info`).
/// Thread safety: every function here only reads the SavedModel it is given; read_inputs,
/// read_files and open_data_as_trained may run concurrently; embed_inputs may run concurrently
/// on one model in eval mode (load_model returns it so), like SiameseNetworkImpl::embed.

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "siamese/core/log.h"
#include "siamese/data/data.h"
#include "siamese/data/sequence.h"
#include "siamese/model/model_file.h"

namespace siamese {

/// Items with a key each (file path, "SPEC:SPLIT#N" for item N of an image data set; for
/// sequences the reader's name: the text, the FASTA ID, "file:line") and a label (-1 when
/// unknown). Labels of a folder come from its first-level sub-folders, sorted by name.
/// keys.size() == labels.size() == items->size().
struct Inputs {
  /// An ImageDataset (uint8 images of the model's input shape [C, H, W]), or a SequenceDataset
  /// for sequence models (SiameseNetworkImpl::takes_sequences()). Its own labels are >= 0
  /// (unlabelled items read as 0); `labels` below says which are unknown.
  std::shared_ptr<const Dataset> items;
  std::vector<std::string> keys;
  std::vector<int64_t> labels;
  std::vector<std::string> class_names;  ///< by label; empty for unlabelled inputs
};

/// Reads `what` for `model`.
/// Image models: `what` is an image file, a folder (searched recursively for
/// .png/.jpg/.jpeg/.bmp/.pgm) or a data specification (fashion-mnist, idx:DIR, folder:DIR;
/// `split` "train" | "test"); images are read at the model's input shape (cnn options).
/// Sequence models: a sequence spec (text:, fasta:, strokes:, csv:; `split`, opened as trained:
/// open_sequences_as_trained), a file (.fasta/.fa/.fna; .tsv "text<TAB>label"; any other file:
/// one text per line, unlabelled; .csv one series per row), a folder (.jhf strokes, or .csv files
/// of one series each), or, for a text model, the text itself when `what` names no file.
/// Tokenised with the model's vocabulary; items with no known token are reported to `logger` as
/// a warning. Default split "train", logger silent.
/// Throws siamese::Error naming the file on a bad or empty input, an unknown split, or sequences
/// whose feature count is not the model's.
Inputs read_inputs(const std::string& what, const SavedModel& model, const std::string& split = "train",
                   Logger& logger = silent_logger());

/// These image files (image models), unlabelled (labels -1), keyed by their paths, read at the
/// model's input shape, their count reported to `logger`. Throws siamese::Error naming a file
/// that is missing or unreadable.
Inputs read_files(const std::vector<std::string>& files, const SavedModel& model, Logger& logger = silent_logger());

/// Embeddings of the inputs: [N, D] float, in the order of inputs.keys, in batches of 512, their
/// count reported to `logger`.
/// Requires the network in eval mode and never changes it; throws siamese::Error(InvalidArgument)
/// otherwise, or when there is nothing to embed.
torch::Tensor embed_inputs(SavedModel& model, const Inputs& inputs, Logger& logger = silent_logger());

/// One input a client sent (the service), as the model reads it. Image models: the bytes of an
/// image file, decoded (decode_image, refused past `max_pixels`) and of the model's input shape:
/// uint8 [C, H, W]. `name` names the input in errors. Throws siamese::Error as decode_image, and
/// InvalidArgument for an image of another shape or a model that reads sequences.
torch::Tensor image_input(const std::string& bytes, const std::string& name, const SavedModel& model,
                          uint64_t max_pixels = kMaxImagePixels);

/// A text for a text model (its tokenizer, vocabulary and training --max-length): token ids, float
/// [T, 1], T >= 1. Throws siamese::Error(InvalidArgument) for an empty text or a model that does
/// not read texts. `unknown_only`, when given, is set to whether no token was known to the model.
torch::Tensor text_input(const std::string& text, const SavedModel& model, bool* unknown_only = nullptr);

/// A numeric series for a numeric sequence model: `values` holds `steps` x F floats, row by row,
/// F the model's features per step; cut to the model's training --max-length as read_series_csv
/// cuts. Returns float [T, F]. Throws siamese::Error(InvalidArgument) for an empty series, a
/// feature count other than the model's, a non-finite value, or a model that does not read
/// numeric series.
torch::Tensor series_input(const std::vector<float>& values, int64_t features, const SavedModel& model);

/// The model's input batch of items made by image_input, text_input or series_input (all of one kind): float
/// [N, C, H, W] in [0, 1] for images, [N, T, 1 + F] padded for sequences, as the data sets'
/// gather() makes them, so that network->embed(input_batch(...)) equals embed_inputs of the same
/// items. Throws siamese::Error(InvalidArgument) when `items` is empty. May run concurrently.
torch::Tensor input_batch(const SavedModel& model, const std::vector<torch::Tensor>& items);

/// How image data sets are opened for `model`: its image view (photos.h), and the --on-bad-image
/// it was trained with (info "on_bad_image", default fail).
ImageReadOptions image_read_options(const SavedModel& model);

/// The data spec the model was trained on (its info "data"), "fashion-mnist" when it names none.
/// Throws siamese::Error(Corruption) when `info` is not JSON.
std::string trained_data_spec(const SavedModel& model);

/// A sequence spec opened the way `model` was trained on it: its tokenizer, vocabulary,
/// --max-length and --validation-size (info "max_length", default 0 = no limit;
/// "validation_size", default 5000). Throws siamese::Error as open_sequences does.
SequenceSplits open_sequences_as_trained(const SavedModel& model, const std::string& spec);

/// What open_data_as_trained takes from the caller instead of the model file; every default
/// means "as the model was trained".
struct TrainedDataOptions {
  /// Data spec; "" = trained_data_spec(model). Default "".
  TORCH_ARG(std::string, data) = "";
  /// Image data: the protocol; none = the model's info "protocol" (fmnist-seen when absent).
  TORCH_ARG(std::optional<Protocol>, protocol) = std::nullopt;
  /// Image data under fmnist-unseen: the test classes; empty = the model's info "unseen_classes"
  /// ({5, 6, 7, 8, 9} when absent). Default empty.
  TORCH_ARG(std::vector<int64_t>, unseen_classes) = {};
  /// If > 0, keep only the first `subset` items of each split. Default 0 (all).
  TORCH_ARG(int64_t, subset) = 0;
};

/// Train, validation and test splits of a data set, opened as a model was trained on it.
struct TrainedData {
  std::string spec;        ///< the data spec opened
  bool sequences = false;  ///< a sequence spec (is_sequence_spec): the splits are SequenceDatasets
  /// Image data: the protocol of the splits (Protocol::Seen for sequences).
  Protocol protocol = Protocol::Seen;
  std::shared_ptr<const Dataset> train, validation, test;  ///< ImageDataset or SequenceDataset each
};

/// Reopens the data `model` was trained on (or options.data) the way training did.
/// Image data: make_splits with the protocol, unseen classes and validation size (info
/// "validation_size", default 5000). Sequence specs: open_sequences_as_trained, whose test split
/// holds classes training never saw. Throws siamese::Error on a missing or bad data set, an
/// unknown protocol name in the model file, or a split left empty.
TrainedData open_data_as_trained(const SavedModel& model, const TrainedDataOptions& options = {},
                                 Logger& logger = silent_logger());

}  // namespace siamese
