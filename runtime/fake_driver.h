// An in-memory ComputeDriver for tests of the agent and of anything above it: no processes,
// deterministic, and steerable (make a task exit with a code, be OOM-killed, fail to start, or die
// while the agent is down). Tasks live in a FakeHost, which plays the machine: it outlives driver
// instances, so a new FakeDriver on the same host re-adopts tasks through Recover() exactly as a
// real driver would after an agent restart.
//
// Task behaviour comes from TaskConfig::command:
//   "exit"  args {"N"}    exits with code N right after starting
//   "print" args {words}  appends the words joined by spaces and "\n" to stdout.log, exits 0
//   "ignore-term"         runs until killed with SIGKILL; other stop signals are ignored
//   anything else         runs until a signal, ExitTask, KillTask or OomKill ends it
// Exec understands "echo WORDS" (prints them), "true", "false"; other programs exit 127.
//
// A task killed by signal S reports signal S and exit code 128+S. Files are written only when
// task_dir is set (the driver creates it and Destroy removes it).
//
// Thread-safety: FakeHost and FakeDriver are thread-safe. Callers own both; a FakeHost must
// outlive every driver made on it (drivers hold a shared_ptr to it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "runtime/compute_driver.h"

namespace berth::runtime {

class FakeDriver;

class FakeHost {
 public:
  // `clock` stamps start and exit times; it must outlive the host.
  explicit FakeHost(const core::Clock* clock = &core::SystemClock::Get());
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  // Ends a running or paused task as if it exited by itself. NotFound / FailedPrecondition.
  absl::Status ExitTask(std::string_view task_id, int exit_code);
  // Ends it as if killed by `signal` (reason set when given).
  absl::Status KillTask(std::string_view task_id, int signal, std::string_view reason = "");
  // Ends it as the kernel OOM killer would (SIGKILL, oom_killed).
  absl::Status OomKill(std::string_view task_id);
  // Removes every trace of the task from the host, as if the machine lost it (a reboot while the
  // agent was down): Recover() then reports it lost with an unknown exit status.
  void Vanish(std::string_view task_id);
  // The next Start on this host fails with `status` and starts nothing.
  void FailNextStart(absl::Status status);
  // Whether the host has the task in a running or paused state.
  bool IsRunning(std::string_view task_id);
  // How many tasks were ever started on this host; Recover never adds to it.
  int64_t starts();
  // The config the task was started with, as the driver received it; nullopt once it is
  // destroyed or for unknown ids.
  std::optional<TaskConfig> Config(std::string_view task_id);
  // The grace of the last Stop asked of the task; nullopt when none was.
  std::optional<absl::Duration> LastStopGrace(std::string_view task_id);

 private:
  friend class FakeDriver;

  struct Task {
    TaskConfig config;
    TaskState state = TaskState::kRunning;
    absl::Time started_at;
    int64_t pid = 0;
    bool ignores_term = false;
    std::optional<ExitResult> exit;
  };

  // Ends `task` with `exit` and tells the drivers that adopted it.
  void EndLocked(Task& task, ExitResult exit, TaskEventType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishLocked(const std::string& task_id, TaskEventType type, std::string message,
                     std::optional<ExitResult> exit = std::nullopt)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Task* FindLocked(std::string_view task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const core::Clock* clock_;
  absl::Mutex mu_;
  std::map<std::string, Task, std::less<>> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<FakeDriver*> drivers_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> fail_next_start_ ABSL_GUARDED_BY(mu_);
  int64_t next_pid_ ABSL_GUARDED_BY(mu_) = 1000;
  int64_t starts_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, absl::Duration, std::less<>> stop_graces_ ABSL_GUARDED_BY(mu_);
};

class FakeDriver final : public ComputeDriver {
 public:
  static constexpr std::string_view kName = "fake";

  explicit FakeDriver(std::shared_ptr<FakeHost> host);
  ~FakeDriver() override;

  std::string Name() const override { return std::string(kName); }
  DriverCapabilities Capabilities() const override;
  DriverFingerprint Fingerprint() override;
  absl::StatusOr<TaskHandle> Start(const TaskConfig& config) override;
  absl::Status Recover(const TaskHandle& handle) override;
  absl::StatusOr<ExitResult> Wait(std::string_view task_id, absl::Duration timeout) override;
  absl::Status Stop(std::string_view task_id, const StopOptions& options) override;
  absl::Status Destroy(std::string_view task_id, const DestroyOptions& options) override;
  absl::StatusOr<TaskStatus> Inspect(std::string_view task_id) override;
  absl::StatusOr<TaskStats> Stats(std::string_view task_id) override;
  absl::Status Pause(std::string_view task_id) override;
  absl::Status Resume(std::string_view task_id) override;
  // Writes "fake state of TASK_ID" to `path`; Start() takes a restore_from file only when it
  // begins with "fake state of" (FailedPrecondition otherwise, as a state that does not load).
  absl::Status SaveState(std::string_view task_id, const std::string& path) override;
  absl::StatusOr<ExecResult> Exec(std::string_view task_id, const std::vector<std::string>& argv,
                                  const ExecOptions& options) override;
  std::vector<std::string> Tasks() override;
  int64_t Subscribe(TaskEventCallback callback) override { return hub_.Subscribe(callback); }
  void Unsubscribe(int64_t subscription) override { hub_.Unsubscribe(subscription); }

 private:
  friend class FakeHost;

  // The host task if this driver adopted it, else nullptr.
  FakeHost::Task* AdoptedLocked(std::string_view task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(host_->mu_);

  std::shared_ptr<FakeHost> host_;
  // Tasks started or recovered through this instance; guarded by host_->mu_.
  std::set<std::string, std::less<>> adopted_;
  TaskEventHub hub_;
};

}  // namespace berth::runtime
