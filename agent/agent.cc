#include "agent/agent.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "agent/cdi_specs.h"
#include "core/guard.h"
#include "core/job.h"
#include "core/log.h"
#include "core/service.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/host/file.h"

namespace berth::agent {

namespace fs = std::filesystem;
using core::Cat;
using core::Json;
using core::WorkloadState;

namespace {

// Writes `data` to `path` readable by the owner only, so that it survives a crash of the host
// (host::WriteFileAtomically: synced, renamed over `path`, the directory synced). Task records
// and the host credential both go this way; recovery after a restart depends on them.
absl::Status WriteDurably(const std::string& path, const std::string& data) {
  absl::Status written = runtime::host::WriteFileAtomically(path, data, {.mode = 0600});
  if (!written.ok()) return absl::Status(written.code(), Cat("agent: ", written.message()));
  return absl::OkStatus();
}

// The largest warm state a host copies from another: a VM's memory and device state.
constexpr int64_t kMaxWarmStateBytes = int64_t{1} << 40;

absl::Status WriteSecret(const std::string& path, const std::string& data) {
  return WriteDurably(path, data);
}

}  // namespace

std::string HostPathOf(const std::vector<runtime::TaskDisk>& disks, const std::string& path) {
  for (const runtime::TaskDisk& d : disks) {
    if (d.mount_path.empty() || d.path.empty()) continue;
    const absl::string_view mount = absl::StripSuffix(d.mount_path, "/");
    if (mount.empty()) continue;  // a disk at "/" is no task's checkpoint directory
    if (path == mount) return d.path;
    if (absl::StartsWith(path, Cat(mount, "/"))) return d.path + path.substr(mount.size());
  }
  return path;
}

Agent::Agent(AgentOptions options)
    : options_(std::move(options)),
      // Both carry the host's credential once Register() has it.
      client_(options_.server_url,
              api::ClientOptions{.timeout = options_.poll_wait + absl::Seconds(30)}),
      hb_client_(options_.server_url, api::ClientOptions{.timeout = absl::Seconds(10)}),
      usage_("/proc", options_.nvidia_smi) {
  absl::MutexLock lock(&inventory_mu_);
  inventory_ = options_.inventory;
  if (!options_.xid_log.empty()) xid_ = std::make_unique<XidLog>(options_.xid_log);
}

core::HostInventory Agent::Inventory() {
  absl::MutexLock lock(&inventory_mu_);
  return inventory_;
}

void Agent::CheckDevices() {
  if (!options_.probe_gpus && !options_.probe_devices && !xid_) return;
  if (absl::Now() < next_gpu_check_) return;
  next_gpu_check_ = absl::Now() + options_.gpu_check_interval;
  std::vector<XidEvent> xids;
  if (xid_) xids = xid_->ReadNew();
  std::optional<absl::StatusOr<std::vector<core::GpuDevice>>> seen;
  if (options_.probe_gpus) seen = options_.probe_gpus();
  std::vector<core::Device> devices;
  if (options_.probe_devices) devices = options_.probe_devices();
  absl::MutexLock lock(&inventory_mu_);
  for (const XidEvent& e : xids) {
    if (!XidIsDeviceFault(e.xid)) continue;
    for (const core::GpuDevice& g : inventory_.gpus) {
      if (!XidNamesDevice(e, g.pci_address) || xid_faults_.contains(g.uuid)) continue;
      xid_faults_[g.uuid] =
          Cat("Xid ", e.xid, e.message.empty() ? "" : ": ", e.message, " (", xid_->path(), ")");
    }
  }
  bool changed = false;
  auto record = [&](bool& healthy, std::string& health, const std::string& why,
                    std::string_view what) {
    if (healthy == why.empty() && health == why) return;
    changed = true;
    healthy = why.empty();
    health = why;
    if (why.empty()) {
      core::LogInfo("%s is healthy again", what);
    } else {
      core::LogWarn("%s is unhealthy: %s", what, why);
    }
  };
  for (core::GpuDevice& g : inventory_.gpus) {
    std::string why;
    if (auto fault = xid_faults_.find(g.uuid); fault != xid_faults_.end()) {
      why = fault->second;
    } else if (!seen.has_value()) {
      why = g.health;  // not probed: only an Xid report changes it
    } else if (!seen->ok()) {
      why = std::string(seen->status().message()).substr(0, 512);
    } else if (auto now = std::find_if((*seen)->begin(), (*seen)->end(),
                                       [&](const core::GpuDevice& d) { return d.uuid == g.uuid; });
               now == (*seen)->end()) {
      why = "nvidia-smi no longer lists it";
    } else if (!now->healthy) {
      why = now->health.substr(0, 512);  // its error counters (nvidia-smi -q)
    }
    record(g.healthy, g.health, why, Cat("GPU ", g.uuid));
  }
  if (options_.probe_devices) {
    for (core::Device& d : inventory_.devices) {
      auto now = std::find_if(devices.begin(), devices.end(), [&](const core::Device& o) {
        return o.cls == d.cls && o.id == d.id;
      });
      const std::string why = now == devices.end() ? "no longer in the host's CDI specs"
                              : now->healthy       ? std::string()
                                                   : now->health;
      record(d.healthy, d.health, why, Cat("device ", d.cls, "=", d.id));
    }
  }
  // The heartbeat registers the host again, with the devices' health.
  if (changed) registered_ = false;
}

std::string Agent::UnhealthyDevice(const core::WorkloadStatus& status) {
  absl::MutexLock lock(&inventory_mu_);
  for (const core::GpuAssignment& a : status.gpus) {
    for (const core::GpuDevice& g : inventory_.gpus) {
      if (g.healthy || g.index != a.index) continue;
      return Cat("GPU ", a.device_id.empty() ? g.uuid : a.device_id,
                 " became unhealthy: ", g.health);
    }
  }
  for (const core::DeviceAssignment& a : status.devices) {
    for (const core::Device& d : inventory_.devices) {
      if (d.healthy || d.cls != a.cls || d.id != a.id) continue;
      return Cat("device ", d.cls, "=", d.id, " became unhealthy: ", d.health);
    }
  }
  return "";
}

absl::Status Agent::AddClassDevices(const core::WorkloadStatus& status, runtime::TaskConfig* cfg) {
  std::map<std::string, std::string> ids_by_class;
  std::vector<std::string> names;
  for (const core::DeviceAssignment& a : status.devices) {
    std::string& ids = ids_by_class[a.cls];
    ids += (ids.empty() ? "" : ",") + a.id;
    names.push_back(Cat(a.cls, "=", a.id));
  }
  // The grant wins over the spec's env, as the GPU variables do.
  for (const auto& [cls, ids] : ids_by_class) cfg->env[core::DeviceEnvName(cls)] = ids;
  if (cfg->kind != "container" || names.empty()) return absl::OkStatus();
  for (const std::string& name : names) {
    if (options_.cdi == nullptr || !options_.cdi->Has(name)) {
      return absl::FailedPreconditionError(
          Cat("no CDI spec on host ", options_.name, " names device ", name,
              "; regenerate the host's CDI specs and restart the agent"));
    }
  }
  BERTH_ASSIGN_OR_RETURN(runtime::CdiEdits edits, options_.cdi->Resolve(names));
  cfg->class_device_edits = std::move(edits);
  return absl::OkStatus();
}

Agent::~Agent() { Stop(); }

std::string Agent::TasksDir() const { return Cat(options_.data_dir, "/tasks"); }
std::string Agent::LogsDir(std::string_view workload) const {
  return Cat(options_.data_dir, "/logs/", workload);
}

runtime::ComputeDriver* Agent::DriverFor(std::string_view kind) {
  auto it = options_.drivers.find(std::string(kind));
  return it == options_.drivers.end() ? nullptr : it->second;
}

absl::Status Agent::Start() {
  std::error_code ec;
  fs::create_directories(TasksDir(), ec);
  if (ec) return absl::InternalError(Cat("agent: cannot create ", TasksDir(), ": ", ec.message()));
  RecoverTasks();
  SweepUnfinishedWarmStates();
  // A host that registered before speaks with its credential from the start.
  if (std::string credential = StoredCredential(); !credential.empty()) UseCredential(credential);
  // The start counts as contact: re-adopted tasks get a full TTL for the servers to answer.
  last_contact_ns_ = std::chrono::steady_clock::now().time_since_epoch().count();
  host_ttl_ns_ = absl::ToInt64Nanoseconds(options_.default_host_ttl);
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  main_ = std::thread([this] { MainLoop(); });
  if (options_.fencing) fence_ = std::thread([this] { FenceLoop(); });
  return absl::OkStatus();
}

void Agent::Stop() {
  {
    absl::MutexLock lock(&wake_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (heartbeat_.joinable()) heartbeat_.join();
  if (main_.joinable()) main_.join();
  if (fence_.joinable()) fence_.join();
}

bool Agent::SleepFor(absl::Duration d) {
  absl::MutexLock lock(&wake_mu_);
  auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wake_mu_) { return stopping_.load(); };
  wake_mu_.AwaitWithTimeout(absl::Condition(&stop), d);
  return !stopping_;
}

std::string HostCredentialPath(const std::string& data_dir) {
  return Cat(data_dir, "/host.credential");
}

std::string Agent::CredentialPath() const { return HostCredentialPath(options_.data_dir); }

absl::StatusOr<api::wire::RegistrationReply> Agent::PostRegistration(const std::string& bearer) {
  api::wire::HostRegistration registration{.name = options_.name, .inventory = Inventory()};
  registration.inventory.drivers.clear();
  for (const auto& [kind, driver] : options_.drivers) {
    registration.inventory.drivers.push_back(kind);
  }
  hb_client_.SetToken(bearer);
  return hb_client_.RegisterHost(registration);
}

void Agent::UseCredential(const std::string& credential) {
  client_.SetToken(credential);
  hb_client_.SetToken(credential);
}

std::string Agent::StoredCredential() const {
  std::string credential;
  std::ifstream in(CredentialPath());
  std::getline(in, credential);
  if (credential.rfind(Cat(options_.name, ":"), 0) != 0) credential.clear();
  return credential;
}

absl::Status Agent::Register() {
  std::string credential = StoredCredential();
  if (!credential.empty()) {
    const auto sent = std::chrono::steady_clock::now();
    auto reply = PostRegistration(credential);
    if (reply.ok()) {
      Contacted(sent, reply->host_ttl, reply->failover_grace);
      UseCredential(credential);
      registered_ = true;
      return absl::OkStatus();
    }
    // The server no longer knows the credential (the host was removed): join as a new host.
    if (!absl::IsUnauthenticated(reply.status()) || options_.token.empty()) return reply.status();
  }
  if (options_.token.empty()) {
    return absl::FailedPreconditionError(Cat("agent: host \"", options_.name,
                                             "\" has no credential in ", CredentialPath(),
                                             " and no join token to register with"));
  }
  const auto sent = std::chrono::steady_clock::now();
  BERTH_ASSIGN_OR_RETURN(api::wire::RegistrationReply reply, PostRegistration(options_.token));
  Contacted(sent, reply.host_ttl, reply.failover_grace);
  if (reply.credential.empty()) {
    return absl::InternalError(
        Cat("agent: the server issued no credential for host \"", options_.name, "\""));
  }
  credential = reply.credential;
  BERTH_RETURN_IF_ERROR(WriteSecret(CredentialPath(), credential + "\n"));
  UseCredential(credential);
  registered_ = true;
  return absl::OkStatus();
}

void Agent::HeartbeatLoop() {
  while (!stopping_) {
    bool retry_soon = false;
    absl::Status guarded = core::RunGuarded("agent heartbeat", [&] {
      if (!registered_ && !Register().ok()) {
        retry_soon = true;
        return;
      }
      absl::Status beat = Heartbeat();
      // The server forgot the host, or its credential: register again.
      if (absl::IsNotFound(beat) || absl::IsUnauthenticated(beat)) registered_ = false;
    });
    // At least three beats per TTL, so one lost beat never makes the host look down.
    const absl::Duration interval =
        std::min(options_.heartbeat_interval, absl::Nanoseconds(host_ttl_ns_.load()) / 3);
    SleepFor(retry_soon || !guarded.ok() ? std::min(absl::Seconds(1), interval) : interval);
  }
}

absl::Status Agent::Heartbeat() {
  const api::wire::HeartbeatReport report{
      .usage = MeasureUsage(), .task_api = options_.task_api, .warm_states = ListWarmStates()};
  const auto sent = std::chrono::steady_clock::now();
  api::Raw raw;
  absl::StatusOr<api::wire::HeartbeatReply> reply =
      hb_client_.Heartbeat(options_.name, report, &raw);
  // A server that took the heartbeat (the client fills `raw` only from a successful answer) was
  // reached, whatever its reply holds.
  const bool taken = raw.status != 0;
  if (taken) Contacted(sent);
  if (!reply.ok()) {
    if (taken) {
      core::LogWarn("agent: heartbeat reply: %s; no warm state is deleted",
                    reply.status().ToString());
      return absl::OkStatus();
    }
    return reply.status();
  }
  DropWarmStates(reply->drop_warm_states);
  return absl::OkStatus();
}

void Agent::Contacted(std::chrono::steady_clock::time_point sent, absl::Duration host_ttl,
                      absl::Duration failover_grace) {
  if (host_ttl > absl::ZeroDuration()) {
    host_ttl_ns_ = absl::ToInt64Nanoseconds(host_ttl);
    failover_grace_ns_ = absl::ToInt64Nanoseconds(failover_grace);
  }
  const int64_t at = sent.time_since_epoch().count();
  int64_t seen = last_contact_ns_.load();
  while (seen < at && !last_contact_ns_.compare_exchange_weak(seen, at)) {
  }
  if (fenced_.exchange(false)) core::LogInfo("agent: a server answers again; fence lifted");
}

void Agent::FenceLoop() {
  while (!stopping_) {
    const absl::Duration ttl = absl::Nanoseconds(host_ttl_ns_.load());
    SleepFor(std::clamp(ttl / 20, absl::Milliseconds(50), absl::Milliseconds(500)));
    const absl::Duration since = absl::Nanoseconds(
        std::chrono::steady_clock::now().time_since_epoch().count() - last_contact_ns_.load());
    if (since <= ttl) continue;
    // Measured from when the last successful beat was sent, which the server received later:
    // the agent fences no later than the server declares the host down, and the server waits a
    // grace on top before it starts these workloads elsewhere.
    if (!fenced_.exchange(true)) {
      core::LogWarn("agent: no server reached for %s (host TTL %s): stopping fenced workloads",
                    absl::FormatDuration(absl::Trunc(since, absl::Milliseconds(100))),
                    absl::FormatDuration(ttl));
    }
    std::vector<std::pair<std::string, TaskRef>> to_stop;
    {
      absl::MutexLock lock(&paths_mu_);
      for (const auto& [workload, ref] : task_refs_) {
        if (ref.fence && !fenced_workloads_.contains(workload)) {
          to_stop.emplace_back(workload, ref);
          fenced_workloads_.insert(workload);
        }
      }
    }
    // Within half the server's grace, so the copy here is gone before another starts.
    const absl::Duration grace =
        std::min(options_.stop_grace, absl::Nanoseconds(failover_grace_ns_.load()) / 2);
    for (const auto& [workload, ref] : to_stop) {
      runtime::ComputeDriver* driver = DriverFor(ref.kind);
      if (driver == nullptr) continue;
      absl::Status s = driver->Stop(ref.task_id, runtime::StopOptions{.grace = grace});
      if (!absl::IsNotFound(s)) {
        core::OkOrReport("agent", Cat("workload ", workload, ": fence"), s);
      }
    }
  }
}

void Agent::MainLoop() {
  while (!stopping_) {
    if (!registered_) {
      SleepFor(absl::Milliseconds(100));
      continue;
    }
    absl::Status s;
    absl::Status guarded = core::RunGuarded("agent sync", [&] { s = SyncOnce(); });
    if (!s.ok() || !guarded.ok()) SleepFor(absl::Seconds(1));
  }
}

absl::Status Agent::SyncOnce() {
  api::Raw raw;
  absl::StatusOr<api::wire::Assignments> answer = client_.AssignmentsSince(
      options_.name, since_, api::Watch{.index = index_, .wait = options_.poll_wait}, &raw);
  if (!answer.ok()) {
    // The server may come back as another history (a restored store, another store): the next
    // answer is the whole set.
    since_ = 0;
    return answer.status();
  }
  api::wire::Assignments& changes = *answer;
  if (raw.index >= 0) index_ = raw.index;
  // A change since the last answer, or (since 0) the whole set.
  if (changes.since == 0) assigned_.clear();
  for (const std::string& name : changes.removed) assigned_.erase(name);
  for (core::Workload& w : changes.items) {
    std::string name = w.spec.name;
    assigned_[name] = std::move(w);
  }
  since_ = changes.revision;
  std::vector<core::Workload> assigned;
  assigned.reserve(assigned_.size());
  for (const auto& [name, w] : assigned_) assigned.push_back(w);
  Reconcile(assigned);
  Monitor();
  return absl::OkStatus();
}

void Agent::Reconcile(const std::vector<core::Workload>& assigned) {
  std::map<std::string, const core::Workload*> by_name;
  for (const auto& w : assigned) by_name[w.spec.name] = &w;
  // Tasks no longer assigned to this host (finished, deleted, failed over, or replaced by a
  // newer placement) are stopped and cleaned up.
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    auto found = by_name.find(it->first);
    if (found == by_name.end() || found->second->status.generation != it->second.generation) {
      StopTask(it->second, /*destroy=*/true);
      RemoveTaskRecord(it->second);
      it = tasks_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& w : assigned) {
    const auto desired = w.status.desired;
    auto it = tasks_.find(w.spec.name);
    if (it == tasks_.end()) {
      if (desired == core::DesiredState::kRunning || desired == core::DesiredState::kPaused) {
        // StartTask reports a failure to the server as the workload's state (often the spec's
        // fault, not Berth's); this host's log says it too.
        if (absl::Status s = StartTask(w); !s.ok()) {
          core::LogWarn("workload %s: start failed: %s", w.spec.name, s.ToString());
        }
      } else {
        LocalTask t{.workload = w.spec.name, .generation = w.status.generation};
        Report(t, WorkloadState::kStopped, "stopped before it started");
      }
      continue;
    }
    LocalTask& t = it->second;
    if (!t.pending_failure.empty()) {
      t.finished = true;
      Report(t, WorkloadState::kFailed, t.pending_failure);
      continue;
    }
    if (!t.finished) {
      if (std::string why = UnhealthyDevice(w.status); !why.empty()) {
        Report(t, WorkloadState::kStopping, why);
        StopTask(t, /*destroy=*/false);
        t.finished = true;
        Report(t, WorkloadState::kFailed, why);
        SaveTaskOrWarn(t);
        continue;
      }
    }
    if (t.finished) {
      // Its end was reported; repeat the report if the server has not taken it yet.
      if (w.status.state != t.reported)
        Report(t, t.reported, t.reported_reason, t.exit_code, t.oom);
      continue;
    }
    runtime::ComputeDriver* driver = DriverFor(t.kind);
    if (driver == nullptr) continue;
    if (desired == core::DesiredState::kStopped || desired == core::DesiredState::kDeleted) {
      Report(t, WorkloadState::kStopping, "stopping on request");
      StopTask(t, /*destroy=*/false);
      t.finished = true;
      Report(t, WorkloadState::kStopped, "stopped on request");
      SaveTaskOrWarn(t);
    } else if (desired == core::DesiredState::kPaused && t.reported == WorkloadState::kRunning) {
      absl::Status s = driver->Pause(t.task_id);
      if (s.ok()) {
        Report(t, WorkloadState::kPaused, "paused on request");
      } else {
        Report(t, WorkloadState::kRunning, Cat("pause failed: ", s.message()));
      }
    } else if (desired == core::DesiredState::kRunning && t.reported == WorkloadState::kPaused) {
      absl::Status s = driver->Resume(t.task_id);
      if (s.ok()) {
        Report(t, WorkloadState::kRunning, "resumed");
      } else {
        Report(t, WorkloadState::kPaused, Cat("resume failed: ", s.message()));
      }
    } else if (w.status.state != t.reported && !core::IsTerminal(t.reported)) {
      // The server missed a report (e.g. the agent restarted mid-way): say it again.
      Report(t, t.reported, t.reported_reason);
    }
  }
}

absl::Status Agent::StartTask(const core::Workload& w) {
  LocalTask t;
  t.workload = w.spec.name;
  t.generation = w.status.generation;
  t.kind = std::string(core::WorkloadKindName(w.spec.kind));
  t.task_id = Cat(w.spec.name, "-g", w.status.generation);
  t.task_dir = Cat(TasksDir(), "/", t.task_id);
  t.fence = w.spec.restart.fence;
  t.stop_grace = StopGraceOf(w.spec);
  if (auto dir = w.spec.env.find(std::string(core::kCheckpointDirEnv)); dir != w.spec.env.end()) {
    t.checkpoint_dir = dir->second;
  }
  runtime::ComputeDriver* driver = DriverFor(t.kind);
  if (driver == nullptr) {
    Report(t, WorkloadState::kFailed, Cat("host ", options_.name, " has no ", t.kind, " driver"));
    return absl::FailedPreconditionError("no driver");
  }
  std::error_code ec;
  fs::create_directories(t.task_dir, ec);
  runtime::TaskConfig cfg;
  cfg.task_id = t.task_id;
  cfg.workload = w.spec.name;
  cfg.kind = t.kind;
  if (!w.spec.command.empty()) {
    cfg.command = w.spec.command.front();
    cfg.args.assign(w.spec.command.begin() + 1, w.spec.command.end());
  }
  cfg.env = w.spec.env;
  cfg.working_dir = w.spec.working_dir;
  cfg.user = w.spec.user;
  cfg.image = w.spec.image;
  std::string kernel_cmdline;
  if (!w.spec.image.empty() && options_.resolve_image) {
    auto image = options_.resolve_image(t.kind, w.spec.image);
    if (!image.ok()) {
      t.finished = true;
      Report(t, WorkloadState::kFailed,
             Cat("image \"", w.spec.image, "\": ", image.status().message()));
      return image.status();
    }
    cfg.image_path = image->path;
    kernel_cmdline = image->kernel_cmdline;
  }
  cfg.resources = w.spec.resources;
  cfg.gpus = w.status.gpus;
  const core::HostInventory inventory = Inventory();
  for (const auto& g : w.status.gpus) {
    // The id the placement recorded; placements written before ids were recorded name only the
    // index, which this host's inventory maps to its device.
    std::string id = g.device_id;
    std::vector<core::GpuAssignment> one = {g};
    if (id.empty()) {
      core::ResolveGpuDeviceIds(inventory.gpus, &one);
      id = one.front().device_id;
    }
    if (id.empty()) {
      t.finished = true;
      Report(t, WorkloadState::kFailed,
             g.mig_profile.empty()
                 ? Cat("GPU ", g.index, " is not among host ", options_.name,
                       "'s devices or has no id; check its inventory (`berth host get ",
                       options_.name, "`)")
                 : Cat("GPU ", g.index, " of host ", options_.name, " has no MIG ", g.mig_profile,
                       " instance at slice ", g.mig_start_slice, "; create it (`nvidia-smi mig -i ",
                       g.index, " -cgi ", g.mig_profile, " -C`) and restart the agent"));
      return absl::FailedPreconditionError("unknown GPU");
    }
    cfg.gpu_device_ids.push_back(id);
    std::string pci;
    for (const auto& d : inventory.gpus) {
      if (d.index == g.index) pci = d.pci_address;
    }
    cfg.gpu_pci_addresses.push_back(pci);
  }
  if (options_.mps != nullptr) {
    for (size_t i = 0; i < cfg.gpus.size(); ++i) {
      const core::GpuAssignment& g = cfg.gpus[i];
      if (g.milli >= core::kWholeGpuMilli || !g.mig_profile.empty()) continue;
      auto pipe = options_.mps->Acquire(cfg.gpu_device_ids[i], t.workload);
      if (!pipe.ok()) {
        core::ReportError("agent", Cat("workload ", t.workload, ": MPS"),
                          options_.mps->Release(t.workload));
        t.finished = true;
        Report(t, WorkloadState::kFailed,
               Cat("GPU share on ", cfg.gpu_device_ids[i], ": ", pipe.status().message()));
        return pipe.status();
      }
      cfg.mps_pipe_dir = *pipe;
    }
  }
  if (t.kind == "container" && options_.cdi != nullptr && !cfg.gpus.empty()) {
    // Through CDI when the host's specs cover every granted GPU; with none covered the driver's
    // built-in NVIDIA nodes serve; a partial cover would hand out devices unevenly.
    std::vector<std::string> names, missing;
    for (size_t i = 0; i < cfg.gpus.size(); ++i) {
      std::string name = CdiNameForGpu(*options_.cdi, cfg.gpus[i], cfg.gpu_device_ids[i]);
      (name.empty() ? missing : names).push_back(name.empty() ? cfg.gpu_device_ids[i] : name);
    }
    absl::StatusOr<runtime::CdiEdits> edits = runtime::CdiEdits{};
    if (!names.empty() && !missing.empty()) {
      edits = absl::FailedPreconditionError(
          Cat("no CDI spec on host ", options_.name, " names GPU ", missing.front(),
              " while others are; regenerate the specs (`nvidia-ctk cdi generate`)"));
    } else if (!names.empty()) {
      edits = options_.cdi->Resolve(names);
    }
    if (!edits.ok()) {
      ReleaseGpus(t.workload);
      t.finished = true;
      Report(t, WorkloadState::kFailed, std::string(edits.status().message()));
      return edits.status();
    }
    cfg.device_edits = *std::move(edits);
  }
  if (absl::Status s = AddClassDevices(w.status, &cfg); !s.ok()) {
    ReleaseGpus(t.workload);
    t.finished = true;
    Report(t, WorkloadState::kFailed, std::string(s.message()));
    return s;
  }
  cfg.task_dir = t.task_dir;
  for (const auto& p : w.spec.ports) {
    cfg.ports.push_back({.name = Cat(p.protocol, p.guest_port),
                         .host_port = p.host_port,
                         .task_port = p.guest_port,
                         .protocol = p.protocol,
                         .host_address = options_.publish_address});
  }
  // The qemu driver appends BERTH_VM_CMDLINE to its base kernel command line: the image's
  // default first, then the workload's own.
  std::string cmdline = kernel_cmdline;
  if (!w.spec.cmdline.empty()) cmdline += (cmdline.empty() ? "" : " ") + w.spec.cmdline;
  if (!cmdline.empty()) cfg.env["BERTH_VM_CMDLINE"] = cmdline;
  Report(t, WorkloadState::kStarting, Cat("starting on ", options_.name));
  if (!options_.attach && (!w.spec.networks.empty() || !w.spec.disks.empty())) {
    // Never run a workload without the networks or disks it asked for.
    ReleaseGpus(t.workload);
    t.finished = true;
    Report(t, WorkloadState::kFailed,
           Cat("host ", options_.name,
               " cannot give workloads Berth networks or disks (only the local agent of "
               "`berth serve --dev` does so far); remove networks/disks from the spec or run "
               "it there"));
    return absl::FailedPreconditionError("no storage or network wiring");
  }
  if (options_.attach) {
    absl::Status attached = options_.attach(w.spec, &cfg);
    if (!attached.ok()) {
      if (options_.detach) options_.detach(t.workload);
      ReleaseGpus(t.workload);
      t.finished = true;
      Report(t, WorkloadState::kFailed, std::string(attached.message()));
      return attached;
    }
    // A container's checkpoint directory on a disk it mounts is watched where the disk is
    // mounted on this host.
    t.checkpoint_dir = HostPathOf(cfg.disks, t.checkpoint_dir);
  }
  // A replica of a warm-started service resumes from its service's saved state when this host
  // holds it; a state that fails to load is dropped and the VM boots.
  std::string resumed;
  if (auto warm = w.spec.labels.find(std::string(core::kWarmStateLabel));
      warm != w.spec.labels.end() && driver->Capabilities().snapshot &&
      IsWarmStateKey(warm->second)) {
    const std::string path = WarmStatePath(warm->second);
    if (!fs::exists(path, ec)) {
      // Kept by another host (the service's replica that saved it ran there): copied here
      // first, so the replica resumes instead of booting.
      absl::Status copied = CopyWarmState(warm->second);
      if (!copied.ok() && !absl::IsNotFound(copied)) {
        core::LogWarn("agent: workload %s: warm state %s not copied (%s); booting it instead",
                      t.workload, warm->second, copied.ToString());
      }
    }
    if (fs::exists(path, ec)) {
      cfg.restore_from = path;
      resumed = warm->second;
    }
  }
  auto handle = driver->Start(cfg);
  if (!handle.ok() && !cfg.restore_from.empty()) {
    core::LogWarn("agent: workload %s: warm state %s did not load (%s); booting it instead",
                  t.workload, resumed, handle.status().ToString());
    fs::remove(cfg.restore_from, ec);
    cfg.restore_from.clear();
    resumed.clear();
    handle = driver->Start(cfg);
  }
  if (!handle.ok()) {
    if (options_.detach) options_.detach(t.workload);
    ReleaseGpus(t.workload);
    t.finished = true;
    Report(t, WorkloadState::kFailed, Cat("start failed: ", handle.status().message()));
    return handle.status();
  }
  t.handle = *handle;
  {
    absl::MutexLock lock(&paths_mu_);
    log_dirs_[t.workload] = t.task_dir;
    task_refs_[t.workload] = {
        .kind = t.kind, .task_id = t.task_id, .fence = t.fence, .checkpoint_dir = t.checkpoint_dir};
  }
  tasks_[t.workload] = t;
  LocalTask& stored = tasks_[t.workload];
  SaveTaskOrWarn(stored);
  if (w.status.desired == core::DesiredState::kPaused && driver->Pause(t.task_id).ok()) {
    Report(stored, WorkloadState::kPaused, "started paused");
  } else {
    Report(stored, WorkloadState::kRunning,
           resumed.empty()
               ? Cat("running on ", options_.name)
               : Cat("running on ", options_.name, ", resumed from warm state ", resumed));
  }
  SaveTaskOrWarn(stored);
  return absl::OkStatus();
}

void Agent::StopTask(LocalTask& t, bool destroy) {
  runtime::ComputeDriver* driver = DriverFor(t.kind);
  if (driver == nullptr || t.task_id.empty()) {
    // Nothing to stop here, but what the workload was given still goes back.
    if (destroy && options_.detach) options_.detach(t.workload);
    if (destroy) ReleaseGpus(t.workload);
    return;
  }
  if (!t.finished) {
    absl::Status s = driver->Stop(
        t.task_id, runtime::StopOptions{.grace = t.stop_grace.value_or(options_.stop_grace)});
    // Already gone is fine.
    if (!absl::IsNotFound(s)) core::OkOrReport("agent", Cat("workload ", t.workload, ": stop"), s);
  }
  if (!destroy) return;
  // Logs outlive the task: move them where `berth workload logs` still finds them.
  std::error_code ec;
  fs::create_directories(LogsDir(t.workload), ec);
  for (std::string_view name : {runtime::kStdoutLogName, runtime::kStderrLogName}) {
    fs::path from = fs::path(t.task_dir) / name;
    if (fs::exists(from, ec)) fs::rename(from, fs::path(LogsDir(t.workload)) / name, ec);
  }
  absl::Status s = driver->Destroy(t.task_id, runtime::DestroyOptions{.force = true});
  if (!absl::IsNotFound(s)) core::OkOrReport("agent", Cat("workload ", t.workload, ": destroy"), s);
  if (options_.detach) options_.detach(t.workload);
  ReleaseGpus(t.workload);
  fs::remove_all(t.task_dir, ec);
  absl::MutexLock lock(&paths_mu_);
  log_dirs_.erase(t.workload);
  task_refs_.erase(t.workload);
  fenced_workloads_.erase(t.workload);
}

void Agent::ReleaseGpus(const std::string& workload) {
  if (options_.mps == nullptr) return;
  core::ReportError("agent", Cat("workload ", workload, ": stop its GPUs' MPS daemons"),
                    options_.mps->Release(workload));
}

void Agent::Monitor() {
  CheckDevices();
  if (options_.mps != nullptr) {
    for (const std::string& gpu : options_.mps->Check()) {
      core::LogWarn("GPU %s: its MPS control daemon had stopped; started it again", gpu);
    }
  }
  for (auto& [name, t] : tasks_) {
    if (t.finished || !t.pending_failure.empty()) continue;
    runtime::ComputeDriver* driver = DriverFor(t.kind);
    if (driver == nullptr) continue;
    auto st = driver->Inspect(t.task_id);
    if (!st.ok()) {
      if (absl::IsNotFound(st.status())) {
        t.finished = true;
        Report(t, WorkloadState::kFailed, "the task vanished from its driver");
        SaveTaskOrWarn(t);
      }
      continue;
    }
    if (st->state != runtime::TaskState::kExited || !st->exit) continue;
    const runtime::ExitResult& e = *st->exit;
    t.finished = true;
    std::string reason;
    if (e.oom_killed) {
      reason = "OOM-killed: the task went past its memory limit";
    } else if (e.signal != 0) {
      reason = Cat("killed by signal ", e.signal);
    } else if (e.exit_code >= 0) {
      reason = Cat("exited with code ", e.exit_code);
    } else {
      reason = e.reason.empty() ? "exited" : e.reason;
    }
    if (!e.reason.empty() && reason != e.reason && !e.oom_killed)
      reason = Cat(reason, ": ", e.reason);
    std::optional<int> code;
    if (e.exit_code >= 0) code = e.exit_code;
    bool fenced = false;
    {
      absl::MutexLock lock(&paths_mu_);
      fenced = fenced_workloads_.contains(t.workload);
    }
    if (fenced) {
      // Whatever its exit, it ended because the fence stopped it.
      Report(t, WorkloadState::kFailed,
             Cat("fenced: host ", options_.name,
                 " lost the servers for the host TTL, so it stopped the workload (", reason, ")"),
             code, e.oom_killed);
      SaveTaskOrWarn(t);
      continue;
    }
    Report(t, e.Successful() ? WorkloadState::kStopped : WorkloadState::kFailed, reason, code,
           e.oom_killed);
    SaveTaskOrWarn(t);
  }
}

void Agent::Report(LocalTask& t, WorkloadState state, std::string reason,
                   std::optional<int> exit_code, bool oom) {
  api::wire::StatusReport report{.host = options_.name,
                                 .generation = t.generation,
                                 .state = state,
                                 .reason = reason,
                                 .exit_code = exit_code,
                                 .oom_killed = oom};
  t.reported = state;
  t.reported_reason = reason;
  t.exit_code = exit_code;
  t.oom = oom;
  // A lost report is repeated by the next reconcile, which compares states.
  core::OkOrReport("agent", Cat("workload ", t.workload, ": status report"),
                   client_.ReportStatus(t.workload, report).status());
}

absl::Status Agent::SaveTask(const LocalTask& t) {
  Json j = {{"workload", t.workload},
            {"generation", t.generation},
            {"kind", t.kind},
            {"task_id", t.task_id},
            {"task_dir", t.task_dir},
            {"handle", runtime::TaskHandleToJson(t.handle)},
            {"reported", std::string(core::WorkloadStateName(t.reported))},
            {"reported_reason", t.reported_reason},
            {"finished", t.finished},
            {"fence", t.fence}};
  if (t.stop_grace) j["stop_grace"] = absl::FormatDuration(*t.stop_grace);
  if (!t.checkpoint_dir.empty()) j["checkpoint_dir"] = t.checkpoint_dir;
  if (t.exit_code) j["exit_code"] = *t.exit_code;
  j["oom"] = t.oom;
  absl::Status written = WriteDurably(Cat(TasksDir(), "/", t.task_id, ".json"), j.dump());
  if (!written.ok()) {
    return absl::InternalError(
        Cat("agent: cannot write the record of task ", t.task_id, ": ", written.message()));
  }
  return absl::OkStatus();
}

void Agent::SaveTaskOrWarn(const LocalTask& t) {
  absl::Status s = SaveTask(t);
  if (s.ok()) return;
  // The task runs on; only its re-adoption after an agent restart depends on the record.
  std::cerr << "berth agent: workload " << t.workload << ": " << s.message()
            << "; after a restart of this agent the task may not be re-adopted\n";
}

void Agent::RemoveTaskRecord(const LocalTask& t) {
  std::error_code ec;
  fs::remove(Cat(TasksDir(), "/", t.task_id, ".json"), ec);
}

void Agent::RecoverTasks() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(TasksDir(), ec)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    Json j = Json::parse(ss.str(), nullptr, false);
    if (!j.is_object()) continue;
    LocalTask t;
    t.workload = j.value("workload", "");
    t.generation = j.value("generation", int64_t{0});
    t.kind = j.value("kind", "");
    t.task_id = j.value("task_id", "");
    t.task_dir = j.value("task_dir", "");
    t.finished = j.value("finished", false);
    t.reported_reason = j.value("reported_reason", "");
    if (auto s = core::ParseWorkloadState(j.value("reported", ""))) t.reported = *s;
    if (j.contains("exit_code") && j["exit_code"].is_number_integer()) t.exit_code = j["exit_code"];
    t.oom = j.value("oom", false);
    t.fence = j.value("fence", true);
    if (absl::Duration grace; absl::ParseDuration(j.value("stop_grace", ""), &grace)) {
      t.stop_grace = grace;
    }
    t.checkpoint_dir = j.value("checkpoint_dir", "");
    auto handle = runtime::TaskHandleFromJson(j.value("handle", Json::object()));
    if (t.workload.empty() || !handle.ok()) continue;
    t.handle = *handle;
    runtime::ComputeDriver* driver = DriverFor(t.kind);
    if (!t.finished) {
      absl::Status s = driver ? driver->Recover(t.handle)
                              : absl::FailedPreconditionError(Cat("no ", t.kind, " driver"));
      if (!s.ok()) {
        t.pending_failure = Cat("lost while the agent was down: ", s.message());
      }
    }
    {
      absl::MutexLock lock(&paths_mu_);
      log_dirs_[t.workload] = t.task_dir;
      task_refs_[t.workload] = {.kind = t.kind,
                                .task_id = t.task_id,
                                .fence = t.fence,
                                .checkpoint_dir = t.checkpoint_dir};
    }
    tasks_[t.workload] = std::move(t);
  }
}

