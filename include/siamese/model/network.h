#pragma once
/// \file network.h  Encoders and the Siamese network that applies ONE encoder to every branch.

#include <torch/torch.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "siamese/core/distance.h"
#include "siamese/data/data.h"
#include "siamese/model/device.h"
#include "siamese/model/quantize.h"

namespace siamese {

/// What every encoder is: a module mapping a batch of inputs [N, ...] to embeddings [N, D].
class EncoderImpl : public torch::nn::Module {
 public:
  /// x: a batch of model inputs, [N, ...]. Returns embeddings [N, embedding_dim()].
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  virtual int64_t embedding_dim() const = 0;
  /// Image encoders with a convolutional trunk (backbones.h): the trunk's output [N, C, h, w]
  /// before pooling. Others throw siamese::Error(Unsupported).
  virtual torch::Tensor feature_maps(torch::Tensor x);
};

/// Options of the CNN encoder: one conv(3×3)–batch-norm–ReLU–max-pool(2) block per entry of
/// conv_channels, then flatten → linear(hidden) → ReLU → linear(embedding_dim).
struct CnnEncoderOptions {
  /// Input channels (1 = grey, 3 = colour). Default 1.
  TORCH_ARG(int64_t, in_channels) = 1;
  /// Input height and width in pixels. Default 28 × 28 (Fashion-MNIST).
  TORCH_ARG(int64_t, height) = 28;
  TORCH_ARG(int64_t, width) = 28;
  /// Output channels of each conv block. Default {32, 64}.
  TORCH_ARG(std::vector<int64_t>, conv_channels) = std::vector<int64_t>{32, 64};
  /// Width of the dense hidden layer; 0 = no hidden layer. Default 256.
  TORCH_ARG(int64_t, hidden) = 256;
  /// Embedding size D. Default 64.
  TORCH_ARG(int64_t, embedding_dim) = 64;
  /// L2-normalise each embedding (unit length). Default false.
  TORCH_ARG(bool, normalize) = false;
};

class CnnEncoderImpl : public EncoderImpl {
 public:
  explicit CnnEncoderImpl(CnnEncoderOptions options = {});
  /// x: [N, in_channels, height, width] float. Throws siamese::Error on another shape.
  torch::Tensor forward(torch::Tensor x) override;
  int64_t embedding_dim() const override { return options.embedding_dim(); }
  void reset();

  CnnEncoderOptions options;
  torch::nn::Sequential features{nullptr};
  torch::nn::Sequential head{nullptr};
};
TORCH_MODULE(CnnEncoder);

/// The recurrent cell: "lstm" or "gru".
enum class Cell { Lstm, Gru };
Cell parse_cell(const std::string& name);
std::string to_string(Cell cell);

/// How an RNN's steps become one vector: "last" (final hidden state of each direction), "mean"
/// or "max" over the real steps.
enum class Pooling { Last, Mean, Max };
Pooling parse_pooling(const std::string& name);
std::string to_string(Pooling pooling);

/// Options of the recurrent encoder (LSTM or GRU) over sequence batches [N, T, 1 + F] (the
/// layout of sequence.h: column 0 marks real steps). Steps are token ids (vocab_size > 0, looked
/// up in a learned embedding) or F numeric features; an optional 1-D convolution runs over time
/// first; the recurrent layers run per direction so that padding never reaches the result.
struct RnnEncoderOptions {
  /// Default Cell::Lstm.
  TORCH_ARG(Cell, cell) = Cell::Lstm;
  /// Token vocabulary size (ids 0 .. vocab_size − 1; 0 = unknown); 0 = numeric features. Default 0.
  TORCH_ARG(int64_t, vocab_size) = 0;
  /// Width of the token embedding. Default 32.
  TORCH_ARG(int64_t, token_dim) = 32;
  /// Numeric features per step F (vocab_size == 0). Default 1.
  TORCH_ARG(int64_t, features) = 1;
  /// Convolution front end: output channels (0 = none), kernel size (odd) and stride over time,
  /// then a max-pool over windows of conv_pool steps (1 = none). Defaults 0, 5, 1, 1.
  TORCH_ARG(int64_t, conv_channels) = 0;
  TORCH_ARG(int64_t, conv_kernel) = 5;
  TORCH_ARG(int64_t, conv_stride) = 1;
  TORCH_ARG(int64_t, conv_pool) = 1;
  /// Hidden units per direction, stacked layers, bidirectional, dropout between layers.
  /// Defaults 128, 1, true, 0. layers = 0: no recurrence, the token (or convolution) features
  /// are pooled directly ("mean" or "max"), a bag-of-tokens encoder. A bag of tokens (no
  /// convolution either) pools the known tokens only: <unk> stands for tokens the training data
  /// never had, so its vector never learns anything; an item of <unk> alone embeds as <unk>.
  TORCH_ARG(int64_t, hidden) = 128;
  TORCH_ARG(int64_t, layers) = 1;
  TORCH_ARG(bool, bidirectional) = true;
  TORCH_ARG(double, dropout) = 0.0;
  /// How the steps become one vector. Default Pooling::Mean.
  TORCH_ARG(Pooling, pooling) = Pooling::Mean;
  /// Embedding size D (a linear layer after pooling). Default 64.
  TORCH_ARG(int64_t, embedding_dim) = 64;
  /// L2-normalise each embedding. Default false.
  TORCH_ARG(bool, normalize) = false;
};

class RnnEncoderImpl : public EncoderImpl {
 public:
  explicit RnnEncoderImpl(RnnEncoderOptions options = {});
  /// x: [N, T, 1 + F] float (F = 1 for tokens); every item needs >= 1 real step. Throws
  /// siamese::Error on another shape or an empty item.
  torch::Tensor forward(torch::Tensor x) override;
  int64_t embedding_dim() const override { return options.embedding_dim(); }
  void reset();

