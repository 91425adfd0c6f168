// The process driver: runs a task's command as a plain host process under a detached supervisor
// (see host/supervise.h), with the environment, working directory and resource limits from its
// TaskConfig, and stdout/stderr appended to task_dir/stdout.log and stderr.log.
//
// Tasks survive the agent: the handle records the supervisor's and the workload's pids with their
// start times from /proc (guarding against pid reuse) and the boot id, so after a restart
// Recover() re-adopts a live task without restarting it and still learns its real exit code from
// the status file the supervisor writes. Pause/Resume send SIGSTOP/SIGCONT to the workload's
// process group; Stop sends the stop signal to the group and SIGKILL after the grace period.
//
// Privileges: a task runs as TaskConfig::user (ResolveCredentials; empty = nobody), with no
// capabilities, an empty bounding set and PR_SET_NO_NEW_PRIVS; only `user: root` keeps root's
// capabilities (the server decides who may ask). An agent that is not root cannot switch users
// and runs tasks with the default user as itself. The default working directory is
// task_dir/work, owned by the task's user; task_dir itself (logs, exit status) stays the agent's.
//
// Limits: where the host has a writable cgroup hierarchy (v1 or v2), each task gets its own
// cgroup `cgroup_parent/<task_id>` with resources.cpu as a CFS quota, resources.memory as its
// memory limit (no swap past it) and pids_limit; a task the OOM killer ended exits with
// oom_killed set, and the cgroup (with anything left in it) goes when the task ends; empty
// parents go when the driver does. Without cgroups, resources.memory becomes RLIMIT_AS and CPU
// is not limited. max_open_files is RLIMIT_NOFILE.
//
// Thread-safety: thread-safe. One monitor thread watches the supervisors (pidfd, with a polling
// fallback) and records exits; it is joined by the destructor, which leaves tasks running.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "runtime/compute_driver.h"
#include "runtime/host/executor.h"
#include "runtime/host/supervise.h"
#include "runtime/process_cgroup.h"

namespace berth::runtime {

struct ProcessDriverOptions {
  const core::Clock* clock = &core::SystemClock::Get();  // must outlive the driver
  // How often the monitor re-checks tasks when no pidfd wakes it (pidfds make exits prompt).
  absl::Duration poll_interval = absl::Milliseconds(200);
  // PATH for tasks whose env sets none, and to resolve their command.
  std::string default_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  // Task cgroups: where the hierarchy is mounted, the parent of every task's leaf, and whether
  // to use them at all (they are used when DetectCgroupMode finds a writable hierarchy).
  bool use_cgroups = true;
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "/berth/process";
  int64_t pids_limit = 4096;  // per task, where the pids controller is available; 0 = none
  // Starts supervisors and runs Exec commands; null = the host (host::RealExecutor()).
  host::Executor* executor = nullptr;
};

class ProcessDriver final : public ComputeDriver {
 public:
  static constexpr std::string_view kName = "process";
  static constexpr std::string_view kStatusFileName = "exit.status";
  // The default working directory, inside task_dir, owned by the task's user.
  static constexpr std::string_view kWorkDirName = "work";

  explicit ProcessDriver(ProcessDriverOptions options = {});
  ~ProcessDriver() override;
  ProcessDriver(const ProcessDriver&) = delete;
  ProcessDriver& operator=(const ProcessDriver&) = delete;

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
  absl::StatusOr<ExecResult> Exec(std::string_view task_id, const std::vector<std::string>& argv,
                                  const ExecOptions& options) override;
  std::vector<std::string> Tasks() override;
  // The cgroup hierarchy tasks get limits from; kNone when limits fall back to rlimits.
  CgroupMode cgroup_mode() const { return cgroup_mode_; }
  int64_t Subscribe(TaskEventCallback callback) override { return hub_.Subscribe(callback); }
  void Unsubscribe(int64_t subscription) override { hub_.Unsubscribe(subscription); }

 private:
  // What the driver knows of one task; the persisted part mirrors TaskHandle::state.
  struct Task {
    std::string task_id;
    std::string task_dir;
    std::string working_dir;
    std::vector<std::string> env;  // "KEY=value", for Exec
    std::string path_env;          // PATH used to resolve Exec commands
    std::vector<std::pair<int, uint64_t>> rlimits;
    std::optional<host::Credentials> credentials;  // unset: the agent's own ids
    bool restrict_privileges = false;  // false only for tasks recovered from older handles
    std::optional<TaskCgroup> cgroup;  // reset once removed
    pid_t supervisor_pid = 0;
    uint64_t supervisor_start = 0;
    pid_t pid = 0;  // workload, also its process group id
    uint64_t pid_start = 0;
    absl::Time started_at;
    TaskState state = TaskState::kRunning;
    std::optional<ExitResult> exit;
    std::string stop_reason;  // set when the agent ended it, becomes ExitResult::reason
    int pidfd = -1;           // supervisor's pidfd, -1 when none
  };

  void MonitorLoop();
  void WakeMonitor();
  // Re-reads the task's status file and process liveness; records an exit when it finds one.
  void CheckLocked(Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecordExitLocked(Task& task, ExitResult exit, TaskEventType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Signals the workload's process group if the workload is still the process we started.
  bool SignalGroupLocked(const Task& task, int signal) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Task* FindLocked(std::string_view task_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits (releasing mu_) until the task exited or `timeout` passes; true when it exited.
  bool AwaitExitLocked(std::string_view task_id, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  TaskHandle MakeHandle(const Task& task) const;
  void Publish(const std::string& task_id, TaskEventType type, std::string message,
               std::optional<ExitResult> exit = std::nullopt);

  // Removes the task's cgroup if it has one, killing what is left in it when `kill`.
  void RemoveCgroupLocked(Task& task, bool kill) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ProcessDriverOptions options_;
  const std::string boot_id_;
  const CgroupMode cgroup_mode_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Task>, std::less<>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int wake_fd_ = -1;  // eventfd that interrupts the monitor's poll
  TaskEventHub hub_;
  std::thread monitor_;
};

}  // namespace berth::runtime
