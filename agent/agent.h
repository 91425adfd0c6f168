// The host agent. It registers the host's inventory with the server, sends heartbeats, watches
// its assignments with blocking queries, converges local tasks on them through the compute
// drivers (start, pause, resume, stop, destroy) and reports each task's state. It keeps a small
// record per task in its data directory, so after a restart (even SIGKILL) it re-adopts running
// tasks through the drivers' Recover instead of restarting them, and reports the ones that died
// meanwhile as failed with the reason.
//
// It talks to the server only through the typed API client, and serves the API's view of its
// local tasks (LocalHost): log and console files, exec and live stats.
//
// Thread-safety: Start/Stop from one thread; the LocalHost methods from any thread. SyncOnce only
// from the thread that owns the loop (tests call it without Start).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/local_host.h"
#include "agent/usage.h"
#include "agent/xid.h"
#include "api/client/client.h"
#include "core/host.h"
#include "core/workload.h"
#include "runtime/compute_driver.h"
#include "runtime/mps.h"

namespace berth::agent {

// A workload's image as found in the host's catalog.
struct ResolvedImage {
  std::string path;            // TaskConfig::image_path: kernel directory, disk file or rootfs
  std::string kernel_cmdline;  // the image's default kernel command line (kernel images)
};

struct AgentOptions {
  std::string server_url;  // "http://127.0.0.1:7070"
  // The join token: used only to register a host that holds no credential yet. Registration
  // returns the host's own credential, kept in DATA_DIR/host.credential (mode 0600), which the
  // agent uses for every other call and to register again after a restart.
  std::string token;
  std::string name;      // host name
  std::string data_dir;  // tasks/ and logs/ live here
  // The host address a VM's published ports listen on (`ports`, a service replica's host
  // port); empty: 127.0.0.1, which only this host reaches. A fleet's agent publishes where the
  // server can probe and forward to them.
  std::string publish_address;
  core::HostInventory inventory;
  // At most; the agent beats at least three times per host TTL the server names at registration.
  absl::Duration heartbeat_interval = absl::Seconds(3);
  // Fencing: once no heartbeat has reached a server for the host TTL (the server's, learned at
  // registration; this until then), the agent stops the workloads that do not opt out
  // (`restart.fence: false`), since the server may start them elsewhere after its grace.
  bool fencing = true;
  absl::Duration default_host_ttl = absl::Seconds(10);
  absl::Duration poll_wait = absl::Seconds(1);  // longest wait of one assignments query
  absl::Duration stop_grace = absl::Seconds(10);
  // Workload kind ("process", "vm", "container") -> driver; not owned.
  std::map<std::string, runtime::ComputeDriver*> drivers;
  // Resolves a workload's image (kind "vm" or "container", image name) to a local path; unset =
  // pass the name on. Errors are reported as the workload's failure.
  std::function<absl::StatusOr<ResolvedImage>(std::string_view kind, std::string_view image)>
      resolve_image;
  // Gives a workload its disks and network interfaces on this host before its task starts
  // (fills config->disks and config->nics); an error fails the workload with its message.
  // Optional.
  std::function<absl::Status(const core::WorkloadSpec& spec, runtime::TaskConfig* config)> attach;
  // Takes back what `attach` gave the workload once its task is destroyed (and after a failed
  // start). Idempotent; works from the name alone, so it also serves tasks recovered after a
  // restart. Optional.
  std::function<void(std::string_view workload)> detach;
  // The host's CDI specs (see cdi_specs.h): containers get their devices through them. Null or
  // empty = GPUs get the built-in NVIDIA device nodes. Not owned; must outlive the agent.
  const runtime::CdiRegistry* cdi = nullptr;
  // The MPS control daemons of shared GPUs: a task holding a share of a GPU runs as a client of
  // that GPU's daemon. Null = shares run without one (their limits are still in their env). Not
  // owned; must outlive the agent.
  runtime::MpsDaemons* mps = nullptr;
  // Asks the host's GPUs again (nvidia-smi): the devices it lists, each with its health (its
  // error counters), or the error that says the driver is in trouble. A GPU it fails on, no
  // longer lists or lists as unhealthy is marked unhealthy: the host registers again so the
  // scheduler gives it no new work, and the tasks holding it fail with the reason (their restart
  // policy then places them again). Unset = GPUs are not checked again (declared GPUs).
  std::function<absl::StatusOr<std::vector<core::GpuDevice>>()> probe_gpus;
  // Asks the host's devices of other classes again (their CDI device nodes): each with its
  // health. A device that turns unhealthy is handled like a GPU. Unset = not checked again.
  std::function<std::vector<core::Device>()> probe_devices;
  // A kernel log to follow for the NVIDIA driver's Xid reports (xid.h): a device fault marks the
  // GPU at that PCI address unhealthy until the agent restarts. Empty = none.
  std::string xid_log;
  // How often GPUs and devices are checked (probe_gpus, probe_devices, xid_log).
  absl::Duration gpu_check_interval = absl::Seconds(30);
  // The nvidia-smi each heartbeat asks for GPU utilization and for the device memory each process
  // holds (agent/usage.h), which is reported per workload. Empty = no GPU figures.
  std::string nvidia_smi;
  // Where this agent serves its task API (api/task_api.h), sent with each heartbeat so the
  // server can relay logs, console, stats and exec to it; unset = none (the dev server's own
  // agent, which the API reaches in process).
  std::optional<api::wire::TaskApiReport> task_api;
  // Driver-specific live counters merged into Stats() (e.g. a VM's guest CPU time); optional.
  std::function<absl::StatusOr<core::Json>(runtime::ComputeDriver* driver,
                                           std::string_view task_id)>
      extra_stats;
};

// Where an agent with data directory `data_dir` keeps its host's credential.
std::string HostCredentialPath(const std::string& data_dir);

// Where `path`, as a container sees it, lies on the host when it is on one of the task's
// mounted disks (or is the mount itself); otherwise `path` unchanged.
std::string HostPathOf(const std::vector<runtime::TaskDisk>& disks, const std::string& path);

class Agent : public LocalHost {
 public:
  explicit Agent(AgentOptions options);
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Recovers local tasks, then starts the registration, heartbeat and reconcile threads.
  absl::Status Start();
  // Stops the threads; running tasks keep running (they are re-adopted at the next start).
  void Stop();

