#include "runtime/process_driver.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "gtest/gtest.h"
#include "runtime/compute_driver_contract.h"
#include "runtime/host/proc_stat.h"
#include "runtime/process_cgroup.h"

namespace berth::runtime {
namespace {

using contract::kContractDeadline;
using contract::PollUntil;
using contract::ReadWholeFile;
using host::Credentials;
using host::ProcessAlive;
using host::ProcStat;
using host::ReadProcStat;
using host::ResolveCredentials;

TaskConfig Shell(std::string script) {
  return TaskConfig{.command = "/bin/sh", .args = {"-c", std::move(script)}};
}

// Driver options whose task cgroups sit under a parent of this test's own, which the destructor
// removes again (the driver removes each task's leaf, never the shared parent).
class TestDriverOptions {
 public:
  TestDriverOptions() {
    static std::atomic<int> counter{0};
    options_.cgroup_parent =
        "/berth-test-" + std::to_string(getpid()) + "-" + std::to_string(counter.fetch_add(1));
  }
  ~TestDriverOptions() {
    const std::string& root = options_.cgroup_root;
    for (const char* hierarchy : {"/memory", "/cpu", "/pids", ""}) {
      std::string dir = root + hierarchy + options_.cgroup_parent;
      if (std::filesystem::exists(dir)) rmdir(dir.c_str());
    }
  }
  const ProcessDriverOptions& get() const { return options_; }

 private:
  ProcessDriverOptions options_;
};

struct ProcessTraits {
  std::string SkipReason() { return ""; }
  std::unique_ptr<ComputeDriver> MakeDriver() {
    return std::make_unique<ProcessDriver>(options.get());
  }
  TestDriverOptions options;
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
    if (driver_ == nullptr) driver_ = NewDriver();
    for (const TaskHandle& h : handles_) {
      (void)driver_->Recover(h);
      (void)driver_->Destroy(h.task_id, DestroyOptions{.force = true});
    }
    driver_.reset();
    std::error_code ec;
    std::filesystem::remove_all(base_, ec);
  }

  std::string Dir(std::string_view id) { return (std::filesystem::path(base_) / id).string(); }
  // The task's default working directory.
  std::string WorkDir(std::string_view id) {
    return (std::filesystem::path(Dir(id)) / ProcessDriver::kWorkDirName).string();
  }
  std::unique_ptr<ProcessDriver> NewDriver() {
    return std::make_unique<ProcessDriver>(options_.get());
  }

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

  // Declared first: it outlives the driver and the tasks, whose cgroups sit under its parent.
  TestDriverOptions options_;
  std::string base_;
  std::unique_ptr<ProcessDriver> driver_ = NewDriver();
  std::vector<TaskHandle> handles_;
};

TEST_F(ProcessDriverTest, RecoveredTaskStillReportsItsRealExitCode) {
  TaskHandle h = MustStart(Shell("while [ ! -e go ]; do sleep 0.05; done; exit 7"), "later");
  pid_t pid = driver_->Inspect("later")->pid;
  driver_.reset();
  driver_ = NewDriver();
  ASSERT_TRUE(driver_->Recover(h).ok());
  EXPECT_EQ(driver_->Inspect("later")->pid, pid);
  EXPECT_EQ(driver_->Inspect("later")->state, TaskState::kRunning);
  std::ofstream(std::filesystem::path(WorkDir("later")) / "go") << "1";
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
    ProcessDriver d(options_.get());
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
  driver_ = NewDriver();
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
  driver_ = NewDriver();
  contract::EventRecorder recorder;
  contract::RecordingSubscription subscription(driver_.get(), &recorder);
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
  ProcessDriver other(options_.get());
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
  // With a cgroup, memory is bounded there (CgroupLimitsCpuAndMemory); RLIMIT_AS only without.
  const std::string as_limit = driver_->cgroup_mode() == CgroupMode::kNone ? "262144" : "unlimited";
  EXPECT_EQ(Log("limits"), as_limit + "\n200\nbar baz\n" + work + "\n");
  EXPECT_EQ(Log("limits", kStderrLogName), "oops\n");
}

TEST_F(ProcessDriverTest, LogsAppendAcrossRuns) {
  MustStart(TaskConfig{.command = "echo", .args = {"one"}}, "append");
  ASSERT_TRUE(driver_->Wait("append", kContractDeadline).ok());
  // A second task with the same directory (after the first is forgotten) appends.
  driver_.reset();
  driver_ = NewDriver();
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
  pid_t bg =
      std::stoi(ReadWholeFile((std::filesystem::path(WorkDir("leftover")) / "bg.pid").string()));
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
  EXPECT_EQ(r->stdout_data, "from-task\n" + WorkDir("exec") + "\n");
  absl::StatusOr<ExecResult> slow =
      driver_->Exec("exec", {"sleep", "1000"}, ExecOptions{.timeout = absl::Milliseconds(100)});
  EXPECT_EQ(slow.status().code(), absl::StatusCode::kDeadlineExceeded);
}

// The "Key:\tvalue" lines of a /proc/PID/status dump.
std::map<std::string, std::string> StatusFields(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    size_t value = line.find_first_not_of(" \t", colon + 1);
    fields[line.substr(0, colon)] = value == std::string::npos ? "" : line.substr(value);
  }
  return fields;
}