absl::StatusOr<std::string> Agent::LogPath(std::string_view workload, std::string_view stream) {
  std::string file = stream == "stderr" ? std::string(runtime::kStderrLogName)
                                        : std::string(runtime::kStdoutLogName);
  {
    absl::MutexLock lock(&paths_mu_);
    auto it = log_dirs_.find(std::string(workload));
    if (it != log_dirs_.end()) {
      std::string path = Cat(it->second, "/", file);
      if (fs::exists(path)) return path;
    }
  }
  std::string kept = Cat(LogsDir(workload), "/", file);
  if (fs::exists(kept)) return kept;
  return absl::NotFoundError(
      Cat("workload \"", workload, "\": no ", stream, " log on this host yet (has it started?)"));
}

std::optional<absl::Duration> Agent::StopGraceOf(const core::WorkloadSpec& spec) {
  auto it = spec.labels.find(std::string(core::kStopGraceLabel));
  if (it == spec.labels.end()) return std::nullopt;
  absl::Duration grace;
  if (!absl::ParseDuration(it->second, &grace) || grace < absl::ZeroDuration() ||
      grace > core::kMaxStopGrace) {
    core::LogWarn(
        "agent: workload %s: label %s is not a duration from 0s to %s: \"%s\"; the "
        "default stop grace applies",
        spec.name, core::kStopGraceLabel, absl::FormatDuration(core::kMaxStopGrace), it->second);
    return std::nullopt;
  }
  return grace;
}

