#include "runtime/host/process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "runtime/host/proc_stat.h"

namespace berth::runtime::host {
namespace {

TEST(ProcessTest, SpawnWatchAndReap) {
  auto child = SpawnDetached({"sleep", "100"}, {});
  ASSERT_TRUE(child.ok()) << child.status();
  ASSERT_NE(child->start_ticks, 0u);
  EXPECT_EQ(IdentifyProcess(child->pid), *child);
  EXPECT_TRUE(IsRunning(*child));
  EXPECT_FALSE(IsRunning({.pid = child->pid, .start_ticks = child->start_ticks + 1}));
  EXPECT_FALSE(WaitForProcessExit(*child, absl::Milliseconds(20)));
  auto usage = ReadProcessUsage(child->pid);
  ASSERT_TRUE(usage.has_value());
  EXPECT_GT(usage->rss_bytes, 0);
  ASSERT_TRUE(SignalProcess(*child, SIGKILL).ok());
  // The zombie counts as exited.
  EXPECT_TRUE(WaitForProcessExit(*child, absl::Seconds(30)));
  auto ws = ReapChild(child->pid, absl::Seconds(30));
  ASSERT_TRUE(ws.ok());
  EXPECT_TRUE(WIFSIGNALED(*ws));
  EXPECT_EQ(SignalProcess(*child, SIGKILL).code(), absl::StatusCode::kNotFound);
}

TEST(ProcessTest, SignalRefusesARecycledPid) {
  auto child = SpawnDetached({"sleep", "100"}, {});
  ASSERT_TRUE(child.ok());
  // The same pid with another start time is what a reused pid looks like.
  ProcessIdentity stale{.pid = child->pid, .start_ticks = child->start_ticks - 1};
  EXPECT_EQ(SignalProcess(stale, SIGKILL).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SignalProcessGroup(stale, SIGKILL).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(SignalProcess({.pid = child->pid}, SIGKILL).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SignalProcessIf(child->pid, SIGKILL, [](pid_t) { return false; }).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(IsRunning(*child));
  ASSERT_TRUE(SignalProcessGroup(*child, SIGKILL).ok());  // new session: it leads its group
  ASSERT_TRUE(ReapChild(child->pid, absl::Seconds(30)).ok());
}

TEST(ProcessTest, CmdlineOfAProcess) {
  auto child = SpawnDetached({"sleep", "100"}, {.new_session = false});
  ASSERT_TRUE(child.ok());
  // Right after the spawn the new program may still be loading, with no arguments yet.
  std::vector<std::string> cmdline;
  for (int i = 0; i < 500 && cmdline.empty(); ++i) {
    cmdline = ProcessCmdline(child->pid);
    if (cmdline.empty()) usleep(10000);
  }
  EXPECT_EQ(cmdline, (std::vector<std::string>{"sleep", "100"}));
  std::optional<ProcStat> st = ReadProcStat(child->pid);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->pgrp, child->pid);
  ASSERT_TRUE(SignalProcess(*child, SIGKILL).ok());
  ASSERT_TRUE(ReapChild(child->pid, absl::Seconds(30)).ok());
}

TEST(ProcessTest, SpawnOfAMissingProgramFails) {
  EXPECT_EQ(SpawnDetached({"/nonexistent/program"}, {}).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace berth::runtime::host
