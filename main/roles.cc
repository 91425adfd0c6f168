#include "main/roles.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/cdi_specs.h"
#include "agent/inventory.h"
#include "api/api_server.h"
#include "api/cluster_routes.h"
#include "api/host_storage.h"
#include "api/local_images.h"
#include "api/routes_admin.h"
#include "api/routes_images.h"
#include "api/routes_jobs.h"
#include "api/routes_services.h"
#include "api/routes_sim.h"
#include "api/storenet_routes.h"
#include "api/task_api.h"
#include "cli/cli.h"
#include "control/control_plane.h"
#include "control/fleet_network.h"
#include "control/job_controller.h"
#include "control/leader.h"
#include "control/service_controller.h"
#include "core/json.h"
#include "core/log.h"
#include "core/strings.h"
#include "main/admin_cmd.h"
#include "main/agent_disks.h"
#include "main/agent_network.h"
#include "main/storenet_host.h"
#include "runtime/host/file.h"
#include "runtime/image/catalog.h"
#include "runtime/net/linux_network_driver.h"
#include "runtime/oci/oci_driver.h"
#include "runtime/process_driver.h"
#include "runtime/qemu/qemu_driver.h"
#include "sched/scheduler.h"
#include "sim/fill_runs.h"
#include "sim/sched_engine.h"
#include "state/etcd/etcd_store.h"
#include "state/sqlite_store.h"

namespace berth {

namespace fs = std::filesystem;
using core::Cat;
using core::Json;

namespace {

// Reads DIR/NAME, or creates it with a fresh random token readable by the owner only.
absl::StatusOr<std::string> LoadOrCreateToken(const std::string& dir, const std::string& name) {
  std::string path = Cat(dir, "/", name);
  std::ifstream in(path);
  if (in) {
    std::string token;
    std::getline(in, token);
    if (!token.empty()) return token;
  }
  unsigned char raw[24];
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read(fd, raw, sizeof raw) != static_cast<ssize_t>(sizeof raw)) {
    if (fd >= 0) close(fd);
    return absl::InternalError("cannot read /dev/urandom for a token");
  }
  close(fd);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char c : raw) {
    token.push_back(kHex[c >> 4]);
    token.push_back(kHex[c & 15]);
  }
  BERTH_RETURN_IF_ERROR(runtime::host::WriteFileAtomically(path, token + "\n", {.mode = 0600}));
  return token;
}

// Blocks the signals that end a role so every thread inherits the mask; WaitForSignal takes them.
sigset_t BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int WaitForSignal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

// Forwards the API's local-task calls (logs, console, exec, stats, warm states) to the local
// agent once it exists.
class LocalAgentHost : public agent::LocalHost {
 public:
  void Set(agent::Agent* a) { agent_ = a; }
  std::string HostName() override {
    agent::Agent* a = agent_.load();
    return a == nullptr ? std::string() : a->HostName();
  }
  absl::StatusOr<std::string> LogPath(std::string_view workload, std::string_view stream) override {
    agent::Agent* a = agent_.load();
    if (a == nullptr) return NotRunning();
    return a->LogPath(workload, stream);
  }
  absl::StatusOr<std::string> ConsolePath(std::string_view workload) override {
    agent::Agent* a = agent_.load();
    if (a == nullptr) return NotRunning();
    return a->ConsolePath(workload);
  }
  absl::StatusOr<api::wire::ExecReply> Exec(std::string_view workload,
                                            const api::wire::ExecRequest& request) override {
    agent::Agent* a = agent_.load();
    if (a == nullptr) return NotRunning();
    return a->Exec(workload, request);
  }
  absl::StatusOr<Json> Stats(std::string_view workload) override {
    agent::Agent* a = agent_.load();
    if (a == nullptr) return NotRunning();
    return a->Stats(workload);
  }
  absl::StatusOr<int64_t> SaveWarmState(std::string_view workload, std::string_view key) override {
    agent::Agent* a = agent_.load();
    if (a == nullptr) return NotRunning();
    return a->SaveWarmState(workload, key);
  }
  absl::StatusOr<std::string> WarmStateFile(std::string_view key) override {
    agent::Agent* a = agent_.load();
    if (a == nullptr) return NotRunning();
    return a->WarmStateFile(key);
  }

 private:
  static absl::Status NotRunning() {
    return absl::UnavailableError("the local agent is not running");
  }
  std::atomic<agent::Agent*> agent_{nullptr};
};

// The compute drivers of this host and its image catalog. Workload kind -> driver:
// process -> ProcessDriver, vm -> QemuDriver (qemu-system-x86_64 present), container ->
// OciDriver (runc present, running as root). Each is registered only when its fingerprint is
// healthy. runc keeps its state in AGENT_DIR/runc; containers' cgroups sit under
// /berth/<hash of AGENT_DIR>, so two agents on one machine never share a cgroup name.
struct LocalDrivers {
  std::unique_ptr<runtime::ProcessDriver> process;
  std::unique_ptr<runtime::QemuDriver> qemu;
  std::unique_ptr<runtime::OciDriver> oci;
  std::unique_ptr<runtime::ImageCatalog> images;
  std::unique_ptr<agent::CdiSpecs> cdi;      // the host's CDI specs, for containers' devices
  std::unique_ptr<runtime::MpsDaemons> mps;  // MPS daemons of shared GPUs; null without MPS
  std::string agent_dir;
  std::function<absl::StatusOr<std::vector<core::GpuDevice>>()> probe_gpus;  // nvidia-smi
  std::string nvidia_smi;  // the nvidia-smi found; empty = none
  std::string xid_log;     // the kernel log followed for GPU faults; empty = none
  std::map<std::string, runtime::ComputeDriver*> by_kind;
  std::map<std::string, std::string> fingerprint;  // reported with the host's inventory
};

// --vm-accel, else the agent config's vm_accel, else auto.
absl::StatusOr<std::string> VmAccelFrom(const core::Invocation& f,
                                        const agent::AgentConfig& config) {
  std::string mode = "auto";
  if (!config.vm_accel.empty()) mode = config.vm_accel;
  if (f.Given("vm-accel")) mode = f.String("vm-accel");
  if (auto parsed = runtime::ParseVmAccelMode(mode); !parsed.ok()) {
    return absl::InvalidArgumentError(Cat("--vm-accel: ", parsed.status().message()));
  }
  return mode;
}

