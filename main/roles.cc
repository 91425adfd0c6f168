#include "main/roles.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "agent/inventory.h"
#include "api/api_server.h"
#include "api/routes_images.h"
#ifdef BERTH_WITH_IMAGE_API
#include "api/local_images.h"
#endif
#include "cli/cli.h"
#include "control/control_plane.h"
#include "core/json.h"
#include "core/strings.h"
#include "runtime/process_driver.h"
#include "sched/scheduler.h"
#ifdef BERTH_WITH_VM_DRIVERS
#include "runtime/image/catalog.h"
#include "runtime/oci/oci_driver.h"
#include "runtime/qemu/qemu_driver.h"
#endif
#include "state/sqlite_store.h"
#ifdef BERTH_WITH_STORENET
#include "main/storenet_host.h"
#endif

namespace berth {

namespace fs = std::filesystem;
using core::Cat;
using core::Json;

namespace {

struct Flags {
  std::map<std::string, std::string> values;
  std::map<std::string, bool> switches;
};

// Parses --name VALUE / --name=VALUE for the flags in `valued` and bare switches otherwise.
bool ParseFlags(const std::vector<std::string>& args, const std::vector<std::string>& valued,
                Flags* f, std::ostream& err) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], v;
    bool has = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
      has = true;
    }
    if (std::find(valued.begin(), valued.end(), a) != valued.end()) {
      if (!has) {
        if (i + 1 >= args.size()) {
          err << "berth: flag " << a << " needs a value\n";
          return false;
        }
        v = args[++i];
      }
      f->values[a] = v;
    } else if (a.rfind("-", 0) == 0) {
      f->switches[a] = true;
    } else {
      err << "berth: unexpected argument \"" << a << "\"\n";
      return false;
    }
  }
  return true;
}

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
  std::string tmp = path + ".tmp";
  int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return absl::InternalError(Cat("cannot write ", tmp));
  std::string line = token + "\n";
  bool ok =
      write(out, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(out) == 0;
  close(out);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(Cat("cannot write ", path));
  }
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

// Forwards the API's local-task calls (logs, console, exec, stats) to the local agent once it
// exists.
class LocalAgentHost : public agent::LocalHost {
 public:
  void Set(agent::Agent* a) { agent_ = a; }
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
#ifdef BERTH_WITH_VM_DRIVERS
  std::unique_ptr<runtime::QemuDriver> qemu;
  std::unique_ptr<runtime::OciDriver> oci;
  std::unique_ptr<runtime::ImageCatalog> images;
#endif
  std::map<std::string, runtime::ComputeDriver*> by_kind;
  std::map<std::string, std::string> fingerprint;  // reported with the host's inventory
};

// --vm-accel, else the agent config's vm_accel, else auto.
absl::StatusOr<std::string> VmAccelFrom(const Flags& f, const agent::AgentConfig& config) {
  std::string mode = "auto";
  if (!config.vm_accel.empty()) mode = config.vm_accel;
  if (auto it = f.values.find("--vm-accel"); it != f.values.end()) mode = it->second;
#ifdef BERTH_WITH_VM_DRIVERS
  if (auto parsed = runtime::ParseVmAccelMode(mode); !parsed.ok()) {
    return absl::InvalidArgumentError(Cat("--vm-accel: ", parsed.status().message()));
  }
#endif
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
  runtime::ProcessDriverOptions popts;
  popts.cgroup_parent = cgroup_parent + "/process";
  d.process = std::make_unique<runtime::ProcessDriver>(popts);
  if (d.process->Fingerprint().healthy) d.by_kind["process"] = d.process.get();
#ifdef BERTH_WITH_VM_DRIVERS
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
#endif
  return d;
}

// Fills the agent options that depend on the drivers: image resolution and VM stats.
void WireDrivers(LocalDrivers& d, agent::AgentOptions& ao) {
  ao.drivers = d.by_kind;
  for (const auto& [k, v] : d.fingerprint) ao.inventory.fingerprint[k] = v;
#ifdef BERTH_WITH_VM_DRIVERS
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
#endif
}

