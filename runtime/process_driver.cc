#include "runtime/process_driver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "core/log.h"
#include "core/strings.h"
#include "runtime/gpu_env.h"
#include "runtime/host/io_counters.h"
#include "runtime/host/proc_stat.h"
#include "runtime/host/process.h"

namespace berth::runtime {

using host::Credentials;
using host::ProcessAlive;
using host::ProcStat;
using host::ReadProcStat;
using host::ResolveCredentials;
using host::ResolveExecutable;

namespace {

constexpr absl::Duration kKillWait = absl::Seconds(30);

int PidfdOpen(pid_t pid) { return host::OpenPidfd(pid); }

// What a task's processes (the workload and Exec commands) do before exec.
template <typename T>
host::ChildSetup ChildSetupOf(const T& task) {
  host::ChildSetup setup;
  setup.working_dir = task.working_dir;
  for (const auto& [r, v] : task.rlimits) setup.rlimits.push_back({r, v});
  if (task.cgroup) setup.cgroup_procs = task.cgroup->ProcsFiles();
  setup.credentials = task.credentials;
  setup.restrict_privileges = task.restrict_privileges;
  return setup;
}

std::string TaskPrefix(std::string_view task_id) { return core::Cat("task \"", task_id, "\": "); }

absl::Status WithTask(std::string_view task_id, const absl::Status& s) {
  return absl::Status(s.code(), core::Cat(TaskPrefix(task_id), std::string(s.message())));
}

std::string StatusPath(const std::string& task_dir) {
  return (std::filesystem::path(task_dir) / ProcessDriver::kStatusFileName).string();
}

nlohmann::json CredentialsToJson(const std::optional<Credentials>& c) {
  if (!c) return nullptr;
  return {{"uid", c->uid}, {"gid", c->gid}, {"groups", c->groups}};
}

std::optional<Credentials> CredentialsFromJson(const nlohmann::json& j) {
  if (j.is_null()) return std::nullopt;
  return Credentials{.uid = j.at("uid").get<uid_t>(),
                     .gid = j.at("gid").get<gid_t>(),
                     .groups = j.at("groups").get<std::vector<gid_t>>()};
}

// Creates task_dir/work for the task's user: the agent keeps task_dir (logs, exit status), so a
// workload can never swap those files for links the agent would then follow.
absl::Status MakeWorkDir(const std::string& dir, const std::optional<Credentials>& credentials) {
  if (mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return absl::InternalError(core::Cat("creating ", dir, ": ", strerror(errno)));
  }
  struct stat st {};
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InternalError(core::Cat(dir, " is not a directory"));
  }
  if (credentials && lchown(dir.c_str(), credentials->uid, credentials->gid) != 0) {
    return absl::InternalError(core::Cat("chown ", dir, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Duration Ticks(uint64_t ticks) {
  static const long hz = sysconf(_SC_CLK_TCK);
  return absl::Microseconds(static_cast<int64_t>(ticks) * 1'000'000 / (hz > 0 ? hz : 100));
}

}  // namespace

ProcessDriver::ProcessDriver(ProcessDriverOptions options)
    : options_(std::move(options)),
      boot_id_(host::BootId()),
      cgroup_mode_(options_.use_cgroups ? DetectCgroupMode(options_.cgroup_root)
                                        : CgroupMode::kNone) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  monitor_ = std::thread([this] { MonitorLoop(); });
}

ProcessDriver::~ProcessDriver() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  WakeMonitor();
  monitor_.join();
  absl::MutexLock lock(&mu_);
  for (auto& [id, task] : tasks_) {
    if (task->pidfd >= 0) close(task->pidfd);
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  // Empty parents go with the agent (tasks that outlive it keep theirs); the first one still in
  // use, by a task or another agent, ends the walk.
  if (cgroup_mode_ != CgroupMode::kNone) {
    for (std::string path = options_.cgroup_parent; path.size() > 1;
         path = path.substr(0, path.rfind('/'))) {
      if (!TaskCgroup(options_.cgroup_root, cgroup_mode_, path).RemoveIfEmpty()) break;
    }
  }
}

DriverCapabilities ProcessDriver::Capabilities() const {
  return DriverCapabilities{.pause_resume = true,
                            .exec = true,
                            .console = false,
                            .snapshot = false,
                            .gpus = true,
                            .recover = true};
}

DriverFingerprint ProcessDriver::Fingerprint() {
  DriverFingerprint fp;
  fp.healthy = !boot_id_.empty() && ReadProcStat(getpid()).has_value();
  fp.health_description = fp.healthy ? "ready" : "/proc is not readable";
  int probe = PidfdOpen(getpid());
  fp.attributes["driver.process.pidfd"] = probe >= 0 ? "true" : "false";
  if (probe >= 0) close(probe);
  struct utsname u {};
  if (uname(&u) == 0) fp.attributes["driver.process.kernel"] = u.release;
  fp.attributes["driver.process.cgroup"] = std::string(CgroupModeName(cgroup_mode_));
  fp.attributes["driver.process.switch_user"] = geteuid() == 0 ? "true" : "false";
  return fp;
}

void ProcessDriver::WakeMonitor() {
  uint64_t one = 1;
  // EAGAIN: the counter is saturated, so the monitor wakes anyway.
  if (wake_fd_ >= 0 && write(wake_fd_, &one, sizeof(one)) < 0 && errno != EAGAIN) {
    core::ReportError("process", "wake the task monitor",
                      absl::InternalError(std::strerror(errno)));
  }
}

void ProcessDriver::MonitorLoop() {
  while (true) {
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_, POLLIN, 0});
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      for (auto& [id, task] : tasks_) {
        if (task->state != TaskState::kExited && task->pidfd >= 0) {
          fds.push_back({task->pidfd, POLLIN, 0});
        }
      }
    }
    int timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(options_.poll_interval));
    // Whatever woke it (or the interval), every task is checked below.
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      core::ReportError("process", "wait for task exits",
                        absl::InternalError(std::strerror(errno)));
    }
    uint64_t drained;
    if (read(wake_fd_, &drained, sizeof(drained)) < 0 && errno != EAGAIN && errno != EINTR) {
      core::ReportError("process", "drain the monitor's wake-ups",
                        absl::InternalError(std::strerror(errno)));
    }
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    for (auto& [id, task] : tasks_) CheckLocked(*task);
  }
}