  std::string HostName() override { return options_.name; }
  absl::StatusOr<std::string> LogPath(std::string_view workload, std::string_view stream) override;
  absl::StatusOr<std::string> ConsolePath(std::string_view workload) override;
  absl::StatusOr<api::wire::ExecReply> Exec(std::string_view workload,
                                            const api::wire::ExecRequest& request) override;
  absl::StatusOr<core::Json> Stats(std::string_view workload) override;
  absl::StatusOr<int64_t> SaveWarmState(std::string_view workload, std::string_view key) override;
  // The file a warm state with `key` is kept in on this host.
  std::string WarmStatePath(std::string_view key) const;
  absl::StatusOr<std::string> WarmStateFile(std::string_view key) override;
  // Copies the warm state `key` from another host that keeps it (through the server) into this
  // host's warm directory, whole or not at all. NotFound when no host keeps it.
  absl::Status CopyWarmState(std::string_view key);
  // DATA_DIR/warm, made if missing.
  absl::StatusOr<std::string> MakeWarmDir() const;
  // The warm states this host keeps: the keys of the files DATA_DIR/warm/KEY.state, sorted, at
  // most core::kMaxReportedWarmStates (the first in key order). A save in progress
  // (KEY.state.partial) is not one. Remembers which file each key was, for DropWarmStates.
  std::vector<std::string> ListWarmStates();
  // Deletes the saves and copies a stopped agent left unfinished (KEY.state.partial,
  // KEY.state.copying); Start() does so before anything could be writing one.
  void SweepUnfinishedWarmStates();
  // Deletes the warm states `keys` names, each only when the last ListWarmStates found it and
  // its file is still the one found then (not saved again since); other keys are left alone.
  void DropWarmStates(const std::vector<std::string>& keys);
  // Plugs a disk into the workload's running task here, or pulls it out (VMs). NotFound when
  // the workload has no task on this host; Unimplemented when its driver cannot.
  absl::Status AttachDisk(std::string_view workload, const runtime::TaskDisk& disk);
  absl::Status DetachDisk(std::string_view workload, std::string_view name);
  absl::Status SnapshotDisk(std::string_view workload, std::string_view name,
                            std::string_view snapshot);

