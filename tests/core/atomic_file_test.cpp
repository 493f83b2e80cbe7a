// write_atomically against real targets: symbolic links, FIFOs, a device that is always full, and
// the temporary files a killed writer leaves behind.
#include "siamese/core/atomic_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "siamese/core/error.h"
#include "test_util.h"

using namespace siamese;
namespace fs = std::filesystem;

namespace {

/// The error write_text_atomically(path, text) throws; fails the test when it throws none.
Error write_error(const std::string& path, const std::string& text) {
  try {
    write_text_atomically(path, text);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "writing " << path << " did not fail";
  return Error(ErrorCode::Internal, "no error");
}

bool contains_no_space(const std::string& message) {
  return message.find("No space left on device") != std::string::npos;
}

}  // namespace

TEST(AtomicFile, SymlinkStaysASymlinkAndItsTargetGetsTheContent) {
  const auto dir = siamese::testing::temp_dir("atomic_symlink");
  fs::create_directories(dir / "real");
  {
    std::ofstream(dir / "real" / "config.txt") << "old\n";
  }
  fs::create_symlink("real/config.txt", dir / "link.txt");  // relative, as users make them
  fs::create_symlink("link.txt", dir / "link2.txt");         // a chain of two
  write_text_atomically((dir / "link2.txt").string(), "new\n");
  EXPECT_TRUE(fs::is_symlink(dir / "link2.txt"));
  EXPECT_TRUE(fs::is_symlink(dir / "link.txt"));
  EXPECT_EQ(fs::read_symlink(dir / "link.txt"), fs::path("real/config.txt"));
  EXPECT_EQ(siamese::testing::read_file(dir / "real" / "config.txt"), "new\n");
  // A dangling link: the file it names is created, the link stays.
  fs::create_symlink("real/later.txt", dir / "later.txt");
  write_text_atomically((dir / "later.txt").string(), "made\n");
  EXPECT_TRUE(fs::is_symlink(dir / "later.txt"));
  EXPECT_EQ(siamese::testing::read_file(dir / "real" / "later.txt"), "made\n");
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << e.path();
  }
}

TEST(AtomicFile, FifoIsWrittenThroughNotReplaced) {
  const auto dir = siamese::testing::temp_dir("atomic_fifo");
  const auto fifo = (dir / "pipe").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // A reader opened first, without blocking, so the writer's open succeeds at once.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  write_text_atomically(fifo, "through the pipe\n");
  char buf[64] = {};
  const ssize_t n = ::read(reader, buf, sizeof buf - 1);
  ::close(reader);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "through the pipe\n");
  EXPECT_TRUE(fs::is_fifo(fifo));
}

TEST(AtomicFile, SymlinkToAFullDeviceGivesAnIOErrorAndStays) {
  const auto dir = siamese::testing::temp_dir("atomic_full_link");
  const auto link = (dir / "out.txt").string();
  fs::create_symlink("/dev/full", link);
  const auto e = write_error(link, "hello");
  EXPECT_EQ(e.code(), ErrorCode::IOError) << e.what();
  EXPECT_EQ(e.path(), link);
  EXPECT_TRUE(contains_no_space(e.what())) << e.what();
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(fs::read_symlink(link), fs::path("/dev/full"));
}

// Writes to /dev/full itself. Before write_atomically knew devices, it renamed a regular file over
// the device node when run as root: run this test only against a build that has the fix.
TEST(AtomicFile, DevFullGivesAnIOErrorNamingIt) {
  ASSERT_TRUE(fs::is_character_file("/dev/full"));
  const auto e = write_error("/dev/full", std::string(100000, 'x'));
  EXPECT_EQ(e.code(), ErrorCode::IOError) << e.what();
  EXPECT_EQ(e.path(), "/dev/full");
  EXPECT_TRUE(contains_no_space(e.what())) << e.what();
  EXPECT_TRUE(fs::is_character_file("/dev/full"));
}

TEST(AtomicFile, StaleTemporaryFilesOfDeadProcessesAreRemoved) {
  const auto dir = siamese::testing::temp_dir("atomic_stale");
  // A real process, killed: its pid names a temporary file as a killed writer would leave it.
  pid_t child = -1;
  std::string sleep = "/bin/sleep", seconds = "60";
  std::vector<char*> argv{sleep.data(), seconds.data(), nullptr};
  ASSERT_EQ(posix_spawn(&child, sleep.c_str(), nullptr, nullptr, argv.data(), environ), 0);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  EXPECT_EQ(siamese::testing::wait_for(child), 128 + SIGKILL);
  ASSERT_NE(::kill(child, 0), 0);  // gone
  const std::string dead = std::to_string(child), alive = std::to_string(::getppid());
  const auto target = dir / "model.pt";
  const std::vector<std::string> removed{"model.pt.tmp." + dead};
  const std::vector<std::string> kept{"model.pt.tmp." + alive,       // its writer still runs
                                      "model.pt.tmp." + dead + "x",  // not digits only
                                      "model.pt.tmp.",               // no pid
                                      "other.pt.tmp." + dead,        // another target's
                                      "model.pt.old." + dead};
  for (const auto& name : removed) std::ofstream(dir / name) << "partial";
  for (const auto& name : kept) std::ofstream(dir / name) << "keep";
  write_text_atomically(target.string(), "complete\n");
  EXPECT_EQ(siamese::testing::read_file(target), "complete\n");
  for (const auto& name : removed) EXPECT_FALSE(fs::exists(dir / name)) << name;
  for (const auto& name : kept) EXPECT_EQ(siamese::testing::read_file(dir / name), "keep") << name;
}

TEST(AtomicFile, RegularFileIsReplacedWhole) {
  const auto dir = siamese::testing::temp_dir("atomic_regular");
  const auto path = (dir / "a.txt").string();
  write_text_atomically(path, "first\n");
  write_text_atomically(path, "second\n");
  EXPECT_EQ(siamese::testing::read_file(path), "second\n");
  EXPECT_TRUE(fs::is_regular_file(path) && !fs::is_symlink(path));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}
