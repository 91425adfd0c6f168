// The compute driver interface: how the agent starts, supervises, re-adopts and tears down the
// tasks that run workloads on a host (QEMU VMs, runc containers, plain processes, a fake for
// tests). Shaped like Nomad's driver plugin: Capabilities, Fingerprint, Start -> handle,
// Recover(handle), Wait, Stop, Destroy, Inspect, Stats, Pause/Resume, Exec and events.
//
// Ownership: the agent owns ComputeDriver instances and persists each TaskHandle that Start
// returns; a driver owns whatever it creates under TaskConfig::task_dir until Destroy. Tasks
// outlive the driver object: destroying a driver (or SIGKILLing the agent) never stops a task, so
// a new driver given the old handle through Recover() finds it still running.
//
// Thread-safety: every ComputeDriver method may be called concurrently from any thread, for the
// same or different tasks. Blocking calls (Wait, Stop, Exec) block only their caller. Event
// callbacks run on a driver-owned thread with no driver lock held.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/gpu.h"
#include "core/resources.h"
#include "nlohmann/json.hpp"
#include "runtime/cdi.h"
#include "runtime/host/io_counters.h"

namespace berth::runtime {

// What a driver can do beyond the mandatory Start/Wait/Stop/Destroy/Inspect/Recover. Calls to an
// unsupported optional method return Unimplemented.
struct DriverCapabilities {
  bool pause_resume = false;  // Pause()/Resume()
  bool exec = false;          // Exec() a command inside a running task
  bool console = false;       // a serial/pty console the agent may attach to
  bool snapshot = false;      // snapshots of a running task (VMs)
  bool gpus = false;          // honours TaskConfig::gpus
  bool recover = false;       // Recover() re-adopts running tasks (otherwise reports them lost)
  bool disk_hotplug = false;  // AttachDisk()/DetachDisk() while the task runs
};

// Whether a driver is usable on this host and what it found. `attributes` are flat strings the
// agent reports to the server as host attributes, e.g. {"driver.qemu.version": "7.2.0",
// "driver.qemu.kvm": "false"}.
struct DriverFingerprint {
  bool healthy = false;
  std::string health_description;  // why not healthy, or a short "ready" line
  std::map<std::string, std::string> attributes;
};

// A block device given to a task, already prepared by the storage driver.
struct TaskDisk {
  std::string name;    // disk name within the workload
  std::string path;    // host path of the image file or block device
  std::string format;  // "qcow2", "raw", "block"
  bool read_only = false;
  std::string mount_path;  // containers: where it is mounted inside; VMs: ignored
};

// A network interface given to a task, already created by the network driver.
struct TaskNic {
  std::string name;         // interface name inside the task ("eth0")
  std::string host_ifname;  // tap (VMs) or host end of a veth pair (containers)
  std::string mac;          // "52:54:00:..."
  // Containers: the network namespace to join (empty = driver decides). VMs: the namespace
  // the tap lives in, where QEMU opens it (empty = the agent's own).
  std::string netns_path;
  std::vector<std::string> addresses;  // CIDR addresses the task should configure
};

// A port the task exposes; the network driver maps host_port to task_port.
struct TaskPort {
  std::string name;
  int host_port = 0;
  int task_port = 0;
  std::string protocol = "tcp";
  // The host address a VM's forward listens on (QEMU's user-mode NIC); empty: 127.0.0.1.
  std::string host_address;
};

// Everything a driver needs to start one task. A plain struct: the agent fills it from the
// workload spec and the resources the scheduler assigned, resolving images and devices first.
struct TaskConfig {
  std::string task_id;            // unique on the host; the key for every other call
  std::string workload;           // workload name, for messages
  std::string kind;               // "process", "container", "vm"
  std::string command;            // program to run (process: path or name looked up in PATH)
  std::vector<std::string> args;  // arguments after the program name
  std::map<std::string, std::string> env;
  // Empty = task_dir; the process driver uses task_dir/work, owned by the task's user.
  std::string working_dir;
  // process: the workload's `user` field (a name or "uid[:gid]"); empty = the driver's
  // unprivileged default. Other drivers ignore it.
  std::string user;
  std::string image;       // image reference as the user wrote it
  std::string image_path;  // resolved local path (qcow2 file, OCI bundle/rootfs), set by the agent
  core::Resources resources;              // limits to enforce (0 = unlimited in that dimension)
  std::vector<core::GpuAssignment> gpus;  // what the scheduler assigned
  // The stable ids of those devices, one per entry of `gpus`: "GPU-<uuid>" or, for a MIG slice,
  // "MIG-<uuid>". What CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES list.
  std::vector<std::string> gpu_device_ids;
  // The PCI addresses of those devices ("0000:3b:00.0"), one per entry of `gpus`, empty where
  // the host does not know it: what a VM is given through vfio-pci.
  std::vector<std::string> gpu_pci_addresses;
  // Where the MPS control daemon of the task's shared GPU listens (CUDA_MPS_PIPE_DIRECTORY);
  // empty when the task holds no share or the host runs no daemon for it.
  std::string mps_pipe_dir;
  // Containers: what the CDI specs of the task's devices ask for (device nodes, mounts, env,
  // hooks), resolved by the agent. Empty when no spec covers them; GPUs then get the built-in
  // NVIDIA device nodes.
  CdiEdits device_edits;
  // Containers: the CDI edits of the task's devices of other classes (core/device.h), resolved
  // by the agent. Processes get only their ids, in BERTH_DEVICES_<CLASS> (in `env`).
  CdiEdits class_device_edits;
  // Directory the driver keeps the task's files in: stdout.log, stderr.log, sockets, state. The
  // agent picks it; the driver creates it if missing and removes it on Destroy.
  std::string task_dir;
  std::vector<TaskDisk> disks;
  std::vector<TaskNic> nics;
  std::vector<TaskPort> ports;
  int64_t max_open_files = 0;  // RLIMIT_NOFILE where the driver enforces it; 0 = driver default
  // A file SaveState() wrote from a task with the same resources and image: the task resumes
  // from it instead of starting afresh. Only drivers with the `snapshot` capability take it.
  std::string restore_from;
};

// File names every driver uses inside task_dir for the task's output.
inline constexpr std::string_view kStdoutLogName = "stdout.log";
inline constexpr std::string_view kStderrLogName = "stderr.log";

// What the agent persists to re-adopt a task after a restart. `state` is opaque to the agent:
// each driver stores there what its Recover() needs (pids, start times, socket paths).
struct TaskHandle {
  std::string driver;  // ComputeDriver::Name() of the driver that started it
  std::string task_id;
  int version = 1;  // of the `state` layout, for drivers that change it
  nlohmann::json state = nlohmann::json::object();
  bool operator==(const TaskHandle&) const = default;
};
nlohmann::json TaskHandleToJson(const TaskHandle& handle);
// InvalidArgument naming the field when `j` is not a handle.
absl::StatusOr<TaskHandle> TaskHandleFromJson(const nlohmann::json& j);

// How a task ended. `reason` is empty for a plain exit and says what happened otherwise ("stopped
// by the agent", "killed by the kernel OOM killer", "lost while the agent was down").
struct ExitResult {
  int exit_code = 0;  // 128 + signal when killed by one (as shells report it); -1 when unknown
  int signal = 0;     // signal that killed it, 0 if it exited by itself
  bool oom_killed = false;
  std::string reason;
  absl::Time finished_at = absl::InfinitePast();
  bool Successful() const { return exit_code == 0 && signal == 0 && !oom_killed; }
  bool operator==(const ExitResult&) const = default;
};

enum class TaskState { kRunning, kPaused, kExited };
std::string_view TaskStateName(TaskState state);

// A point-in-time view of one task.
struct TaskStatus {
  std::string task_id;
  TaskState state = TaskState::kRunning;
  absl::Time started_at = absl::InfinitePast();
  int64_t pid = 0;  // main host process (workload, QEMU, container init); 0 when none
  std::optional<ExitResult> exit;                     // set once state is kExited
  nlohmann::json details = nlohmann::json::object();  // driver-specific extras
};

// Resource usage of a running task.
struct TaskStats {
  absl::Time at = absl::InfinitePast();
  absl::Duration cpu_user = absl::ZeroDuration();
  absl::Duration cpu_system = absl::ZeroDuration();
  int64_t rss_bytes = 0;
  int64_t processes = 0;  // processes (or threads, for a VM's vCPUs) counted
  // Bytes read from and written to storage since the task started (a VM's: what QEMU moved to
  // and from its images); unset where the driver cannot tell.
  std::optional<host::DiskBytes> disk;
  // Bytes the task received and sent on interfaces of its own (a container's network namespace,
  // a VM's taps), since they were created; unset for a task on the host's network.
  std::optional<host::NetDevBytes> net;
};

struct StopOptions {
  absl::Duration grace = absl::Seconds(10);  // time between `signal` and the forced kill
  int signal = 15;                           // SIGTERM; drivers map it for VMs (ACPI shutdown)
};

struct DestroyOptions {
  bool force = false;  // kill a still-running task instead of failing with FailedPrecondition
};

struct ExecOptions {
  absl::Duration timeout = absl::Seconds(30);
  std::map<std::string, std::string> env;  // added to the task's environment
};

struct ExecResult {
  int exit_code = 0;
  std::string stdout_data;
  std::string stderr_data;
};

enum class TaskEventType { kStarted, kExited, kFailed, kOomKilled, kPaused, kResumed, kRecovered };
std::string_view TaskEventTypeName(TaskEventType type);

struct TaskEvent {
  std::string task_id;
  TaskEventType type = TaskEventType::kStarted;
  absl::Time time = absl::InfinitePast();
  std::string message;
  std::optional<ExitResult> exit;  // for kExited, kFailed, kOomKilled
};

using TaskEventCallback = std::function<void(const TaskEvent&)>;

class ComputeDriver {
 public:
  virtual ~ComputeDriver() = default;