ProcessDriver::Task* ProcessDriver::FindLocked(std::string_view task_id) {
  auto it = tasks_.find(task_id);
  return it == tasks_.end() ? nullptr : it->second.get();
}

void ProcessDriver::Publish(const std::string& task_id, TaskEventType type, std::string message,
                            std::optional<ExitResult> exit) {
  hub_.Publish(TaskEvent{.task_id = task_id,
                         .type = type,
                         .time = options_.clock->Now(),
                         .message = std::move(message),
                         .exit = std::move(exit)});
}

void ProcessDriver::RemoveCgroupLocked(Task& task, bool kill) {
  if (!task.cgroup) return;
  // A cgroup that will not empty now (a process stuck in the kernel, or one left alone below)
  // stays recorded, and Destroy kills what is in it and tries again.
  if (!(kill ? task.cgroup->Destroy().ok() : task.cgroup->RemoveIfEmpty())) return;
  task.cgroup.reset();
  // The parent is this driver's alone; it goes with its last task (and comes back with the next).
  TaskCgroup(options_.cgroup_root, cgroup_mode_, options_.cgroup_parent).RemoveIfEmpty();
}

void ProcessDriver::RecordExitLocked(Task& task, ExitResult exit, TaskEventType type) {
  if (exit.finished_at == absl::InfinitePast()) exit.finished_at = options_.clock->Now();
  // Read before the cgroup goes. A task that ended well despite a child being OOM-killed
  // exited; one that failed after an OOM kill in its cgroup was ended by it.
  if (task.cgroup && task.cgroup->OomKills() > 0 && !exit.Successful() && exit.exit_code != -1) {
    exit.oom_killed = true;
    exit.reason = "killed by the kernel OOM killer";
    type = TaskEventType::kOomKilled;
  }
  // An exit the supervisor recorded means the task's processes are ours to end. An unknown one
  // (lost supervisor, a handle whose pids were reused) kills nothing until Destroy.
  RemoveCgroupLocked(task, /*kill=*/exit.exit_code != -1);
  if (exit.reason.empty()) exit.reason = task.stop_reason;
  task.state = TaskState::kExited;
  task.exit = exit;
  if (task.pidfd >= 0) {
    close(task.pidfd);
    task.pidfd = -1;
  }
  std::string message;
  if (!exit.reason.empty()) {
    message = exit.reason;
  } else if (exit.signal != 0) {
    message = core::Cat("killed by signal ", exit.signal);
  } else {
    message = core::Cat("exited with code ", exit.exit_code);
  }
  Publish(task.task_id, type, std::move(message), std::move(exit));
}