absl::StatusOr<agent::AgentConfig> AgentConfigFrom(const Flags& f) {
  agent::AgentConfig config;
  if (auto it = f.values.find("--config"); it != f.values.end()) {
    auto loaded = agent::LoadAgentConfig(it->second);
    if (!loaded.ok()) return loaded.status();
    config = *loaded;
  }
  if (auto it = f.values.find("--name"); it != f.values.end()) config.name = it->second;
  if (config.name.empty()) config.name = agent::LocalHostName();
  return config;
}

constexpr char kServeHelp[] =
    R"(Usage: berth serve [--dev] [--data-dir DIR] [--listen HOST:PORT] [--host-ttl 15s]
                   [--policy NAME] [--agent-config FILE] [--vm-accel auto|kvm|tcg]
                   [--backup-dir DIR] [--image-import-dir DIR] [--allow-root-workloads]

Runs the Berth API server on the embedded SQLite store in DIR (default: BERTH_DATA_DIR or ~/.berth).
  --dev            also run an agent for this machine in the same process, so workloads run here
  --listen         address to serve on (default 127.0.0.1:7070; port 0 picks a free one)
  --host-ttl       a host without heartbeats this long is marked down (default 15s)
  --policy         placement policy (default "fgd:1,topology:0.2", chosen with berth sim;
                   e.g. binpack, spread, gpu-packing)
  --agent-config   the local agent's config file (labels, declared GPUs) in --dev mode
  --vm-accel       how the local agent runs VMs in --dev mode (as for berth agent)
  --backup-dir     where disk backups are written and restored from in --dev mode (default
                   DIR/backups): the API's backup and restore take only file names inside it
  --image-import-dir
                   where the API's image imports read from in --dev mode (default DIR/imports):
                   POST /v1/hosts/NAME/images takes only file names inside it
  --allow-root-workloads
                   accept process workloads with `user: root` (or uid/gid 0); without it they
                   are refused (403) and process workloads run as an unprivileged user
                   (default nobody, 65534:65534)
The admin token is written to DIR/admin.token (mode 0600), the agents' join token to
DIR/join.token, and the address to DIR/server.json, where the CLI finds them.
)";

constexpr char kAgentHelp[] =
    R"(Usage: berth agent --server URL [--join-token-file FILE] [--config FILE] [--data-dir DIR]
                   [--name NAME]

Runs the agent for this host: registers its CPUs, memory and GPUs (nvidia-smi, or the config
file's declared GPUs), heartbeats, and runs the workloads the server assigns to it.
  --server           the server's URL, e.g. http://10.0.0.1:7070 (or BERTH_ADDR)
  --join-token-file  a file holding the server's join token (its DATA_DIR/join.token); or set
                     BERTH_JOIN_TOKEN. --join-token TOKEN works too, but any user can read it
                     in `ps`
  --config           YAML/JSON: name, labels, cpu, memory, gpus, vm_accel
  --data-dir         where task records and logs are kept (default: BERTH_DATA_DIR/agent or
                     ~/.berth/agent)
  --name             the host's name (default: the config file's, else the machine's)
  --vm-accel         auto (default): use KVM when a probe guest runs under it at start, TCG
                     otherwise, with a warning and a host event saying why; kvm or tcg: use
                     that. The config file's vm_accel sets the same. `berth host get` shows it.
The join token is used once, to register: the server answers with a credential for this host
alone, kept in DIR/host.credential (mode 0600), which the agent uses for everything else and to
register again after a restart (then no join token is needed). A host name already registered
can only be taken by its own credential; `berth host rm NAME` frees it once the host is down.
)";

