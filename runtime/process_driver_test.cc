#include "runtime/process_driver.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "gtest/gtest.h"
#include "runtime/compute_driver_contract.h"
#include "runtime/proc_stat.h"

namespace berth::runtime {
namespace {

using contract::kContractDeadline;
using contract::PollUntil;
using contract::ReadWholeFile;

TaskConfig Shell(std::string script) {
  return TaskConfig{.command = "/bin/sh", .args = {"-c", std::move(script)}};
}

struct ProcessTraits {
  std::string SkipReason() { return ""; }
  std::unique_ptr<ComputeDriver> MakeDriver() { return std::make_unique<ProcessDriver>(); }
  TaskConfig PrintLine(std::string_view line) {
    return TaskConfig{.command = "echo", .args = {std::string(line)}};
  }
  TaskConfig RunLong() { return TaskConfig{.command = "sleep", .args = {"1000"}}; }
  TaskConfig ExitWith(int code) { return Shell("exit " + std::to_string(code)); }
  std::optional<TaskConfig> IgnoreStopSignal() {
    return Shell("trap '' TERM; while true; do sleep 1; done");
  }
  std::vector<std::string> EchoArgv(std::string_view text) { return {"echo", std::string(text)}; }
  void KillBehindDriversBack(const TaskHandle& handle) {
    pid_t pid = handle.state.at("pid").get<pid_t>();
    ASSERT_EQ(kill(-pid, SIGKILL), 0);
  }
};

}  // namespace

namespace contract {
INSTANTIATE_TYPED_TEST_SUITE_P(Process, ComputeDriverContractTest, ::testing::Types<ProcessTraits>);
}  // namespace contract

namespace {

class ProcessDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::path(::testing::TempDir()) / "berth-process-XXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    base_ = tmpl;
  }
  void TearDown() override {
    if (driver_ == nullptr) driver_ = std::make_unique<ProcessDriver>();
    for (const TaskHandle& h : handles_) {
      (void)driver_->Recover(h);
      (void)driver_->Destroy(h.task_id, DestroyOptions{.force = true});
    }
    driver_.reset();
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }

  std::string Dir(std::string_view id) { return (std::filesystem::path(base_) / id).string(); }

  TaskHandle MustStart(TaskConfig config, std::string id) {
    config.task_id = id;
    config.workload = id;
    config.task_dir = Dir(id);
    absl::StatusOr<TaskHandle> h = driver_->Start(config);
    EXPECT_TRUE(h.ok()) << h.status();
    if (!h.ok()) return {};
    handles_.push_back(*h);
    return *h;
  }

  std::string Log(std::string_view id, std::string_view name = kStdoutLogName) {
    return ReadWholeFile((std::filesystem::path(Dir(id)) / name).string());
  }

  std::string base_;
  std::unique_ptr<ProcessDriver> driver_ = std::make_unique<ProcessDriver>();
  std::vector<TaskHandle> handles_;
};

TEST_F(ProcessDriverTest, RecoveredTaskStillReportsItsRealExitCode) {
  TaskHandle h = MustStart(Shell("while [ ! -e go ]; do sleep 0.05; done; exit 7"), "later");
  pid_t pid = driver_->Inspect("later")->pid;
  driver_.reset();
  driver_ = std::make_unique<ProcessDriver>();
  ASSERT_TRUE(driver_->Recover(h).ok());
  EXPECT_EQ(driver_->Inspect("later")->pid, pid);
  EXPECT_EQ(driver_->Inspect("later")->state, TaskState::kRunning);
  std::ofstream(std::filesystem::path(Dir("later")) / "go") << "1";
  absl::StatusOr<ExitResult> exit = driver_->Wait("later", kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 7);
  EXPECT_EQ(exit->signal, 0);
}