void ProcessDriver::CheckLocked(Task& task) {
  if (task.state == TaskState::kExited) return;
  std::string status_path = StatusPath(task.task_dir);
  auto read_status = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> bool {
    absl::StatusOr<std::optional<host::SupervisedExit>> st = host::ReadExitStatusFile(status_path);
    if (!st.ok()) {
      RecordExitLocked(task,
                       ExitResult{.exit_code = -1, .reason = std::string(st.status().message())},
                       TaskEventType::kFailed);
      return true;
    }
    if (!st->has_value()) return false;
    const host::SupervisedExit& recorded = **st;
    RecordExitLocked(task,
                     ExitResult{.exit_code = recorded.exit_code,
                                .signal = recorded.signal,
                                .finished_at = recorded.finished_at},
                     TaskEventType::kExited);
    return true;
  };
  if (read_status()) return;
  bool supervisor_alive = ProcessAlive(task.supervisor_pid, task.supervisor_start);
  if (supervisor_alive) return;
  if (task.pidfd >= 0) {
    close(task.pidfd);
    task.pidfd = -1;
  }
  bool workload_alive = task.pid_start != 0 && ProcessAlive(task.pid, task.pid_start);
  if (workload_alive) return;  // orphaned by its supervisor; watched by polling
  // The supervisor renames the status file into place before it exits.
  if (read_status()) return;
  RecordExitLocked(task,
                   ExitResult{.exit_code = -1,
                              .reason = "supervisor and workload are gone; exit status unknown"},
                   TaskEventType::kFailed);
}

bool ProcessDriver::SignalGroupLocked(const Task& task, int signal) {
  if (task.pid <= 0 || task.pid_start == 0) return false;
  return host::SignalProcessGroup({.pid = task.pid, .start_ticks = task.pid_start}, signal).ok();
}