// The join token from --join-token-file, --join-token or BERTH_JOIN_TOKEN (in that order);
// empty when none is given.
absl::StatusOr<std::string> JoinTokenFrom(const Flags& f) {
  if (f.values.count("--join-token-file") && f.values.count("--join-token")) {
    return absl::InvalidArgumentError("give --join-token-file or --join-token, not both");
  }
  if (auto it = f.values.find("--join-token-file"); it != f.values.end()) {
    std::ifstream in(it->second);
    std::string token;
    if (!in || !std::getline(in, token)) {
      return absl::InvalidArgumentError(
          Cat("--join-token-file: cannot read a token from ", it->second));
    }
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) {
      return absl::InvalidArgumentError(Cat("--join-token-file: ", it->second, " is empty"));
    }
    return token;
  }
  if (auto it = f.values.find("--join-token"); it != f.values.end()) return it->second;
  const char* env = getenv("BERTH_JOIN_TOKEN");
  return std::string(env ? env : "");
}

}  // namespace

int RunServe(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags f;
  if (!ParseFlags(args,
                  {"--data-dir", "--listen", "--host-ttl", "--policy", "--agent-config",
                   "--vm-accel", "--backup-dir", "--image-import-dir"},
                  &f, err)) {
    return 2;
  }
  if (f.switches.count("--help") || f.switches.count("-h")) {
    out << kServeHelp;
    return 0;
  }
  for (const auto& [s, on] : f.switches) {
    if (s != "--dev" && s != "--allow-root-workloads") {
      err << "berth serve: unknown flag " << s << "\n" << kServeHelp;
      return 2;
    }
  }
  if (f.values.count("--policy")) {
    if (auto policy = sched::Policy::Parse(f.values["--policy"]); !policy.ok()) {
      err << "berth serve: --policy: " << policy.status().message() << "\n";
      return 2;
    }
  }
  if (auto accel = VmAccelFrom(f, agent::AgentConfig{}); !accel.ok()) {
    err << "berth serve: " << accel.status().message() << "\n";
    return 2;
  }
  const bool dev = f.switches.count("--dev") > 0;
  std::string dir = f.values.count("--data-dir") ? f.values["--data-dir"] : cli::DefaultDataDir();
  std::string listen = f.values.count("--listen") ? f.values["--listen"] : "127.0.0.1:7070";
  auto colon = listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    err << "berth serve: --listen must be HOST:PORT, got \"" << listen << "\"\n";
    return 2;
  }
  absl::Duration ttl = absl::Seconds(15);
  if (f.values.count("--host-ttl") &&
      (!absl::ParseDuration(f.values["--host-ttl"], &ttl) || ttl <= absl::ZeroDuration())) {
    err << "berth serve: --host-ttl must be a duration like 15s\n";
    return 2;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    err << "berth serve: cannot create data directory " << dir << ": " << ec.message() << "\n";
    return 1;
  }
  chmod(dir.c_str(), 0700);
  auto admin = LoadOrCreateToken(dir, "admin.token");
  auto join = LoadOrCreateToken(dir, "join.token");
  if (!admin.ok() || !join.ok()) {
    err << "berth serve: " << (admin.ok() ? join.status() : admin.status()).message() << "\n";
    return 1;
  }
  sigset_t signals = BlockStopSignals();

  auto store = state::SqliteStore::Open(dir + "/berth.db");
  if (!store.ok()) {
    err << "berth serve: cannot open the store: " << store.status().message() << "\n";
    return 1;
  }
  control::ControlPlaneOptions copts;
  copts.host_ttl = ttl;
  if (f.values.count("--policy")) copts.policy = f.values["--policy"];
  copts.allow_root_workloads = f.switches.count("--allow-root-workloads") > 0;
  control::ControlPlane control(store->get(), copts);
  LocalAgentHost logs;
  api::ApiServerOptions aopts;
  aopts.host = listen.substr(0, colon);
  aopts.port = static_cast<uint16_t>(port);
  aopts.admin_token = *admin;
  aopts.agent_tokens = {*join};
  // The local host's image catalog (dev mode), attached once the local agent runs; imports
  // read only beneath the import directory.
  std::unique_ptr<api::HostImages> images;