std::optional<core::HostUsage> Agent::MeasureUsage() {
  std::optional<core::HostUsage> usage = usage_.Sample();
  if (usage) usage->workloads = SampleWorkloads(usage_.GpuProcesses());
  return usage;
}

namespace {

// When anything in `dir` last changed; nullopt when it holds nothing (or cannot be read).
std::optional<absl::Time> NewestChangeIn(const std::string& dir) {
  std::optional<absl::Time> newest;
  int seen = 0;
  // The files in the directory and one level below, at most a thousand: a checkpoint is
  // written as a file (often renamed into place), so the directory's own time is not used.
  std::function<void(const std::string&, int)> walk = [&](const std::string& at, int depth) {
    std::error_code ec;
    for (fs::directory_iterator it(at, ec), end; !ec && it != end && seen < 1000;
         it.increment(ec)) {
      ++seen;
      struct stat st {};
      if (lstat(it->path().c_str(), &st) != 0) continue;
      const absl::Time changed = absl::TimeFromTimespec(st.st_mtim);
      if (!newest || changed > *newest) newest = changed;
      if (S_ISDIR(st.st_mode) && depth == 0) walk(it->path().string(), 1);
    }
  };
  walk(dir, 0);
  return newest;
}

}  // namespace

std::vector<core::WorkloadUsage> Agent::SampleWorkloads(
    const std::vector<GpuProcess>& gpu_processes) {
  std::vector<std::string> names;
  {
    absl::MutexLock lock(&paths_mu_);
    for (const auto& [name, ref] : task_refs_) names.push_back(name);
  }
  // Device memory by workload: each GPU process belongs to the task it descends from.
  std::map<std::string, int64_t> gpu_memory;
  if (!gpu_processes.empty()) {
    std::map<int64_t, std::string> task_pids;
    for (const std::string& name : names) {
      auto found = FindTask(name);
      if (!found.ok()) continue;
      auto status = found->second->Inspect(found->first.task_id);
      if (status.ok() && status->pid > 0) task_pids[status->pid] = name;
    }
    gpu_memory = GpuMemoryByWorkload(gpu_processes, task_pids, ProcParent);
  }
  std::vector<core::WorkloadUsage> out;
  std::map<std::string, CpuSample> now;
  for (const std::string& name : names) {
    if (out.size() >= core::kMaxUsageWorkloads) break;
    auto found = FindTask(name);
    if (!found.ok()) continue;  // gone since the names were read
    const std::string checkpoint_dir = found->first.checkpoint_dir;
    auto stats = found->second->Stats(found->first.task_id);
    if (!stats.ok()) continue;  // not running
    const absl::Time at = stats->at == absl::InfinitePast() ? absl::Now() : stats->at;
    const absl::Duration cpu = stats->cpu_user + stats->cpu_system;
    CpuSample sample{.at = at, .cpu = cpu, .disk = stats->disk, .net = stats->net};
    auto last = workload_cpu_.find(name);
    if (last != workload_cpu_.end() && at <= last->second.at) {
      sample = last->second;  // no time has passed since: the last interval still stands
    } else if (last != workload_cpu_.end() && cpu >= last->second.cpu) {
      const CpuSample& before = last->second;
      const absl::Duration interval = at - before.at;
      const double per_second = absl::FDivDuration(cpu - before.cpu, interval);
      sample.rate = core::MilliCpu(static_cast<int64_t>(per_second * 1000 + 0.5));
      // A counter that went backwards (a process of the group ended, a tap was re-created)
      // gives no figure for this interval.
      auto rate = [&](int64_t was, int64_t is) -> std::optional<int64_t> {
        if (is < was) return std::nullopt;
        return static_cast<int64_t>(
            static_cast<double>(is - was) / absl::ToDoubleSeconds(interval) + 0.5);
      };
      if (sample.disk && before.disk) {
        sample.disk_read = rate(before.disk->read, sample.disk->read);
        sample.disk_write = rate(before.disk->written, sample.disk->written);
      }
      if (sample.net && before.net) {
        sample.net_rx = rate(before.net->rx, sample.net->rx);
        sample.net_tx = rate(before.net->tx, sample.net->tx);
      }
    }
    now[name] = sample;
    if (!sample.rate) continue;
    auto gpu = gpu_memory.find(name);
    auto bounded = [](std::optional<int64_t> v) -> std::optional<int64_t> {
      if (v) v = std::min(*v, core::kMaxUsageBytesPerSecond);
      return v;
    };
    out.push_back(core::WorkloadUsage{
        .name = name,
        .cpu = *sample.rate,
        .memory = core::MemoryMiB((stats->rss_bytes + (1 << 20) - 1) >> 20),
        .gpu_memory = core::MemoryMiB(gpu == gpu_memory.end() ? 0 : gpu->second),
        .disk_read_per_second = bounded(sample.disk_read),
        .disk_write_per_second = bounded(sample.disk_write),
        .net_rx_per_second = bounded(sample.net_rx),
        .net_tx_per_second = bounded(sample.net_tx),
        .checkpoint_at = checkpoint_dir.empty() ? std::nullopt : NewestChangeIn(checkpoint_dir)});
  }
  workload_cpu_ = std::move(now);  // workloads that ended are forgotten
  return out;
}