LocalDrivers MakeDrivers(const std::string& agent_dir, const std::string& vm_accel,
                         std::ostream& err) {
  LocalDrivers d;
  std::error_code ec;
  const std::string dir = fs::absolute(agent_dir, ec).lexically_normal().string();
  // Cgroups of this agent's tasks sit under /berth/<hash of its directory>, so two agents on one
  // machine (tests) never share a cgroup name.
  char hash[17];
  snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(dir));
  const std::string cgroup_parent = Cat("/berth/", std::string_view(hash, 8));
  d.agent_dir = dir;
  runtime::ProcessDriverOptions popts;
  popts.cgroup_parent = cgroup_parent + "/process";
  d.process = std::make_unique<runtime::ProcessDriver>(popts);
  if (d.process->Fingerprint().healthy) d.by_kind["process"] = d.process.get();
  runtime::QemuDriverOptions qopts;
  qopts.accel = runtime::ParseVmAccelMode(vm_accel).value_or(runtime::VmAccelMode::kAuto);
  d.qemu = std::make_unique<runtime::QemuDriver>(qopts);
  runtime::DriverFingerprint qfp = d.qemu->Fingerprint();
  if (qfp.healthy) {
    d.by_kind["vm"] = d.qemu.get();
    for (const char* key : {"vm_accel", "vm_accel_reason", "vm_accel_fallback"}) {
      if (auto it = qfp.attributes.find(key); it != qfp.attributes.end()) {
        d.fingerprint[key] = it->second;
      }
    }
    if (qfp.attributes["vm_accel_fallback"] == "true") {
      err << "berth: warning: VMs run without KVM (much slower): "
          << qfp.attributes["vm_accel_reason"] << "\n";
    }
  } else {
    err << "berth: no vm driver: " << qfp.health_description << "\n";
  }
  runtime::OciDriverOptions oopts;
  oopts.runc_root = dir + "/runc";
  oopts.cgroup_parent = cgroup_parent;
  d.oci = std::make_unique<runtime::OciDriver>(oopts);
  runtime::DriverFingerprint ofp = d.oci->Fingerprint();
  if (ofp.healthy) {
    d.by_kind["container"] = d.oci.get();
  } else {
    err << "berth: no container driver: " << ofp.health_description << "\n";
  }
  auto catalog = runtime::ImageCatalog::Open(cli::ImagesDir(dir));
  if (catalog.ok()) {
    d.images = std::move(*catalog);
  } else {
    err << "berth: image catalog: " << catalog.status().message() << "\n";
  }
  return d;
}

// Reads the host's CDI specs into `d` for the agent; says what it skipped, and reports the
// device kinds it found in the fingerprint.
void LoadDeviceSpecs(const agent::AgentConfig& config, LocalDrivers& d, std::ostream& err) {
  d.cdi = std::make_unique<agent::CdiSpecs>(agent::LoadCdiSpecs(config.cdi_dirs));
  for (const std::string& problem : d.cdi->problems) {
    err << "berth: CDI spec skipped: " << problem << "\n";
  }
  if (!d.cdi->files.empty()) {
    d.fingerprint["cdi_specs"] = std::to_string(d.cdi->files.size());
  }
  d.xid_log = config.xid_log;
  if (std::string smi = agent::FindNvidiaSmi(config.nvidia_smi); !smi.empty()) {
    d.nvidia_smi = smi;
    d.probe_gpus = [smi]() -> absl::StatusOr<std::vector<core::GpuDevice>> {
      auto report = agent::QueryNvidiaSmi(runtime::host::RealExecutor(), smi);
      if (!report.ok()) return report.status();
      return report->gpus;
    };
  }
  d.mps = std::make_unique<runtime::MpsDaemons>(
      runtime::MpsOptions{.control_binary = config.mps_control, .root_dir = d.agent_dir + "/mps"});
  if (absl::Status s = d.mps->Available(); !s.ok()) {
    d.fingerprint["gpu_mps"] = Cat("unavailable: ", s.message());
    d.mps.reset();
  } else {
    d.fingerprint["gpu_mps"] = "ready";
  }
}

// Fills the agent options that depend on the drivers: image resolution and VM stats.
void WireDrivers(LocalDrivers& d, agent::AgentOptions& ao) {
  if (d.cdi) {
    ao.cdi = &d.cdi->registry;
    // Devices of other classes come from the CDI specs; their nodes are checked again with the
    // GPUs.
    ao.inventory.devices = agent::CdiClassDevices(d.cdi->registry);
    if (!ao.inventory.devices.empty()) {
      const runtime::CdiRegistry* registry = &d.cdi->registry;
      ao.probe_devices = [registry] { return agent::CdiClassDevices(*registry); };
    }
  }
  ao.xid_log = d.xid_log;
  ao.mps = d.mps.get();
  ao.probe_gpus = d.probe_gpus;
  ao.nvidia_smi = d.nvidia_smi;
  ao.drivers = d.by_kind;
  for (const auto& [k, v] : d.fingerprint) ao.inventory.fingerprint[k] = v;
  runtime::ImageCatalog* images = d.images.get();
  ao.resolve_image = [images](std::string_view kind,
                              std::string_view name) -> absl::StatusOr<agent::ResolvedImage> {
    if (images == nullptr) return absl::FailedPreconditionError("this host has no image catalog");
    auto entry = images->Get(name);
    if (!entry.ok()) {
      return absl::NotFoundError(Cat("not in this host's image catalog (", images->dir(),
                                     "); import it with `berth image import`"));
    }
    const bool vm_image =
        entry->kind == runtime::ImageKind::kKernel || entry->kind == runtime::ImageKind::kDisk;
    if (kind == "vm" && !vm_image) {
      return absl::InvalidArgumentError(Cat("is a ", runtime::ImageKindName(entry->kind),
                                            " image; a vm needs a kernel or disk image"));
    }
    if (kind == "container" && entry->kind != runtime::ImageKind::kRootfs) {
      return absl::InvalidArgumentError(Cat("is a ", runtime::ImageKindName(entry->kind),
                                            " image; a container needs a rootfs image"));
    }
    switch (entry->kind) {
      case runtime::ImageKind::kKernel:
        return agent::ResolvedImage{.path = entry->dir, .kernel_cmdline = entry->cmdline};
      case runtime::ImageKind::kDisk:
        return agent::ResolvedImage{.path = entry->disk};
      case runtime::ImageKind::kRootfs:
        return agent::ResolvedImage{.path = entry->rootfs};
    }
    return absl::InternalError("unknown image kind");
  };
  runtime::QemuDriver* qemu = d.qemu.get();
  ao.extra_stats = [qemu](runtime::ComputeDriver* driver,
                          std::string_view task_id) -> absl::StatusOr<Json> {
    if (driver != qemu) return Json::object();
    auto vm = qemu->GetVmStats(task_id);
    if (!vm.ok()) return vm.status();
    return Json{{"guest_cpu_ms", absl::ToInt64Milliseconds(vm->guest_cpu)},
                {"qmp_status", vm->qmp_status},
                {"block_read_bytes", vm->block_read_bytes},
                {"block_write_bytes", vm->block_write_bytes}};
  };
}