uid_t OwnerOf(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_uid : static_cast<uid_t>(-1);
}

constexpr char kNoCapabilities[] = "0000000000000000";

TEST_F(ProcessDriverTest, RunsAsNobodyWithoutCapabilitiesOrNewPrivileges) {
  if (geteuid() != 0) GTEST_SKIP() << "only an agent running as root switches users";
  MustStart(Shell("id -u; id -g; id -G; cat /proc/self/status; touch mine; "
                  "if echo x > ../intruder; then echo wrote; else echo refused; fi"),
            "nobody");
  absl::StatusOr<ExitResult> exit = driver_->Wait("nobody", kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 0) << Log("nobody", kStderrLogName);
  std::istringstream out(Log("nobody"));
  std::string uid, gid, groups;
  std::getline(out, uid);
  std::getline(out, gid);
  std::getline(out, groups);
  EXPECT_EQ(uid, "65534");
  EXPECT_EQ(gid, "65534");
  EXPECT_EQ(groups, "65534");
  std::map<std::string, std::string> status = StatusFields(Log("nobody"));
  EXPECT_EQ(status["NoNewPrivs"], "1");
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(status[set], kNoCapabilities) << set;
  }
  // The working directory is the task's; task_dir with its logs stays the agent's.
  EXPECT_NE(Log("nobody").find("refused\n"), std::string::npos) << Log("nobody");
  EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(Dir("nobody")) / "intruder"));
  EXPECT_EQ(OwnerOf(WorkDir("nobody")), 65534u);
  EXPECT_EQ(OwnerOf(WorkDir("nobody") + "/mine"), 65534u);
  EXPECT_EQ(OwnerOf(Dir("nobody")), 0u);
  EXPECT_EQ(OwnerOf(Dir("nobody") + "/stdout.log"), 0u);
}