absl::StatusOr<std::pair<Agent::TaskRef, runtime::ComputeDriver*>> Agent::FindTask(
    std::string_view workload) {
  TaskRef ref;
  {
    absl::MutexLock lock(&paths_mu_);
    auto it = task_refs_.find(std::string(workload));
    if (it == task_refs_.end()) {
      return absl::NotFoundError(Cat("workload \"", workload, "\": no task on host ", options_.name,
                                     " (has it started?)"));
    }
    ref = it->second;
  }
  runtime::ComputeDriver* driver = DriverFor(ref.kind);
  if (driver == nullptr) {
    return absl::FailedPreconditionError(
        Cat("workload \"", workload, "\": host ", options_.name, " has no ", ref.kind, " driver"));
  }
  return std::make_pair(ref, driver);
}

absl::StatusOr<std::string> Agent::ConsolePath(std::string_view workload) {
  {
    absl::MutexLock lock(&paths_mu_);
    auto it = task_refs_.find(std::string(workload));
    if (it != task_refs_.end() && it->second.kind != "vm") {
      return absl::FailedPreconditionError(Cat(
          "workload \"", workload, "\": only vm workloads have a serial console; this one is a ",
          it->second.kind, " (use `berth workload logs`)"));
    }
  }
  // A VM's serial console is its task's stdout log.
  return LogPath(workload, "stdout");
}

