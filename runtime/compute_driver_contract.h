// The ComputeDriver contract suite: one typed GoogleTest suite that every driver (fake, process,
// qemu, oci) must pass, so the agent can treat them alike. A driver joins by writing a small
// traits type and instantiating the suite in its own test file:
//
//   #include "runtime/compute_driver_contract.h"
//   struct QemuTraits {
//     QemuTraits();                       // per-test setup; destroyed after the test
//     // Non-empty: why the driver cannot run on this host ("no /dev/kvm"); the tests skip.
//     std::string SkipReason();
//     // A new driver instance. Called at the start of each test and again to simulate an agent
//     // restart: every instance made by one traits object must see the same host (processes,
//     // files; for the fake, the same FakeHost).
//     std::unique_ptr<berth::runtime::ComputeDriver> MakeDriver();
//     // Configs for the standard tasks. The suite fills task_id, workload and task_dir (a fresh
//     // path under a temporary directory, not yet created).
//     berth::runtime::TaskConfig PrintLine(std::string_view line);  // prints line+"\n", exits 0
//     berth::runtime::TaskConfig RunLong();        // runs until stopped; ends on SIGTERM
//     berth::runtime::TaskConfig ExitWith(int code);  // exits by itself with `code`, promptly
//     // Runs until killed, ignoring the stop signal; nullopt skips the grace-escalation case.
//     std::optional<berth::runtime::TaskConfig> IgnoreStopSignal();
//     // argv that Exec() runs to print `text` to stdout (used only with Capabilities().exec).
//     std::vector<std::string> EchoArgv(std::string_view text);
//     // Kills the task's workload behind the driver's back, as if it crashed while the agent
//     // was down. Called while no driver instance exists.
//     void KillBehindDriversBack(const berth::runtime::TaskHandle& handle);
//   };
//   namespace berth::runtime::contract {  // the instantiation must sit in the suite's namespace
//   INSTANTIATE_TYPED_TEST_SUITE_P(Qemu, ComputeDriverContractTest, ::testing::Types<QemuTraits>);
//   }
//
// Tests wait with generous deadlines (kContractDeadline) and never sleep for synchronization.
// Every task a test starts is force-destroyed at teardown, by a fresh driver if need be.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "runtime/compute_driver.h"

