#include "runtime/fake_driver.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "core/strings.h"

namespace berth::runtime {
namespace {

constexpr int kSigKill = 9;
constexpr int kSigTerm = 15;

ExitResult Signaled(int signal, std::string reason) {
  return ExitResult{.exit_code = 128 + signal, .signal = signal, .reason = std::move(reason)};
}

absl::Status ValidateConfig(const TaskConfig& config) {
  if (config.task_id.empty()) {
    return absl::InvalidArgumentError(
        core::Cat("task for workload \"", config.workload, "\": task_id must not be empty"));
  }
  if (config.command.empty()) {
    return absl::InvalidArgumentError(
        core::Cat("task \"", config.task_id, "\": command must not be empty"));
  }
  if (config.command == "exit") {
    int code = 0;
    if (config.args.size() != 1 || !absl::SimpleAtoi(config.args[0], &code)) {
      return absl::InvalidArgumentError(
          core::Cat("task \"", config.task_id, "\": args must be one exit code for \"exit\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

FakeHost::FakeHost(const core::Clock* clock) : clock_(clock) {}

FakeHost::Task* FakeHost::FindLocked(std::string_view task_id) {
  auto it = tasks_.find(task_id);
  return it == tasks_.end() ? nullptr : &it->second;
}

void FakeHost::PublishLocked(const std::string& task_id, TaskEventType type, std::string message,
                             std::optional<ExitResult> exit) {
  TaskEvent event{.task_id = task_id,
                  .type = type,
                  .time = clock_->Now(),
                  .message = std::move(message),
                  .exit = std::move(exit)};
  for (FakeDriver* d : drivers_) {
    if (d->adopted_.contains(task_id)) d->hub_.Publish(event);
  }
}

void FakeHost::EndLocked(Task& task, ExitResult exit, TaskEventType type) {
  exit.finished_at = clock_->Now();
  task.state = TaskState::kExited;
  task.exit = exit;
  std::string message =
      exit.reason.empty() ? core::Cat("exited with code ", exit.exit_code) : exit.reason;
  PublishLocked(task.config.task_id, type, std::move(message), std::move(exit));
}

absl::Status FakeHost::ExitTask(std::string_view task_id, int exit_code) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  if (task->state == TaskState::kExited) {
    return absl::FailedPreconditionError(core::Cat("task \"", task_id, "\" already exited"));
  }
  EndLocked(*task, ExitResult{.exit_code = exit_code}, TaskEventType::kExited);
  return absl::OkStatus();
}

absl::Status FakeHost::KillTask(std::string_view task_id, int signal, std::string_view reason) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  if (task->state == TaskState::kExited) {
    return absl::FailedPreconditionError(core::Cat("task \"", task_id, "\" already exited"));
  }
  EndLocked(*task, Signaled(signal, std::string(reason)), TaskEventType::kExited);
  return absl::OkStatus();
}

absl::Status FakeHost::OomKill(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  if (task->state == TaskState::kExited) {
    return absl::FailedPreconditionError(core::Cat("task \"", task_id, "\" already exited"));
  }
  ExitResult exit = Signaled(kSigKill, "killed by the kernel OOM killer");
  exit.oom_killed = true;
  EndLocked(*task, std::move(exit), TaskEventType::kOomKilled);
  return absl::OkStatus();
}

void FakeHost::Vanish(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  auto it = tasks_.find(task_id);
  if (it != tasks_.end()) tasks_.erase(it);
}

void FakeHost::FailNextStart(absl::Status status) {
  absl::MutexLock lock(&mu_);
  fail_next_start_ = std::move(status);
}

bool FakeHost::IsRunning(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  return task != nullptr && task->state != TaskState::kExited;
}

int64_t FakeHost::starts() {
  absl::MutexLock lock(&mu_);
  return starts_;
}

std::optional<TaskConfig> FakeHost::Config(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  Task* task = FindLocked(task_id);
  if (task == nullptr) return std::nullopt;
  return task->config;
}

FakeDriver::FakeDriver(std::shared_ptr<FakeHost> host) : host_(std::move(host)) {
  absl::MutexLock lock(&host_->mu_);
  host_->drivers_.push_back(this);
}

FakeDriver::~FakeDriver() {
  absl::MutexLock lock(&host_->mu_);
  std::erase(host_->drivers_, this);
}

DriverCapabilities FakeDriver::Capabilities() const {
  return DriverCapabilities{.pause_resume = true,
                            .exec = true,
                            .console = false,
                            .snapshot = true,
                            .gpus = true,
                            .recover = true};
}

DriverFingerprint FakeDriver::Fingerprint() {
  return DriverFingerprint{
      .healthy = true, .health_description = "ready", .attributes = {{"driver.fake", "1"}}};
}

FakeHost::Task* FakeDriver::AdoptedLocked(std::string_view task_id) {
  if (!adopted_.contains(task_id)) return nullptr;
  return host_->FindLocked(task_id);
}

absl::StatusOr<TaskHandle> FakeDriver::Start(const TaskConfig& config) {
  if (absl::Status s = ValidateConfig(config); !s.ok()) return s;
  absl::MutexLock lock(&host_->mu_);
  if (host_->fail_next_start_.has_value()) {
    absl::Status s = *std::move(host_->fail_next_start_);
    host_->fail_next_start_.reset();
    return s;
  }
  if (host_->FindLocked(config.task_id) != nullptr) {
    return absl::AlreadyExistsError(core::Cat("task \"", config.task_id, "\" already exists"));
  }
  if (!config.restore_from.empty()) {
    std::ifstream in(config.restore_from);
    std::string head(13, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    if (!in || head != "fake state of") {
      return absl::FailedPreconditionError(
          core::Cat("task \"", config.task_id, "\": ", config.restore_from, " does not load"));
    }
  }
  if (!config.task_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config.task_dir, ec);
    if (ec) {
      return absl::InternalError(core::Cat("task \"", config.task_id, "\": task_dir ",
                                           config.task_dir, ": ", ec.message()));
    }
  }
  FakeHost::Task& task = host_->tasks_[config.task_id];
  task.config = config;
  task.started_at = host_->clock_->Now();
  task.pid = host_->next_pid_++;
  task.ignores_term = config.command == "ignore-term";
  ++host_->starts_;
  adopted_.insert(config.task_id);
  host_->PublishLocked(config.task_id, TaskEventType::kStarted, "started");

  if (config.command == "print") {
    if (!config.task_dir.empty()) {
      std::string line;
      for (size_t i = 0; i < config.args.size(); ++i) {
        if (i > 0) line.push_back(' ');
        line += config.args[i];
      }
      std::ofstream out(std::filesystem::path(config.task_dir) / kStdoutLogName,
                        std::ios::app | std::ios::binary);
      out << line << "\n";
    }
    host_->EndLocked(task, ExitResult{}, TaskEventType::kExited);
  } else if (config.command == "exit") {
    int code = 0;
    if (!absl::SimpleAtoi(config.args[0], &code)) code = 0;  // "exit" without a number exits 0
    host_->EndLocked(task, ExitResult{.exit_code = code}, TaskEventType::kExited);
  }
  return TaskHandle{.driver = Name(),
                    .task_id = config.task_id,
                    .state = {{"pid", task.pid}, {"task_dir", config.task_dir}}};
}

absl::Status FakeDriver::Recover(const TaskHandle& handle) {
  if (handle.driver != kName) {
    return absl::InvalidArgumentError(core::Cat("task \"", handle.task_id,
                                                "\": handle.driver is \"", handle.driver,
                                                "\", not \"", kName, "\""));
  }
  if (handle.task_id.empty()) {
    return absl::InvalidArgumentError("task handle: task_id must not be empty");
  }
  absl::MutexLock lock(&host_->mu_);
  if (adopted_.contains(handle.task_id)) return absl::OkStatus();
  FakeHost::Task* task = host_->FindLocked(handle.task_id);
  adopted_.insert(handle.task_id);
  if (task == nullptr) {
    // The host lost it: keep a tombstone so Wait/Inspect report what happened.
    FakeHost::Task& lost = host_->tasks_[handle.task_id];
    lost.config.task_id = handle.task_id;
    if (auto it = handle.state.find("task_dir"); it != handle.state.end() && it->is_string()) {
      lost.config.task_dir = it->get<std::string>();
    }
    lost.started_at = absl::InfinitePast();
    host_->EndLocked(lost,
                     ExitResult{.exit_code = -1, .reason = "task lost while the agent was down"},
                     TaskEventType::kFailed);
    return absl::OkStatus();
  }
  host_->PublishLocked(handle.task_id, TaskEventType::kRecovered, "recovered");
  return absl::OkStatus();
}

absl::StatusOr<ExitResult> FakeDriver::Wait(std::string_view task_id, absl::Duration timeout) {
  absl::MutexLock lock(&host_->mu_);
  if (AdoptedLocked(task_id) == nullptr) return TaskNotFound(task_id);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(host_->mu_) {
    FakeHost::Task* t = AdoptedLocked(task_id);
    return t == nullptr || t->state == TaskState::kExited;
  };
  host_->mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  FakeHost::Task* task = AdoptedLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  if (task->state != TaskState::kExited) {
    return absl::DeadlineExceededError(
        core::Cat("task \"", task_id, "\" still running after ", absl::FormatDuration(timeout)));
  }
  return *task->exit;
}

std::optional<absl::Duration> FakeHost::LastStopGrace(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  auto it = stop_graces_.find(task_id);
  if (it == stop_graces_.end()) return std::nullopt;
  return it->second;
}

absl::Status FakeDriver::Stop(std::string_view task_id, const StopOptions& options) {
  absl::MutexLock lock(&host_->mu_);
  FakeHost::Task* task = AdoptedLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  host_->stop_graces_[std::string(task_id)] = options.grace;
  if (task->state == TaskState::kExited) return absl::OkStatus();
  if (options.signal == kSigKill || !task->ignores_term) {
    host_->EndLocked(*task, Signaled(options.signal, "stopped by the agent"),
                     TaskEventType::kExited);
    return absl::OkStatus();
  }
  auto exited = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(host_->mu_) {
    FakeHost::Task* t = AdoptedLocked(task_id);
    return t == nullptr || t->state == TaskState::kExited;
  };
  host_->mu_.AwaitWithTimeout(absl::Condition(&exited), options.grace);
  task = AdoptedLocked(task_id);
  if (task != nullptr && task->state != TaskState::kExited) {
    host_->EndLocked(*task, Signaled(kSigKill, "killed by the agent after the stop grace period"),
                     TaskEventType::kExited);
  }
  return absl::OkStatus();
}

absl::Status FakeDriver::Destroy(std::string_view task_id, const DestroyOptions& options) {
  std::string task_dir;
  {
    absl::MutexLock lock(&host_->mu_);
    FakeHost::Task* task = AdoptedLocked(task_id);
    if (task == nullptr) return TaskNotFound(task_id);
    if (task->state != TaskState::kExited) {
      if (!options.force) {
        return absl::FailedPreconditionError(
            core::Cat("task \"", task_id, "\" is still running; stop it or destroy with force"));
      }
      host_->EndLocked(*task, Signaled(kSigKill, "destroyed by the agent"), TaskEventType::kExited);
    }
    task_dir = task->config.task_dir;
    host_->tasks_.erase(host_->tasks_.find(task_id));
    adopted_.erase(adopted_.find(task_id));
  }
  if (!task_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(task_dir, ec);
    if (ec) {
      return absl::InternalError(
          core::Cat("task \"", task_id, "\": removing ", task_dir, ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TaskStatus> FakeDriver::Inspect(std::string_view task_id) {
  absl::MutexLock lock(&host_->mu_);
  FakeHost::Task* task = AdoptedLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  return TaskStatus{.task_id = std::string(task_id),
                    .state = task->state,
                    .started_at = task->started_at,
                    .pid = task->pid,
                    .exit = task->exit};
}

absl::StatusOr<TaskStats> FakeDriver::Stats(std::string_view task_id) {
  absl::MutexLock lock(&host_->mu_);
  FakeHost::Task* task = AdoptedLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  if (task->state == TaskState::kExited) {
    return absl::FailedPreconditionError(core::Cat("task \"", task_id, "\" has exited"));
  }
  absl::Time now = host_->clock_->Now();
  // Counters that grow with the task's age: a MiB read, half of one written, and 64 KiB received
  // and 16 KiB sent each second (the last only for a task with NICs of its own).
  const int64_t seconds = absl::ToInt64Seconds(now - task->started_at);
  TaskStats stats{.at = now,
                  .cpu_user = now - task->started_at,
                  .cpu_system = absl::ZeroDuration(),
                  .rss_bytes = task->config.resources.memory.value() * 1024 * 1024,
                  .processes = 1,
                  .disk = host::DiskBytes{.read = seconds << 20, .written = seconds << 19}};
  if (!task->config.nics.empty()) {
    stats.net = host::NetDevBytes{.rx = seconds << 16, .tx = seconds << 14};
  }
  return stats;
}

absl::Status FakeDriver::Pause(std::string_view task_id) {
  absl::MutexLock lock(&host_->mu_);
  FakeHost::Task* task = AdoptedLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  if (task->state != TaskState::kRunning) {
    return absl::FailedPreconditionError(
        core::Cat("task \"", task_id, "\" is ", TaskStateName(task->state), ", not running"));
  }
  task->state = TaskState::kPaused;
  host_->PublishLocked(task->config.task_id, TaskEventType::kPaused, "paused");
  return absl::OkStatus();
}

absl::Status FakeDriver::Resume(std::string_view task_id) {
  absl::MutexLock lock(&host_->mu_);
  FakeHost::Task* task = AdoptedLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  if (task->state != TaskState::kPaused) {
    return absl::FailedPreconditionError(
        core::Cat("task \"", task_id, "\" is ", TaskStateName(task->state), ", not paused"));
  }
  task->state = TaskState::kRunning;
  host_->PublishLocked(task->config.task_id, TaskEventType::kResumed, "resumed");
  return absl::OkStatus();
}

absl::Status FakeDriver::SaveState(std::string_view task_id, const std::string& path) {
  {
    absl::MutexLock lock(&host_->mu_);
    FakeHost::Task* task = AdoptedLocked(task_id);
    if (task == nullptr) {
      return absl::NotFoundError(core::Cat("task \"", task_id, "\" not found"));
    }
    if (task->exit) {
      return absl::FailedPreconditionError(core::Cat("task \"", task_id, "\" exited"));
    }
  }
  std::ofstream out(path, std::ios::trunc);
  out << "fake state of " << task_id;
  out.close();
  if (!out) return absl::InternalError(core::Cat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<ExecResult> FakeDriver::Exec(std::string_view task_id,
                                            const std::vector<std::string>& argv,
                                            const ExecOptions& options) {
  absl::MutexLock lock(&host_->mu_);
  FakeHost::Task* task = AdoptedLocked(task_id);
  if (task == nullptr) return TaskNotFound(task_id);
  if (task->state != TaskState::kRunning) {
    return absl::FailedPreconditionError(
        core::Cat("task \"", task_id, "\" is ", TaskStateName(task->state), ", not running"));
  }
  if (argv.empty()) {
    return absl::InvalidArgumentError(core::Cat("exec in task \"", task_id, "\": argv is empty"));
  }
  ExecResult result;
  if (argv[0] == "echo") {
    for (size_t i = 1; i < argv.size(); ++i) {
      if (i > 1) result.stdout_data.push_back(' ');
      result.stdout_data += argv[i];
    }
    result.stdout_data.push_back('\n');
  } else if (argv[0] == "false") {
    result.exit_code = 1;
  } else if (argv[0] != "true") {
    result.exit_code = 127;
    result.stderr_data = core::Cat(argv[0], ": not found\n");
  }
  return result;
}

std::vector<std::string> FakeDriver::Tasks() {
  absl::MutexLock lock(&host_->mu_);
  return {adopted_.begin(), adopted_.end()};
}

}  // namespace berth::runtime