#ifdef BERTH_WITH_IMAGE_API
  api::LocalHostImages* local_images = nullptr;
  if (dev) {
    const std::string import_dir =
        fs::absolute(f.values.count("--image-import-dir") ? f.values["--image-import-dir"]
                                                          : dir + "/imports",
                     ec)
            .lexically_normal()
            .string();
    fs::create_directories(import_dir, ec);
    if (ec) {
      err << "berth serve: cannot create the image import directory " << import_dir << ": "
          << ec.message() << "\n";
      return 1;
    }
    auto owned = std::make_unique<api::LocalHostImages>(import_dir);
    local_images = owned.get();
    images = std::move(owned);
  }
#endif
  api::ApiServer server(aopts, &control, dev ? &logs : nullptr);
  api::AddImageRoutes(server.router(), &control, images.get());
#ifdef BERTH_WITH_STORENET
  // Disks and networks of this machine, re-declared from the store before serving.
  std::unique_ptr<LocalStorageNetwork> storenet;
  if (dev) {
    const std::string backups =
        fs::absolute(f.values.count("--backup-dir") ? f.values["--backup-dir"] : dir + "/backups",
                     ec)
            .lexically_normal()
            .string();
    storenet = std::make_unique<LocalStorageNetwork>(store->get(), control.clock(), dir + "/agent",
                                                     backups);
    storenet->Start(err);
    storenet->AddRoutes(server.router());
    control.SetReferenceCheck([sn = storenet.get()](const core::WorkloadSpec& spec) {
      return sn->CheckReferences(spec);
    });
  }
#endif
  auto bound = server.Start();
  if (!bound.ok()) {
    err << "berth serve: cannot listen on " << listen << ": " << bound.status().message() << "\n";
    return 1;
  }
#ifdef BERTH_WITH_STORENET
  if (storenet) storenet->ReserveApiPort(*bound);
#endif
  control.Start();
  std::string url = Cat("http://", aopts.host, ":", *bound);
  {
    Json info = {{"url", url}, {"pid", getpid()}, {"dev", dev}};
    std::ofstream o(dir + "/server.json.tmp");
    o << info.dump() << "\n";
    o.close();
    fs::rename(dir + "/server.json.tmp", dir + "/server.json", ec);
  }

  LocalDrivers drivers;
  std::unique_ptr<agent::Agent> local_agent;
  if (dev) {
    auto config = AgentConfigFrom(Flags{{{"--config", f.values["--agent-config"]}}, {}});
    if (f.values["--agent-config"].empty()) config = AgentConfigFrom(Flags{});
    if (!config.ok()) {
      err << "berth serve: " << config.status().message() << "\n";
      return 1;
    }
    auto vm_accel = VmAccelFrom(f, *config);
    if (!vm_accel.ok()) {
      err << "berth serve: " << vm_accel.status().message() << "\n";
      return 1;
    }
    std::string agent_dir = dir + "/agent";
    fs::create_directories(agent_dir, ec);
    drivers = MakeDrivers(agent_dir, *vm_accel, err);
    auto inv = agent::DetectInventory(*config, agent_dir);
    if (!inv.ok()) {
      err << "berth serve: " << inv.status().message() << "\n";
      return 1;
    }
    agent::AgentOptions ao;
    ao.server_url = url;
    ao.token = *join;
    ao.name = config->name;
    ao.data_dir = agent_dir;
    ao.inventory = *inv;
    WireDrivers(drivers, ao);
#ifdef BERTH_WITH_STORENET
    if (storenet) storenet->WireAgent(ao);
#endif
    local_agent = std::make_unique<agent::Agent>(ao);
    absl::Status started = local_agent->Start();
    if (!started.ok()) {
      err << "berth serve: local agent: " << started.message() << "\n";
      return 1;
    }
    logs.Set(local_agent.get());
#ifdef BERTH_WITH_IMAGE_API
    if (local_images != nullptr) local_images->Attach(ao.name, drivers.images.get());
#endif
#ifdef BERTH_WITH_STORENET
    if (storenet) storenet->SetAgent(local_agent.get());
#endif
  }
  out << "berth: serving on " << url << " (data in " << dir
      << (dev ? ", dev mode with a local agent" : "") << ")\nberth: admin token in " << dir
      << "/admin.token; try `berth workload ls`" << std::endl;

  int sig = WaitForSignal(signals);
  out << "berth: signal " << sig << ", shutting down" << std::endl;
  logs.Set(nullptr);