TEST_F(ProcessDriverTest, TaskSurvivesAgentSigkill) {
  // The "agent" is a forked child that starts the task, persists the handle and is SIGKILLed.
  driver_.reset();
  std::string handle_path = (std::filesystem::path(base_) / "handle.json").string();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t agent = fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {
    close(ready[0]);
    ProcessDriver d;
    TaskConfig c{
        .task_id = "survivor", .command = "sleep", .args = {"1000"}, .task_dir = Dir("survivor")};
    absl::StatusOr<TaskHandle> h = d.Start(c);
    if (!h.ok()) _exit(2);
    std::ofstream(handle_path) << TaskHandleToJson(*h).dump();
    char c1 = 'r';
    (void)!write(ready[1], &c1, 1);
    while (true) pause();
  }
  close(ready[1]);
  char c1 = 0;
  ASSERT_EQ(read(ready[0], &c1, 1), 1);
  close(ready[0]);
  ASSERT_EQ(kill(agent, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(agent, &status, 0), agent);
  ASSERT_TRUE(WIFSIGNALED(status));

  absl::StatusOr<TaskHandle> h =
      TaskHandleFromJson(nlohmann::json::parse(ReadWholeFile(handle_path)));
  ASSERT_TRUE(h.ok()) << h.status();
  handles_.push_back(*h);
  pid_t pid = h->state.at("pid").get<pid_t>();
  driver_ = std::make_unique<ProcessDriver>();
  ASSERT_TRUE(driver_->Recover(*h).ok());
  absl::StatusOr<TaskStatus> st = driver_->Inspect("survivor");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state, TaskState::kRunning);
  EXPECT_EQ(st->pid, pid);
  ASSERT_TRUE(driver_->Stop("survivor", StopOptions{.grace = kContractDeadline}).ok());
  absl::StatusOr<ExitResult> exit = driver_->Wait("survivor", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->signal, SIGTERM);
  EXPECT_FALSE(exit->reason.empty());
}

TEST_F(ProcessDriverTest, LostSupervisorIsReportedWithUnknownStatus) {
  TaskHandle h = MustStart(TaskConfig{.command = "sleep", .args = {"1000"}}, "lost");
  driver_.reset();
  pid_t sup = h.state.at("supervisor_pid").get<pid_t>();
  pid_t pid = h.state.at("pid").get<pid_t>();
  ASSERT_EQ(kill(sup, SIGKILL), 0);
  ASSERT_EQ(kill(-pid, SIGKILL), 0);
  uint64_t sup_start = h.state.at("supervisor_start").get<uint64_t>();
  uint64_t pid_start = h.state.at("pid_start").get<uint64_t>();
  ASSERT_TRUE(
      PollUntil([&] { return !ProcessAlive(sup, sup_start) && !ProcessAlive(pid, pid_start); }));
  driver_ = std::make_unique<ProcessDriver>();
  contract::EventRecorder recorder;
  driver_->Subscribe([&](const TaskEvent& e) { recorder.Record(e); });
  ASSERT_TRUE(driver_->Recover(h).ok());
  absl::StatusOr<ExitResult> exit = driver_->Wait("lost", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, -1);
  EXPECT_FALSE(exit->reason.empty());
  EXPECT_TRUE(recorder.WaitFor("lost", TaskEventType::kFailed).has_value());
}

TEST_F(ProcessDriverTest, StartTimeGuardsAgainstPidReuse) {
  TaskHandle h = MustStart(TaskConfig{.command = "sleep", .args = {"1000"}}, "reuse");
  TaskHandle forged = h;
  forged.state["supervisor_start"] = h.state["supervisor_start"].get<uint64_t>() + 1;
  forged.state["pid_start"] = h.state["pid_start"].get<uint64_t>() + 1;
  ProcessDriver other;
  ASSERT_TRUE(other.Recover(forged).ok());
  absl::StatusOr<ExitResult> exit = other.Wait("reuse", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, -1);
  // The real process was never signalled.
  EXPECT_EQ(driver_->Inspect("reuse")->state, TaskState::kRunning);
}

TEST_F(ProcessDriverTest, LimitsEnvAndWorkingDirApply) {
  std::string work = Dir("workdir");
  std::filesystem::create_directories(work);
  TaskConfig c = Shell("ulimit -v; ulimit -n; echo \"$FOO\"; pwd; echo oops >&2");
  c.resources.memory = core::MemoryMiB(256);
  c.max_open_files = 200;
  c.env = {{"FOO", "bar baz"}};
  c.working_dir = work;
  MustStart(c, "limits");
  absl::StatusOr<ExitResult> exit = driver_->Wait("limits", kContractDeadline);
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 0);
  EXPECT_EQ(Log("limits"), "262144\n200\nbar baz\n" + work + "\n");
  EXPECT_EQ(Log("limits", kStderrLogName), "oops\n");
}

