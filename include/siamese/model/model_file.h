#pragma once
/// \file model_file.h  Self-describing model files: format version, network configuration,
/// input normalisation (as buffers), weights and the calibrated same/different threshold.

#include <string>

#include "siamese/model/network.h"

namespace siamese {

/// Version written into every model file; load_model refuses any other.
constexpr int64_t kModelFormatVersion = 1;

struct SavedModel {
  SiameseNetwork network{nullptr};
  /// Pairs at distance <= threshold are "same" (calibrated on validation pairs).
  double threshold = 0;
  /// Free-form JSON written by the trainer (data, protocol, training summary).
  std::string info = "{}";
};

/// Writes the model atomically (temporary file, then rename): a crash never leaves a half-written
/// file under `path`, and an existing file is replaced only by a complete one. The file carries a
/// checksum of its contents (save_archive). A full disk or other write failure throws one
/// siamese::Error(IOError) naming `path`; the temporary file is removed.
void save_model(const std::string& path, SiameseNetwork& network, double threshold, const std::string& info = "{}");

/// Loads a model file, or DIR/model.pt when `path` is a folder, its network in eval mode.
/// Thread safety: load_model and save_model of different models may run concurrently; every
/// SavedModel owns its own network. Throws siamese::Error naming the
/// file when it is missing, corrupt, not a siamese model, or of another format version; contents
/// that differ from the checksum saved with them (a flipped bit) give Corruption "corrupt model
/// file (checksum mismatch)". Files written before models carried a checksum load unchecked.
SavedModel load_model(const std::string& path);

/// A 16-hex-digit fingerprint of the network: its configuration, and the names and values of
/// every parameter and buffer (FNV-1a). Two models share it only if they embed identically.
std::string model_fingerprint(SiameseNetwork& network);

/// The network configuration as JSON and back (throws siamese::Error on a bad document).
std::string to_json(const SiameseNetworkOptions& options);
SiameseNetworkOptions network_options_from_json(const std::string& json);

}  // namespace siamese