TEST_F(ProcessDriverTest, NamedAndNumericUsersAndRootOnlyByRequest) {
  if (geteuid() != 0) GTEST_SKIP() << "only an agent running as root switches users";
  TaskConfig numeric = Shell("id -u; id -g; id -G");
  numeric.user = "1234:4321";
  MustStart(numeric, "numeric");
  ASSERT_TRUE(driver_->Wait("numeric", kContractDeadline).ok());
  EXPECT_EQ(Log("numeric"), "1234\n4321\n4321\n");

  struct passwd* daemon = getpwnam("daemon");
  ASSERT_NE(daemon, nullptr);
  TaskConfig named = Shell("id -u; id -g");
  named.user = "daemon";
  MustStart(named, "named");
  ASSERT_TRUE(driver_->Wait("named", kContractDeadline).ok());
  EXPECT_EQ(Log("named"),
            std::to_string(daemon->pw_uid) + "\n" + std::to_string(daemon->pw_gid) + "\n");

  // Root, where the server allowed it, keeps root's capabilities but never gains more.
  TaskConfig root = Shell("id -u; cat /proc/self/status");
  root.user = "root";
  MustStart(root, "root");
  ASSERT_TRUE(driver_->Wait("root", kContractDeadline).ok());
  EXPECT_TRUE(Log("root").starts_with("0\n")) << Log("root");
  std::map<std::string, std::string> status = StatusFields(Log("root"));
  EXPECT_NE(status["CapEff"], kNoCapabilities);
  EXPECT_EQ(status["CapAmb"], kNoCapabilities);
  EXPECT_EQ(status["NoNewPrivs"], "1");

  TaskConfig unknown{.task_id = "unknown",
                     .command = "true",
                     .user = "no-such-user-here",
                     .task_dir = Dir("unknown")};
  EXPECT_EQ(driver_->Start(unknown).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(std::filesystem::exists(Dir("unknown")));
  TaskConfig malformed{
      .task_id = "malformed", .command = "true", .user = "a b", .task_dir = Dir("malformed")};
  EXPECT_EQ(driver_->Start(malformed).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ResolveCredentialsTest, DefaultsNamesAndNumbers) {
  EXPECT_EQ(*ResolveCredentials(""), (Credentials{.uid = 65534, .gid = 65534}));
  EXPECT_EQ(*ResolveCredentials("1234:4321"), (Credentials{.uid = 1234, .gid = 4321}));
  // A uid without a passwd entry takes the same number as its group.
  ASSERT_EQ(getpwuid(54321), nullptr);
  EXPECT_EQ(*ResolveCredentials("54321"), (Credentials{.uid = 54321, .gid = 54321}));
  absl::StatusOr<Credentials> root = ResolveCredentials("root");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(root->uid, 0u);
  EXPECT_EQ(root->gid, 0u);
  EXPECT_EQ(ResolveCredentials("no-such-user-here").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ResolveCredentials("1:2:3").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ProcessDriverTest, CgroupLimitsCpuAndMemoryAndHoldsExec) {
  if (driver_->cgroup_mode() == CgroupMode::kNone) {
    GTEST_SKIP() << "no writable cgroup hierarchy here (the agent is not root, or no cgroupfs)";
  }
  TaskConfig c = Shell("cat /proc/self/cgroup; sleep 1000");
  c.resources.memory = core::MemoryMiB(64);
  c.resources.cpu = core::MilliCpu(250);
  MustStart(c, "limited");
  absl::StatusOr<TaskStatus> st = driver_->Inspect("limited");
  ASSERT_TRUE(st.ok());
  const std::string path = st->details["cgroup"];
  EXPECT_EQ(path, options_.get().cgroup_parent + "/limited");
  TaskCgroup cgroup(options_.get().cgroup_root, driver_->cgroup_mode(), path);
  EXPECT_EQ(cgroup.MemoryLimit(), int64_t{64} << 20);
  const std::string root = options_.get().cgroup_root;
  if (driver_->cgroup_mode() == CgroupMode::kV1) {
    EXPECT_EQ(ReadWholeFile(root + "/cpu" + path + "/cpu.cfs_quota_us"), "25000\n");
  } else {
    EXPECT_EQ(ReadWholeFile(root + path + "/cpu.max"), "25000 100000\n");
  }
  std::vector<pid_t> members = cgroup.Pids();
  EXPECT_NE(std::find(members.begin(), members.end(), st->pid), members.end());
  // The supervisor stays outside, where an OOM kill cannot reach it.
  pid_t supervisor = st->details["supervisor_pid"].get<pid_t>();
  EXPECT_EQ(std::find(members.begin(), members.end(), supervisor), members.end());
  EXPECT_TRUE(PollUntil([&] { return Log("limited").find(path) != std::string::npos; }))
      << Log("limited");

  // Exec joins the same cgroup, as the task's user.
  absl::StatusOr<ExecResult> r =
      driver_->Exec("limited", {"/bin/sh", "-c", "id -u; cat /proc/self/cgroup"}, ExecOptions{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->stdout_data.find(path), std::string::npos) << r->stdout_data;
  if (geteuid() == 0) EXPECT_TRUE(r->stdout_data.starts_with("65534\n")) << r->stdout_data;

  ASSERT_TRUE(driver_->Stop("limited", StopOptions{.grace = kContractDeadline}).ok());
  EXPECT_FALSE(std::filesystem::exists(cgroup.ProcsFiles().front()));
}

TEST_F(ProcessDriverTest, OomKillIsReportedAsSuch) {
  if (driver_->cgroup_mode() == CgroupMode::kNone) {
    GTEST_SKIP() << "no writable cgroup hierarchy here (the agent is not root, or no cgroupfs)";
  }
  contract::EventRecorder recorder;
  contract::RecordingSubscription subscription(driver_.get(), &recorder);
  // tail keeps the whole of a file without newlines in memory, past any limit.
  TaskConfig c{.command = "tail", .args = {"/dev/zero"}};
  c.resources.memory = core::MemoryMiB(16);
  MustStart(c, "hog");
  const std::string procs = TaskCgroup(options_.get().cgroup_root, driver_->cgroup_mode(),
                                       options_.get().cgroup_parent + "/hog")
                                .ProcsFiles()
                                .front();
  absl::StatusOr<ExitResult> exit = driver_->Wait("hog", kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->oom_killed);
  EXPECT_EQ(exit->signal, SIGKILL);
  EXPECT_NE(exit->reason.find("OOM"), std::string::npos) << exit->reason;
  std::optional<TaskEvent> event = recorder.WaitFor("hog", TaskEventType::kOomKilled);
  ASSERT_TRUE(event.has_value());
  EXPECT_TRUE(event->exit->oom_killed);
  EXPECT_FALSE(std::filesystem::exists(procs));

  // A plain failure in a cgroup that saw no OOM kill is not one.
  MustStart(Shell("exit 3"), "plain");
  exit = driver_->Wait("plain", kContractDeadline);
  ASSERT_TRUE(exit.ok());
  EXPECT_FALSE(exit->oom_killed);
  EXPECT_EQ(exit->exit_code, 3);
}

TEST_F(ProcessDriverTest, ProcessesThatLeftTheGroupDieWithTheCgroup) {
  if (driver_->cgroup_mode() == CgroupMode::kNone) {
    GTEST_SKIP() << "no writable cgroup hierarchy here (the agent is not root, or no cgroupfs)";
  }
  // The sleep starts a session of its own, out of reach of the process-group kill.
  MustStart(Shell("setsid sh -c 'echo $$ > bg.pid; exec sleep 1000' & "
                  "while [ ! -s bg.pid ]; do sleep 0.01; done; exit 0"),
            "escape");
  ASSERT_TRUE(driver_->Wait("escape", kContractDeadline).ok());
  pid_t bg = std::stoi(ReadWholeFile(WorkDir("escape") + "/bg.pid"));
  EXPECT_TRUE(PollUntil([&] {
    std::optional<ProcStat> st = ReadProcStat(bg);
    return !st.has_value() || st->state == 'Z';
  }));
}

}  // namespace
}  // namespace berth::runtime