namespace berth::runtime::contract {

// Long enough for a VM to boot on a slow, shared CI machine; only reached when a test fails.
inline constexpr absl::Duration kContractDeadline = absl::Seconds(120);

// Polls `done` every few milliseconds until it returns true or `deadline` passes.
inline bool PollUntil(const std::function<bool()>& done,
                      absl::Duration deadline = kContractDeadline) {
  absl::Time until = absl::Now() + deadline;
  while (!done()) {
    if (absl::Now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Collects events from a driver subscription; thread-safe.
class EventRecorder {
 public:
  void Record(const TaskEvent& event) {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  std::vector<TaskEvent> Events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  // The first event of `task_id` with `type`, waiting for it up to `deadline`.
  std::optional<TaskEvent> WaitFor(std::string_view task_id, TaskEventType type,
                                   absl::Duration deadline = kContractDeadline) {
    std::optional<TaskEvent> found;
    PollUntil(
        [&] {
          absl::MutexLock lock(&mu_);
          for (const TaskEvent& e : events_) {
            if (e.task_id == task_id && e.type == type) {
              found = e;
              return true;
            }
          }
          return false;
        },
        deadline);
    return found;
  }

 private:
  absl::Mutex mu_;
  std::vector<TaskEvent> events_ ABSL_GUARDED_BY(mu_);
};

// Feeds a recorder from a driver's events for as long as it lives. Declared after the recorder
// (so destroyed first), it ends the subscription before the recorder goes away: events that
// arrive after a test's last check (a task's exit, say) never reach a destroyed recorder.
class RecordingSubscription {
 public:
  RecordingSubscription(ComputeDriver* driver, EventRecorder* recorder)
      : driver_(driver),
        id_(driver->Subscribe([recorder](const TaskEvent& e) { recorder->Record(e); })) {}
  ~RecordingSubscription() { driver_->Unsubscribe(id_); }
  RecordingSubscription(const RecordingSubscription&) = delete;
  RecordingSubscription& operator=(const RecordingSubscription&) = delete;

 private:
  ComputeDriver* driver_;
  int64_t id_;
};

template <typename Traits>
class ComputeDriverContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string reason = traits_.SkipReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    std::string tmpl = (std::filesystem::path(::testing::TempDir()) / "berth-contract-XXXXXX");
    char* made = mkdtemp(tmpl.data());
    ASSERT_NE(made, nullptr) << "mkdtemp " << tmpl;
    base_dir_ = made;
    driver_ = traits_.MakeDriver();
    ASSERT_NE(driver_, nullptr);
  }

  void TearDown() override {
    if (!handles_.empty()) {
      if (driver_ == nullptr) driver_ = traits_.MakeDriver();
      for (const TaskHandle& h : handles_) {
        (void)driver_->Recover(h);
        (void)driver_->Destroy(h.task_id, DestroyOptions{.force = true});
      }
    }
    driver_.reset();
    if (!base_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(base_dir_, ec);
    }
  }

  // Fills the suite-owned fields of a traits config.
  TaskConfig Prepare(TaskConfig config, std::string_view task_id) {
    config.task_id = std::string(task_id);
    config.workload = std::string(task_id);
    config.task_dir = (std::filesystem::path(base_dir_) / task_id).string();
    return config;
  }

  // Starts the task and records its handle for teardown; fails the test if Start fails.
  TaskHandle MustStart(TaskConfig config, std::string_view task_id) {
    config = Prepare(std::move(config), task_id);
    absl::StatusOr<TaskHandle> handle = driver_->Start(config);
    EXPECT_TRUE(handle.ok()) << handle.status();
    if (!handle.ok()) return TaskHandle{};
    handles_.push_back(*handle);
    task_dirs_[std::string(task_id)] = config.task_dir;
    return *handle;
  }

  std::string TaskDir(std::string_view task_id) {
    return (std::filesystem::path(base_dir_) / task_id).string();
  }

  // Simulates an agent restart: drops the driver and makes a new one.
  void RestartDriver() {
    driver_.reset();
    driver_ = traits_.MakeDriver();
  }

  Traits traits_;
  std::string base_dir_;
  std::unique_ptr<ComputeDriver> driver_;
  std::vector<TaskHandle> handles_;
  std::map<std::string, std::string> task_dirs_;
};

TYPED_TEST_SUITE_P(ComputeDriverContractTest);

TYPED_TEST_P(ComputeDriverContractTest, FingerprintIsHealthy) {
  DriverFingerprint fp = this->driver_->Fingerprint();
  EXPECT_TRUE(fp.healthy) << fp.health_description;
}

TYPED_TEST_P(ComputeDriverContractTest, StartThenInspectShowsRunning) {
  TaskHandle handle = this->MustStart(this->traits_.RunLong(), "run-1");
  EXPECT_EQ(handle.driver, this->driver_->Name());
  EXPECT_EQ(handle.task_id, "run-1");
  absl::StatusOr<TaskStatus> status = this->driver_->Inspect("run-1");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->task_id, "run-1");
  EXPECT_EQ(status->state, TaskState::kRunning);
  EXPECT_FALSE(status->exit.has_value());
  EXPECT_NE(status->started_at, absl::InfinitePast());
  std::vector<std::string> tasks = this->driver_->Tasks();
  EXPECT_NE(std::find(tasks.begin(), tasks.end(), "run-1"), tasks.end());
  // The handle survives a round trip through the JSON the agent persists.
  absl::StatusOr<TaskHandle> decoded = TaskHandleFromJson(TaskHandleToJson(handle));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, handle);
}

TYPED_TEST_P(ComputeDriverContractTest, StartRejectsDuplicateAndEmptyIds) {
  this->MustStart(this->traits_.RunLong(), "dup-1");
  TaskConfig again = this->Prepare(this->traits_.RunLong(), "dup-1");
  EXPECT_EQ(this->driver_->Start(again).status().code(), absl::StatusCode::kAlreadyExists);
  TaskConfig unnamed = this->Prepare(this->traits_.RunLong(), "unnamed");
  unnamed.task_id.clear();
  EXPECT_EQ(this->driver_->Start(unnamed).status().code(), absl::StatusCode::kInvalidArgument);
}

TYPED_TEST_P(ComputeDriverContractTest, StdoutGoesToTaskLog) {
  this->MustStart(this->traits_.PrintLine("hello from the contract"), "print-1");
  absl::StatusOr<ExitResult> exit = this->driver_->Wait("print-1", kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->Successful()) << exit->exit_code << " " << exit->reason;
  std::string log = (std::filesystem::path(this->TaskDir("print-1")) / kStdoutLogName).string();
  EXPECT_NE(ReadWholeFile(log).find("hello from the contract\n"), std::string::npos);
}

TYPED_TEST_P(ComputeDriverContractTest, ExitCodeIsReported) {
  this->MustStart(this->traits_.ExitWith(3), "exit-3");
  absl::StatusOr<ExitResult> exit = this->driver_->Wait("exit-3", kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 3);
  EXPECT_EQ(exit->signal, 0);
  EXPECT_FALSE(exit->Successful());
  absl::StatusOr<TaskStatus> status = this->driver_->Inspect("exit-3");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->state, TaskState::kExited);
  ASSERT_TRUE(status->exit.has_value());
  EXPECT_EQ(status->exit->exit_code, 3);
  // Wait is repeatable after exit.
  absl::StatusOr<ExitResult> again = this->driver_->Wait("exit-3", absl::ZeroDuration());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->exit_code, 3);
  // Stats of an exited task are not available.
  EXPECT_EQ(this->driver_->Stats("exit-3").status().code(), absl::StatusCode::kFailedPrecondition);
}