  // Short stable name ("process", "qemu", "oci", "fake"); recorded in every TaskHandle.
  virtual std::string Name() const = 0;
  virtual DriverCapabilities Capabilities() const = 0;
  // Probes the host (binaries, /dev/kvm, versions). Cheap enough to call every minute.
  virtual DriverFingerprint Fingerprint() = 0;

  // Starts a task and returns once it is running (or failed to). The returned handle is what the
  // agent persists for Recover(). Errors: InvalidArgument (bad config, naming the field),
  // AlreadyExists (task_id known to this driver), FailedPrecondition/Internal when the host cannot
  // start it; a failed Start leaves no task behind.
  [[nodiscard]] virtual absl::StatusOr<TaskHandle> Start(const TaskConfig& config) = 0;

  // Re-adopts a task started by an earlier instance of this driver (before an agent restart)
  // WITHOUT restarting it. If the task died meanwhile it is adopted as exited, with its real exit
  // status where the driver could learn it and a reason otherwise. OK when the task is already
  // known to this instance. InvalidArgument when the handle belongs to another driver or its
  // state is malformed.
  [[nodiscard]] virtual absl::Status Recover(const TaskHandle& handle) = 0;

  // Blocks until the task has exited or `timeout` passes. Repeatable: after exit it returns the
  // same result until Destroy. DeadlineExceeded on timeout, NotFound for unknown ids.
  [[nodiscard]] virtual absl::StatusOr<ExitResult> Wait(std::string_view task_id,
                                                        absl::Duration timeout) = 0;

