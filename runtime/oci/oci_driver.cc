#include "runtime/oci/oci_driver.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/host/file.h"
#include "runtime/host/io_counters.h"
#include "runtime/host/proc_stat.h"
#include "runtime/host/process.h"

namespace berth::runtime {

namespace fs = std::filesystem;
using core::Cat;
using nlohmann::json;

namespace {

host::ProcessIdentity ShimOf(pid_t pid, int64_t ticks) {
  return {.pid = pid, .start_ticks = static_cast<uint64_t>(ticks)};
}

}  // namespace

struct OciDriver::Box {
  std::string id;
  std::string workload;
  std::string task_dir;
  std::string cgroups_path;
  pid_t shim_pid = 0;          // the /bin/sh supervisor running `runc run`
  int64_t shim_ticks = 0;      // its start time: with the pid, its identity
  bool shim_is_child = false;  // started by this instance: reap it
  pid_t pid = 0;               // container init, as the host sees it
  absl::Time started_at = absl::InfinitePast();
  std::thread watcher;
  std::atomic<bool> stop_watch{false};

  absl::Mutex mu;
  TaskState state ABSL_GUARDED_BY(mu) = TaskState::kRunning;
  std::optional<ExitResult> exit ABSL_GUARDED_BY(mu);
  bool stop_requested ABSL_GUARDED_BY(mu) = false;
};

namespace {

std::string Q(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

// OOM kills the memory cgroup counted (cgroup v1 memory.oom_control, v2 memory.events).
int64_t OomKills(const std::string& cgroups_path) {
  for (const std::string& file : {Cat("/sys/fs/cgroup/memory", cgroups_path, "/memory.oom_control"),
                                  Cat("/sys/fs/cgroup", cgroups_path, "/memory.events")}) {
    auto text = host::ReadFile(file);
    if (!text.ok()) continue;
    size_t at = text->find("oom_kill ");
    if (at != std::string::npos) return std::atoll(text->c_str() + at + 9);
  }
  return 0;
}

std::string Overlay(const std::string& task_dir) { return Cat(task_dir, "/rootfs"); }

}  // namespace

OciDriver::OciDriver(OciDriverOptions options) : options_(std::move(options)) {
  std::error_code ec;
  fs::create_directories(options_.runc_root, ec);
}

OciDriver::~OciDriver() {
  std::vector<std::shared_ptr<Box>> boxes;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, b] : boxes_) boxes.push_back(b);
    boxes_.clear();
  }
  for (auto& b : boxes) {
    b->stop_watch = true;
    if (b->watcher.joinable()) b->watcher.join();
  }
  // runc removes each container's cgroup but leaves their parent in every hierarchy it used. The
  // kernel refuses to remove a cgroup that has children or processes, so a container that keeps
  // running after the agent (to be re-adopted) keeps its parent.
  if (options_.cgroup_parent.size() > 1) {
    std::error_code ec;
    std::vector<fs::path> dirs = {fs::path("/sys/fs/cgroup")};
    for (const auto& entry : fs::directory_iterator("/sys/fs/cgroup", ec)) {
      if (entry.is_directory(ec)) dirs.push_back(entry.path());
    }
    for (const fs::path& hierarchy : dirs) {
      fs::path dir = hierarchy / options_.cgroup_parent.substr(1);
      if (rmdir(dir.c_str()) != 0 && errno != ENOENT && errno != EBUSY && errno != ENOTEMPTY &&
          errno != ENOTDIR && errno != EACCES && errno != EPERM && errno != EROFS) {
        std::cerr << "berth: cannot remove cgroup " << dir << ": " << strerror(errno) << "\n";
      }
    }
  }
}