TYPED_TEST_P(ComputeDriverContractTest, WaitTimesOutWhileRunning) {
  this->MustStart(this->traits_.RunLong(), "wait-1");
  absl::StatusOr<ExitResult> exit = this->driver_->Wait("wait-1", absl::Milliseconds(100));
  EXPECT_EQ(exit.status().code(), absl::StatusCode::kDeadlineExceeded);
  absl::StatusOr<TaskStatus> status = this->driver_->Inspect("wait-1");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, TaskState::kRunning);
  absl::StatusOr<TaskStats> stats = this->driver_->Stats("wait-1");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_NE(stats->at, absl::InfinitePast());
}

TYPED_TEST_P(ComputeDriverContractTest, StopWithGraceEndsTask) {
  this->MustStart(this->traits_.RunLong(), "stop-1");
  ASSERT_TRUE(this->driver_->Stop("stop-1", StopOptions{.grace = kContractDeadline}).ok());
  absl::StatusOr<TaskStatus> status = this->driver_->Inspect("stop-1");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, TaskState::kExited);
  absl::StatusOr<ExitResult> exit = this->driver_->Wait("stop-1", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok()) << exit.status();
  // Stopping an exited task is a no-op.
  EXPECT_TRUE(this->driver_->Stop("stop-1", StopOptions{}).ok());
}

TYPED_TEST_P(ComputeDriverContractTest, StopEscalatesAfterGrace) {
  std::optional<TaskConfig> stubborn = this->traits_.IgnoreStopSignal();
  if (!stubborn.has_value()) GTEST_SKIP() << "driver has no task that ignores the stop signal";
  this->MustStart(*stubborn, "stubborn-1");
  ASSERT_TRUE(
      this->driver_->Stop("stubborn-1", StopOptions{.grace = absl::Milliseconds(300)}).ok());
  absl::StatusOr<ExitResult> exit = this->driver_->Wait("stubborn-1", absl::ZeroDuration());
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_FALSE(exit->Successful());
}

TYPED_TEST_P(ComputeDriverContractTest, DestroyRemovesTaskDir) {
  this->MustStart(this->traits_.PrintLine("bye"), "destroy-1");
  ASSERT_TRUE(this->driver_->Wait("destroy-1", kContractDeadline).ok());
  EXPECT_TRUE(std::filesystem::exists(this->TaskDir("destroy-1")));
  ASSERT_TRUE(this->driver_->Destroy("destroy-1", DestroyOptions{}).ok());
  EXPECT_FALSE(std::filesystem::exists(this->TaskDir("destroy-1")));
  EXPECT_EQ(this->driver_->Inspect("destroy-1").status().code(), absl::StatusCode::kNotFound);
  std::vector<std::string> tasks = this->driver_->Tasks();
  EXPECT_EQ(std::find(tasks.begin(), tasks.end(), "destroy-1"), tasks.end());
}