  // Sends options.signal, waits up to options.grace, then kills. Returns once the task has
  // exited. OK (no-op) for a task that already exited. NotFound for unknown ids.
  [[nodiscard]] virtual absl::Status Stop(std::string_view task_id, const StopOptions& options) = 0;

  // Forgets the task and removes task_dir with everything in it. FailedPrecondition if it is
  // still running and !options.force; with force it is killed first. NotFound for unknown ids.
  [[nodiscard]] virtual absl::Status Destroy(std::string_view task_id,
                                             const DestroyOptions& options) = 0;

  // NotFound for unknown ids.
  [[nodiscard]] virtual absl::StatusOr<TaskStatus> Inspect(std::string_view task_id) = 0;
  // FailedPrecondition once exited; NotFound for unknown ids.
  [[nodiscard]] virtual absl::StatusOr<TaskStats> Stats(std::string_view task_id) = 0;

  // Freeze / thaw every process of the task. FailedPrecondition when not running (resp. not
  // paused); Unimplemented without Capabilities().pause_resume.
  [[nodiscard]] virtual absl::Status Pause(std::string_view task_id) = 0;
  [[nodiscard]] virtual absl::Status Resume(std::string_view task_id) = 0;

  // Runs argv inside the running task (same environment, working dir, namespaces) and collects
  // its output. Unimplemented without Capabilities().exec; DeadlineExceeded after
  // options.timeout.
  [[nodiscard]] virtual absl::StatusOr<ExecResult> Exec(std::string_view task_id,
                                                        const std::vector<std::string>& argv,
                                                        const ExecOptions& options) = 0;