  RnnEncoderOptions options;
  torch::nn::Embedding embedding{nullptr};
  torch::nn::Conv1d conv{nullptr};
  torch::nn::LSTM lstm{nullptr};
  torch::nn::GRU gru{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  /// The recurrent layers over right-padded steps x [N, T, W] with `lengths` real steps each,
  /// unpacked (LibTorch's packed sequences cost time growing faster than T): the forward direction
  /// runs as is, since real steps never see the padding after them; the reverse direction runs
  /// over each item's steps reversed in place, its padding left at the end. Returns the top
  /// layer's outputs [N, T, hidden · directions] (garbage on padding) and the final state of each
  /// direction at the item's real ends [N, hidden · directions].
  std::pair<torch::Tensor, torch::Tensor> recurrent_layers(torch::Tensor x, const torch::Tensor& lengths);
};
TORCH_MODULE(RnnEncoder);

/// Hybrid CNN -> RNN: an image [N, C, H, W] is cut into `frames` columns of width W / frames
/// (strokes rendered over time, left to right); the CNN (cnn options, its embedding_dim being the
/// frame feature size) encodes every column, the RNN (rnn options, features = that size) runs over
/// the column features.
class HybridEncoderImpl : public EncoderImpl {
 public:
  HybridEncoderImpl(CnnEncoderOptions cnn, RnnEncoderOptions rnn, int64_t frames);
  /// x: [N, C, H, W] with W divisible by frames.
  torch::Tensor forward(torch::Tensor x) override;
  int64_t embedding_dim() const override { return rnn->embedding_dim(); }

  int64_t frames;
  CnnEncoder cnn{nullptr};
  RnnEncoder rnn{nullptr};
};
TORCH_MODULE(HybridEncoder);

/// Which encoder a network has: "cnn" (images), "lstm" or "gru" (sequences, the rnn options),
/// "hybrid" (images as column sequences: cnn, rnn and frames), "resnet18", "resnet34", "resnet50"
/// and "convnet" (photographs of any size: backbones.h, the cnn options' in_channels, hidden,
/// embedding_dim, normalize; convnet also conv_channels), "torchscript" (a TorchScript module as
/// the trunk: SiameseNetworkOptions::backbone).
enum class EncoderKind { Cnn, Lstm, Gru, Hybrid, Resnet18, Resnet34, Resnet50, Convnet, TorchScript };
EncoderKind parse_encoder(const std::string& name);
std::string to_string(EncoderKind encoder);

/// Everything needed to rebuild a network: stored in the model file as its configuration.
struct SiameseNetworkOptions {
  /// Encoder kind (rnn.cell follows Lstm / Gru). Default EncoderKind::Cnn.
  TORCH_ARG(EncoderKind, encoder) = EncoderKind::Cnn;
  /// Options of the CNN encoder (encoder "cnn"; the per-column CNN of "hybrid").
  TORCH_ARG(CnnEncoderOptions, cnn) = {};
  /// Options of the recurrent encoder (encoders "lstm", "gru", "hybrid").
  TORCH_ARG(RnnEncoderOptions, rnn) = {};
  /// Hybrid: columns each image is cut into. Default 4.
  TORCH_ARG(int64_t, frames) = 4;
  /// Sequence models on text: how raw text becomes tokens ("char", "word", "kmerK"; see
  /// sequence.h) and the vocabulary (id -> token, id 0 = "<unk>"), kept so a model file can
  /// embed raw text on its own. Empty for other models.
  TORCH_ARG(std::string, tokens) = "";
  TORCH_ARG(std::vector<std::string>, vocabulary) = {};
  /// Distance used by forward() and by every consumer of the model. Default Euclidean.
  TORCH_ARG(Distance, distance) = Distance::Euclidean;
  /// Input normalisation applied inside embed(): (x − mean) / std per image channel, or per
  /// numeric step feature of a sequence (the mask and token columns are left alone). Default 0 / 1.
  TORCH_ARG(std::vector<double>, input_mean) = std::vector<double>{0.0};
  TORCH_ARG(std::vector<double>, input_std) = std::vector<double>{1.0};
  /// Image models trained on photographs of any size: how every image becomes an input (photos.h;
  /// size == cnn height == width, channels == cnn in_channels). size 0 (default): inputs must be of
  /// the model's input shape exactly.
  TORCH_ARG(ImageView, image_view) = {};
  /// The "torchscript" encoder's module: the bytes of the file Python's torch.jit.save wrote (kept
  /// in the model file, so that it needs nothing else) and where it came from, for messages.
  TORCH_ARG(std::shared_ptr<const std::string>, backbone) = nullptr;
  TORCH_ARG(std::string, backbone_source) = "";
  /// "cnn" encoder: the largest activation of each conv block and of the hidden layer on
  /// calibration images (quantize.h), which --int8 quantizes with. Set by the trainer when it
  /// saves a model; empty in models saved before, which --int8 refuses.
  TORCH_ARG(std::vector<double>, int8_ranges) = {};
};

/// The twin network: ONE encoder instance shared by every branch, so the weights are shared by
/// construction. Inputs are images scaled to [0, 1], [N, C, H, W], or sequence batches
/// [N, T, 1 + F] (sequence.h); normalisation happens inside.
/// Thread safety: in eval mode, embed() and forward() only read the module, so several threads
/// may embed with one network at once (each under its own NoGradGuard). Training, train()/eval(),
/// load() and anything that changes parameters need the network to themselves.
class SiameseNetworkImpl : public torch::nn::Module {
 public:
  explicit SiameseNetworkImpl(SiameseNetworkOptions options = {});