absl::StatusOr<api::wire::ExecReply> Agent::Exec(std::string_view workload,
                                                 const api::wire::ExecRequest& request) {
  BERTH_ASSIGN_OR_RETURN(auto found, FindTask(workload));
  runtime::ComputeDriver* driver = found.second;
  if (!driver->Capabilities().exec) {
    return absl::FailedPreconditionError(Cat("workload \"", workload, "\": the ", driver->Name(),
                                             " driver cannot run commands inside its tasks"));
  }
  BERTH_ASSIGN_OR_RETURN(
      runtime::ExecResult r,
      driver->Exec(found.first.task_id, request.argv,
                   runtime::ExecOptions{.timeout = request.timeout, .env = request.env}));
  return api::wire::ExecReply{
      .exit_code = r.exit_code, .stdout_data = r.stdout_data, .stderr_data = r.stderr_data};
}

absl::Status Agent::AttachDisk(std::string_view workload, const runtime::TaskDisk& disk) {
  BERTH_ASSIGN_OR_RETURN(auto found, FindTask(workload));
  runtime::ComputeDriver* driver = found.second;
  if (!driver->Capabilities().disk_hotplug) {
    return absl::UnimplementedError(Cat("workload \"", workload, "\": the ", driver->Name(),
                                        " driver takes disks only at start"));
  }
  return driver->AttachDisk(found.first.task_id, disk);
}