  // One reconcile pass against the server (for tests and the main loop).
  absl::Status SyncOnce();

  // Registers the host (again) with its credential, or with the join token when it has none or
  // the server no longer knows it; the heartbeat thread calls it, tests that drive SyncOnce call
  // it themselves.
  absl::Status Register();

  // Where the host's credential is kept.
  std::string CredentialPath() const;

  // What the next heartbeat carries: the host's usage and each workload's (CPU, memory, GPU
  // memory). Only from the heartbeat thread, or from tests that never start it.
  std::optional<core::HostUsage> MeasureUsage();
  // Sends one heartbeat: the host's usage, where it serves its task API and the warm states it
  // keeps; then deletes the warm states the reply names (no service wants them any longer).
  // Only from the heartbeat thread, or from tests that never start it.
  absl::Status Heartbeat();

  // Whether the agent has fenced itself (no server reached for the host TTL) and not yet
  // reached a server again.
  bool fenced() const { return fenced_.load(); }

  // The stop grace a workload's berth.stop-grace label asks for; nullopt (and a warning) when it
  // is missing or not a duration from 0s to core::kMaxStopGrace.
  static std::optional<absl::Duration> StopGraceOf(const core::WorkloadSpec& spec);

 private:
  struct LocalTask {
    std::string workload;
    int64_t generation = 0;
    std::string kind;
    std::string task_id;
    std::string task_dir;
    runtime::TaskHandle handle;
    core::WorkloadState reported = core::WorkloadState::kScheduled;
    std::string reported_reason;
    bool finished = false;  // exited; its result has been (or is being) reported
    std::optional<int> exit_code;
    bool oom = false;
    std::string pending_failure;  // set when recovery failed: reported as failed
    bool fence = true;            // the workload's restart.fence
    // How long a stop waits after SIGTERM (the workload's berth.stop-grace); unset: the agent's.
    std::optional<absl::Duration> stop_grace;
    std::string checkpoint_dir;  // its BERTH_CHECKPOINT_DIR; empty: none
  };

  // Registers with `bearer` on the heartbeat connection.
  absl::StatusOr<api::wire::RegistrationReply> PostRegistration(const std::string& bearer);
  void UseCredential(const std::string& credential);
  // The credential of an earlier registration when it is this host's; empty otherwise.
  std::string StoredCredential() const;
  void HeartbeatLoop();
  // Watches the time since a heartbeat last reached a server and fences when it passes the TTL
  // (its own thread: the others may be stuck in calls to an unreachable server).
  void FenceLoop();
  // Notes that a call sent at `sent` (steady clock) reached a server, with its TTL if it said.
  void Contacted(std::chrono::steady_clock::time_point sent,
                 absl::Duration host_ttl = absl::ZeroDuration(),
                 absl::Duration failover_grace = absl::ZeroDuration());
  void MainLoop();
  void Reconcile(const std::vector<core::Workload>& assigned);
  void Monitor();
  absl::Status StartTask(const core::Workload& w);
  // The inventory as registered now (GPU health changes while the agent runs).
  core::HostInventory Inventory();
  // Probes the GPUs and devices when a check is due (nvidia-smi, the Xid log, CDI device nodes)
  // and records changes of health (loop thread).
  void CheckDevices();
  // Why the task's GPUs or devices (as `status` records them) cannot serve it; empty when they
  // can.
  std::string UnhealthyDevice(const core::WorkloadStatus& status);
  // Gives `cfg` the workload's devices of other classes: BERTH_DEVICES_<CLASS> and, for a
  // container, their CDI edits. FailedPrecondition naming the device when no spec has it.
  absl::Status AddClassDevices(const core::WorkloadStatus& status, runtime::TaskConfig* cfg);
  // Lets go of the MPS daemons the workload's GPU shares held.
  void ReleaseGpus(const std::string& workload);
  void StopTask(LocalTask& task, bool destroy);
  void Report(LocalTask& task, core::WorkloadState state, std::string reason,
              std::optional<int> exit_code = std::nullopt, bool oom = false);
  absl::Status SaveTask(const LocalTask& task);
  // SaveTask, and a warning on stderr when the record could not be written.
  void SaveTaskOrWarn(const LocalTask& task);
  void RemoveTaskRecord(const LocalTask& task);
  void RecoverTasks();
  // Sleeps up to `d`; false when the agent is stopping.
  bool SleepFor(absl::Duration d);
  runtime::ComputeDriver* DriverFor(std::string_view kind);
  std::string TasksDir() const;
  std::string LogsDir(std::string_view workload) const;