  // Plugs a disk into the running task (a VM sees a new virtio disk) or pulls it out again
  // (`name` as in TaskDisk::name). Unimplemented without Capabilities().disk_hotplug.
  [[nodiscard]] virtual absl::Status AttachDisk(std::string_view task_id, const TaskDisk& disk) {
    return absl::UnimplementedError(Name() + " tasks take no disks while they run");
  }
  [[nodiscard]] virtual absl::Status DetachDisk(std::string_view task_id, std::string_view name) {
    return absl::UnimplementedError(Name() + " tasks take no disks while they run");
  }
  // Takes an internal snapshot of a qcow2 disk the running task holds open (the image is
  // locked against other writers meanwhile). Unimplemented without disk_hotplug.
  [[nodiscard]] virtual absl::Status SnapshotDisk(std::string_view task_id, std::string_view name,
                                                  std::string_view snapshot) {
    return absl::UnimplementedError(Name() + " tasks take no disk snapshots while they run");
  }
  // Writes the running task's memory and device state to `path`, pausing it meanwhile, and lets
  // it go on; a later Start() with TaskConfig::restore_from = path resumes a copy of it.
  // Unimplemented without the `snapshot` capability.
  [[nodiscard]] virtual absl::Status SaveState(std::string_view task_id, const std::string& path) {
    return absl::UnimplementedError(Name() + " tasks cannot be saved to a state file");
  }

  // Task ids this instance knows (started or recovered, not yet destroyed).
  virtual std::vector<std::string> Tasks() = 0;

  // Registers `callback` for every later event of every task; returns an id for Unsubscribe.
  // Events of one task arrive in order. After Unsubscribe returns, the callback is not running
  // and will not be called again. A callback must not call Subscribe/Unsubscribe.
  virtual int64_t Subscribe(TaskEventCallback callback) = 0;
  virtual void Unsubscribe(int64_t subscription) = 0;
};

// Event fan-out for driver implementations: Publish() queues an event and a dedicated thread
// delivers it to every subscriber, so drivers never call user code with their locks held.
// Thread-safe. The destructor delivers nothing further and joins the thread.
class TaskEventHub {
 public:
  TaskEventHub();
  ~TaskEventHub();
  TaskEventHub(const TaskEventHub&) = delete;
  TaskEventHub& operator=(const TaskEventHub&) = delete;

  int64_t Subscribe(TaskEventCallback callback);
  void Unsubscribe(int64_t subscription);
  void Publish(TaskEvent event);

 private:
  void Run();

  absl::Mutex mu_;
  std::vector<TaskEvent> queue_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, TaskEventCallback> subscribers_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Held while callbacks run (taken before mu_), so Unsubscribe can wait for a delivery in
  // flight.
  absl::Mutex delivery_mu_;
  std::thread thread_;
};

// "task \"<id>\" not found" as NotFound, the error every driver returns for unknown ids.
absl::Status TaskNotFound(std::string_view task_id);

}  // namespace berth::runtime
