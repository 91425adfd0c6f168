#include "runtime/image/command.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"

namespace berth::runtime {
namespace {

TEST(RunCommandTest, CapturesOutputAndExitCode) {
  auto r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->stdout_data, "out\n");
  EXPECT_EQ(r->stderr_data, "err\n");
}

TEST(RunCommandTest, FeedsStdin) {
  std::string big(200000, 'x');
  auto r = RunCommand({"wc", "-c"}, {.stdin_data = big});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "200000\n");
}

TEST(RunCommandTest, KillsOnTimeout) {
  auto r = RunCommand({"sleep", "100"}, {.timeout = absl::Milliseconds(100)});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(RunCommandTest, MissingProgramIsNotFound) {
  auto r = RunCommand({"/nonexistent/program"});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
}

TEST(ProcessTest, SpawnWatchAndReap) {
  auto pid = SpawnProcess({"sleep", "100"}, {});
  ASSERT_TRUE(pid.ok());
  auto ticks = ProcessStartTicks(*pid);
  ASSERT_TRUE(ticks.has_value());
  EXPECT_TRUE(ProcessAlive(*pid, *ticks));
  EXPECT_FALSE(ProcessAlive(*pid, *ticks + 1));  // another process that reused the pid
  EXPECT_FALSE(WaitForProcessExit(*pid, *ticks, absl::Milliseconds(20)));
  auto usage = ReadProcessUsage(*pid);
  ASSERT_TRUE(usage.ok());
  EXPECT_GT(usage->rss_bytes, 0);
  kill(*pid, SIGKILL);
  // The zombie counts as exited.
  EXPECT_TRUE(WaitForProcessExit(*pid, *ticks, absl::Seconds(30)));
  auto ws = ReapChild(*pid, absl::Seconds(30));
  ASSERT_TRUE(ws.ok());
  EXPECT_TRUE(WIFSIGNALED(*ws));
}

TEST(FileTest, AtomicWriteReplaces) {
  std::string path =
      std::filesystem::temp_directory_path() / ("berth-atomic-" + std::to_string(getpid()));
  ASSERT_TRUE(WriteFileAtomically(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two").ok());
  EXPECT_EQ(*ReadFileToString(path), "two");
  std::filesystem::remove(path);
  EXPECT_EQ(ReadFileToString(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace berth::runtime
