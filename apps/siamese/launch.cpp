// siamese train --nproc N: the same command again in N local processes that train together, with
// torchrun's environment; their output goes where the launcher's goes.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "commands.h"
#include "siamese/core/error.h"
#include "siamese/train/distributed.h"

extern char** environ;

namespace siamese::cli {

namespace {

/// This process's command line (/proc/self/cmdline: arguments separated by NULs).
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\0', at);
    args.push_back(text.substr(at, end - at));
    at = end == std::string::npos ? text.size() : end + 1;
  }
  return args;
}

/// The environment with torchrun's variables for `rank` of `size` set (any inherited ones replaced).
std::vector<std::string> rank_environment(int rank, int size, int port) {
  const char* ours[] = {"RANK=", "LOCAL_RANK=", "WORLD_SIZE=", "LOCAL_WORLD_SIZE=", "MASTER_ADDR=", "MASTER_PORT="};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    bool replaced = false;
    for (const char* name : ours) replaced = replaced || std::strncmp(*e, name, std::strlen(name)) == 0;
    if (!replaced) env.emplace_back(*e);
  }
  for (const auto& v : {"RANK=" + std::to_string(rank), "LOCAL_RANK=" + std::to_string(rank), "WORLD_SIZE=" + std::to_string(size),
                        "LOCAL_WORLD_SIZE=" + std::to_string(size), std::string("MASTER_ADDR=127.0.0.1"),
                        "MASTER_PORT=" + std::to_string(port)}) {
    env.push_back(v);
  }
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> p;
  for (auto& s : strings) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

}  // namespace

int launch_local(int processes) {
  const int port = free_local_port();
  auto args = own_arguments();
  auto argv = pointers(args);
  std::vector<pid_t> pids(processes, -1);
  std::fprintf(stderr, "siamese: training in %d processes on 127.0.0.1:%d\n", processes, port);
  int code = 0, running = 0;
  for (int rank = 0; rank < processes; ++rank) {
    auto env = rank_environment(rank, processes, port);
    auto envp = pointers(env);
    if (posix_spawn(&pids[rank], "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0) {
      std::fprintf(stderr, "siamese: error: cannot start the process of rank %d (%s)\n", rank, std::strerror(errno));
      code = 1;
      break;
    }
    ++running;
  }
  for (bool stopping = code != 0; running > 0; --running) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    int rank = 0;
    while (rank < processes && pids[rank] != pid) ++rank;
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (rank < processes) pids[rank] = -1;
    if (ok || stopping) continue;
    // The first process that fails ends the run: the others stop rather than wait on it.
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (WIFSIGNALED(status)) std::fprintf(stderr, "siamese: error: rank %d was killed by signal %d\n", rank, WTERMSIG(status));
    stopping = true;
    for (pid_t other : pids) {
      if (other > 0) ::kill(other, SIGTERM);
    }
  }
  return code;
}

}  // namespace siamese::cli