// The agent's config from the file `path` (none when empty), named `name` when that is given.
absl::StatusOr<agent::AgentConfig> AgentConfigFrom(const std::string& path,
                                                   const std::string& name) {
  agent::AgentConfig config;
  if (!path.empty()) {
    auto loaded = agent::LoadAgentConfig(path);
    if (!loaded.ok()) return loaded.status();
    config = *loaded;
  }
  if (!name.empty()) config.name = name;
  if (config.name.empty()) config.name = agent::LocalHostName();
  return config;
}

// The join token from --join-token-file, --join-token or BERTH_JOIN_TOKEN (in that order);
// empty when none is given.
absl::StatusOr<std::string> JoinTokenFrom(const core::Invocation& f) {
  if (f.Given("join-token-file") && f.Given("join-token")) {
    return absl::InvalidArgumentError("give --join-token-file or --join-token, not both");
  }
  if (f.Given("join-token-file")) {
    const std::string file = f.String("join-token-file");
    std::ifstream in(file);
    std::string token;
    if (!in || !std::getline(in, token)) {
      return absl::InvalidArgumentError(Cat("--join-token-file: cannot read a token from ", file));
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) {
      return absl::InvalidArgumentError(Cat("--join-token-file: ", file, " is empty"));
    }
    return token;
  }
  if (f.Given("join-token")) return f.String("join-token");
  const char* env = getenv("BERTH_JOIN_TOKEN");
  return std::string(env ? env : "");
}

// The store `serve --store URL` names: sqlite://PATH (the default, DIR/berth.db) or
// etcd://HOST:PORT[,HOST:PORT...].
absl::StatusOr<std::unique_ptr<state::Store>> OpenServerStore(std::string_view url,
                                                              const std::string& dir) {
  if (url.empty()) url = "sqlite://";
  if (absl::StartsWith(core::AbslView(url), "sqlite://")) {
    std::string path(url.substr(9));
    if (path.empty()) path = dir + "/berth.db";
    BERTH_ASSIGN_OR_RETURN(std::unique_ptr<state::SqliteStore> sqlite,
                           state::SqliteStore::Open(path));
    return std::unique_ptr<state::Store>(std::move(sqlite));
  }
  return state::OpenEtcdStore(url);
}

// What GET /v1/status says of the store `--store URL` names.
api::StoreDescription DescribeStore(std::string_view url, const std::string& dir) {
  if (absl::StartsWith(core::AbslView(url), "etcd://")) {
    api::StoreDescription d{.kind = "etcd"};
    for (absl::string_view e :
         absl::StrSplit(core::AbslView(url.substr(7)), ',', absl::SkipEmpty())) {
      d.endpoints.emplace_back(e);
    }
    return d;
  }
  std::string path(url.size() > 9 ? url.substr(9) : std::string_view());
  if (path.empty()) path = dir + "/berth.db";
  return api::StoreDescription{.kind = "sqlite", .endpoints = {path}};
}

absl::Status CheckStoreUrl(std::string_view v) {
  absl::string_view view = core::AbslView(v);
  if (absl::StartsWith(view, "sqlite://") || absl::StartsWith(view, "etcd://")) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      Cat("--store must be sqlite://PATH or etcd://HOST:PORT[,HOST:PORT...], got \"",
          v.substr(0, 64), "\""));
}

// "MIN-MAX", the host ports a server gives service replicas: 1024 <= MIN <= MAX <= 65535.
absl::StatusOr<std::pair<int, int>> ParseServicePorts(std::string_view text) {
  const size_t dash = text.find('-');
  int lo = 0, hi = 0;
  if (dash == std::string_view::npos ||
      !absl::SimpleAtoi(core::AbslView(text.substr(0, dash)), &lo) ||
      !absl::SimpleAtoi(core::AbslView(text.substr(dash + 1)), &hi) || lo < 1024 || hi > 65535 ||
      lo > hi) {
    return absl::InvalidArgumentError(
        Cat("--service-ports must be MIN-MAX with 1024 <= MIN <= MAX <= 65535, got \"",
            text.substr(0, 64), "\""));
  }
  return std::pair<int, int>{lo, hi};
}