#ifdef BERTH_WITH_IMAGE_API
  if (local_images != nullptr) local_images->Attach("", nullptr);  // waits for imports
#endif
#ifdef BERTH_WITH_STORENET
  if (storenet) storenet->SetAgent(nullptr);
#endif
  if (local_agent) local_agent->Stop();
  server.Stop();
  control.Stop();
  fs::remove(dir + "/server.json", ec);
  return 0;
}

int RunAgent(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Flags f;
  if (!ParseFlags(args,
                  {"--server", "--join-token", "--join-token-file", "--config", "--data-dir",
                   "--name", "--vm-accel"},
                  &f, err)) {
    return 2;
  }
  if (f.switches.count("--help") || f.switches.count("-h")) {
    out << kAgentHelp;
    return 0;
  }
  std::string server = f.values["--server"];
  if (server.empty() && getenv("BERTH_ADDR")) server = getenv("BERTH_ADDR");
  auto token = JoinTokenFrom(f);
  if (!token.ok()) {
    err << "berth agent: " << token.status().message() << "\n";
    return 2;
  }
  if (server.empty()) {
    err << "berth agent: --server is required\n" << kAgentHelp;
    return 2;
  }
  if (auto accel = VmAccelFrom(f, agent::AgentConfig{}); !accel.ok()) {
    err << "berth agent: " << accel.status().message() << "\n";
    return 2;
  }
  if (server.rfind("http://", 0) != 0) server = "http://" + server;
  std::string dir =
      f.values.count("--data-dir") ? f.values["--data-dir"] : cli::DefaultDataDir() + "/agent";
  std::error_code ec;
  fs::create_directories(dir, ec);
  // Task directories and logs are the agent's: workloads running as other users stay out.
  chmod(dir.c_str(), 0700);
  auto config = AgentConfigFrom(f);
  if (!config.ok()) {
    err << "berth agent: " << config.status().message() << "\n";
    return 1;
  }
  auto vm_accel = VmAccelFrom(f, *config);
  if (!vm_accel.ok()) {
    err << "berth agent: " << vm_accel.status().message() << "\n";
    return 2;
  }
  // A host that registered before comes back with its credential; a new one needs the token.
  if (token->empty() && !fs::exists(agent::HostCredentialPath(dir))) {
    err << "berth agent: a join token is needed to register: --join-token-file FILE or "
           "BERTH_JOIN_TOKEN\n"
        << kAgentHelp;
    return 2;
  }
  auto inv = agent::DetectInventory(*config, dir);
  if (!inv.ok()) {
    err << "berth agent: " << inv.status().message() << "\n";
    return 1;
  }
  sigset_t signals = BlockStopSignals();
  LocalDrivers drivers = MakeDrivers(dir, *vm_accel, err);
  agent::AgentOptions ao;
  ao.server_url = server;
  ao.token = *token;
  ao.name = config->name;
  ao.data_dir = dir;
  ao.inventory = *inv;
  WireDrivers(drivers, ao);
  agent::Agent a(ao);
  absl::Status started = a.Start();
  if (!started.ok()) {
    err << "berth agent: " << started.message() << "\n";
    return 1;
  }
  out << "berth agent: host " << ao.name << " joining " << server << std::endl;
  WaitForSignal(signals);
  a.Stop();
  return 0;
}

}  // namespace berth
