#pragma once
/// \file distributed.h  Processes that train one model together: torch.distributed's c10d
/// (ProcessGroupGloo over a TCPStore), joined the way torchrun starts processes. The training loop
/// (loop.h) broadcasts the weights from rank 0 and all-reduces the gradients through it; the
/// embedding task all-gathers each batch's embeddings so that the loss sees every rank's items.
///
/// Thread safety: one thread drives a group; collectives are called in the same order on every
/// rank. A failed or timed-out collective (a rank that died or hangs) throws siamese::Error.

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace siamese {

/// Where a process stands among those that train together.
struct GroupOptions {
  int rank = 0, size = 1;
  /// Processes of the group on this machine (torchrun's LOCAL_WORLD_SIZE; unset: 1): the cores are
  /// shared among them when the thread count is left to the default.
  int local_size = 1;
  std::string master_addr = "127.0.0.1";  ///< where rank 0 runs the TCPStore
  int master_port = 29500;
  /// How long a collective, and joining, may wait for the other ranks.
  std::chrono::seconds timeout{300};
};

/// torchrun's environment: RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT (size 1,
/// one process alone, when WORLD_SIZE is unset). Throws Error(InvalidArgument) naming the variable
/// on a malformed or inconsistent value (a RANK outside [0, WORLD_SIZE), a bad port).
GroupOptions group_options_from_environment();

/// A TCP port of 127.0.0.1 free at the time of the call (bound, read, released): MASTER_PORT for a
/// group on one machine. Throws Error(IOError) when no socket can be bound.
int free_local_port();

class ProcessGroup {
 public:
  /// Joins the group: rank 0 serves the TCPStore at master_addr:master_port, every rank connects
  /// and waits (up to timeout) for all size ranks. Throws Error(IOError) when they do not come.
  explicit ProcessGroup(const GroupOptions& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return options_.rank; }
  int size() const { return options_.size; }
  const GroupOptions& options() const { return options_; }

  /// Overwrites every tensor (CPU) with rank 0's, flattened into buckets as all_reduce_sum does.
  void broadcast(std::vector<torch::Tensor>& tensors);
  /// Sums every tensor (float32, CPU) over the ranks in place, flattened into buckets of at most
  /// 8 MiB so that a model of many small tensors makes a few collectives, not one each.
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);
  /// The rows of every rank's `local` [n_r, ...] concatenated in rank order (n_r may differ).
  /// This rank's rows are `local` itself, so gradients flow through them; the others' are
  /// detached copies.
  torch::Tensor all_gather_rows(const torch::Tensor& local);
  /// Seconds spent in this group's collectives so far.
  double communication_seconds() const { return seconds_; }

 private:
  struct Impl;
  template <class F>
  void timed(const char* what, F&& f);
  GroupOptions options_;
  std::unique_ptr<Impl> impl_;
  double seconds_ = 0;
};

/// The module's parameters and buffers set to rank 0's (a group of one: nothing happens).
void broadcast_module(ProcessGroup& group, torch::nn::Module& module);
/// Every parameter's gradient summed over the ranks (parameters without one take part as zeros,
/// so that every rank makes the same collectives).
void all_reduce_gradients(ProcessGroup& group, torch::nn::Module& module);

}  // namespace siamese