TYPED_TEST_P(ComputeDriverContractTest, DestroyRunningTaskNeedsForce) {
  this->MustStart(this->traits_.RunLong(), "destroy-2");
  EXPECT_EQ(this->driver_->Destroy("destroy-2", DestroyOptions{}).code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<TaskStatus> status = this->driver_->Inspect("destroy-2");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, TaskState::kRunning);
  ASSERT_TRUE(this->driver_->Destroy("destroy-2", DestroyOptions{.force = true}).ok());
  EXPECT_FALSE(std::filesystem::exists(this->TaskDir("destroy-2")));
  EXPECT_EQ(this->driver_->Inspect("destroy-2").status().code(), absl::StatusCode::kNotFound);
}

TYPED_TEST_P(ComputeDriverContractTest, PauseAndResumeWhereCapable) {
  this->MustStart(this->traits_.RunLong(), "pause-1");
  if (!this->driver_->Capabilities().pause_resume) {
    EXPECT_EQ(this->driver_->Pause("pause-1").code(), absl::StatusCode::kUnimplemented);
    return;
  }
  ASSERT_TRUE(this->driver_->Pause("pause-1").ok());
  EXPECT_EQ(this->driver_->Inspect("pause-1")->state, TaskState::kPaused);
  EXPECT_EQ(this->driver_->Pause("pause-1").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(this->driver_->Resume("pause-1").ok());
  EXPECT_EQ(this->driver_->Inspect("pause-1")->state, TaskState::kRunning);
  EXPECT_EQ(this->driver_->Resume("pause-1").code(), absl::StatusCode::kFailedPrecondition);
  // A paused task can still be stopped.
  ASSERT_TRUE(this->driver_->Pause("pause-1").ok());
  ASSERT_TRUE(this->driver_->Stop("pause-1", StopOptions{.grace = absl::Seconds(5)}).ok());
  EXPECT_EQ(this->driver_->Inspect("pause-1")->state, TaskState::kExited);
}

TYPED_TEST_P(ComputeDriverContractTest, ExecWhereCapable) {
  this->MustStart(this->traits_.RunLong(), "exec-1");
  std::vector<std::string> argv = this->traits_.EchoArgv("exec says hi");
  if (!this->driver_->Capabilities().exec) {
    EXPECT_EQ(this->driver_->Exec("exec-1", argv, ExecOptions{}).status().code(),
              absl::StatusCode::kUnimplemented);
    return;
  }
  absl::StatusOr<ExecResult> result = this->driver_->Exec("exec-1", argv, ExecOptions{});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_NE(result->stdout_data.find("exec says hi"), std::string::npos);
}

TYPED_TEST_P(ComputeDriverContractTest, RecoverKeepsTheSameRunningTask) {
  TaskHandle handle = this->MustStart(this->traits_.RunLong(), "recover-1");
  absl::StatusOr<TaskStatus> before = this->driver_->Inspect("recover-1");
  ASSERT_TRUE(before.ok());
  this->RestartDriver();
  EXPECT_EQ(this->driver_->Inspect("recover-1").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(this->driver_->Recover(handle).ok());
  ASSERT_TRUE(this->driver_->Recover(handle).ok()) << "Recover must be idempotent";
  absl::StatusOr<TaskStatus> after = this->driver_->Inspect("recover-1");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state, TaskState::kRunning);
  EXPECT_EQ(after->pid, before->pid);
  EXPECT_EQ(after->started_at, before->started_at);
  // The recovered task is fully controllable and its end is observed.
  ASSERT_TRUE(this->driver_->Stop("recover-1", StopOptions{.grace = kContractDeadline}).ok());
  absl::StatusOr<ExitResult> exit = this->driver_->Wait("recover-1", kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
}

TYPED_TEST_P(ComputeDriverContractTest, RecoverReportsTaskThatDiedMeanwhile) {
  TaskHandle handle = this->MustStart(this->traits_.RunLong(), "recover-2");
  this->driver_.reset();
  this->traits_.KillBehindDriversBack(handle);
  this->driver_ = this->traits_.MakeDriver();
  ASSERT_TRUE(this->driver_->Recover(handle).ok());
  absl::StatusOr<ExitResult> exit = this->driver_->Wait("recover-2", kContractDeadline);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_FALSE(exit->Successful());
  absl::StatusOr<TaskStatus> status = this->driver_->Inspect("recover-2");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(status->state, TaskState::kExited);
}

TYPED_TEST_P(ComputeDriverContractTest, RecoverRejectsForeignHandle) {
  TaskHandle foreign{.driver = "no-such-driver", .task_id = "foreign-1"};
  EXPECT_EQ(this->driver_->Recover(foreign).code(), absl::StatusCode::kInvalidArgument);
}

TYPED_TEST_P(ComputeDriverContractTest, UnknownTaskIdsAreNotFound) {
  ComputeDriver& d = *this->driver_;
  EXPECT_EQ(d.Inspect("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(d.Wait("nope", absl::ZeroDuration()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(d.Stop("nope", StopOptions{}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(d.Destroy("nope", DestroyOptions{.force = true}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(d.Stats("nope").status().code(), absl::StatusCode::kNotFound);
  if (d.Capabilities().pause_resume) {
    EXPECT_EQ(d.Pause("nope").code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(d.Resume("nope").code(), absl::StatusCode::kNotFound);
  }
  if (d.Capabilities().exec) {
    EXPECT_EQ(d.Exec("nope", {"true"}, ExecOptions{}).status().code(), absl::StatusCode::kNotFound);
  }
}

TYPED_TEST_P(ComputeDriverContractTest, EventsAreDelivered) {
  EventRecorder recorder;
  int64_t sub = this->driver_->Subscribe([&](const TaskEvent& e) { recorder.Record(e); });
  this->MustStart(this->traits_.ExitWith(4), "events-1");
  std::optional<TaskEvent> started = recorder.WaitFor("events-1", TaskEventType::kStarted);
  ASSERT_TRUE(started.has_value());
  std::optional<TaskEvent> exited = recorder.WaitFor("events-1", TaskEventType::kExited);
  ASSERT_TRUE(exited.has_value());
  ASSERT_TRUE(exited->exit.has_value());
  EXPECT_EQ(exited->exit->exit_code, 4);
  EXPECT_NE(exited->time, absl::InfinitePast());
  // Started comes before exited.
  std::vector<TaskEvent> events = recorder.Events();
  int started_at = -1, exited_at = -1;
  for (int i = 0; i < static_cast<int>(events.size()); ++i) {
    if (events[i].task_id != "events-1") continue;
    if (events[i].type == TaskEventType::kStarted && started_at < 0) started_at = i;
    if (events[i].type == TaskEventType::kExited && exited_at < 0) exited_at = i;
  }
  EXPECT_LT(started_at, exited_at);
  this->driver_->Unsubscribe(sub);
  // Nothing arrives after Unsubscribe returns.
  size_t seen = recorder.Events().size();
  this->MustStart(this->traits_.ExitWith(0), "events-2");
  ASSERT_TRUE(this->driver_->Wait("events-2", kContractDeadline).ok());
  EXPECT_EQ(recorder.Events().size(), seen);
}

TYPED_TEST_P(ComputeDriverContractTest, ConcurrentTasksAreIndependent) {
  constexpr int kTasks = 2;
  std::vector<std::thread> threads;
  std::vector<absl::StatusOr<TaskHandle>> handles(kTasks);
  for (int i = 0; i < kTasks; ++i) {
    TaskConfig config = this->Prepare(this->traits_.ExitWith(10 + i), "par-" + std::to_string(i));
    threads.emplace_back(
        [this, i, config, &handles] { handles[i] = this->driver_->Start(config); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_TRUE(handles[i].ok()) << handles[i].status();
    this->handles_.push_back(*handles[i]);
  }
  for (int i = 0; i < kTasks; ++i) {
    absl::StatusOr<ExitResult> exit =
        this->driver_->Wait("par-" + std::to_string(i), kContractDeadline);
    ASSERT_TRUE(exit.ok()) << exit.status();
    EXPECT_EQ(exit->exit_code, 10 + i);
  }
}

REGISTER_TYPED_TEST_SUITE_P(ComputeDriverContractTest, FingerprintIsHealthy,
                            StartThenInspectShowsRunning, StartRejectsDuplicateAndEmptyIds,
                            StdoutGoesToTaskLog, ExitCodeIsReported, WaitTimesOutWhileRunning,
                            StopWithGraceEndsTask, StopEscalatesAfterGrace, DestroyRemovesTaskDir,
                            DestroyRunningTaskNeedsForce, PauseAndResumeWhereCapable,
                            ExecWhereCapable, RecoverKeepsTheSameRunningTask,
                            RecoverReportsTaskThatDiedMeanwhile, RecoverRejectsForeignHandle,
                            UnknownTaskIdsAreNotFound, EventsAreDelivered,
                            ConcurrentTasksAreIndependent);

}  // namespace berth::runtime::contract
