#pragma once
/// \file sequence.h  Sequence data sets (text, DNA, pen strokes, time series) for the LSTM/GRU
/// encoders: readers, the token vocabulary, and the padded-with-mask batch layout.
///
/// A sequence batch is float [N, T, 1 + F]: column 0 is 1 for a real step and 0 for padding (the
/// real steps of each item come first), columns 1..F hold the step's features. For token
/// sequences F = 1 and the column holds the token id (0 = "<unk>"). T is the longest item of the
/// batch, so an item embeds the same whatever its neighbours (the encoder reads only the real steps).
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "siamese/data/data.h"

namespace siamese {

/// What a reader kept and dropped, for the load summary (also printed by the CLI).
struct LoadSummary {
  int64_t items = 0;           ///< items kept
  int64_t skipped_empty = 0;   ///< blank lines / records with no steps (skipped, not an error)
  int64_t truncated = 0;       ///< items cut to max_length
  int64_t unknown_tokens = 0;  ///< tokens not in the vocabulary, mapped to "<unk>" (id 0)
  int64_t only_unknown = 0;    ///< items with no token in the vocabulary: they all embed alike
  std::string to_string() const;
};

/// How text and DNA are cut into tokens: "char" (one token per character), "word" (split on
/// white space) or "kmerK" (overlapping K-mers, 1 <= K <= 8; e.g. "kmer3"). Throws siamese::Error
/// on another name.
std::vector<std::string> tokenize(const std::string& text, const std::string& tokens);

/// Token -> id. Id 0 is "<unk>"; the others are the tokens seen at least min_count times in the
/// training items, most frequent first (ties by token).
/// Thread safety: immutable after build(); const calls may run concurrently.
class Vocabulary {
 public:
  Vocabulary() = default;
  explicit Vocabulary(std::vector<std::string> tokens);  ///< tokens[0] must be "<unk>"
  static Vocabulary build(const std::vector<std::vector<std::string>>& items, int64_t min_count = 1);
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t id(const std::string& token) const;  ///< 0 for an unknown token
  const std::vector<std::string>& tokens() const { return tokens_; }

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
};

/// Variable-length sequences held in memory; gather() pads to the batch's longest item (layout
/// above).
class SequenceDataset : public Dataset {
 public:
  SequenceDataset() = default;
  /// steps: one float [T_i, F] tensor per item, T_i >= 1, the same F for all; labels >= 0.
  /// tokens: true when F = 1 holds token ids. names: one per item for people to read (the text,
  /// the FASTA ID, "file:line"), or empty. Throws siamese::Error on a mismatch.
  SequenceDataset(std::vector<torch::Tensor> steps, std::vector<int64_t> labels, std::string source,
                  std::vector<std::string> class_names = {}, bool tokens = false, std::vector<std::string> names = {});
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const std::vector<int64_t>& labels() const override { return labels_; }
  /// [n, T, 1 + F] float, T = the longest of the items asked for.
  torch::Tensor gather(const std::vector<int64_t>& indices) const override;
  std::string source() const override { return source_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  int64_t features() const { return features_; }  ///< F
  bool tokens() const { return tokens_; }
  const std::vector<torch::Tensor>& steps() const { return steps_; }
  /// Item i's name, or "SOURCE#i" when the reader gave none.
  std::string name(int64_t i) const;
  SequenceDataset subset(const std::vector<int64_t>& indices, const std::string& what) const;
  /// Mean and standard deviation of each feature over every step of every item ([F] each; std
  /// at least 1e-6). Token sets give 0 and 1.
  std::pair<std::vector<double>, std::vector<double>> feature_stats() const;

 private:
  std::vector<torch::Tensor> steps_;
  std::vector<int64_t> labels_;
  std::string source_;
  std::vector<std::string> class_names_;
  int64_t features_ = 0;
  bool tokens_ = false;
  std::vector<std::string> names_;
};

/// Labelled raw items as a reader returns them, before tokens become ids.
struct TextItems {
  std::vector<std::string> texts;   ///< one per item
  std::vector<std::string> labels;  ///< one per item
  std::vector<std::string> names;   ///< one per item (FASTA: the record ID), or empty: the text
  std::string source;
  LoadSummary summary;
};

/// Labelled text lines "text<TAB>label" (a line with an empty text is counted and skipped), or a
/// file of text pairs "a<TAB>b<TAB>same" (same = 1 or 0): then each distinct text is one item and
/// the same = 1 pairs join texts into classes ("group1", "group2", … by first appearance).
/// Throws siamese::Error naming the file and line on a line without a tab, an empty label, a file
/// mixing both forms, or a different pair whose texts other lines make the same.
TextItems read_text_lines(const std::string& path);
/// FASTA: ">ID LABEL [anything]" header, then sequence lines (letters, upper-cased; '-' and '.'
/// gaps removed). Throws siamese::Error naming file and line on a header without a label (unless
/// require_labels is false: its label is then ""), a record without a sequence, or a sequence
/// line before the first header.
TextItems read_fasta(const std::string& path, bool require_labels = true);
/// Turns raw items into token-id sequences: labels become classes (sorted names), items longer
/// than max_length tokens (0 = no limit) are cut and counted, unknown tokens counted.
SequenceDataset encode_text(const TextItems& items, const Vocabulary& vocabulary, const std::string& tokens,
                            int64_t max_length, LoadSummary* summary = nullptr);

/// Pen strokes from Hershey .jhf files: every *.jhf in `dir` is one style; each glyph a sequence
/// of (dx, dy, pen_up) steps from the origin through its points, pen_up = 1 on a move that draws
/// nothing; its class is the glyph's number field (scripts/hershey writes ASCII codes there).
/// Throws siamese::Error naming the file on a truncated or malformed glyph, or no .jhf file.
SequenceDataset read_strokes(const std::string& dir, int64_t max_length = 0, LoadSummary* summary = nullptr);

/// Numeric time series, one per CSV row: "label,v1,v2,...,vT" (rows may differ in length; a first
/// row whose values are not numbers is a header and skipped). Throws siamese::Error naming the
/// file and line on a missing or non-numeric value or a row without values.
SequenceDataset read_series_csv(const std::string& path, int64_t max_length = 0, LoadSummary* summary = nullptr);

/// Numeric time series, one per file: every *.csv in `dir` (sorted by name) holds one series, a
/// row per time step "label,f1,...,fF" (F >= 1 features, the same in every file; the label the
/// same on every row; an optional header row). Throws siamese::Error naming the file and line on a
/// missing or non-numeric value, a changing label or feature count, or a file without steps.
SequenceDataset read_series_files(const std::string& dir, int64_t max_length = 0, LoadSummary* summary = nullptr);

/// A sequence data specification (the sequence counterpart of open_data):
///   "text:DIR"     DIR/train.tsv, DIR/test.tsv      (read_text_lines; tokens default "char")
///   "fasta:DIR"    DIR/train.fasta, DIR/test.fasta  (read_fasta; tokens default "char")
///   "strokes:DIR"  DIR/train/*.jhf, DIR/test/*.jhf  (read_strokes)
///   "csv:DIR"      DIR/train.csv, DIR/test.csv      (read_series_csv), or
///                  DIR/train/*.csv, DIR/test/*.csv  (read_series_files: one series per file)
bool is_sequence_spec(const std::string& spec);

struct SequenceSplits {
  SequenceDataset train, validation, test;
  std::vector<std::string> vocabulary;  ///< token sets: the vocabulary built on train
  std::string tokens;                   ///< token sets: the tokenizer used
  LoadSummary summary;                  ///< train, validation and test together
};

/// Opens a sequence spec and splits it: test = the test file; validation = whole classes taken
/// from the end of the training file (sorted by name) until they hold >= validation_size items,
/// so validation, like test, is made of classes never trained on; train = the rest. The
/// vocabulary comes from train only. tokens "" picks the spec's default; vocabulary non-empty
/// reuses it (a trained model's). Throws siamese::Error on a missing file or empty split.
SequenceSplits open_sequences(const std::string& spec, int64_t validation_size, int64_t max_length,
                              std::string tokens = "", const std::vector<std::string>& vocabulary = {});

}  // namespace siamese