int RunServe(core::Invocation& f) {
  std::ostream& out = f.out();
  std::ostream& err = f.err();
  if (auto accel = VmAccelFrom(f, agent::AgentConfig{}); !accel.ok()) {
    return f.UsageError(std::string(accel.status().message()));
  }
  const bool dev = f.Bool("dev");
  std::string dir = f.Given("data-dir") ? f.String("data-dir") : cli::DefaultDataDir();
  std::string listen = f.String("listen");
  auto colon = listen.rfind(':');
  int port = 0;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port)) port = 0;  // checked when parsed
  const absl::Duration ttl = f.Duration("host-ttl");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return f.Fail(Cat("cannot create data directory ", dir, ": ", ec.message()));
  }
  if (chmod(dir.c_str(), 0700) != 0) {
    return f.Fail(Cat("cannot make data directory ", dir, " private: ", strerror(errno)));
  }
  auto admin = LoadOrCreateToken(dir, "admin.token");
  auto join = LoadOrCreateToken(dir, "join.token");
  auto reader = LoadOrCreateToken(dir, "read.token");
  if (!admin.ok() || !join.ok() || !reader.ok()) {
    return f.Fail(Cat((!admin.ok()  ? admin.status()
                       : !join.ok() ? join.status()
                                    : reader.status())
                          .message()));
  }
  sigset_t signals = BlockStopSignals();

  const std::string store_url = f.Given("store") ? f.String("store") : "";
  auto store = OpenServerStore(store_url, dir);
  if (!store.ok()) {
    return f.Fail(Cat("cannot open the store: ", store.status().message()));
  }
  auto server_id = LoadOrCreateToken(dir, "server.id");
  if (!server_id.ok()) return f.Fail(Cat(server_id.status().message()));
  // The servers on one store elect a leader; only the leader runs the control loop, and every
  // write its control plane makes is fenced by its term. One server on SQLite simply leads.
  control::ControlPlane* control_ptr = nullptr;  // set below, before the election starts
  control::LeaderElectionOptions eopts;
  eopts.lease_ttl = f.Duration("lease-ttl");
  eopts.on_elected = [&control_ptr](int64_t) { control_ptr->Start(); };
  eopts.on_lost = [&control_ptr] { control_ptr->Stop(); };
  control::LeaderElection election(store->get(), {.id = server_id->substr(0, 12)}, eopts);
  control::FencedStore fenced(store->get(), [&election] { return election.token(); });
  control::ControlPlaneOptions copts;
  copts.host_ttl = ttl;
  copts.failover_grace = f.Duration("failover-grace");
  if (f.Given("policy")) copts.policy = f.String("policy");
  copts.allow_root_workloads = f.Bool("allow-root-workloads");
  control::ControlPlane control(&fenced, copts);
  control_ptr = &control;
  // However this function returns, the election ends (and stops the loop) before the control
  // plane goes.
  absl::Cleanup stop_election = [&election] { election.Stop(); };
  LocalAgentHost logs;
  api::ApiServerOptions aopts;
  aopts.host = listen.substr(0, colon);
  aopts.port = static_cast<uint16_t>(port);
  aopts.admin_token = *admin;
  aopts.agent_tokens = {*join};
  aopts.read_tokens = {*reader};
  aopts.workers = static_cast<int>(f.Int("api-workers"));
  aopts.max_queued = static_cast<size_t>(f.Int("api-queue"));
  // The local host's image catalog (dev mode), attached once the local agent runs; imports
  // read only beneath the import directory.
  std::unique_ptr<api::HostImages> images;
  api::LocalHostImages* local_images = nullptr;
  if (dev) {
    const std::string import_dir =
        fs::absolute(f.Given("image-import-dir") ? f.String("image-import-dir") : dir + "/imports",
                     ec)
            .lexically_normal()
            .string();
    fs::create_directories(import_dir, ec);
    if (ec) {
      return f.Fail(
          Cat("cannot create the image import directory ", import_dir, ": ", ec.message()));
    }
    auto owned = std::make_unique<api::LocalHostImages>(import_dir);
    local_images = owned.get();
    images = std::move(owned);
  }
  api::ApiServer server(aopts, &control, dev ? &logs : nullptr);
  api::AddImageRoutes(server.router(), &control, images.get());
  api::AddClusterRoutes(server.router(), &election, DescribeStore(store_url, dir));
  // Services: replicas kept by their controller, health probed from this server; only the
  // leader's controller acts. Endpoints listen here too, on the API's address: the server
  // already reaches every replica (it probes them) and knows at once which are ready and which
  // are leaving, so no readiness has to travel to the agents before a replica may be stopped.
  std::unique_ptr<control::HealthProber> prober = control::NewSocketProber();
  std::string endpoint_address = aopts.host;
  if (endpoint_address.size() > 2 && endpoint_address.front() == '[') {
    endpoint_address = endpoint_address.substr(1, endpoint_address.size() - 2);
  }
  std::unique_ptr<control::Endpoints> endpoints = control::NewProxyEndpoints(endpoint_address);
  const std::pair<int, int> service_ports =
      *ParseServicePorts(f.String("service-ports"));  // checked
  control::ServiceController services(
      &control, control::ServiceControllerOptions{
                    .prober = prober.get(),
                    .endpoints = endpoints.get(),
                    .port_min = service_ports.first,
                    .port_max = service_ports.second,
                    .active = [&election] { return election.IsLeader(); },
                    .save_warm_state =
                        [&server](const std::string& workload, const std::string& key) {
                          return server.SaveWarmState(workload, key);
                        }});
  api::AddServiceRoutes(server.router(), &services);
  // Training jobs: gangs of tasks, retried by their controller; only the leader's acts. A job's
  // checkpoint disk passes between attempts through the disks' service, set once made below.
  control::StorageService* job_disks = nullptr;
  control::JobController jobs(
      &control, control::JobControllerOptions{
                    .active = [&election] { return election.IsLeader(); },
                    .release_disk =
                        [&job_disks](const std::string& disk, const std::string& workload) {
                          return job_disks == nullptr ? absl::OkStatus()
                                                      : job_disks->Release(disk, workload);
                        }});
  api::AddJobRoutes(server.router(), &jobs);
  // Fill comparisons for the dashboard's Simulator view, on half the machine's threads.
  sim::FillRuns sim_runs(
      sim::SchedEngineFactory(),
      sim::FillRunsOptions{
          .jobs = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2)});
  api::AddSimRoutes(server.router(), &sim_runs, &control);
  api::AddAdminRoutes(server.router(), dynamic_cast<state::Snapshotter*>(store->get()), dir);
  auto snapshots = StartSnapshotSchedule(f, store->get(), dir, control.clock(),
                                         [&election] { return election.IsLeader(); });
  if (!snapshots.ok()) {
    return f.Fail(Cat("scheduled snapshots: ", snapshots.status().message()));
  }
  // Disks and networks of this machine, re-declared from the store before serving.
  std::unique_ptr<LocalStorageNetwork> storenet;
  if (dev) {
    const std::string backups =
        fs::absolute(f.Given("backup-dir") ? f.String("backup-dir") : dir + "/backups", ec)
            .lexically_normal()
            .string();
    storenet = std::make_unique<LocalStorageNetwork>(store->get(), control.clock(), dir + "/agent",
                                                     backups);
    storenet->Start(err);
    storenet->AddRoutes(server.router());
    job_disks = &storenet->storage();
    control.SetReferenceCheck(
        [sn = storenet.get()](core::WorkloadSpec* spec) { return sn->CheckReferences(*spec); });
  }
  // On a fleet the server records networks, groups, addresses and disks; each agent makes its
  // part, and makes the volumes of its pools when the server asks it to.
  std::unique_ptr<control::FleetNetworks> fleet_networks;
  std::unique_ptr<control::FleetStorage> fleet_storage;
  if (!dev) {
    fleet_networks =
        std::make_unique<control::FleetNetworks>(store->get(), control.clock(), &control);
    fleet_storage = std::make_unique<control::FleetStorage>(store->get(), control.clock(), &control,
                                                            api::RemoteStorageOf(&control),
                                                            api::RemoteTaskDisksOf(&control));
    fleet_networks->SetAlsoRelease(
        [fs = fleet_storage.get()](const std::string& workload) { fs->Release(workload); });
    if (absl::Status s = fleet_networks->Start(); !s.ok()) {
      err << "berth serve: networks: " << s.message() << "\n";
    }
    if (absl::Status s = fleet_storage->Start(); !s.ok()) {
      err << "berth serve: disks: " << s.message() << "\n";
    }
    api::AddNetworkRoutes(server.router(), &fleet_networks->service());
    api::AddFleetNetworkRoutes(server.router(), fleet_networks.get());
    api::AddStorageRoutes(server.router(), &fleet_storage->service());
    job_disks = &fleet_storage->service();
    api::AddFleetStorageRoutes(server.router(), fleet_storage.get());
    control.SetReferenceCheck(
        [fn = fleet_networks.get(), fs = fleet_storage.get()](core::WorkloadSpec* spec) {
          BERTH_RETURN_IF_ERROR(fn->CheckReferences(*spec));
          return fs->CheckAndPin(spec);
        });
  }
  auto bound = server.Start();
  if (!bound.ok()) {
    return f.Fail(Cat("cannot listen on ", listen, ": ", bound.status().message()));
  }
  if (storenet) storenet->ReserveApiPort(*bound);
  services.Start();
  jobs.Start();
  std::string url = Cat("http://", aopts.host, ":", *bound);
  election.SetAddress(f.Given("advertise") ? f.String("advertise") : url);
  // One round before server.json is written: alone on its store, the server leads by then.
  core::OkOrReport("serve", "leader election", election.Step());
  election.Start();
  {
    Json info = {{"url", url}, {"pid", getpid()}, {"dev", dev}, {"id", election.self().id}};
    // The server runs either way; only the CLI's way of finding it without --server is missing.
    core::ReportError("serve", Cat("data directory ", dir, ": server.json"),
                      runtime::host::WriteFileAtomically(dir + "/server.json", info.dump() + "\n",
                                                         {.mode = 0644}));
  }

  LocalDrivers drivers;
  std::unique_ptr<agent::Agent> local_agent;
  if (dev) {
    auto config = AgentConfigFrom(f.String("agent-config"), "");
    if (!config.ok()) {
      return f.Fail(Cat(config.status().message()));
    }
    auto vm_accel = VmAccelFrom(f, *config);
    if (!vm_accel.ok()) {
      return f.Fail(Cat(vm_accel.status().message()));
    }
    std::string agent_dir = dir + "/agent";
    fs::create_directories(agent_dir, ec);
    drivers = MakeDrivers(agent_dir, *vm_accel, err);
    LoadDeviceSpecs(*config, drivers, err);
    auto inv = agent::DetectInventory(*config, agent_dir);
    if (!inv.ok()) {
      return f.Fail(Cat(inv.status().message()));
    }
    agent::AgentOptions ao;
    ao.server_url = url;
    ao.token = *join;
    ao.name = config->name;
    ao.data_dir = agent_dir;
    ao.inventory = *inv;
    WireDrivers(drivers, ao);
    if (storenet) storenet->WireAgent(ao);
    local_agent = std::make_unique<agent::Agent>(ao);
    absl::Status started = local_agent->Start();
    if (!started.ok()) {
      return f.Fail(Cat("local agent: ", started.message()));
    }
    logs.Set(local_agent.get());
    if (local_images != nullptr) local_images->Attach(ao.name, drivers.images.get());
    if (storenet) storenet->SetAgent(local_agent.get());
  }
  if (f.json()) {
    out << Json{{"event", "serving"},
                {"url", url},
                {"data_dir", dir},
                {"dev", dev},
                {"admin_token_file", dir + "/admin.token"},
                {"read_token_file", dir + "/read.token"},
                {"dashboard", url + "/ui/"}}
               .dump()
        << std::endl;
  } else {
    out << "berth: serving on " << url << " (data in " << dir
        << (dev ? ", dev mode with a local agent" : "") << ")\nberth: admin token in " << dir
        << "/admin.token; try `berth workload ls`, or the dashboard at " << url << "/ui/"
        << std::endl;
  }

  int sig = WaitForSignal(signals);
  if (f.json()) {
    out << Json{{"event", "shutdown"}, {"signal", sig}}.dump() << std::endl;
  } else {
    out << "berth: signal " << sig << ", shutting down" << std::endl;
  }
  logs.Set(nullptr);
  if (local_images != nullptr) local_images->Attach("", nullptr);  // waits for imports
  if (storenet) storenet->SetAgent(nullptr);
  if (local_agent) local_agent->Stop();
  server.Stop();
  jobs.Stop();
  services.Stop();
  election.Stop();  // hands the lead over at once
  control.Stop();
  if (fs::remove(dir + "/server.json", ec); ec) {
    core::ReportError("serve", Cat("data directory ", dir, ": server.json"),
                      absl::InternalError(ec.message()));
  }
  return 0;
}

