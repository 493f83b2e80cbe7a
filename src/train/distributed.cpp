#include "siamese/train/distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef C10_USE_GLOG  // Debian's LibTorch logs through glog
#include <glog/logging.h>
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "siamese/core/error.h"

namespace siamese {

namespace {

/// An integer environment variable in [lo, hi], or `fallback` when it is unset.
int env_int(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < lo || n > hi) {
    throw Error(ErrorCode::InvalidArgument, std::string("environment variable ") + name + "=" + v + ": expected an integer in [" +
                                                std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return static_cast<int>(n);
}

/// The first line of a library's message (c10::Error's carry a backtrace after it).
std::string first_line(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  std::string m = c10 ? c10->what_without_backtrace() : e.what();
  return m.substr(0, m.find('\n'));
}

bool is_loopback(const std::string& addr) { return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1"; }

constexpr int64_t kBucketFloats = int64_t{2} << 20;  // 8 MiB of float32

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw Error(ErrorCode::IOError, "cannot bind a TCP socket on 127.0.0.1 (" + why + ")");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

GroupOptions group_options_from_environment() {
  GroupOptions o;
  o.size = env_int("WORLD_SIZE", 1, 1, 65536);
  o.rank = env_int("RANK", 0, 0, o.size - 1);
  o.local_size = env_int("LOCAL_WORLD_SIZE", 1, 1, o.size);  // unset: one process on each machine
  o.master_port = env_int("MASTER_PORT", o.master_port, 1, 65535);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) o.master_addr = addr;
  if (o.size > 1 && !std::getenv("RANK")) {
    throw Error(ErrorCode::InvalidArgument, "environment variable WORLD_SIZE=" + std::to_string(o.size) +
                                                " without RANK: each process needs its rank (as torchrun sets it)");
  }
  return o;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

ProcessGroup::ProcessGroup(const GroupOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    throw Error(ErrorCode::InvalidArgument, "rank " + std::to_string(options.rank) + " of a group of " +
                                                std::to_string(options.size) + " processes");
  }
  const auto where = options.master_addr + ":" + std::to_string(options.master_port);
#ifdef C10_USE_GLOG
  // c10d logs its own lines about retries and failures; each failure reaches the caller as one
  // Error instead, which says the same. (glog's level is the process's: LibTorch's other glog
  // warnings go quiet too.)
  FLAGS_minloglevel = std::max(FLAGS_minloglevel, google::GLOG_FATAL);
#endif
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(options.master_port);
    so.isServer = options.rank == 0;
    so.numWorkers = static_cast<std::size_t>(options.size);
    so.waitWorkers = true;
    so.timeout = options.timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, so);
    auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
    const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
    gloo_options->devices.push_back(
        interface && *interface ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
        : is_loopback(options.master_addr) ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                           : c10d::ProcessGroupGloo::createDefaultDevice());
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, options.rank, options.size, gloo_options);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::IOError, "rank " + std::to_string(options.rank) + " of " + std::to_string(options.size) +
                                        ": cannot join the training processes at " + where + " within " +
                                        std::to_string(options.timeout.count()) + " s (" + first_line(e) + ")");
  }
}

ProcessGroup::~ProcessGroup() = default;

template <class F>
void ProcessGroup::timed(const char* what, F&& f) {
  const auto start = std::chrono::steady_clock::now();
  try {
    f();
  } catch (const std::exception& e) {
    throw Error(ErrorCode::IOError, "rank " + std::to_string(rank()) + " of " + std::to_string(size()) + ": " + what +
                                        " failed: another training process stopped or did not answer within " +
                                        std::to_string(options_.timeout.count()) + " s (" + first_line(e) + ")");
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

namespace {

/// Calls f on each bucket: consecutive tensors of one dtype, at most kBucketFloats values (or one
/// larger tensor), flattened into one (c10d's collectives take one tensor per device, not a list),
/// then copies the bucket back into them.
template <class F>
void for_each_bucket(std::vector<torch::Tensor>& tensors, F&& f) {
  size_t first = 0;
  while (first < tensors.size()) {
    size_t last = first;
    int64_t values = 0;
    std::vector<torch::Tensor> flat;
    while (last < tensors.size() && (last == first || (tensors[last].scalar_type() == tensors[first].scalar_type() &&
                                                       values + tensors[last].numel() <= kBucketFloats))) {
      values += tensors[last].numel();
      flat.push_back(tensors[last].reshape({-1}));
      ++last;
    }
    std::vector<torch::Tensor> bucket{torch::cat(flat)};
    f(bucket);
    int64_t at = 0;
    for (size_t i = first; i < last; ++i) {
      const auto n = tensors[i].numel();
      tensors[i].copy_(bucket[0].slice(0, at, at + n).view_as(tensors[i]));
      at += n;
    }
    first = last;
  }
}

}  // namespace

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors) {
  if (size() == 1) return;
  for_each_bucket(tensors, [&](std::vector<torch::Tensor>& bucket) {
    timed("broadcast of the weights", [&] { impl_->gloo->broadcast(bucket)->wait(); });
  });
}

void ProcessGroup::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  if (size() == 1) return;
  for_each_bucket(tensors, [&](std::vector<torch::Tensor>& bucket) {
    timed("all-reduce of the gradients", [&] { impl_->gloo->allreduce(bucket)->wait(); });
  });
}

torch::Tensor ProcessGroup::all_gather_rows(const torch::Tensor& local) {
  if (size() == 1) return local;
  std::vector<torch::Tensor> count{torch::tensor({local.size(0)}, torch::kInt64)};
  std::vector<std::vector<torch::Tensor>> counts(1);
  for (int r = 0; r < size(); ++r) counts[0].push_back(torch::empty({1}, torch::kInt64));
  timed("all-gather of the batch sizes", [&] { impl_->gloo->allgather(counts, count)->wait(); });
  int64_t rows = 0;
  for (const auto& c : counts[0]) rows = std::max(rows, c.item<int64_t>());
  auto shape = local.sizes().vec();
  shape[0] = rows;
  std::vector<torch::Tensor> padded{torch::zeros(shape, local.options().requires_grad(false))};
  padded[0].slice(0, 0, local.size(0)).copy_(local.detach());
  std::vector<std::vector<torch::Tensor>> gathered(1);
  for (int r = 0; r < size(); ++r) gathered[0].push_back(torch::empty_like(padded[0]));
  timed("all-gather of the embeddings", [&] { impl_->gloo->allgather(gathered, padded)->wait(); });
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < size(); ++r) {
    parts.push_back(r == rank() ? local : gathered[0][r].slice(0, 0, counts[0][r].item<int64_t>()));
  }
  return torch::cat(parts);
}

void broadcast_module(ProcessGroup& group, torch::nn::Module& module) {
  std::vector<torch::Tensor> tensors;
  torch::NoGradGuard no_grad;
  for (const auto& p : module.parameters()) tensors.push_back(p.detach());
  for (const auto& b : module.buffers()) tensors.push_back(b.detach());
  group.broadcast(tensors);
}

void all_reduce_gradients(ProcessGroup& group, torch::nn::Module& module) {
  if (group.size() == 1) return;
  std::vector<torch::Tensor> grads;
  for (auto& p : module.parameters()) {
    if (!p.requires_grad()) continue;  // frozen on every rank alike
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  group.all_reduce_sum(grads);
}

}  // namespace siamese
