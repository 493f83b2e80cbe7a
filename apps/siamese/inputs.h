#pragma once
// Inputs of the commands that use a trained model on a user's images: a single image file, a
// folder of images, or a data set specification; embedded with the model.

#include <memory>
#include <string>
#include <vector>

#include "siamese/data/data.h"
#include "siamese/model/model_file.h"
#include "siamese/data/sequence.h"

namespace siamese::cli {

/// Items with a key each (file path, "SPEC:SPLIT#N" for item N of an image data set; for
/// sequences the reader's name: the text, the FASTA ID, "file:line") and a label (-1 when
/// unknown). Labels of a folder come from its first-level sub-folders, sorted by name.
struct Inputs {
  std::shared_ptr<const Dataset> items;  ///< an ImageDataset, or a SequenceDataset for lstm/gru models
  std::vector<std::string> keys;
  std::vector<int64_t> labels;
  std::vector<std::string> class_names;  ///< by label; empty for unlabelled inputs
};

/// Image models: `what` is an image file, a folder (searched recursively for
/// .png/.jpg/.jpeg/.bmp/.pgm) or a data specification (fashion-mnist, idx:DIR, folder:DIR;
/// `split` train | test); images must have the model's input shape.
/// Sequence models (lstm, gru): a sequence spec (text:, fasta:, strokes:, csv:; `split`), a file
/// (.fasta/.fa/.fna; .tsv "text<TAB>label"; any other file: one text per line, unlabelled; .csv
/// one series per row), a folder (.jhf strokes, or .csv files of one series each), or, for a
/// text model, the text itself when `what` names no file. Tokenised with the model's vocabulary.
/// Throws siamese::Error naming the file on a bad or empty input.
Inputs read_inputs(const std::string& what, const SavedModel& model, const std::string& split = "train");

/// These image files, unlabelled, keyed by their paths.
Inputs read_files(const std::vector<std::string>& files, const SavedModel& model);

/// Embeddings of the inputs [N, D].
torch::Tensor embed_inputs(SavedModel& model, const Inputs& inputs);

/// A sequence spec opened the way `model` was trained on it: its tokenizer, vocabulary,
/// --max-length and --validation-size (from the model file).
SequenceSplits open_model_sequences(const SavedModel& model, const std::string& spec);

/// The image a key points to, as PNG bytes (data-set items are taken from the data set).
std::vector<unsigned char> png_for_key(const std::string& key);

}  // namespace siamese::cli