// What the task API's disk routes do to this host's running tasks (api/host_storage.h), through
// the agent while it runs: a VM's QEMU plugs, pulls out or snapshots the disk. A container keeps
// the disks it mounted at start; one attached since is not mounted, and may go.
api::HostTaskDisks RunningTaskDisks(std::atomic<agent::Agent*>* agent, const std::string& dir) {
  auto running = [agent]() -> absl::StatusOr<agent::Agent*> {
    agent::Agent* a = agent->load();
    if (a == nullptr) return absl::UnavailableError("the agent is not running");
    return a;
  };
  return api::HostTaskDisks{
      .plug = [running](std::string_view workload, const control::HostVolume& v,
                        std::string_view disk) -> absl::Status {
        BERTH_ASSIGN_OR_RETURN(agent::Agent * a, running());
        return a->AttachDisk(
            workload,
            runtime::TaskDisk{.name = std::string(disk), .path = v.path, .format = v.format});
      },
      .unplug = [running, dir](std::string_view workload, std::string_view disk) -> absl::Status {
        BERTH_ASSIGN_OR_RETURN(agent::Agent * a, running());
        absl::Status s = a->DetachDisk(workload, disk);
        if (absl::IsUnimplemented(s) && !IsMountPoint(Cat(dir, "/mounts/", workload, "/", disk))) {
          return absl::NotFoundError(Cat("workload \"", workload, "\" has not mounted it"));
        }
        return s;
      },
      .snapshot = [running](std::string_view workload, std::string_view disk,
                            std::string_view snapshot) -> absl::Status {
        BERTH_ASSIGN_OR_RETURN(agent::Agent * a, running());
        return a->SnapshotDisk(workload, disk, snapshot);
      }};
}

