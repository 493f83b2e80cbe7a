#pragma once
// Helpers shared by the tests: temporary folders and small data sets written to disk.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace siamese::testing {

/// Whether the default data set is installed (Debian's dataset-fashion-mnist, as open_data reads it).
inline bool have_fashion_mnist() {
  const std::string dir = "/usr/share/datasets/fashion-mnist/";
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"}) {
    if (!std::filesystem::exists(dir + f)) return false;
  }
  return true;
}

/// At the top of a test (or a fixture's SetUp) that reads Fashion-MNIST: skips it, saying why,
/// when the data set is not installed, instead of failing on a missing file.
#define SIAMESE_SKIP_WITHOUT_FASHION_MNIST()                                                       \
  if (!siamese::testing::have_fashion_mnist())                                                     \
  GTEST_SKIP() << "needs Fashion-MNIST (/usr/share/datasets/fashion-mnist): apt-get install "      \
                  "dataset-fashion-mnist, or run scripts/install-deps"

/// A fresh, empty folder under the system temporary directory.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("siamese_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
}

/// IDX bytes: magic 0x000008<dims>, big-endian sizes, then the data.
inline std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& shape, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> b{0, 0, 8, static_cast<uint8_t>(shape.size())};
  for (auto s : shape) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<uint8_t>(s >> shift));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

/// The CLI's exit code and its stdout and stderr together.
struct Run {
  int code;
  std::string out;
};

/// Runs the siamese tool (SIAMESE_CLI) with these arguments, as a shell would.
inline Run run(const std::string& args) {
  const std::string cmd = std::string(SIAMESE_CLI) + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  while (size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  return {WEXITSTATUS(status), out};
}

/// How many lines a command printed.
inline size_t lines_of(const std::string& out) { return static_cast<size_t>(std::count(out.begin(), out.end(), '\n')); }

/// The last JSON object printed on a line of its own.
inline nlohmann::json last_json_line(const std::string& out) {
  auto start = out.rfind("\n{");
  return nlohmann::json::parse(out.substr(start == std::string::npos ? out.find('{') : start + 1));
}

/// The JSON objects printed one per line.
inline std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

/// Starts this test binary afresh (exec, not a bare fork: the parent's LibTorch and OpenMP threads
/// do not survive a fork) running only the test `filter`, with `variable=value` added to its
/// environment and its stdout and stderr appended to `log`. Returns the child's pid, or -1.
inline pid_t spawn_test_child(const std::string& filter, const std::string& variable, const std::string& value,
                              const std::string& log) {
  std::vector<std::string> env_strings;
  const std::string prefix = variable + "=";
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) env_strings.emplace_back(*e);
  }
  env_strings.push_back(prefix + value);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe", flag = "--gtest_filter=" + filter, brief = "--gtest_brief=1";
  std::vector<char*> argv{exe.data(), flag.data(), brief.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t child = -1;
  const int rc = posix_spawn(&child, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? child : -1;
}

/// Starts the siamese tool (SIAMESE_CLI) with these arguments and `env` ("NAME=value" each) added
/// to this process's environment, its output into `log`; returns its pid, or -1.
inline pid_t start_cli(const std::vector<std::string>& args, const std::string& log, const std::vector<std::string>& env = {}) {
  std::vector<std::string> words{SIAMESE_CLI}, env_strings(env);
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv, envp;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);  // the first of a name counts
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, words[0].c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

/// Waits for a child process: its exit code, or 128 + the signal that killed it.
inline int wait_for(pid_t child) {
  int status = 0;
  if (waitpid(child, &status, 0) != child) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace siamese::testing