  /// x [N, C, H, W] or [N, T, 1 + F] (any device: moved to the network's) -> embeddings [N, D]
  /// float32 on the network's device.
  torch::Tensor embed(torch::Tensor x);
  /// Moves the parameters and buffers to `device` (device.h) and makes embed(), and so forward(),
  /// embed_dataset and everything built on them, compute there; under bfloat16 autocast when `amp`
  /// (AutocastGuard). A new network is on the CPU in float32. Needs the network to itself.
  void place(c10::Device device, bool amp = false);
  c10::Device device() const { return input_mean.device(); }
  bool amp() const { return amp_; }
  /// Makes embed() run an int8 copy of the network (QuantizedCnn, quantize.h) made from its
  /// weights now, or float again when `on` is false. Throws what QuantizedCnn throws (not "cnn",
  /// not on the CPU, no calibration) and Error(InvalidArgument) together with --amp. Needs the
  /// network to itself; changing the weights afterwards does not change the int8 copy.
  void use_int8(bool on);
  bool int8() const { return int8_ != nullptr; }
  /// Images [N, C, H, W] -> the encoder's trunk output [N, C', h, w] (normalised as embed does):
  /// for the encoders of backbones.h; others throw siamese::Error(Unsupported).
  torch::Tensor feature_maps(torch::Tensor x);
  /// True for the "lstm" and "gru" encoders, whose inputs are sequence batches.
  bool takes_sequences() const;
  /// Pair branch: a [N, ...], b [N, ...] -> distances [N]. Both go through the encoder in one
  /// batch (one set of batch-norm statistics for both twins).
  torch::Tensor forward(torch::Tensor a, torch::Tensor b);
  /// Triplet branch: anchors, positives, negatives [N, ...] -> (d(a,p) [N], d(a,n) [N]).
  std::tuple<torch::Tensor, torch::Tensor> forward(torch::Tensor a, torch::Tensor p, torch::Tensor n);

  SiameseNetworkOptions options;
  std::shared_ptr<EncoderImpl> encoder;
  torch::Tensor input_mean;  ///< buffer [1, C, 1, 1] (images) or [1, 1, 1 + F] (sequences)
  torch::Tensor input_std;   ///< buffer of the same shape

 private:
  bool amp_ = false;
  std::shared_ptr<const QuantizedCnn> int8_;
};
TORCH_MODULE(SiameseNetwork);

/// The most input values (or row values) one pass holds at once, ~2 M (8 MB of float32): a
/// forward pass of embed_dataset (512 Fashion-MNIST images, 55 RGB images of 112 px) and a chunk
/// of eval's pair_distances. A ResNet's activations for 512 photographs would be gigabytes at once.
inline constexpr int64_t kValuesPerPass = int64_t{1} << 21;

/// Embeddings of every item of a data set, in order: [N, D] float32 on the CPU (no grad), computed
/// where the network is placed (SiameseNetworkImpl::place), in batches of
/// batch_size, each forwarded in passes of at most kValuesPerPass input values. Thread safety: concurrent calls may share one network (see SiameseNetworkImpl).
/// Requires the network in eval mode (throws Error(InvalidArgument) otherwise) and never changes it.
/// The items embedded are counted to `logger` (Logger::count).
torch::Tensor embed_dataset(SiameseNetwork& network, const Dataset& data, int64_t batch_size = 512,
                            Logger& logger = silent_logger());

}  // namespace siamese
