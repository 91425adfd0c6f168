#include "runtime/host/io_counters.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <signal.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace berth::runtime::host {
namespace {

TEST(IoCountersTest, ParsesProcIo) {
  const std::string text =
      "rchar: 6976\nwchar: 12\nsyscr: 10\nsyscw: 1\nread_bytes: 4096\nwrite_bytes: 8192\n"
      "cancelled_write_bytes: 0\n";
  EXPECT_EQ(ParseProcIo(text), (DiskBytes{.read = 4096, .written = 8192}));
  EXPECT_FALSE(ParseProcIo("rchar: 1\n").has_value());
  EXPECT_FALSE(ParseProcIo("read_bytes: -4\nwrite_bytes: 0\n").has_value());
  EXPECT_FALSE(ParseProcIo("read_bytes: 4x\nwrite_bytes: 0\n").has_value());
}

TEST(IoCountersTest, ParsesNetDev) {
  const std::string text =
      "Inter-|   Receive                                                |  Transmit\n"
      " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
      "drop fifo colls carrier compressed\n"
      "    lo:    1200      12    0    0    0     0          0         0     1200      12    0    "
      "0    0     0       0          0\n"
      "  eth0: 9876543    7000    0    0    0     0          0         3   123456     900    0    "
      "0    0     0       0          0\n";
  auto devs = ParseNetDev(text);
  ASSERT_TRUE(devs.has_value());
  ASSERT_EQ(devs->size(), 2u);
  EXPECT_EQ(devs->at("lo"), (NetDevBytes{.rx = 1200, .tx = 1200}));
  EXPECT_EQ(devs->at("eth0"), (NetDevBytes{.rx = 9876543, .tx = 123456}));
  EXPECT_FALSE(ParseNetDev("Inter-|\n face |\n").has_value());
  EXPECT_FALSE(ParseNetDev("  eth0: x 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n").has_value());
}

TEST(IoCountersTest, ParsesCgroupV2IoStat) {
  EXPECT_EQ(ParseIoStat("8:0 rbytes=4096 wbytes=512 rios=1 wios=1 dbytes=0 dios=0\n"
                        "8:16 rbytes=100 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"),
            (DiskBytes{.read = 4196, .written = 512}));
  EXPECT_EQ(ParseIoStat(""), (DiskBytes{}));  // no I/O yet
  EXPECT_FALSE(ParseIoStat("8:0 rbytes=x\n").has_value());
  EXPECT_FALSE(ParseIoStat("8:0 rbytes\n").has_value());
  EXPECT_FALSE(ReadCgroupDiskBytes("/../../etc").has_value());
  EXPECT_FALSE(ReadCgroupDiskBytes("").has_value());
  EXPECT_FALSE(ReadCgroupDiskBytes("/berth-no-such-cgroup").has_value());
}

TEST(IoCountersTest, ReadsItsOwnProcess) {
  auto before = ReadProcessIo(getpid());
  ASSERT_TRUE(before.has_value());
  // A megabyte written and synced to a disk-backed directory is counted as written.
  const std::string dir = ::testing::TempDir() + "io-counters-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  {
    const std::string file = dir + "/data";
    int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    const std::string block(1 << 20, 'x');
    ASSERT_EQ(write(fd, block.data(), block.size()), static_cast<ssize_t>(block.size()));
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
  }
  auto after = ReadProcessIo(getpid());
  struct statfs fs {};
  ASSERT_EQ(statfs(dir.c_str(), &fs), 0);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(after.has_value());
  if (fs.f_type != TMPFS_MAGIC) {  // memory-backed files never reach a disk
    EXPECT_GE(after->written - before->written, 1 << 20);
  }
  EXPECT_FALSE(ReadProcessIo(0).has_value());

  auto devs = ReadNetDev(getpid());
  ASSERT_TRUE(devs.has_value());
  EXPECT_TRUE(devs->count("lo"));
  EXPECT_EQ(OwnNetworkNamespace(getpid()), false);
  EXPECT_FALSE(OwnNetworkNamespace(0).has_value());
}

TEST(IoCountersTest, AProcessInItsOwnNetworkNamespaceIsToldApart) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    char ok = unshare(CLONE_NEWNET) == 0 ? 'y' : 'n';
    if (write(ready[1], &ok, 1) != 1) _exit(2);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  if (ok == 'y') {
    EXPECT_EQ(OwnNetworkNamespace(child), true);
    auto devs = ReadNetDev(child);
    ASSERT_TRUE(devs.has_value());
    EXPECT_EQ(devs->size(), 1u);  // a new namespace holds only its loopback
    EXPECT_TRUE(devs->count("lo"));
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  if (ok != 'y') GTEST_SKIP() << "unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN (run as root)";
}

}  // namespace
}  // namespace berth::runtime::host