int RunAgent(core::Invocation& f) {
  std::ostream& out = f.out();
  std::ostream& err = f.err();
  std::string server = f.Given("server") ? f.String("server") : f.String("addr");
  if (server.empty() && getenv("BERTH_ADDR")) server = getenv("BERTH_ADDR");
  auto token = JoinTokenFrom(f);
  if (!token.ok()) return f.UsageError(std::string(token.status().message()));
  if (server.empty()) return f.UsageError("--server is required (or set BERTH_ADDR)");
  if (auto accel = VmAccelFrom(f, agent::AgentConfig{}); !accel.ok()) {
    return f.UsageError(std::string(accel.status().message()));
  }
  if (server.rfind("http://", 0) != 0) server = "http://" + server;
  std::string dir = f.Given("data-dir") ? f.String("data-dir") : cli::DefaultDataDir() + "/agent";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return f.Fail(Cat("cannot create data directory ", dir, ": ", ec.message()));
  // Task directories and logs are the agent's: workloads running as other users stay out.
  if (chmod(dir.c_str(), 0700) != 0) {
    return f.Fail(Cat("cannot make data directory ", dir, " private: ", strerror(errno)));
  }
  auto config = AgentConfigFrom(f.String("config"), f.String("name"));
  if (!config.ok()) {
    return f.Fail(Cat(config.status().message()));
  }
  auto vm_accel = VmAccelFrom(f, *config);
  if (!vm_accel.ok()) {
    return f.UsageError(std::string(vm_accel.status().message()));
  }
  // A host that registered before comes back with its credential; a new one needs the token.
  if (token->empty() && !fs::exists(agent::HostCredentialPath(dir))) {
    return f.UsageError(
        "a join token is needed to register: --join-token-file FILE or BERTH_JOIN_TOKEN");
  }
  auto inv = agent::DetectInventory(*config, dir);
  if (!inv.ok()) {
    return f.Fail(Cat(inv.status().message()));
  }
  // Disks: this host's own pool, and the fleet's shared pool where it mounts one. The server
  // reaches them through the task API; workloads get their disks through the agent's hooks.
  const std::string backups = dir + "/backups";
  std::unique_ptr<control::StorageHost> own_pool = NewLocalStorageHost(dir, backups);
  std::unique_ptr<control::StorageHost> shared_pool;
  std::map<std::string, control::StorageHost*> pools = {
      {std::string(api::kHostPool), own_pool.get()}};
  if (f.Given("shared-pool")) {
    const std::string shared_dir = f.String("shared-pool");
    if (!fs::is_directory(shared_dir, ec)) {
      return f.UsageError(Cat("--shared-pool ", shared_dir,
                              " is not a directory; mount the fleet's shared pool there first"));
    }
    shared_pool = NewSharedStorageHost(dir, shared_dir, backups, config->name);
    pools[std::string(core::kSharedPool)] = shared_pool.get();
    inv->labels[std::string(core::kSharedPoolLabel)] = "true";
  }
  for (const auto& [name, pool] : pools) {
    if (absl::Status s = pool->Prepare(); !s.ok()) {
      return f.Fail(Cat("disk pool ", name, ": ", s.message()));
    }
  }
  sigset_t signals = BlockStopSignals();
  LocalDrivers drivers = MakeDrivers(dir, *vm_accel, err);
  LoadDeviceSpecs(*config, drivers, err);
  agent::AgentOptions ao;
  ao.server_url = server;
  ao.token = *token;
  ao.name = config->name;
  ao.data_dir = dir;
  ao.inventory = *inv;
  ao.publish_address = f.String("publish-address");
  WireDrivers(drivers, ao);
  // The task API: the server relays logs, console, stats and exec of this host's workloads to
  // it, with the token each heartbeat carries (made here, kept in memory only).
  LocalAgentHost tasks;
  std::atomic<agent::Agent*> running_agent{nullptr};  // set while the agent runs
  std::unique_ptr<api::TaskApiServer> task_api;
  const std::string task_listen = f.String("task-api-listen");
  if (task_listen != "none") {
    auto task_token = api::NewTaskApiToken();
    if (!task_token.ok()) return f.Fail(Cat("task API: ", task_token.status().message()));
    const auto colon = task_listen.rfind(':');
    std::string task_host = task_listen.substr(0, colon);
    if (task_host.size() > 2 && task_host.front() == '[') {
      task_host = task_host.substr(1, task_host.size() - 2);
    }
    int task_port = 0;
    if (!absl::SimpleAtoi(task_listen.substr(colon + 1), &task_port)) task_port = 0;  // checked
    task_api = std::make_unique<api::TaskApiServer>(
        api::TaskApiOptions{
            .host = task_host, .port = static_cast<uint16_t>(task_port), .token = *task_token},
        &tasks);
    api::AddHostStorageRoutes(task_api->routes(), pools, RunningTaskDisks(&running_agent, dir));
    auto bound = task_api->Start();
    if (!bound.ok()) {
      return f.Fail(Cat("cannot serve the task API on ", task_listen, ": ",
                        bound.status().message(),
                        "; choose another --task-api-listen (port 0 picks a free one)"));
    }
    ao.task_api = api::wire::TaskApiReport{.port = *bound, .token = *task_token};
  }
  // Berth networks: this host's part, made from the plan the server answers.
  runtime::net::LinuxNetworkDriver::Options net_options;
  net_options.state_dir = dir + "/net";
  fs::create_directories(net_options.state_dir, ec);
  net_options.instance = NetworkInstanceId(dir);
  runtime::net::LinuxNetworkDriver net_driver(net_options);
  AgentNetworks networks(AgentNetworksFor(server, dir, ao.name, net_options.instance), &net_driver);
  networks.Wire(ao);
  AgentDisks disks(AgentDisksFor(HostCaller(server, dir, ao.name), dir, ao.name, pools));
  disks.Wire(ao);
  agent::Agent a(ao);
  tasks.Set(&a);
  running_agent.store(&a);
  absl::Status started = a.Start();
  if (!started.ok()) {
    if (task_api) task_api->Stop();
    running_agent.store(nullptr);
    tasks.Set(nullptr);
    return f.Fail(Cat(started.message()));
  }
  networks.Start();
  if (f.json()) {
    Json joining = {{"event", "joining"}, {"host", ao.name}, {"server", server}};
    joining["task_api_port"] = ao.task_api ? Json(ao.task_api->port) : Json(nullptr);
    out << joining.dump() << std::endl;
  } else {
    out << "berth agent: host " << ao.name << " joining " << server;
    if (ao.task_api) out << "; task API on port " << ao.task_api->port;
    out << std::endl;
  }
  WaitForSignal(signals);
  // The task API first: its follows end and its execs return while the agent still answers.
  if (task_api) task_api->Stop();
  running_agent.store(nullptr);
  tasks.Set(nullptr);
  networks.Stop();
  a.Stop();
  return 0;
}