bool ProcessDriver::AwaitExitLocked(std::string_view task_id, absl::Duration timeout) {
  auto done = [this, task_id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = tasks_.find(task_id);
    return stopping_ || it == tasks_.end() || it->second->state == TaskState::kExited;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  Task* task = FindLocked(task_id);
  return task == nullptr || task->state == TaskState::kExited;
}

TaskHandle ProcessDriver::MakeHandle(const Task& task) const {
  nlohmann::json rlimits = nlohmann::json::array();
  for (const auto& [resource, value] : task.rlimits) rlimits.push_back({resource, value});
  nlohmann::json cgroup = nullptr;
  if (task.cgroup) {
    cgroup = {{"mode", CgroupModeName(task.cgroup->mode())},
              {"root", options_.cgroup_root},
              {"path", task.cgroup->path()}};
  }
  return TaskHandle{.driver = std::string(kName),
                    .task_id = task.task_id,
                    .version = 1,
                    .state = {{"supervisor_pid", task.supervisor_pid},
                              {"supervisor_start", task.supervisor_start},
                              {"pid", task.pid},
                              {"pid_start", task.pid_start},
                              {"boot_id", boot_id_},
                              {"task_dir", task.task_dir},
                              {"working_dir", task.working_dir},
                              {"env", task.env},
                              {"path", task.path_env},
                              {"rlimits", rlimits},
                              {"credentials", CredentialsToJson(task.credentials)},
                              {"restrict_privileges", task.restrict_privileges},
                              {"cgroup", cgroup},
                              {"started_at_ns", absl::ToUnixNanos(task.started_at)}}};
}

absl::StatusOr<TaskHandle> ProcessDriver::Start(const TaskConfig& config) {
  if (config.task_id.empty()) {
    return absl::InvalidArgumentError(
        core::Cat("task for workload \"", config.workload, "\": task_id must not be empty"));
  }
  if (config.command.empty()) {
    return absl::InvalidArgumentError(core::Cat(TaskPrefix(config.task_id), "command is empty"));
  }
  if (config.task_dir.empty()) {
    return absl::InvalidArgumentError(core::Cat(TaskPrefix(config.task_id), "task_dir is empty"));
  }
  if (config.resources.memory.value() < 0 || config.max_open_files < 0) {
    return absl::InvalidArgumentError(
        core::Cat(TaskPrefix(config.task_id), "resource limits must be >= 0"));
  }

  absl::StatusOr<Credentials> credentials = ResolveCredentials(config.user);
  if (!credentials.ok()) return WithTask(config.task_id, credentials.status());

  auto task = std::make_unique<Task>();
  task->task_id = config.task_id;
  task->task_dir = config.task_dir;
  task->working_dir = config.working_dir.empty()
                          ? (std::filesystem::path(config.task_dir) / kWorkDirName).string()
                          : config.working_dir;
  task->restrict_privileges = true;
  if (geteuid() == 0) {
    task->credentials = *credentials;
  } else if (!config.user.empty() &&
             (credentials->uid != geteuid() || credentials->gid != getegid())) {
    return absl::FailedPreconditionError(
        core::Cat(TaskPrefix(config.task_id), "the agent runs as uid ", geteuid(),
                  " and cannot switch to user \"", config.user, "\""));
  }
  std::map<std::string, std::string> env = config.env;
  if (!env.contains("PATH")) env["PATH"] = options_.default_path;
  // The grant wins over the spec: a task sees exactly the GPUs it was given, and a task given
  // none sees none (CUDA reads an empty list as no device).
  if (config.gpus.empty()) {
    env["CUDA_VISIBLE_DEVICES"] = "";
    env["NVIDIA_VISIBLE_DEVICES"] = "void";
  }
  for (auto& [k, v] : GpuEnvironment(GrantedGpus(config), config.mps_pipe_dir)) env[k] = v;
  env.try_emplace("BERTH_TASK_ID", config.task_id);
  env.try_emplace("BERTH_TASK_DIR", config.task_dir);
  for (const auto& [k, v] : env) task->env.push_back(core::Cat(k, "=", v));
  task->path_env = env["PATH"];
  const int64_t memory_bytes = config.resources.memory.value() * 1024 * 1024;
  // Without a cgroup, the address-space limit is the only memory bound there is. With one it
  // would only hurt: CUDA and JIT runtimes reserve far more address space than they touch.
  if (memory_bytes > 0 && cgroup_mode_ == CgroupMode::kNone) {
    task->rlimits.push_back({RLIMIT_AS, static_cast<uint64_t>(memory_bytes)});
  }
  if (config.max_open_files > 0) {
    task->rlimits.push_back({RLIMIT_NOFILE, static_cast<uint64_t>(config.max_open_files)});
  }

  absl::MutexLock lock(&mu_);
  if (FindLocked(config.task_id) != nullptr) {
    return absl::AlreadyExistsError(core::Cat("task \"", config.task_id, "\" already exists"));
  }
  std::error_code ec;
  bool dir_existed = std::filesystem::exists(config.task_dir, ec);
  std::filesystem::create_directories(config.task_dir, ec);
  if (ec) {
    return absl::InternalError(
        core::Cat(TaskPrefix(config.task_id), "task_dir ", config.task_dir, ": ", ec.message()));
  }
  auto fail = [&](absl::Status s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RemoveCgroupLocked(*task, /*kill=*/true);
    if (!dir_existed) {
      std::error_code ignored;
      std::filesystem::remove_all(config.task_dir, ignored);
    }
    return s;
  };
  if (config.working_dir.empty()) {
    if (absl::Status s = MakeWorkDir(task->working_dir, task->credentials); !s.ok()) {
      return fail(WithTask(config.task_id, s));
    }
  }
  if (!std::filesystem::is_directory(task->working_dir, ec)) {
    return fail(absl::InvalidArgumentError(core::Cat(TaskPrefix(config.task_id), "working_dir \"",
                                                     task->working_dir, "\" is not a directory")));
  }
  absl::StatusOr<std::string> exe = ResolveExecutable(config.command, task->path_env);
  if (!exe.ok()) {
    return fail(absl::InvalidArgumentError(
        core::Cat(TaskPrefix(config.task_id), std::string(exe.status().message()))));
  }
  std::string status_path = StatusPath(config.task_dir);
  std::filesystem::remove(status_path, ec);
  if (cgroup_mode_ != CgroupMode::kNone) {
    absl::StatusOr<TaskCgroup> cgroup = TaskCgroup::Create(
        options_.cgroup_root, cgroup_mode_, core::Cat(options_.cgroup_parent, "/", config.task_id),
        CgroupLimits{.memory_bytes = memory_bytes,
                     .cpu_millis = config.resources.cpu.value(),
                     .pids = options_.pids_limit});
    if (!cgroup.ok()) return fail(WithTask(config.task_id, cgroup.status()));
    task->cgroup = std::move(*cgroup);
  }

  host::SupervisedSpawnSpec spec;
  spec.spawn.executable = *exe;
  spec.spawn.argv.push_back(config.command);
  spec.spawn.argv.insert(spec.spawn.argv.end(), config.args.begin(), config.args.end());
  spec.spawn.env = task->env;
  spec.spawn.setup = ChildSetupOf(*task);
  spec.stdout_path = (std::filesystem::path(config.task_dir) / kStdoutLogName).string();
  spec.stderr_path = (std::filesystem::path(config.task_dir) / kStderrLogName).string();
  spec.status_path = status_path;
  absl::StatusOr<host::SupervisedProcess> spawned =
      host::ExecutorOr(options_.executor).SpawnSupervised(spec);
  if (!spawned.ok()) return fail(WithTask(config.task_id, spawned.status()));

  task->supervisor_pid = spawned->supervisor.pid;
  task->supervisor_start = spawned->supervisor.start_ticks;
  task->pid = spawned->workload.pid;
  task->pid_start = spawned->workload.start_ticks;
  task->started_at = options_.clock->Now();
  task->pidfd = PidfdOpen(task->supervisor_pid);
  if (task->pidfd >= 0 && !ProcessAlive(task->supervisor_pid, task->supervisor_start)) {
    close(task->pidfd);
    task->pidfd = -1;
  }
  Task& ref = *task;
  tasks_[config.task_id] = std::move(task);
  Publish(ref.task_id, TaskEventType::kStarted, core::Cat("started pid ", ref.pid));
  CheckLocked(ref);
  WakeMonitor();
  return MakeHandle(ref);
}

absl::Status ProcessDriver::Recover(const TaskHandle& handle) {
  if (handle.driver != kName) {
    return absl::InvalidArgumentError(core::Cat(TaskPrefix(handle.task_id), "handle.driver is \"",
                                                handle.driver, "\", not \"", kName, "\""));
  }
  if (handle.task_id.empty()) {
    return absl::InvalidArgumentError("task handle: task_id must not be empty");
  }
  auto task = std::make_unique<Task>();
  task->task_id = handle.task_id;
  std::string boot_id;
  try {
    const nlohmann::json& s = handle.state;
    task->supervisor_pid = s.at("supervisor_pid").get<pid_t>();
    task->supervisor_start = s.at("supervisor_start").get<uint64_t>();
    task->pid = s.at("pid").get<pid_t>();
    task->pid_start = s.at("pid_start").get<uint64_t>();
    boot_id = s.at("boot_id").get<std::string>();
    task->task_dir = s.at("task_dir").get<std::string>();
    task->working_dir = s.at("working_dir").get<std::string>();
    task->env = s.at("env").get<std::vector<std::string>>();
    task->path_env = s.at("path").get<std::string>();
    for (const auto& r : s.at("rlimits")) {
      task->rlimits.push_back({r.at(0).get<int>(), r.at(1).get<uint64_t>()});
    }
    task->started_at = absl::FromUnixNanos(s.at("started_at_ns").get<int64_t>());
    // Handles written before tasks dropped privileges have none of these.
    task->credentials = CredentialsFromJson(s.value("credentials", nlohmann::json()));
    task->restrict_privileges = s.value("restrict_privileges", false);
    if (const nlohmann::json cg = s.value("cgroup", nlohmann::json()); !cg.is_null()) {
      task->cgroup.emplace(cg.at("root").get<std::string>(),
                           ParseCgroupMode(cg.at("mode").get<std::string>()),
                           cg.at("path").get<std::string>());
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        core::Cat(TaskPrefix(handle.task_id), "handle.state is malformed: ", e.what()));
  }
  if (task->task_dir.empty()) {
    return absl::InvalidArgumentError(
        core::Cat(TaskPrefix(handle.task_id), "handle.state.task_dir is empty"));
  }

  absl::MutexLock lock(&mu_);
  if (FindLocked(handle.task_id) != nullptr) return absl::OkStatus();
  Task& ref = *task;
  tasks_[handle.task_id] = std::move(task);
  if (boot_id != boot_id_) {
    RecordExitLocked(ref,
                     ExitResult{.exit_code = -1, .reason = "host rebooted since the task started"},
                     TaskEventType::kFailed);
    return absl::OkStatus();
  }
  if (ProcessAlive(ref.supervisor_pid, ref.supervisor_start)) {
    ref.pidfd = PidfdOpen(ref.supervisor_pid);
    if (ref.pidfd >= 0 && !ProcessAlive(ref.supervisor_pid, ref.supervisor_start)) {
      close(ref.pidfd);
      ref.pidfd = -1;
    }
  }
  CheckLocked(ref);
  if (ref.state != TaskState::kExited) {
    std::optional<ProcStat> st = ReadProcStat(ref.pid);
    if (st && (st->state == 'T' || st->state == 't')) ref.state = TaskState::kPaused;
    Publish(ref.task_id, TaskEventType::kRecovered, core::Cat("recovered pid ", ref.pid));
  }
  WakeMonitor();
  return absl::OkStatus();
}

absl::StatusOr<ExitResult> ProcessDriver::Wait(std::string_view task_id, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  CheckLocked(*task);
  if (!AwaitExitLocked(task_id, timeout)) {
    return absl::DeadlineExceededError(
        core::Cat("task \"", task_id, "\" still running after ", absl::FormatDuration(timeout)));
  }
  task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  return *task->exit;
}

absl::Status ProcessDriver::Stop(std::string_view task_id, const StopOptions& options) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  CheckLocked(*task);
  if (task->state == TaskState::kExited) return absl::OkStatus();
  task->stop_reason = "stopped by the agent";
  SignalGroupLocked(*task, options.signal);
  SignalGroupLocked(*task, SIGCONT);
  if (AwaitExitLocked(task_id, options.grace)) return absl::OkStatus();
  task = FindLocked(task_id);
  if (task == nullptr) return absl::OkStatus();
  task->stop_reason = "killed by the agent after the stop grace period";
  SignalGroupLocked(*task, SIGKILL);
  if (AwaitExitLocked(task_id, kKillWait)) return absl::OkStatus();
  return absl::DeadlineExceededError(
      core::Cat("task \"", task_id, "\" still running after SIGKILL"));
}