std::vector<std::string> OciDriver::Runc(std::initializer_list<std::string> args) const {
  std::vector<std::string> argv = {options_.runc_binary, "--root", options_.runc_root};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

absl::StatusOr<host::RunResult> OciDriver::RunRunc(std::initializer_list<std::string> args) const {
  return host::RunTool(executor(), Runc(args), {.timeout = absl::Seconds(30)});
}

void OciDriver::RunRuncOrReport(std::string_view what,
                                std::initializer_list<std::string> args) const {
  const std::vector<std::string> argv = Runc(args);
  core::ReportError("oci", what,
                    host::ResultStatus(argv, executor().Run(argv, {.timeout = absl::Seconds(30)})));
}

DriverCapabilities OciDriver::Capabilities() const {
  return {.pause_resume = true,
          .exec = true,
          .console = false,
          .snapshot = false,
          .gpus = true,
          .recover = true};
}

DriverFingerprint OciDriver::Fingerprint() {
  DriverFingerprint fp;
  auto r = executor().Run({options_.runc_binary, "--version"}, {.timeout = absl::Seconds(10)});
  if (!r.ok() || !r->ok()) {
    fp.health_description = Cat(options_.runc_binary, " not usable");
    return fp;
  }
  std::string first = r->out.substr(0, r->out.find('\n'));
  fp.attributes["driver.oci.runc_version"] = first.substr(first.rfind(' ') + 1);
  fp.attributes["driver.oci.cgroup"] = fs::exists("/sys/fs/cgroup/memory") ? "v1" : "v2";
  fp.healthy = geteuid() == 0;
  fp.health_description = fp.healthy ? "ready" : "runc needs root";
  return fp;
}

absl::StatusOr<ContainerLaunchSpec> OciDriver::LaunchSpecFor(const TaskConfig& config) const {
  const std::string& name = config.workload.empty() ? config.task_id : config.workload;
  std::error_code ec;
  if (config.image_path.empty() || !fs::is_directory(config.image_path, ec)) {
    return core::FieldError("container", name, "image_path",
                            Cat("must be a rootfs directory, got \"", config.image_path, "\""));
  }
  if (config.command.empty()) {
    return core::FieldError("container", name, "command", "must not be empty");
  }
  ContainerLaunchSpec s;
  s.id = config.task_id;
  s.rootfs = Overlay(config.task_dir);
  s.args.push_back(config.command);
  s.args.insert(s.args.end(), config.args.begin(), config.args.end());
  s.env = config.env;
  s.cwd = config.working_dir.empty() ? "/" : config.working_dir;
  s.hostname = name;
  s.cpu = config.resources.cpu;
  s.memory = config.resources.memory;
  s.pids_limit = options_.pids_limit;
  if (config.max_open_files > 0) s.max_open_files = config.max_open_files;
  s.cgroups_path = Cat(options_.cgroup_parent, "/", config.task_id);
  for (const TaskDisk& d : config.disks) {
    if (d.mount_path.empty()) continue;
    s.mounts.push_back({.source = d.path, .destination = d.mount_path, .read_only = d.read_only});
  }
  if (!config.nics.empty() && !config.nics[0].netns_path.empty()) {
    s.netns = config.nics[0].netns_path;
  } else if (!config.ports.empty()) {
    s.netns = "host";
  }
  for (size_t i = 0; i < config.gpus.size(); ++i) {
    const core::GpuAssignment& g = config.gpus[i];
    std::string id =
        i < config.gpu_device_ids.size() ? config.gpu_device_ids[i] : std::to_string(g.index);
    s.gpus.push_back({.id = id,
                      .device_index = g.index,
                      .milli = g.milli > 0 ? g.milli : 1000,
                      .memory_mib = g.memory_mib});
  }
  s.mps_pipe_dir = config.mps_pipe_dir;
  s.devices = config.device_edits;
  s.class_devices = config.class_device_edits;
  return s;
}

absl::StatusOr<TaskHandle> OciDriver::Start(const TaskConfig& config) {
  if (config.task_id.empty()) {
    return absl::InvalidArgumentError("container: task_id must not be empty");
  }
  if (config.task_dir.empty()) {
    return core::FieldError("container", config.task_id, "task_dir", "must not be empty");
  }
  {
    absl::MutexLock lock(&mu_);
    if (boxes_.count(config.task_id)) {
      return absl::AlreadyExistsError(Cat("task \"", config.task_id, "\" already exists"));
    }
  }
  BERTH_ASSIGN_OR_RETURN(ContainerLaunchSpec spec, LaunchSpecFor(config));
  for (CdiEdits* edits : {&spec.devices, &spec.class_devices}) {
    if (absl::Status s = CompleteDeviceNodes(edits); !s.ok()) {
      return absl::FailedPreconditionError(Cat("container \"", spec.id, "\": ", s.message()));
    }
  }
  BERTH_ASSIGN_OR_RETURN(json doc, BuildOciConfig(spec));
  const std::string& dir = config.task_dir;
  std::error_code ec;
  for (const char* sub : {"/bundle", "/rootfs", "/upper", "/work"}) {
    fs::create_directories(dir + sub, ec);
  }
  if (ec) return absl::InternalError(Cat("container \"", spec.id, "\": task_dir: ", ec.message()));
  fs::remove(dir + "/exit_code", ec);
  fs::remove(dir + "/container.pid", ec);
  // The container writes into its own upper layer, never into the image.
  std::string opts =
      Cat("lowerdir=", config.image_path, ",upperdir=", dir, "/upper,workdir=", dir, "/work");
  if (mount("overlay", spec.rootfs.c_str(), "overlay", 0, opts.c_str()) != 0) {
    return absl::FailedPreconditionError(
        Cat("container \"", spec.id, "\": overlay mount: ", std::strerror(errno)));
  }
  auto unmount = [&](absl::Status s) {
    umount2(spec.rootfs.c_str(), MNT_DETACH);
    return s;
  };
  // The bundle is rebuilt at every start and means nothing after a host crash: no fsync, which
  // costs milliseconds on a busy disk right on the start path.
  BERTH_RETURN_IF_ERROR(
      host::WriteFileAtomically(dir + "/bundle/config.json", doc.dump(), {.sync = false}));

  // A leftover container of the same id (a crashed earlier run) would make runc refuse.
  if (fs::exists(Cat(options_.runc_root, "/", spec.id), ec)) {
    RunRuncOrReport(Cat("container ", spec.id, ": delete a leftover"),
                    {"delete", "--force", spec.id});
  }
  const std::vector<std::string> run = Runc({"run", "--keep", "--bundle", dir + "/bundle",
                                             "--pid-file", dir + "/container.pid", spec.id});
  std::string cmd;
  for (const auto& a : run) cmd += Q(a) + " ";
  const std::string script =
      Cat(cmd, "</dev/null >>", Q(Cat(dir, "/", kStdoutLogName)), " 2>>",
          Q(Cat(dir, "/", kStderrLogName)), "; echo $? >", Q(dir + "/exit_code.tmp"), " && mv ",
          Q(dir + "/exit_code.tmp"), " ", Q(dir + "/exit_code"));
  auto shim = executor().Spawn({"/bin/sh", "-c", script}, {.stdout_path = dir + "/runc.log",
                                                           .stderr_path = dir + "/runc.log"});
  if (!shim.ok()) return unmount(shim.status());

  auto box = std::make_shared<Box>();
  box->id = spec.id;
  box->workload = config.workload.empty() ? config.task_id : config.workload;
  box->task_dir = dir;
  box->cgroups_path = spec.cgroups_path;
  box->shim_pid = shim->pid;
  box->shim_is_child = true;
  box->shim_ticks = static_cast<int64_t>(shim->start_ticks);

  // Running once runc has written the container's pid; failed if the supervisor ends first.
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  while (true) {
    auto pidtext = host::ReadFile(dir + "/container.pid");
    if (pidtext.ok() && !pidtext->empty()) {
      box->pid = std::atoi(pidtext->c_str());
      break;
    }
    if (!host::IsRunning(*shim) || absl::Now() > deadline) {
      // Our own child, not reaped yet: its pid cannot have been reused.
      absl::Status killed = host::SignalProcess(*shim, SIGKILL);
      if (!killed.ok() && !absl::IsNotFound(killed)) {
        core::ReportError("oci", Cat("container ", spec.id, ": kill the runc shim"), killed);
      }
      core::ReportError("oci", Cat("container ", spec.id, ": reap the runc shim"),
                        host::ReapChild(shim->pid, absl::Seconds(10)).status());
      RunRuncOrReport(Cat("container ", spec.id, ": delete after a failed start"),
                      {"delete", "--force", spec.id});
      auto err = host::ReadFile(Cat(dir, "/", kStderrLogName));
      return unmount(absl::FailedPreconditionError(
          Cat("container \"", spec.id, "\": runc failed to start it: ", err.value_or(""))));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  box->started_at = absl::FromUnixMicros(absl::ToUnixMicros(absl::Now()));

  TaskHandle handle{.driver = Name(), .task_id = config.task_id};
  handle.state = {{"shim_pid", box->shim_pid},
                  {"shim_ticks", box->shim_ticks},
                  {"pid", box->pid},
                  {"started_at_us", absl::ToUnixMicros(box->started_at)},
                  {"workload", box->workload},
                  {"task_dir", box->task_dir},
                  {"cgroups_path", box->cgroups_path}};
  {
    absl::MutexLock lock(&mu_);
    boxes_[box->id] = box;
  }
  events_.Publish({.task_id = box->id,
                   .type = TaskEventType::kStarted,
                   .time = absl::Now(),
                   .message = Cat("container pid ", box->pid)});
  box->watcher = std::thread([this, box] { Watch(box); });
  return handle;
}

void OciDriver::Watch(std::shared_ptr<Box> box) {
  while (!box->stop_watch) {
    if (host::WaitForProcessExit(ShimOf(box->shim_pid, box->shim_ticks), absl::Milliseconds(200))) {
      if (box->shim_is_child) {
        core::ReportError("oci", Cat("container ", box->id, ": reap the runc shim"),
                          host::ReapChild(box->shim_pid, absl::Seconds(10)).status());
      }
      Finish(box, std::nullopt);
      return;
    }
  }
}

void OciDriver::Finish(const std::shared_ptr<Box>& box, std::optional<std::string> lost_reason) {
  ExitResult r;
  r.finished_at = absl::Now();
  auto code = host::ReadFile(box->task_dir + "/exit_code");
  TaskEventType type = TaskEventType::kExited;
  if (code.ok() && !code->empty()) {
    int status = std::atoi(code->c_str());
    // runc reports a container killed by signal N as 128 + N.
    if (status > 128) {
      r.exit_code = -1;
      r.signal = status - 128;
    } else {
      r.exit_code = status;
    }
    if (OomKills(box->cgroups_path) > 0) {
      r.oom_killed = true;
      r.reason = "killed by the kernel OOM killer";
      type = TaskEventType::kOomKilled;
    }
    if (lost_reason && r.reason.empty()) r.reason = *lost_reason;
  } else {
    r.exit_code = -1;
    r.reason = lost_reason.value_or("container supervisor ended without an exit status");
    type = TaskEventType::kFailed;
  }
  {
    absl::MutexLock lock(&box->mu);
    if (box->exit) return;
    if (box->stop_requested && r.reason.empty()) r.reason = "stopped by the agent";
    box->exit = r;
    box->state = TaskState::kExited;
  }
  events_.Publish(
      {.task_id = box->id, .type = type, .time = r.finished_at, .message = r.reason, .exit = r});
}

std::shared_ptr<OciDriver::Box> OciDriver::Find(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  auto it = boxes_.find(task_id);
  return it == boxes_.end() ? nullptr : it->second;
}

absl::Status OciDriver::Recover(const TaskHandle& handle) {
  if (handle.driver != Name()) {
    return absl::InvalidArgumentError(Cat("task \"", handle.task_id,
                                          "\": handle.driver must be \"oci\", got \"",
                                          handle.driver, "\""));
  }
  if (handle.task_id.empty()) return absl::InvalidArgumentError("container: handle.task_id empty");
  if (Find(handle.task_id)) return absl::OkStatus();
  auto box = std::make_shared<Box>();
  box->id = handle.task_id;
  try {
    const json& s = handle.state;
    box->shim_pid = s.at("shim_pid").get<pid_t>();
    box->shim_ticks = s.at("shim_ticks").get<int64_t>();
    box->pid = s.at("pid").get<pid_t>();
    box->started_at = absl::FromUnixMicros(s.at("started_at_us").get<int64_t>());
    box->workload = s.at("workload").get<std::string>();
    box->task_dir = s.at("task_dir").get<std::string>();
    box->cgroups_path = s.at("cgroups_path").get<std::string>();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        Cat("task \"", handle.task_id, "\": handle.state is malformed: ", e.what()));
  }
  const bool alive = host::IsRunning(ShimOf(box->shim_pid, box->shim_ticks));
  if (alive) {
    auto st = RunRunc({"state", box->id});
    if (st.ok() && st->ok()) {
      json j = json::parse(st->out, nullptr, false);
      if (!j.is_discarded() && j.value("status", "") == "paused") {
        absl::MutexLock lock(&box->mu);
        box->state = TaskState::kPaused;
      }
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (boxes_.count(box->id)) return absl::OkStatus();
    boxes_[box->id] = box;
  }
  if (alive) {
    events_.Publish({.task_id = box->id,
                     .type = TaskEventType::kRecovered,
                     .time = absl::Now(),
                     .message = Cat("re-adopted container pid ", box->pid)});
    box->watcher = std::thread([this, box] { Watch(box); });
  } else {
    Finish(box, "container exited while the agent was down");
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitResult> OciDriver::Wait(std::string_view task_id, absl::Duration timeout) {
  auto box = Find(task_id);
  if (!box) return TaskNotFound(task_id);
  absl::MutexLock lock(&box->mu);
  auto done = [&box]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(box->mu) { return box->exit.has_value(); };
  if (!box->mu.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    return absl::DeadlineExceededError(Cat("container \"", box->workload, "\" still running"));
  }
  return *box->exit;
}

absl::Status OciDriver::Signal(const std::shared_ptr<Box>& box, const std::string& signal) {
  auto r = RunRunc({"kill", "--all", box->id, signal});
  if (!r.ok()) return r.status();
  return absl::OkStatus();  // a container that just exited makes runc fail; Wait tells the truth
}

absl::Status OciDriver::Stop(std::string_view task_id, const StopOptions& options) {
  auto box = Find(task_id);
  if (!box) return TaskNotFound(task_id);
  bool paused;
  {
    absl::MutexLock lock(&box->mu);
    if (box->exit) return absl::OkStatus();
    box->stop_requested = true;
    paused = box->state == TaskState::kPaused;
  }
  BERTH_RETURN_IF_ERROR(Signal(box, std::to_string(options.signal)));
  // A frozen container cannot handle the signal: thaw it so the signal lands.
  if (paused) {
    RunRuncOrReport(Cat("container ", box->id, ": thaw to stop"), {"resume", box->id});
  }
  if (Wait(task_id, options.grace).ok()) return absl::OkStatus();
  BERTH_RETURN_IF_ERROR(Signal(box, "KILL"));
  auto r = Wait(task_id, absl::Seconds(60));
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status OciDriver::Destroy(std::string_view task_id, const DestroyOptions& options) {
  auto box = Find(task_id);
  if (!box) return TaskNotFound(task_id);
  bool running;
  {
    absl::MutexLock lock(&box->mu);
    running = !box->exit.has_value();
  }
  if (running && !options.force) {
    return absl::FailedPreconditionError(
        Cat("container \"", box->workload, "\" is still running; stop it or destroy with force"));
  }
  if (running) {
    // Fails for a container that is not paused, which is the common case: nothing to report.
    auto resumed = RunRunc({"resume", box->id});
    if (!resumed.ok()) {
      core::ReportError("oci", Cat("container ", box->id, ": thaw to destroy"), resumed.status());
    }
    BERTH_RETURN_IF_ERROR(Signal(box, "KILL"));
    BERTH_RETURN_IF_ERROR(Wait(task_id, absl::Seconds(60)).status());
  }
  box->stop_watch = true;
  if (box->watcher.joinable()) box->watcher.join();
  RunRuncOrReport(Cat("container ", box->id, ": delete"), {"delete", "--force", box->id});
  umount2(Overlay(box->task_dir).c_str(), MNT_DETACH);
  {
    absl::MutexLock lock(&mu_);
    boxes_.erase(box->id);
  }
  std::error_code ec;
  fs::remove_all(box->task_dir, ec);
  return absl::OkStatus();
}

absl::StatusOr<TaskStatus> OciDriver::Inspect(std::string_view task_id) {
  auto box = Find(task_id);
  if (!box) return TaskNotFound(task_id);
  TaskStatus st{.task_id = box->id, .started_at = box->started_at, .pid = box->pid};
  absl::MutexLock lock(&box->mu);
  st.state = box->state;
  st.exit = box->exit;
  st.details = {{"cgroups_path", box->cgroups_path},
                {"stdout_log", Cat(box->task_dir, "/", kStdoutLogName)},
                {"stderr_log", Cat(box->task_dir, "/", kStderrLogName)}};
  return st;
}

absl::StatusOr<TaskStats> OciDriver::Stats(std::string_view task_id) {
  auto box = Find(task_id);
  if (!box) return TaskNotFound(task_id);
  {
    absl::MutexLock lock(&box->mu);
    if (box->exit) {
      return absl::FailedPreconditionError(Cat("container \"", box->workload, "\" has exited"));
    }
  }
  TaskStats s{.at = absl::Now()};
  auto usage = host::ReadProcessUsage(box->pid);
  if (usage.has_value()) {
    s.cpu_user = usage->user;
    s.cpu_system = usage->system;
    s.rss_bytes = usage->rss_bytes;
  }
  // The cgroup counts every process of the container, not only its init.
  auto mem =
      host::ReadFile(Cat("/sys/fs/cgroup/memory", box->cgroups_path, "/memory.usage_in_bytes"));
  if (mem.ok()) s.rss_bytes = std::atoll(mem->c_str());
  auto procs = host::ReadFile(Cat("/sys/fs/cgroup/pids", box->cgroups_path, "/pids.current"));
  s.processes = procs.ok() ? std::atoll(procs->c_str()) : 1;
  // Storage I/O of the container's cgroup; the init's own where the cgroup cannot be read.
  s.disk = host::ReadCgroupDiskBytes(box->cgroups_path);
  if (!s.disk) s.disk = host::ReadProcessIo(box->pid);
  // A container on a network of its own counts what its interfaces (loopback aside) moved.
  if (host::OwnNetworkNamespace(box->pid) == true) {
    if (auto devs = host::ReadNetDev(box->pid)) {
      host::NetDevBytes net;
      for (const auto& [name, d] : *devs) {
        if (name == "lo") continue;
        net.rx += d.rx;
        net.tx += d.tx;
      }
      s.net = net;
    }
  }
  return s;
}

absl::Status OciDriver::Pause(std::string_view task_id) {
  auto box = Find(task_id);
  if (!box) return TaskNotFound(task_id);
  absl::MutexLock lock(&box->mu);
  if (box->state != TaskState::kRunning) {
    return absl::FailedPreconditionError(
        Cat("container \"", box->workload, "\" is ", TaskStateName(box->state), ", not running"));
  }
  auto r = RunRunc({"pause", box->id});
  if (!r.ok()) return r.status();
  if (!r->ok()) {
    return absl::FailedPreconditionError(host::ResultStatus({"runc", "pause"}, *r).message());
  }
  box->state = TaskState::kPaused;
  events_.Publish({.task_id = box->id, .type = TaskEventType::kPaused, .time = absl::Now()});
  return absl::OkStatus();
}

absl::Status OciDriver::Resume(std::string_view task_id) {
  auto box = Find(task_id);
  if (!box) return TaskNotFound(task_id);
  absl::MutexLock lock(&box->mu);
  if (box->state != TaskState::kPaused) {
    return absl::FailedPreconditionError(
        Cat("container \"", box->workload, "\" is ", TaskStateName(box->state), ", not paused"));
  }
  auto r = RunRunc({"resume", box->id});
  if (!r.ok()) return r.status();
  if (!r->ok()) {
    return absl::FailedPreconditionError(host::ResultStatus({"runc", "resume"}, *r).message());
  }
  box->state = TaskState::kRunning;
  events_.Publish({.task_id = box->id, .type = TaskEventType::kResumed, .time = absl::Now()});
  return absl::OkStatus();
}

absl::StatusOr<ExecResult> OciDriver::Exec(std::string_view task_id,
                                           const std::vector<std::string>& argv,
                                           const ExecOptions& options) {
  auto box = Find(task_id);
  if (!box) return TaskNotFound(task_id);
  if (argv.empty()) {
    return core::FieldError("container", box->workload, "exec.argv", "must not be empty");
  }
  {
    absl::MutexLock lock(&box->mu);
    if (box->state != TaskState::kRunning) {
      return absl::FailedPreconditionError(Cat("container \"", box->workload, "\" is not running"));
    }
  }
  std::vector<std::string> cmd = {options_.runc_binary, "--root", options_.runc_root, "exec"};
  for (const auto& [k, v] : options.env) {
    cmd.push_back("--env");
    cmd.push_back(Cat(k, "=", v));
  }
  cmd.push_back(box->id);
  cmd.insert(cmd.end(), argv.begin(), argv.end());
  BERTH_ASSIGN_OR_RETURN(host::RunResult r,
                         host::RunTool(executor(), cmd, {.timeout = options.timeout}));
  return ExecResult{
      .exit_code = r.ShellCode(), .stdout_data = std::move(r.out), .stderr_data = std::move(r.err)};
}

std::vector<std::string> OciDriver::Tasks() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [id, b] : boxes_) out.push_back(id);
  return out;
}

int64_t OciDriver::Subscribe(TaskEventCallback callback) {
  return events_.Subscribe(std::move(callback));
}

void OciDriver::Unsubscribe(int64_t subscription) { events_.Unsubscribe(subscription); }

}  // namespace berth::runtime