absl::Status Agent::DetachDisk(std::string_view workload, std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(auto found, FindTask(workload));
  runtime::ComputeDriver* driver = found.second;
  if (!driver->Capabilities().disk_hotplug) {
    return absl::UnimplementedError(Cat("workload \"", workload, "\": the ", driver->Name(),
                                        " driver takes disks only at start"));
  }
  return driver->DetachDisk(found.first.task_id, name);
}

absl::Status Agent::SnapshotDisk(std::string_view workload, std::string_view name,
                                 std::string_view snapshot) {
  BERTH_ASSIGN_OR_RETURN(auto found, FindTask(workload));
  runtime::ComputeDriver* driver = found.second;
  if (!driver->Capabilities().disk_hotplug) {
    return absl::UnimplementedError(Cat("workload \"", workload, "\": the ", driver->Name(),
                                        " driver takes no disk snapshots while it runs"));
  }
  return driver->SnapshotDisk(found.first.task_id, name, snapshot);
}

std::string Agent::WarmStatePath(std::string_view key) const {
  return Cat(options_.data_dir, "/warm/", key, ".state");
}

absl::StatusOr<std::string> Agent::MakeWarmDir() const {
  const std::string dir = Cat(options_.data_dir, "/warm");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(Cat("agent: cannot create ", dir, ": ", ec.message()));
  return dir;
}

