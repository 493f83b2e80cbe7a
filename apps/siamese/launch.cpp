// siamese train --nproc N: the same command again in N local processes that train together, with
// torchrun's environment; their output goes where the launcher's goes.
#include <signal.h>
#include <sys/prctl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
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

namespace {

std::vector<pid_t> g_children;  // the ranks still running, for the signal handler
volatile sig_atomic_t g_signal = 0;

void forward_signal(int sig) {
  g_signal = sig;
  for (pid_t child : g_children) {
    if (child > 0) ::kill(child, sig);
  }
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Waits for a child to end: its pid; -2 when `deadline` (now_seconds) passes first; -1 when no
/// child is left.
pid_t wait_child(int& status, double deadline) {
  while (true) {
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid != 0) return pid < 0 ? -1 : pid;
    if (now_seconds() > deadline) return -2;
    ::usleep(20000);
  }
}

}  // namespace

void stop_with_launcher() {
  const char* launcher = std::getenv("SIAMESE_LAUNCHER_PID");
  if (!launcher) return;
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the launcher killed outright takes its ranks along
  if (std::to_string(::getppid()) != launcher) std::exit(1);  // it died before prctl
}

int launch_local(int processes) {
  const int port = free_local_port();
  auto args = own_arguments();
  auto argv = pointers(args);
  g_children.assign(processes, -1);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, forward_signal);
  std::fprintf(stderr, "siamese: training in %d processes on 127.0.0.1:%d\n", processes, port);
  int code = 0, running = 0;
  for (int rank = 0; rank < processes; ++rank) {
    auto env = rank_environment(rank, processes, port);
    env.push_back("SIAMESE_LAUNCHER_PID=" + std::to_string(::getpid()));
    auto envp = pointers(env);
    if (const int rc = posix_spawn(&g_children[rank], "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()); rc != 0) {
      std::fprintf(stderr, "siamese: error: cannot start the process of rank %d (%s)\n", rank, std::strerror(rc));
      g_children[rank] = -1;
      code = 1;
      break;
    }
    ++running;
  }
  // The first process that fails (or a signal) ends the run: the others are asked to stop, and
  // those still there after 10 s (a stopped or hung rank) are killed.
  const double never = 1e300;
  double kill_at = never;
  auto stop_all = [&](int sig) {
    for (pid_t child : g_children) {
      if (child > 0) ::kill(child, sig);
    }
  };
  if (code != 0) stop_all(SIGTERM), kill_at = now_seconds() + 10;
  while (running > 0) {
    if (g_signal != 0 && kill_at == never) kill_at = now_seconds() + 10;  // the handler forwarded it
    int status = 0;
    const pid_t pid = wait_child(status, kill_at);
    if (pid == -1) break;
    if (pid == -2) {
      stop_all(SIGKILL);
      kill_at = never;
      continue;
    }
    --running;
    for (auto& child : g_children) child = child == pid ? -1 : child;
    if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) || code != 0) continue;
    code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (WIFSIGNALED(status) && g_signal == 0) {
      std::fprintf(stderr, "siamese: error: a training process was killed by signal %d\n", WTERMSIG(status));
    }
    stop_all(SIGTERM);
    kill_at = now_seconds() + 10;
  }
  return g_signal != 0 && code == 0 ? 128 + g_signal : code;
}

}  // namespace siamese::cli