TEST_F(ProcessDriverTest, LogsAppendAcrossRuns) {
  MustStart(TaskConfig{.command = "echo", .args = {"one"}}, "append");
  ASSERT_TRUE(driver_->Wait("append", kContractDeadline).ok());
  // A second task with the same directory (after the first is forgotten) appends.
  driver_.reset();
  driver_ = std::make_unique<ProcessDriver>();
  handles_.clear();
  MustStart(TaskConfig{.command = "echo", .args = {"two"}}, "append");
  ASSERT_TRUE(driver_->Wait("append", kContractDeadline).ok());
  EXPECT_EQ(Log("append"), "one\ntwo\n");
}

TEST_F(ProcessDriverTest, BadCommandFailsStartAndLeavesNothing) {
  TaskConfig missing{.task_id = "bad1", .command = "no-such-command-here", .task_dir = Dir("bad1")};
  EXPECT_EQ(driver_->Start(missing).status().code(), absl::StatusCode::kInvalidArgument);
  TaskConfig not_exec{.task_id = "bad2", .command = "/etc/hostname", .task_dir = Dir("bad2")};
  EXPECT_EQ(driver_->Start(not_exec).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(Dir("bad2")));
  EXPECT_EQ(driver_->Inspect("bad2").status().code(), absl::StatusCode::kNotFound);
  TaskConfig no_dir{.task_id = "bad3", .command = "true"};
  EXPECT_EQ(driver_->Start(no_dir).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ProcessDriverTest, PauseStopsTheProcessGroup) {
  MustStart(TaskConfig{.command = "sleep", .args = {"1000"}}, "freeze");
  pid_t pid = driver_->Inspect("freeze")->pid;
  auto state = [&] {
    std::optional<ProcStat> st = ReadProcStat(pid);
    return st ? st->state : '?';
  };
  ASSERT_TRUE(driver_->Pause("freeze").ok());
  EXPECT_TRUE(PollUntil([&] { return state() == 'T'; }));
  ASSERT_TRUE(driver_->Resume("freeze").ok());
  EXPECT_TRUE(PollUntil([&] { return state() != 'T'; }));
}

TEST_F(ProcessDriverTest, StatsCountTheGroup) {
  MustStart(Shell("sleep 1000 & sleep 1000 & wait"), "stats");
  absl::StatusOr<TaskStats> stats;
  ASSERT_TRUE(PollUntil([&] {
    stats = driver_->Stats("stats");
    return stats.ok() && stats->processes == 3;
  })) << (stats.ok() ? stats->processes : -1);
  EXPECT_GT(stats->rss_bytes, 0);
}

TEST_F(ProcessDriverTest, LeftoverProcessesDieWithTheTask) {
  MustStart(Shell("sleep 1000 & echo $! > bg.pid; exit 0"), "leftover");
  ASSERT_TRUE(driver_->Wait("leftover", kContractDeadline).ok());
  pid_t bg = std::stoi(ReadWholeFile((std::filesystem::path(Dir("leftover")) / "bg.pid").string()));
  EXPECT_TRUE(PollUntil([&] {
    std::optional<ProcStat> st = ReadProcStat(bg);
    return !st.has_value() || st->state == 'Z';
  }));
}

TEST_F(ProcessDriverTest, ExecSeesTaskEnvironmentAndTimesOut) {
  TaskConfig c{.command = "sleep", .args = {"1000"}, .env = {{"FOO", "from-task"}}};
  MustStart(c, "exec");
  absl::StatusOr<ExecResult> r =
      driver_->Exec("exec", {"/bin/sh", "-c", "echo $FOO; pwd; exit 3"}, ExecOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->stdout_data, "from-task\n" + Dir("exec") + "\n");
  absl::StatusOr<ExecResult> slow =
      driver_->Exec("exec", {"sleep", "1000"}, ExecOptions{.timeout = absl::Milliseconds(100)});
  EXPECT_EQ(slow.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ProcStatTest, ParsesCommandNamesWithSpacesAndParens) {
  std::string line =
      "42 (a b) c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 12345 1000 55 "
      "18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
  std::optional<ProcStat> st = ParseProcStat(line);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->pid, 42);
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->pgrp, 42);
  EXPECT_EQ(st->utime_ticks, 7u);
  EXPECT_EQ(st->stime_ticks, 3u);
  EXPECT_EQ(st->start_ticks, 12345u);
  EXPECT_EQ(st->rss_pages, 55);
  EXPECT_FALSE(ParseProcStat("garbage").has_value());
}

}  // namespace
}  // namespace berth::runtime