absl::Status Agent::CopyWarmState(std::string_view key) {
  BERTH_ASSIGN_OR_RETURN(const std::string dir, MakeWarmDir());
  std::error_code ec;
  const std::string path = WarmStatePath(key);
  const std::string partial = path + ".copying";
  const int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return absl::InternalError(Cat("agent: cannot create ", partial, ": ", strerror(errno)));
  int64_t received = 0;
  absl::Status written;
  const absl::Time started = absl::Now();
  absl::StatusOr<int64_t> size =
      client_.DownloadWarmState(options_.name, key, [&](std::string_view chunk) {
        received += static_cast<int64_t>(chunk.size());
        if (received > kMaxWarmStateBytes) {
          written = absl::ResourceExhaustedError(
              Cat("larger than ", kMaxWarmStateBytes, " bytes, the most a host copies"));
          return false;
        }
        for (size_t off = 0; off < chunk.size();) {
          const ssize_t n = write(fd, chunk.data() + off, chunk.size() - off);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            written = absl::InternalError(Cat("cannot write ", partial, ": ", strerror(errno)));
            return false;
          }
          off += static_cast<size_t>(n);
        }
        return true;
      });
  if (written.ok() && fsync(fd) != 0) {
    written = absl::InternalError(Cat("cannot sync ", partial, ": ", strerror(errno)));
  }
  close(fd);
  absl::Status s =
      !size.ok()      ? size.status()
      : !written.ok() ? written
      : received != *size
          ? absl::DataLossError(Cat("the copy broke off after ", received, " of ", *size, " bytes"))
          : absl::OkStatus();
  if (s.ok()) {
    absl::MutexLock lock(&warm_mu_);  // a drop never sees the rename half done
    fs::rename(partial, path, ec);
    if (ec) s = absl::InternalError(Cat("cannot rename ", partial, ": ", ec.message()));
  }
  if (!s.ok()) {
    fs::remove(partial, ec);
    return s;
  }
  core::LogInfo("agent: copied warm state %s from another host: %d bytes in %s", key, received,
                absl::FormatDuration(absl::Now() - started));
  return absl::OkStatus();
}