const core::FlagDef kVmAccelFlag = {
    .name = "vm-accel",
    .type = core::FlagType::kEnum,
    .help =
        "auto: use KVM when a probe guest runs under it at start, TCG otherwise, with a\n"
        "warning and a host event saying why; kvm or tcg: use that. The agent config's\n"
        "vm_accel sets the same. `berth host get` shows it.",
    .default_value = "auto",
    .choices = {"auto", "kvm", "tcg"}};

// A flag check: a duration from `lo` to `hi`; the message names the flag and gives `example`.
std::function<absl::Status(std::string_view)> DurationBetween(std::string flag, absl::Duration lo,
                                                              absl::Duration hi,
                                                              std::string example) {
  return [flag = std::move(flag), lo, hi, example = std::move(example)](std::string_view v) {
    absl::Duration d;
    if (!absl::ParseDuration(std::string(v), &d) || d < lo || d > hi) {
      return absl::InvalidArgumentError(
          Cat("--", flag, " must be a duration from ", absl::FormatDuration(lo), " to ",
              absl::FormatDuration(hi), ", like ", example, ", got \"", v.substr(0, 64), "\""));
    }
    return absl::OkStatus();
  };
}

absl::Status CheckPublishAddress(std::string_view address) {
  in_addr parsed{};
  if (inet_pton(AF_INET, std::string(address).c_str(), &parsed) != 1) {
    return absl::InvalidArgumentError(
        Cat("--publish-address must be an IPv4 address, got \"", address.substr(0, 64), "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckTaskApiListen(std::string_view listen) {
  if (listen == "none") return absl::OkStatus();
  auto colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(listen.data() + colon + 1, listen.size() - colon - 1),
                        &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        Cat("--task-api-listen must be HOST:PORT or none, got \"", listen.substr(0, 64), "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckListen(std::string_view listen) {
  auto colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string_view::npos ||
      !absl::SimpleAtoi(absl::string_view(listen.data() + colon + 1, listen.size() - colon - 1),
                        &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(Cat("--listen must be HOST:PORT, got \"", listen, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

core::Command ServeCommand() {
  using core::FlagType;
  core::Command serve{
      .name = "serve",
      .section = "Server and agents",
      .summary = "run the API server (--dev: with a local agent)",
      .description =
          "Runs the Berth API server on the embedded SQLite store in DIR (default: BERTH_DATA_DIR "
          "or\n~/.berth), or on the store --store names. The admin token is written to "
          "DIR/admin.token (mode 0600), the agents' "
          "join token to\nDIR/join.token, a read-only token (GET requests and /metrics, not logs) "
          "to DIR/read.token,\nand the address to DIR/server.json, where the CLI finds "
          "them. With --json the\nstartup and shutdown lines are JSON objects.",
      .flags =
          {{.name = "dev",
            .type = FlagType::kBool,
            .help = "also run an agent for this machine in the same process, so workloads run "
                    "here"},
           {.name = "data-dir",
            .help = "the server's data directory (default BERTH_DATA_DIR or "
                    "~/.berth)",
            .value_name = "DIR"},
           {.name = "store",
            .help =
                "where the server keeps its state: sqlite://PATH (default sqlite://DIR/berth.db)\n"
                "or etcd://HOST:PORT[,HOST:PORT...], a running etcd v3 cluster. Several\n"
                "servers may share one etcd store: they elect a leader, which alone schedules;\n"
                "the others answer reads and forward writes to it (docs/operations.md)",
            .value_name = "URL",
            .check = CheckStoreUrl},
           {.name = "advertise",
            .help = "the URL the other servers forward writes to and `berth status` shows\n"
                    "(default http://LISTEN with the port bound)",
            .value_name = "URL"},
           {.name = "lease-ttl",
            .type = FlagType::kDuration,
            .help =
                "the leader's lease: a leader that stops renewing it (killed, cut off from the\n"
                "store) is replaced this long after its last renewal (etcd's minimum is 2s)",
            .default_value = "3s",
            .check = DurationBetween("lease-ttl", absl::Seconds(1), absl::Minutes(10), "3s")},
           {.name = "listen",
            .help = "address to serve on; port 0 picks a free one",
            .default_value = "127.0.0.1:7070",
            .value_name = "HOST:PORT",
            .check = CheckListen},
           {.name = "api-workers",
            .type = FlagType::kInt,
            .help = "threads that run API handlers; 0: one per CPU, at least 4",
            .default_value = "0",
            .min = 0,
            .max = 1024},
           {.name = "api-queue",
            .type = FlagType::kInt,
            .help = "API requests that may wait for a handler thread; more get 503 with\n"
                    "Retry-After",
            .default_value = "1024",
            .min = 1,
            .max = 1000000},
           {.name = "host-ttl",
            .type = FlagType::kDuration,
            .help = "a host without heartbeats this long is marked down; its agent, if alive but\n"
                    "cut off, stops its workloads at the same age (fencing; docs/cluster.md)",
            .default_value = "10s",
            .check =
                [](std::string_view v) {
                  absl::Duration d;
                  if (!absl::ParseDuration(std::string(v), &d) || d <= absl::ZeroDuration()) {
                    return absl::InvalidArgumentError(
                        Cat("--host-ttl must be a duration like 10s, got \"", v, "\""));
                  }
                  return absl::OkStatus();
                }},
           {.name = "failover-grace",
            .type = FlagType::kDuration,
            .help = "after --host-ttl, how long a down host's workloads with restart policy\n"
                    "always or on-failure wait before they are placed on other hosts (the time\n"
                    "a cut-off agent has to stop them)",
            .default_value = "3s",
            .check =
                DurationBetween("failover-grace", absl::ZeroDuration(), absl::Hours(24), "3s")},
           {.name = "service-ports",
            .help = "the host ports given to service replicas that share their host's network\n"
                    "(PORT and BERTH_PORT); an endpoint's host_port must be outside it",
            .default_value = "20000-32767",
            .value_name = "MIN-MAX",
            .check = [](std::string_view v) { return ParseServicePorts(v).status(); }},
           {.name = "policy",
            .help = "placement policy: a ranker or '+'-joined weighted rankers, spelled as for\n"
                    "berth sim (default \"default\", chosen with berth sim; e.g. binpack, fgd-ref)",
            .value_name = "NAME",
            .check = [](std::string_view v) { return sched::Policy::Parse(v).status(); }},
           {.name = "agent-config",
            .help = "the local agent's config file (labels, declared GPUs) in --dev mode",
            .value_name = "FILE"},
           [] {
             core::FlagDef f = kVmAccelFlag;
             f.help = "how the local agent runs VMs in --dev mode (as for berth agent)";
             return f;
           }(),
           {.name = "backup-dir",
            .help = "where disk backups are written and restored from in --dev mode (default\n"
                    "DIR/backups): the API's backup and restore take only file names inside it",
            .value_name = "DIR"},
           {.name = "image-import-dir",
            .help = "where the API's image imports read from in --dev mode (default\n"
                    "DIR/imports): POST /v1/hosts/NAME/images takes only file names inside it",
            .value_name = "DIR"},
           {.name = "allow-root-workloads",
            .type = FlagType::kBool,
            .help = "accept process workloads with `user: root` (or uid/gid 0); without it they\n"
                    "are refused (403) and process workloads run as an unprivileged user\n"
                    "(default nobody, 65534:65534)"}},
      .run = RunServe};
  for (core::FlagDef& flag : SnapshotScheduleFlags()) serve.flags.push_back(std::move(flag));
  return serve;
}

core::Command AgentCommand() {
  return core::Command{
      .name = "agent",
      .section = "Server and agents",
      .summary = "run the agent for this host",
      .synopsis = "--server URL [--join-token-file FILE]",
      .description =
          "Runs the agent for this host: registers its CPUs, memory and GPUs (nvidia-smi, or the "
          "config\nfile's declared GPUs), heartbeats, and runs the workloads the server assigns "
          "to it.\nThe join token is used once, to register: the server answers with a "
          "credential for this host\nalone, kept in DIR/host.credential (mode 0600), which the "
          "agent uses for everything else and to\nregister again after a restart (then no join "
          "token is needed). A host name already registered\ncan only be taken by its own "
          "credential; `berth host rm NAME` frees it once the host is down.\nWith --json the "
          "startup line is a JSON object.",
      .flags = {{.name = "server",
                 .help = "the server's URL, e.g. http://10.0.0.1:7070 (default BERTH_ADDR); with\n"
                         "several servers, their URLs comma-separated: the agent moves on to the\n"
                         "next when one cannot be reached",
                 .value_name = "URL"},
                {.name = "addr", .help = "the same as --server", .value_name = "URL"},
                {.name = "join-token-file",
                 .help = "a file holding the server's join token (its DATA_DIR/join.token); or "
                         "set\nBERTH_JOIN_TOKEN",
                 .value_name = "FILE"},
                {.name = "join-token",
                 .help = "the join token itself; works too, but any user can read it in `ps`",
                 .value_name = "TOKEN"},
                {.name = "config",
                 .help = "YAML/JSON: name, labels, cpu, memory, gpus, vm_accel",
                 .value_name = "FILE"},
                {.name = "data-dir",
                 .help = "where task records and logs are kept (default: BERTH_DATA_DIR/agent "
                         "or\n~/.berth/agent)",
                 .value_name = "DIR"},
                {.name = "name",
                 .help = "the host's name (default: the config file's, else the machine's)",
                 .value_name = "NAME"},
                {.name = "task-api-listen",
                 .help = "where the agent serves its task API, which the server relays\n"
                         "`berth workload logs|console|stats|exec` of this host's workloads to;\n"
                         "port 0 picks a free one. The server reaches it at the address the\n"
                         "agent's heartbeats come from, with a token made at each start and sent\n"
                         "with them. Plain HTTP, like the API: keep it on a private network.\n"
                         "none: serve nothing (those commands then fail for this host)",
                 .default_value = "0.0.0.0:0",
                 .value_name = "HOST:PORT",
                 .check = CheckTaskApiListen},
                {.name = "publish-address",
                 .help = "the address a VM's published ports listen on (its `ports`, and the\n"
                         "host port of a service replica): the server probes a replica's health\n"
                         "and its endpoint forwards there, at the address this host's\n"
                         "heartbeats come from. A process or container with ports listens where\n"
                         "it binds itself",
                 .default_value = "0.0.0.0",
                 .value_name = "IPV4",
                 .check = CheckPublishAddress},
                {.name = "shared-pool",
                 .help = "a directory every host of the fleet mounts (NFS, say) holding the\n"
                         "shared disk pool: disks made with `berth disk create --pool shared`\n"
                         "live there, and a workload on them can run on any host that mounts it\n"
                         "(and move to another when its host is lost). This host's own pool is\n"
                         "DATA_DIR/pools/default (--data-dir) either way",
                 .value_name = "DIR"},
                kVmAccelFlag},
      .run = RunAgent};
}

}  // namespace berth
