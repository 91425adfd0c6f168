#include "runtime/host/run.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/host/process.h"

namespace berth::runtime::host {
namespace {

using ::testing::HasSubstr;

TEST(RunTest, CapturesOutputExitCodeAndStdin) {
  auto r = RunCommand({"sh", "-c", "cat; echo err >&2; exit 3"}, {.stdin_data = "hello"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->cause, ExitCause::kExited);
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "hello");
  EXPECT_EQ(r->err, "err\n");
  EXPECT_FALSE(r->ok());
}

TEST(RunTest, FeedsLargeStdin) {
  std::string big(200000, 'x');
  auto r = RunCommand({"wc", "-c"}, {.stdin_data = big});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->out, "200000\n");
}

TEST(RunTest, StreamsOutputToCallback) {
  std::string seen;
  RunOptions opts;
  opts.on_output = [&](std::string_view chunk) { seen.append(chunk); };
  auto r = RunCommand({"sh", "-c", "printf a; printf b"}, opts);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(seen, "ab");
  EXPECT_EQ(r->out, "ab");
}

TEST(RunTest, SignalKilledChildIsReportedAsSuch) {
  auto r = RunCommand({"sh", "-c", "echo dying >&2; kill -9 $$"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cause, ExitCause::kSignaled);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_EQ(r->ShellCode(), 128 + SIGKILL);
  absl::Status s = ResultStatus({"sh", "-c", "x"}, *r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("`sh -c x` killed by signal 9"));
  EXPECT_THAT(s.message(), HasSubstr("dying"));
}

TEST(RunTest, TimeoutKillsTheWholeProcessGroup) {
  // The shell prints its background child's pid, then waits; both must die at the timeout.
  auto r =
      RunCommand({"sh", "-c", "sleep 100 & echo $!; wait"}, {.timeout = absl::Milliseconds(300)});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cause, ExitCause::kTimedOut);
  EXPECT_EQ(ResultStatus({"sh"}, *r).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(DescribeExit(*r), HasSubstr("timed out after 300ms"));
  pid_t background = std::atoi(r->out.c_str());
  ASSERT_GT(background, 0) << r->out;
  EXPECT_TRUE(WaitForProcessExit({.pid = background}, absl::Seconds(10)));
}

TEST(RunTest, OutputIsCappedAndFlagged) {
  RunOptions opts;
  opts.output_limit = 1000;
  auto r = RunCommand({"sh", "-c", "head -c 100000 /dev/zero; head -c 50 /dev/zero >&2"}, opts);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->out.size(), 1000u);
  EXPECT_TRUE(r->out_truncated);
  EXPECT_EQ(r->err.size(), 50u);
  EXPECT_FALSE(r->err_truncated);
}

TEST(RunTest, MissingProgramCouldNotStart) {
  auto r = RunCommand({"/nonexistent/tool"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cause, ExitCause::kStartFailed);
  EXPECT_EQ(r->start_error, ENOENT);
  absl::Status s = ResultStatus({"/nonexistent/tool"}, *r);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("could not start: exec"));
}

TEST(RunTest, NonZeroExitStatusQuotesBoundedStderr) {
  auto r =
      RunCommand({"sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a >&2; echo boom >&2; exit 1"});
  ASSERT_TRUE(r.ok());
  absl::Status s = ResultStatus({"sh", "-c", "..."}, *r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(s.message(), HasSubstr("exited with code 1"));
  EXPECT_THAT(s.message(), HasSubstr("boom"));
  EXPECT_LT(s.message().size(), 1000u);
}

TEST(RunTest, DaemonHoldingOutputDoesNotBlock) {
  // The grandchild keeps stdout open after its parent exits.
  absl::Time start = absl::Now();
  auto r = RunCommand({"sh", "-c", "(sleep 3 &) ; echo started"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "started\n");
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST(RunTest, EnvironmentAndWorkingDirectory) {
  RunOptions opts;
  opts.env = std::vector<std::string>{"GREETING=hi"};
  opts.setup.working_dir = "/";
  auto r = RunCommand({"sh", "-c", "echo $GREETING; pwd"}, opts);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "hi\n/\n");
  opts.setup.working_dir = "/nonexistent-dir";
  r = RunCommand({"true"}, opts);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cause, ExitCause::kStartFailed);
  EXPECT_EQ(r->start_stage, "chdir");
}

TEST(RunTest, RunsInANetworkNamespaceGivenByPath) {
  if (geteuid() != 0) GTEST_SKIP() << "entering a network namespace needs root";
  // A namespace held by a process of this test, named by path so nothing stays on the host.
  auto holder = SpawnDetached({"unshare", "--net", "sleep", "100"}, {});
  ASSERT_TRUE(holder.ok()) << holder.status();
  std::string ns = "/proc/" + std::to_string(holder->pid) + "/ns/net";
  std::string own;
  for (int i = 0; i < 200; ++i) {  // until unshare has moved the holder into its namespace
    char a[128] = {}, b[128] = {};
    ssize_t na = readlink(ns.c_str(), a, sizeof(a) - 1);
    ssize_t nb = readlink("/proc/self/ns/net", b, sizeof(b) - 1);
    if (na > 0 && nb > 0 && std::string(a) != std::string(b)) {
      own = b;
      break;
    }
    usleep(10000);
  }
  ASSERT_FALSE(own.empty());
  auto r = RunCommand({"readlink", "/proc/self/ns/net"}, {.netns = ns});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok()) << DescribeExit(*r);
  EXPECT_NE(r->out, own + "\n");
  auto links = RunCommand({"ip", "-o", "link", "show"}, {.netns = ns});
  ASSERT_TRUE(links.ok());
  EXPECT_THAT(links->out, HasSubstr("lo"));
  EXPECT_THAT(links->out, ::testing::Not(HasSubstr("eth")));
  kill(holder->pid, SIGKILL);
  ASSERT_TRUE(ReapChild(holder->pid, absl::Seconds(30)).ok());

  auto missing = RunCommand({"true"}, {.netns = "berth-test-no-such-namespace"});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->cause, ExitCause::kStartFailed);
  EXPECT_THAT(DescribeExit(*missing), HasSubstr("/run/netns/berth-test-no-such-namespace"));
}

}  // namespace
}  // namespace berth::runtime::host