absl::StatusOr<std::string> Agent::WarmStateFile(std::string_view key) {
  if (!IsWarmStateKey(key)) {
    return absl::InvalidArgumentError(Cat("warm state: key must be SERVICE.rREVISION, got ",
                                          core::Preview(Json(std::string(key)))));
  }
  const std::string path = WarmStatePath(key);
  if (!IdentityOf(path)) {
    return absl::NotFoundError(Cat("warm state ", key, ": host ", options_.name, " keeps none"));
  }
  return path;
}

absl::StatusOr<int64_t> Agent::SaveWarmState(std::string_view workload, std::string_view key) {
  if (!IsWarmStateKey(key)) {
    return absl::InvalidArgumentError(Cat("warm state of workload \"", workload,
                                          "\": key must be SERVICE.rREVISION, got ",
                                          core::Preview(Json(std::string(key)))));
  }
  BERTH_ASSIGN_OR_RETURN(auto found, FindTask(workload));
  runtime::ComputeDriver* driver = found.second;
  if (!driver->Capabilities().snapshot) {
    return absl::FailedPreconditionError(Cat("workload \"", workload, "\": the ", driver->Name(),
                                             " driver cannot save a task's state"));
  }
  BERTH_ASSIGN_OR_RETURN(const std::string dir, MakeWarmDir());
  std::error_code ec;
  const std::string path = WarmStatePath(key);
  const std::string partial = path + ".partial";
  absl::Status saved = driver->SaveState(found.first.task_id, partial);
  absl::MutexLock lock(&warm_mu_);  // a drop never sees the rename half done
  if (saved.ok()) {
    fs::rename(partial, path, ec);
    if (ec) saved = absl::InternalError(Cat("agent: cannot rename ", partial, ": ", ec.message()));
  }
  if (!saved.ok()) {
    fs::remove(partial, ec);
    return saved;
  }
  // The host keeps one state per service: the newest revision's.
  const std::string prefix = std::string(key.substr(0, key.rfind(".r") + 2));
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name != fs::path(path).filename().string()) {
      const std::string other = name.substr(0, name.find(".state"));
      if (IsWarmStateKey(other)) fs::remove(entry.path(), ec);
    }
  }
  const auto bytes = fs::file_size(path, ec);
  return ec ? int64_t{0} : static_cast<int64_t>(bytes);
}

std::optional<Agent::FileIdentity> Agent::IdentityOf(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return FileIdentity{.device = static_cast<uint64_t>(st.st_dev),
                      .inode = static_cast<uint64_t>(st.st_ino),
                      .mtime_ns = absl::ToUnixNanos(absl::TimeFromTimespec(st.st_mtim))};
}

namespace {

// The keys of the files in `dir` named KEY followed by `suffix`, KEY a warm state key. At most
// 4096 entries are looked at: the directory holds one state per service and the saves and copies
// under way, so this bounds a directory filled by something else.
std::vector<std::string> WarmKeysWithSuffix(const std::string& dir, std::string_view suffix) {
  constexpr int kMaxEntries = 4096;
  std::vector<std::string> keys;
  std::error_code ec;
  int seen = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end && seen < kMaxEntries;
       it.increment(ec)) {
    ++seen;
    const std::string name = it->path().filename().string();
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    std::string key = name.substr(0, name.size() - suffix.size());
    if (IsWarmStateKey(key)) keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace

std::vector<std::string> Agent::ListWarmStates() {
  std::vector<std::string> keys = WarmKeysWithSuffix(Cat(options_.data_dir, "/warm"), ".state");
  std::sort(keys.begin(), keys.end());
  if (keys.size() > core::kMaxReportedWarmStates) keys.resize(core::kMaxReportedWarmStates);
  absl::MutexLock lock(&warm_mu_);
  warm_listed_.clear();
  std::vector<std::string> out;
  for (std::string& key : keys) {
    std::optional<FileIdentity> id = IdentityOf(WarmStatePath(key));
    if (!id) continue;  // gone since, or not a plain file
    warm_listed_[key] = *id;
    out.push_back(std::move(key));
  }
  return out;
}

void Agent::SweepUnfinishedWarmStates() {
  const std::string dir = Cat(options_.data_dir, "/warm");
  for (std::string_view suffix : {".state.partial", ".state.copying"}) {
    for (const std::string& key : WarmKeysWithSuffix(dir, suffix)) {
      const std::string path = Cat(dir, "/", key, suffix);
      std::error_code ec;
      fs::remove(path, ec);
      if (ec) {
        core::LogWarn("agent: cannot delete unfinished warm state %s: %s", path, ec.message());
      } else {
        core::LogInfo("agent: deleted unfinished warm state %s", path);
      }
    }
  }
}

void Agent::DropWarmStates(const std::vector<std::string>& keys) {
  absl::MutexLock lock(&warm_mu_);
  for (const std::string& key : keys) {
    auto listed = warm_listed_.find(key);
    if (listed == warm_listed_.end()) continue;  // not reported: not the server's to drop
    const FileIdentity was = listed->second;
    warm_listed_.erase(listed);
    const std::string path = WarmStatePath(key);
    if (IdentityOf(path) != was) continue;  // saved again since it was reported, or gone
    std::error_code ec;
    fs::remove(path, ec);
    if (ec) {
      core::LogWarn("agent: cannot delete warm state %s (%s): %s", key, path, ec.message());
    } else {
      core::LogInfo("agent: deleted warm state %s: no service wants it any longer", key);
    }
  }
}

absl::StatusOr<Json> Agent::Stats(std::string_view workload) {
  BERTH_ASSIGN_OR_RETURN(auto found, FindTask(workload));
  const auto& [ref, driver] = found;
  BERTH_ASSIGN_OR_RETURN(runtime::TaskStatus st, driver->Inspect(ref.task_id));
  Json j = {{"workload", std::string(workload)},
            {"kind", ref.kind},
            {"task_id", ref.task_id},
            {"state", std::string(runtime::TaskStateName(st.state))},
            {"pid", st.pid},
            {"started_at", core::EncodeTime(st.started_at)}};
  if (st.exit) {
    j["exit_code"] = st.exit->exit_code;
    j["oom_killed"] = st.exit->oom_killed;
    return j;
  }
  auto usage = driver->Stats(ref.task_id);
  if (usage.ok()) {
    j["cpu_user_ms"] = absl::ToInt64Milliseconds(usage->cpu_user);
    j["cpu_system_ms"] = absl::ToInt64Milliseconds(usage->cpu_system);
    j["rss_bytes"] = usage->rss_bytes;
    j["processes"] = usage->processes;
    if (usage->disk) {
      j["disk_read_bytes"] = usage->disk->read;
      j["disk_write_bytes"] = usage->disk->written;
    }
    if (usage->net) {
      j["net_rx_bytes"] = usage->net->rx;
      j["net_tx_bytes"] = usage->net->tx;
    }
  }
  if (options_.extra_stats) {
    auto extra = options_.extra_stats(driver, ref.task_id);
    if (extra.ok() && extra->is_object()) {
      for (const auto& [k, v] : extra->items()) j[k] = v;
    }
  }
  return j;
}

}  // namespace berth::agent