  const AgentOptions options_;
  api::Client client_;      // main loop
  api::Client hb_client_;   // heartbeats, on their own connection
  HostUsageSampler usage_;  // only the heartbeat thread uses it
  // Each live workload's CPU time when the heartbeat thread last measured it.
  struct CpuSample {
    absl::Time at;
    absl::Duration cpu;
    std::optional<core::MilliCpu> rate;  // over the interval that ended at `at`
    // The driver's storage and network counters at `at`, and the throughput they gave over
    // that interval (bytes per second), where the driver counts them.
    std::optional<runtime::host::DiskBytes> disk;
    std::optional<runtime::host::NetDevBytes> net;
    std::optional<int64_t> disk_read, disk_write, net_rx, net_tx;
  };
  std::map<std::string, CpuSample> workload_cpu_;  // heartbeat thread only
  // What each workload this agent runs used since the previous heartbeat (one that is measured
  // the first time only starts its interval), with the device memory of `gpu_processes` that
  // descend from its task.
  std::vector<core::WorkloadUsage> SampleWorkloads(const std::vector<GpuProcess>& gpu_processes);
  absl::Mutex wake_mu_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> registered_{false};
  absl::Mutex inventory_mu_;
  core::HostInventory inventory_ ABSL_GUARDED_BY(inventory_mu_);
  absl::Time next_gpu_check_ = absl::InfinitePast();  // loop thread only
  std::unique_ptr<XidLog> xid_;                       // loop thread only; null without xid_log
  // GPUs an Xid report found faulty, by UUID, with the reason; kept until the agent restarts.
  std::map<std::string, std::string> xid_faults_ ABSL_GUARDED_BY(inventory_mu_);
  int64_t index_ = 0;
  // The assignments as last answered, by name, and the revision they cover: the next poll asks
  // only for what changed since (loop thread only).
  std::map<std::string, core::Workload> assigned_;
  int64_t since_ = 0;
  std::thread heartbeat_;
  std::thread main_;
  std::thread fence_;
  // Fencing (FenceLoop): when a heartbeat last reached a server (steady-clock nanoseconds, the
  // time it was sent), the TTL and grace that server named, and whether the agent fenced.
  std::atomic<int64_t> last_contact_ns_{0};
  std::atomic<int64_t> host_ttl_ns_{0};
  std::atomic<int64_t> failover_grace_ns_{0};
  std::atomic<bool> fenced_{false};

  // By workload name. Touched only by Start (before the threads) and the main loop thread.
  std::map<std::string, LocalTask> tasks_;
  // Where each workload's current logs are, for LogPath on the API threads.
  absl::Mutex paths_mu_;
  std::map<std::string, std::string> log_dirs_ ABSL_GUARDED_BY(paths_mu_);
  // Each live task's kind and id by workload name, for the LocalHost methods.
  struct TaskRef {
    std::string kind;
    std::string task_id;
    bool fence = true;
    std::string checkpoint_dir;  // reported as the workload's checkpoint_at
  };
  std::map<std::string, TaskRef> task_refs_ ABSL_GUARDED_BY(paths_mu_);
  // Which file each warm state was when ListWarmStates last found it; warm_mu_ also keeps a
  // save's rename into place and a drop's check and removal apart.
  struct FileIdentity {
    uint64_t device = 0;
    uint64_t inode = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileIdentity&) const = default;
  };
  // Which regular file `path` is now; nullopt when there is none.
  static std::optional<FileIdentity> IdentityOf(const std::string& path);
  absl::Mutex warm_mu_;
  std::map<std::string, FileIdentity> warm_listed_ ABSL_GUARDED_BY(warm_mu_);
  // Workloads whose tasks the fence stopped, so their end is reported as fenced.
  std::set<std::string> fenced_workloads_ ABSL_GUARDED_BY(paths_mu_);
  absl::StatusOr<std::pair<TaskRef, runtime::ComputeDriver*>> FindTask(std::string_view workload);
};

}  // namespace berth::agent
