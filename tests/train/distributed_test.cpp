// Training in several processes over c10d's Gloo on loopback: the collectives against sums and
// losses computed in one process, `siamese train --nproc 2` against one process with the same
// batches, a rank killed mid-run, bad launch environments.
#include <gtest/gtest.h>
#include <signal.h>
#include <torch/torch.h>

#include <chrono>
#include <exception>
#include <sstream>
#include <thread>

#include "sequence_test_util.h"
#include "siamese/model/model_file.h"
#include "siamese/train/distributed.h"
#include "siamese/train/miner.h"
#include "test_util.h"

using namespace siamese;
using namespace siamese::testing;
namespace fs = std::filesystem;

namespace {

/// Runs f(group) on `size` threads, one rank each of a group on a free port of 127.0.0.1;
/// rethrows the first rank's failure.
template <class F>
void in_group(int size, F f) {
  const int port = free_local_port();
  std::vector<std::exception_ptr> errors(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      try {
        GroupOptions o;
        o.rank = r, o.size = size, o.master_port = port, o.timeout = std::chrono::seconds(60);
        ProcessGroup group(o);
        f(group);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

/// The loss column and the validation columns of a history.csv, one vector per epoch.
std::vector<std::vector<double>> history_values(const fs::path& csv) {
  std::vector<std::vector<double>> rows;
  std::istringstream lines(read_file(csv));
  std::string line;
  std::getline(lines, line);  // header
  while (std::getline(lines, line)) {
    std::vector<double> row;
    std::istringstream fields(line);
    std::string field;
    for (int i = 0; std::getline(fields, field, ',') && i < 6; ++i) {
      if (i == 1 || i >= 3) row.push_back(std::stod(field));  // loss, val R@1, MAP@R, AUC
    }
    rows.push_back(row);
  }
  return rows;
}

/// Waits up to `seconds` for the child; -2 (and the child killed) when it has not ended by then.
int wait_at_most(pid_t child, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    if (waitpid(child, &status, WNOHANG) == child) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(child, SIGKILL);
  wait_for(child);
  return -2;
}

/// Waits up to 120 s for `text` to appear in the file `log`; whether it did.
bool wait_for_text(const std::string& log, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (read_file(log).find(text) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return read_file(log).find(text) != std::string::npos;
}

const char* kFlags = "--encoder lstm --token-dim 16 --rnn-hidden 32 --embedding-dim 16 --normalize true --sampler pk --p 8 "
                     "--k 4 --validation-size 36 --optimizer sgd --lr 0.1 --no-report";

}  // namespace

TEST(ProcessGroupTest, AllGatheredMinersMatchOneProcessOnTheWholeBatch) {
  torch::manual_seed(3);
  const int64_t n = 25;  // shares of 12 and 13 rows
  const auto full = torch::nn::functional::normalize(torch::randn({n, 8}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const auto labels = torch::arange(n) % 5;
  struct Case { LossKind loss; MinerKind miner; };
  for (const auto c : {Case{LossKind::Triplet, MinerKind::BatchHard}, Case{LossKind::Contrastive, MinerKind::All},
                       Case{LossKind::NTXent, MinerKind::All}, Case{LossKind::Triplet, MinerKind::SemiHard}}) {
    auto one = full.clone().requires_grad_(true);
    auto expected = mined_loss(c.loss, c.miner, one, labels, Distance::Euclidean, 0.2, 11);
    expected.loss.backward();
    ASSERT_GT(one.grad().abs().sum().item<double>(), 0);
    std::vector<double> losses(2);
    std::vector<torch::Tensor> grads(2);
    in_group(2, [&](ProcessGroup& g) {
      const int64_t begin = n * g.rank() / 2, end = n * (g.rank() + 1) / 2;
      auto local = full.slice(0, begin, end).clone().requires_grad_(true);
      auto gathered = g.all_gather_rows(local);
      auto m = mined_loss(c.loss, c.miner, gathered, labels, Distance::Euclidean, 0.2, 11);
      m.loss.backward();
      losses[g.rank()] = m.loss.item<double>();
      grads[g.rank()] = local.grad();
    });
    for (double l : losses) EXPECT_NEAR(l, expected.loss.item<double>(), 1e-6) << to_string(c.miner);
    // Each rank's gradient is its rows' share of the whole batch's: together, the one-process gradient.
    EXPECT_TRUE(torch::allclose(torch::cat(grads), one.grad(), 1e-5, 1e-7)) << to_string(c.miner);
  }
}

TEST(ProcessGroupTest, AllReduceSumsInBucketsAndBroadcastCopiesRankZero) {
  // Three 1.5M-value tensors (more than one 8 MiB bucket) and a small one, different on each rank.
  std::vector<std::vector<torch::Tensor>> given(3);  // drawn here: torch's generator is one for all threads
  for (int r = 0; r < 3; ++r) {
    torch::manual_seed(100 + r);
    given[r] = {torch::randn({1500000}), torch::randn({3, 4}), torch::randn({1000, 1500}), torch::randn({1500000})};
  }
  const auto &a = given[0], &b = given[1], &c = given[2];
  std::vector<std::vector<torch::Tensor>> sums(3);
  std::vector<std::vector<torch::Tensor>> module_tensors(3);
  in_group(3, [&](ProcessGroup& g) {
    std::vector<torch::Tensor> mine;
    for (const auto& t : given[g.rank()]) mine.push_back(t.clone());
    g.all_reduce_sum(mine);
    sums[g.rank()] = mine;
    torch::nn::Sequential m(torch::nn::Linear(4, 3), torch::nn::BatchNorm1d(3));
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < m->parameters().size(); ++i) m->parameters()[i].fill_(100.0 * g.rank() + i);
    m->buffers()[2].fill_(10 * g.rank() + 7);  // num_batches_tracked, int64
    broadcast_module(g, *m);
    for (const auto& p : m->parameters()) module_tensors[g.rank()].push_back(p.detach().clone());
    for (const auto& t : m->buffers()) module_tensors[g.rank()].push_back(t.clone());
  });
  for (int r = 0; r < 3; ++r) {
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::allclose(sums[r][i], a[i] + b[i] + c[i], 1e-5, 1e-5)) << r << " " << i;
  }
  ASSERT_EQ(module_tensors[1].size(), 4u + 3u);  // weight, bias, BN weight, bias; 3 BN buffers
  for (int r = 1; r < 3; ++r) {
    for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(module_tensors[r][i].eq(static_cast<double>(i)).all().item<bool>()) << r << " " << i;
    EXPECT_EQ(module_tensors[r].back().item<int64_t>(), 7);  // rank 0's num_batches_tracked
  }
}

TEST(DistributedTraining, TwoProcessesTrainAsOneProcessWithTheCombinedBatch) {
  const auto dir = temp_dir("dist_two");
  write_text_set(dir / "text", 60, 12, 6);
  const std::string common = "train --data text:" + (dir / "text").string() + " " + kFlags + " --epochs 4 --json --out ";
  auto one = run(common + (dir / "one").string());
  ASSERT_EQ(one.code, 0) << one.out;
  auto two = run(common + (dir / "two").string() + " --nproc 2");
  ASSERT_EQ(two.code, 0) << two.out;
  EXPECT_NE(two.out.find("2 processes:"), std::string::npos) << two.out;  // rank 0's collectives line
  const auto h1 = history_values(dir / "one" / "history.csv"), h2 = history_values(dir / "two" / "history.csv");
  ASSERT_EQ(h1.size(), 4u);
  ASSERT_EQ(h2.size(), 4u);
  // The same batches, split in two and gathered: the LSTM has no batch statistics, so only float
  // sums in another order (1 thread per process instead of 2) tell the runs apart.
  for (size_t e = 0; e < 4; ++e) {
    for (size_t i = 0; i < h1[e].size(); ++i) EXPECT_NEAR(h2[e][i], h1[e][i], 1e-4 * (1 + std::abs(h1[e][i]))) << e << " " << i;
  }
  auto m1 = load_model((dir / "one" / "model.pt").string()), m2 = load_model((dir / "two" / "model.pt").string());
  auto p1 = m1.network->named_parameters(), p2 = m2.network->named_parameters();
  ASSERT_EQ(p1.size(), p2.size());
  double largest = 0, moved = 0;
  for (const auto& p : p1) {
    largest = std::max(largest, (p.value() - p2[p.key()]).abs().max().item<double>());
    moved = std::max(moved, p.value().abs().max().item<double>());
  }
  EXPECT_LT(largest, 1e-4) << "largest weight difference after 4 epochs";
  EXPECT_GT(moved, 0.01);
  const auto t1 = last_json_line(one.out), t2 = last_json_line(two.out);  // the test metrics
  ASSERT_TRUE(t1.contains("recall_at_1")) << one.out;
  for (const char* key : {"recall_at_1", "map_at_r", "roc_auc", "verification_accuracy"}) {
    EXPECT_NEAR(t2.value(key, -1.0), t1.value(key, -2.0), 1e-3) << key;
  }
}

TEST(DistributedTraining, AKilledRankStopsTheOtherWithAClearErrorAndTheRunResumes) {
  const auto dir = temp_dir("dist_kill");
  write_text_set(dir / "text", 60, 12, 6);
  const std::string out = (dir / "run").string(), port = std::to_string(free_local_port());
  std::vector<std::string> args{"train", "--data", "text:" + (dir / "text").string(), "--epochs", "12", "--dist-timeout", "20",
                                "--out", out};
  std::istringstream flags(kFlags);
  for (std::string f; flags >> f;) args.push_back(f);
  auto env = [&](int rank) {
    return std::vector<std::string>{"RANK=" + std::to_string(rank), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port};
  };
  const auto log0 = (dir / "rank0.log").string(), log1 = (dir / "rank1.log").string();
  const pid_t rank0 = start_cli(args, log0, env(0)), rank1 = start_cli(args, log1, env(1));
  ASSERT_GT(rank0, 0);
  ASSERT_GT(rank1, 0);
  ASSERT_TRUE(wait_for_text(log0, "epoch 2/12")) << read_file(log0);
  kill(rank1, SIGKILL);
  EXPECT_EQ(wait_for(rank1), 128 + SIGKILL);
  // Rank 0 learns of it from its next collective, well within the 20 s timeout, and says so once.
  EXPECT_EQ(wait_at_most(rank0, 60), 1) << read_file(log0);
  const auto said = read_file(log0);
  EXPECT_NE(said.find("siamese: error: rank 0 of 2: "), std::string::npos) << said;
  EXPECT_NE(said.find("another training process stopped"), std::string::npos) << said;
  ASSERT_TRUE(fs::exists(fs::path(out) / "checkpoint.pt"));
  // The checkpoint that survived is whole: both ranks resume from it and finish the 12 epochs.
  auto resumed = run("train --resume " + out + " --nproc 2 --json");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resuming"), std::string::npos) << resumed.out;
  EXPECT_EQ(history_values(fs::path(out) / "history.csv").size(), 12u);
}

TEST(DistributedTraining, BadLaunchEnvironmentsAreOneClearErrorAndNoHang) {
  const auto dir = temp_dir("dist_env");
  write_text_set(dir / "text", 20, 6, 6);
  const std::vector<std::string> args{"train", "--data", "text:" + (dir / "text").string(), "--encoder", "lstm", "--epochs", "1",
                                      "--dist-timeout", "3", "--out", (dir / "run").string()};
  const auto log = (dir / "log").string();
  struct Case { std::vector<std::string> env; std::string says; };
  const std::string port = "MASTER_PORT=" + std::to_string(free_local_port());
  for (const auto& c : {Case{{"WORLD_SIZE=2"}, "without RANK"},
                        Case{{"RANK=2", "WORLD_SIZE=2"}, "RANK=2: expected an integer in [0, 1]"},
                        Case{{"RANK=0", "WORLD_SIZE=2", "MASTER_PORT=99999"}, "MASTER_PORT=99999"},
                        Case{{"RANK=0", "WORLD_SIZE=2", port}, "cannot join the training processes"},   // rank 1 never comes
                        Case{{"RANK=1", "WORLD_SIZE=2", port}, "cannot join the training processes"}}) {  // no rank 0
    const pid_t pid = start_cli(args, log, c.env);
    ASSERT_GT(pid, 0);
    EXPECT_EQ(wait_at_most(pid, 60), 1) << c.says;
    const auto said = read_file(log);
    EXPECT_NE(said.find(c.says), std::string::npos) << said;
    EXPECT_EQ(std::count(said.begin(), said.end(), '\n'), 1) << said;
    EXPECT_FALSE(fs::exists(dir / "run")) << "nothing is written before the group is whole";
  }
}

TEST(DistributedTraining, TheLauncherTakesItsRanksAlongAndRefusesBatchesTooSmallToShare) {
  const auto dir = temp_dir("dist_launcher");
  write_text_set(dir / "text", 60, 12, 6);
  const std::string data = "text:" + (dir / "text").string();
  auto small = run("train --data " + data + " --encoder lstm --validation-size 36 --sampler pairs --loss contrastive --batch-size 1 --nproc 2 --out " +
                   (dir / "small").string());
  EXPECT_EQ(small.code, 1) << small.out;
  EXPECT_NE(small.out.find("a batch of 2 items cannot be shared among 2 processes"), std::string::npos) << small.out;
  // SIGTERM to the launcher reaches both ranks: none is left training on its own.
  std::vector<std::string> args{"train", "--data", data, "--epochs", "40", "--nproc", "2", "--out", (dir / "run").string()};
  std::istringstream flags(kFlags);
  for (std::string f; flags >> f;) args.push_back(f);
  const auto log = (dir / "launcher.log").string();
  const pid_t launcher = start_cli(args, log);
  ASSERT_GT(launcher, 0);
  ASSERT_TRUE(wait_for_text(log, "epoch 1/40")) << read_file(log);
  kill(launcher, SIGTERM);
  EXPECT_EQ(wait_at_most(launcher, 30), 128 + SIGTERM) << read_file(log);
  const std::string mark = "SIAMESE_LAUNCHER_PID=" + std::to_string(launcher);
  int left = 0;
  for (int tries = 0; tries < 100; ++tries) {  // the ranks end within a few seconds of the signal
    left = 0;
    for (const auto& p : fs::directory_iterator("/proc")) {
      const auto environ_text = read_file(p.path() / "environ");
      if (environ_text.find(mark + '\0') != std::string::npos || environ_text.find(mark + "\n") != std::string::npos) ++left;
    }
    if (left == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(left, 0) << "ranks still running after their launcher ended";
}