absl::Status ProcessDriver::Destroy(std::string_view task_id, const DestroyOptions& options) {
  std::string task_dir;
  {
    absl::MutexLock lock(&mu_);
    Task* task = FindLocked(task_id);
    if (task == nullptr) return TaskNotFound(task_id);
    CheckLocked(*task);
    if (task->state != TaskState::kExited) {
      if (!options.force) {
        return absl::FailedPreconditionError(
            core::Cat("task \"", task_id, "\" is still running; stop it or destroy with force"));
      }
      task->stop_reason = "destroyed by the agent";
      SignalGroupLocked(*task, SIGKILL);
      if (!AwaitExitLocked(task_id, kKillWait)) {
        return absl::DeadlineExceededError(
            core::Cat("task \"", task_id, "\" still running after SIGKILL"));
      }
      task = FindLocked(task_id);
      if (task == nullptr) return TaskNotFound(task_id);
    }
    task_dir = task->task_dir;
    if (task->cgroup) {
      if (absl::Status s = task->cgroup->Destroy(); !s.ok()) return WithTask(task_id, s);
    }
    if (task->pidfd >= 0) close(task->pidfd);
    tasks_.erase(tasks_.find(task_id));
  }
  std::error_code ec;
  std::filesystem::remove_all(task_dir, ec);
  if (ec) {
    return absl::InternalError(
        core::Cat(TaskPrefix(task_id), "removing ", task_dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<TaskStatus> ProcessDriver::Inspect(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  CheckLocked(*task);
  return TaskStatus{.task_id = task->task_id,
                    .state = task->state,
                    .started_at = task->started_at,
                    .pid = task->pid,
                    .exit = task->exit,
                    .details = {{"supervisor_pid", task->supervisor_pid},
                                {"task_dir", task->task_dir},
                                {"credentials", CredentialsToJson(task->credentials)},
                                {"cgroup", task->cgroup ? task->cgroup->path() : ""}}};
}

absl::StatusOr<TaskStats> ProcessDriver::Stats(std::string_view task_id) {
  pid_t pgrp = 0;
  {
    absl::MutexLock lock(&mu_);
    Task* task = FindLocked(task_id);
    if (task == nullptr) return TaskNotFound(task_id);
    CheckLocked(*task);
    if (task->state == TaskState::kExited) {
      return absl::FailedPreconditionError(core::Cat("task \"", task_id, "\" has exited"));
    }
    pgrp = task->pid;
  }
  static const int64_t page_size = sysconf(_SC_PAGESIZE);
  TaskStats stats;
  stats.at = options_.clock->Now();
  // Storage I/O of the group's live processes (what ended processes did is no longer counted);
  // a process shares the host's network, so it has no network counters of its own.
  host::DiskBytes disk;
  bool disk_known = false;
  for (const ProcStat& p : host::ProcessGroupMembers(pgrp)) {
    stats.cpu_user += Ticks(p.utime_ticks);
    stats.cpu_system += Ticks(p.stime_ticks);
    stats.rss_bytes += p.rss_pages * page_size;
    ++stats.processes;
    if (std::optional<host::DiskBytes> io = host::ReadProcessIo(p.pid)) {
      disk.read += io->read;
      disk.written += io->written;
      disk_known = true;
    }
  }
  if (disk_known) stats.disk = disk;
  return stats;
}

absl::Status ProcessDriver::Pause(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  CheckLocked(*task);
  if (task->state != TaskState::kRunning || !SignalGroupLocked(*task, SIGSTOP)) {
    return absl::FailedPreconditionError(
        core::Cat("task \"", task_id, "\" is ", TaskStateName(task->state), ", not running"));
  }
  task->state = TaskState::kPaused;
  Publish(task->task_id, TaskEventType::kPaused, "paused");
  return absl::OkStatus();
}

absl::Status ProcessDriver::Resume(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  CheckLocked(*task);
  if (task->state != TaskState::kPaused || !SignalGroupLocked(*task, SIGCONT)) {
    return absl::FailedPreconditionError(
        core::Cat("task \"", task_id, "\" is ", TaskStateName(task->state), ", not paused"));
  }
  task->state = TaskState::kRunning;
  Publish(task->task_id, TaskEventType::kResumed, "resumed");
  return absl::OkStatus();
}

absl::StatusOr<ExecResult> ProcessDriver::Exec(std::string_view task_id,
                                               const std::vector<std::string>& argv,
                                               const ExecOptions& options) {
  host::RunOptions run;
  std::vector<std::string> env;
  std::string path_env;
  {
    absl::MutexLock lock(&mu_);
    Task* task = FindLocked(task_id);
    if (task == nullptr) return TaskNotFound(task_id);
    CheckLocked(*task);
    if (task->state != TaskState::kRunning) {
      return absl::FailedPreconditionError(
          core::Cat("task \"", task_id, "\" is ", TaskStateName(task->state), ", not running"));
    }
    env = task->env;
    run.setup = ChildSetupOf(*task);
    path_env = task->path_env;
  }
  if (argv.empty()) {
    return absl::InvalidArgumentError(core::Cat("exec in task \"", task_id, "\": argv is empty"));
  }
  for (const auto& [k, v] : options.env) {
    std::string prefix = core::Cat(k, "=");
    std::erase_if(env, [&](const std::string& e) { return e.starts_with(prefix); });
    env.push_back(core::Cat(prefix, v));
    if (k == "PATH") path_env = v;
  }
  absl::StatusOr<std::string> exe = ResolveExecutable(argv[0], path_env);
  if (!exe.ok()) {
    return absl::InvalidArgumentError(
        core::Cat("exec in task \"", task_id, "\": ", std::string(exe.status().message())));
  }
  run.executable = *exe;
  run.env = std::move(env);
  run.timeout = options.timeout;
  absl::StatusOr<host::RunResult> result = host::ExecutorOr(options_.executor).Run(argv, run);
  if (!result.ok()) return WithTask(task_id, result.status());
  switch (result->cause) {
    case host::ExitCause::kTimedOut:
      return WithTask(task_id,
                      absl::DeadlineExceededError(core::Cat("exec ", *exe, " still running after ",
                                                            absl::FormatDuration(options.timeout),
                                                            "; its group was killed")));
    case host::ExitCause::kStartFailed:
      return WithTask(task_id,
                      absl::FailedPreconditionError(core::Cat(result->start_stage, " ", *exe, ": ",
                                                              std::strerror(result->start_error))));
    default:
      return ExecResult{.exit_code = result->ShellCode(),
                        .stdout_data = std::move(result->out),
                        .stderr_data = std::move(result->err)};
  }
}

std::vector<std::string> ProcessDriver::Tasks() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> ids;
  for (const auto& [id, task] : tasks_) ids.push_back(id);
  return ids;
}

}  // namespace berth::runtime
