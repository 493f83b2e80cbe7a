#pragma once
/// \file weights.h  Weights from elsewhere for an encoder's trunk: a state_dict saved by Python's
/// torch.save (torchvision's ResNets), or the trunk of another siamese model (transfer).

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "siamese/model/network.h"

namespace siamese {

/// Named tensors, in file order.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// The tensors of a file saved by Python's torch.save: a dict or OrderedDict of name -> tensor,
/// such as a module's state_dict() (LibTorch 1.13 cannot read an OrderedDict's pickle as it is; it
/// is read as the plain dict it holds, its `_metadata` dropped). Entries that are not tensors are
/// left out. Throws siamese::Error naming the file: missing, not a zip archive written by
/// torch.save (checked as load_archive checks), not a dict, or holding no tensor.
NamedTensors read_state_dict(const std::string& path);

/// The encoder's parameters (not its buffers), named as its named_parameters() names them: those of
/// its trunk, or (`head` true) those of its embedding head ("head.").
NamedTensors encoder_parameters(SiameseNetworkImpl& network, bool head);

/// The trunk of the network's encoder: every parameter and buffer but those of its embedding
/// head, named as in the trunk (the ResNet encoder's as torchvision names them, "conv1.weight",
/// "layer1.0.bn1.running_mean"; other encoders by their module names, "features.0.weight").
NamedTensors trunk_tensors(SiameseNetworkImpl& network);

/// Copies `tensors` into the trunk (trunk_tensors names), ignoring the names that start with one
/// of `ignored` (e.g. torchvision's classifier "fc."). Every trunk tensor must be given, with its
/// shape, and nothing else: otherwise siamese::Error(InvalidArgument) naming `source` and listing
/// (up to 8 each) the missing, unexpected and misshapen names, with the network unchanged. Returns
/// how many tensors were copied.
int64_t load_trunk(SiameseNetworkImpl& network, const NamedTensors& tensors, const std::string& source,
                   const std::vector<std::string>& ignored = {});

/// Starts `network` from another model: its trunk (load_trunk, same encoder and shapes), and its
/// embedding head too when every head tensor has the same shape (otherwise the head stays as it
/// was initialised: a new head for a new embedding). Returns whether the head was copied.
bool init_from_model(SiameseNetworkImpl& network, SiameseNetworkImpl& from, const std::string& source);

}  // namespace siamese
