#include "runtime/qemu/qemu_driver.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
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

struct QemuDriver::Vm {
  std::string id;
  std::string workload;
  std::string task_dir;
  std::string qmp_socket;
  std::string console_log;
  bool run_job = false;           // the guest runs a command and powers off
  std::vector<VfioBinding> vfio;  // devices handed to the VM, given back on Destroy
  pid_t pid = 0;
  int64_t start_ticks = 0;
  absl::Time started_at = absl::InfinitePast();
  std::unique_ptr<QmpClient> qmp;  // set before the VM is published; lives as long as the Vm
  std::thread watcher;
  std::atomic<bool> stop_watch{false};

  absl::Mutex mu;
  TaskState state ABSL_GUARDED_BY(mu) = TaskState::kRunning;
  std::optional<ExitResult> exit ABSL_GUARDED_BY(mu);
  std::string shutdown_reason ABSL_GUARDED_BY(mu);  // from the SHUTDOWN event
  bool panicked ABSL_GUARDED_BY(mu) = false;
  bool stop_requested ABSL_GUARDED_BY(mu) = false;
  bool killed ABSL_GUARDED_BY(mu) = false;
};

namespace {

// The QEMU process of `vm`: its pid with the start time recorded when it was found.
template <typename V>
host::ProcessIdentity IdentityOf(const V& vm) {
  return {.pid = vm.pid, .start_ticks = static_cast<uint64_t>(vm.start_ticks)};
}

}  // namespace

namespace {

constexpr std::string_view kCmdlineEnv = "BERTH_VM_CMDLINE";
constexpr std::string_view kExitMarker = "BERTH-RUN-EXIT=";
// The boot disk of a VM started from a disk image, and the overlay it writes to.
constexpr char kImageDisk[] = "image";
constexpr char kImageOverlayName[] = "image-overlay.qcow2";

// The exit code the guest's init printed last on the console, if any.
std::optional<int> ConsoleExitCode(const std::string& console_log) {
  auto text = host::ReadFile(console_log);
  if (!text.ok()) return std::nullopt;
  size_t at = text->rfind(kExitMarker);
  if (at == std::string::npos) return std::nullopt;
  size_t start = at + kExitMarker.size();
  size_t end = start;
  while (end < text->size() && isdigit(static_cast<unsigned char>((*text)[end]))) ++end;
  if (end == start) return std::nullopt;
  return std::stoi(text->substr(start, end - start));
}

}  // namespace

QemuDriver::QemuDriver(QemuDriverOptions options)
    : options_(std::move(options)),
      accel_choice_(options_.accel == VmAccelMode::kAuto
                        ? DetectAccelOnce(options_.qemu_binary)
                        : ChooseAccel(options_.accel, {.qemu_binary = options_.qemu_binary})),
      accel_(accel_choice_.accel) {}

QemuDriver::~QemuDriver() {
  std::vector<std::shared_ptr<Vm>> vms;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [id, vm] : vms_) vms.push_back(vm);
    vms_.clear();
  }
  // VMs keep running: only our watchers and QMP connections end.
  for (auto& vm : vms) {
    vm->stop_watch = true;
    if (vm->watcher.joinable()) vm->watcher.join();
  }
}

DriverCapabilities QemuDriver::Capabilities() const {
  return {.pause_resume = true,
          .exec = false,
          .console = true,
          .snapshot = true,
          .gpus = true,
          .recover = true,
          .disk_hotplug = true};
}

DriverFingerprint QemuDriver::Fingerprint() {
  DriverFingerprint fp;
  const std::vector<std::string> version = {options_.qemu_binary, "--version"};
  auto r = host::ExecutorOr(options_.executor).Run(version, {.timeout = absl::Seconds(10)});
  if (!r.ok() || !r->ok()) {
    fp.health_description = Cat(options_.qemu_binary, " not usable: ",
                                r.ok() && r->cause == host::ExitCause::kExited
                                    ? r->err
                                    : std::string(host::ResultStatus(version, r).message()));
    return fp;
  }
  std::string first = r->out.substr(0, r->out.find('\n'));
  size_t v = first.find("version ");
  fp.attributes["driver.qemu.version"] =
      v == std::string::npos ? first : first.substr(v + 8, first.find(' ', v + 8) - v - 8);
  fp.attributes["driver.qemu.kvm"] = accel_ == VmAccel::kKvm ? "true" : "false";
  fp.attributes["vm_accel"] = std::string(VmAccelName(accel_));
  fp.attributes["vm_accel_reason"] = accel_choice_.reason;
  if (accel_choice_.fallback) fp.attributes["vm_accel_fallback"] = "true";
  fp.healthy = true;
  fp.health_description = Cat("ready (", VmAccelName(accel_), ": ", accel_choice_.reason, ")");
  return fp;
}

absl::StatusOr<VmLaunchSpec> QemuDriver::LaunchSpecFor(const TaskConfig& config) const {
  const std::string& name = config.workload.empty() ? config.task_id : config.workload;
  auto err = [&](std::string_view field, std::string_view msg) {
    return core::FieldError("vm", name, field, msg);
  };
  VmLaunchSpec s;
  s.name = name;
  s.binary = options_.qemu_binary;
  s.accel = accel_;
  const int64_t milli = config.resources.cpu.value();
  s.vcpus = milli <= 0 ? 1 : static_cast<int>((milli + 999) / 1000);
  SetDefaultTopology(s);
  s.memory_mib = config.resources.memory.value() > 0 ? config.resources.memory.value()
                                                     : options_.default_memory_mib;
  std::error_code ec;
  if (config.image_path.empty() && config.disks.empty()) {
    return err("image_path", "must name a kernel directory or a disk image");
  }
  if (!config.image_path.empty()) {
    if (fs::is_directory(config.image_path, ec)) {
      s.kernel = Cat(config.image_path, "/vmlinuz");
      if (!fs::exists(s.kernel, ec)) {
        return err("image_path", Cat("directory has no vmlinuz: ", config.image_path));
      }
      std::string initrd = Cat(config.image_path, "/initrd.img");
      if (fs::exists(initrd, ec)) s.initrd = initrd;
    } else if (fs::exists(config.image_path, ec)) {
      const bool qcow2 = fs::path(config.image_path).extension() == ".qcow2";
      s.disks.push_back(
          {.id = kImageDisk, .path = config.image_path, .format = qcow2 ? "qcow2" : "raw"});
    } else {
      return err("image_path", Cat("no such file or directory: ", config.image_path));
    }
  }
  if (!s.kernel.empty()) {
    s.cmdline = options_.base_cmdline;
    if (!config.command.empty()) {
      std::string line = ShellQuote(config.command);
      for (const std::string& a : config.args) line += " " + ShellQuote(a);
      s.cmdline += Cat(" berth.run64=", absl::Base64Escape(line), " berth.poweroff=1");
    }
    auto extra = config.env.find(std::string(kCmdlineEnv));
    if (extra != config.env.end() && !extra->second.empty()) s.cmdline += " " + extra->second;
  }
  for (size_t i = 0; i < config.disks.size(); ++i) {
    const TaskDisk& d = config.disks[i];
    s.disks.push_back({.id = d.name.empty() ? Cat("disk", static_cast<int>(i))
                                            : VmDiskNode(d.name, /*hotplug=*/false),
                       .path = d.path,
                       .format = d.format == "qcow2" ? "qcow2" : "raw",
                       .read_only = d.read_only});
  }
  if (!config.ports.empty()) {
    VmNic user{.id = "net0", .mode = VmNic::Mode::kUser};
    for (const TaskPort& p : config.ports) {
      user.forwards.push_back(
          {.host_port = p.host_port,
           .guest_port = p.task_port,
           .protocol = p.protocol,
           .host_address = p.host_address.empty() ? "127.0.0.1" : p.host_address});
    }
    s.nics.push_back(user);
  }
  for (size_t i = 0; i < config.nics.size(); ++i) {
    const TaskNic& n = config.nics[i];
    if (n.host_ifname.empty()) continue;
    s.nics.push_back({.id = Cat("tap", static_cast<int>(i)),
                      .mode = VmNic::Mode::kTap,
                      .mac = n.mac,
                      .tap_device = n.host_ifname});
  }
  for (size_t i = 0; i < config.gpus.size(); ++i) {
    const std::string pci = i < config.gpu_pci_addresses.size() ? config.gpu_pci_addresses[i] : "";
    if (pci.empty()) {
      return core::FieldError(
          "vm", config.workload.empty() ? config.task_id : config.workload,
          Cat("gpus[", static_cast<int>(i), "]"),
          Cat("GPU ", config.gpus[i].index,
              " has no PCI address on this host, so it cannot be passed through to a VM; "
              "declare pci_address for it in the agent config"));
    }
    s.vfio_pci.push_back(pci);
  }
  s.serial_log = Cat(config.task_dir, "/", kStdoutLogName);
  s.qmp_socket = Cat(config.task_dir, "/qmp.sock");
  s.pidfile = Cat(config.task_dir, "/qemu.pid");
  return s;
}

absl::StatusOr<TaskHandle> QemuDriver::Start(const TaskConfig& config) {
  if (!config.restore_from.empty()) return Restore(config, {.snapshot_path = config.restore_from});
  return Launch(config, "");
}

absl::StatusOr<TaskHandle> QemuDriver::Restore(const TaskConfig& config,
                                               const RestoreOptions& options) {
  std::error_code ec;
  if (options.snapshot_path.empty() || !fs::exists(options.snapshot_path, ec)) {
    return core::FieldError("vm", config.workload, "snapshot_path",
                            Cat("no such file: ", options.snapshot_path));
  }
  return Launch(config, options.snapshot_path);
}

// A VM booted from a disk image writes to an overlay in its task directory whose backing file
// is the image: the catalog's image stays as it was imported, and many VMs boot from one image.
// A restored VM gets a fresh overlay too, so its guest should keep the image's file systems
// read-only (the example model server's image does).
absl::Status QemuDriver::OverlayImageDisk(const std::string& task_dir, VmLaunchSpec& spec) {
  for (VmDisk& d : spec.disks) {
    if (d.id != kImageDisk) continue;
    const std::string overlay = Cat(task_dir, "/", kImageOverlayName);
    std::error_code ec;
    fs::remove(overlay, ec);
    auto made = host::RunTool(host::ExecutorOr(options_.executor),
                              {"qemu-img", "create", "-q", "-f", "qcow2", "-F", d.format, "-b",
                               fs::absolute(d.path).string(), overlay},
                              {.timeout = absl::Seconds(60)});
    if (!made.ok()) return made.status();
    if (!made->ok()) {
      return core::FieldError("vm", spec.name, "image",
                              Cat("cannot make an overlay of ", d.path, ": ", made->err));
    }
    d.path = overlay;
    d.format = "qcow2";
  }
  return absl::OkStatus();
}

absl::StatusOr<TaskHandle> QemuDriver::Launch(const TaskConfig& config,
                                              const std::string& incoming) {
  if (config.task_id.empty()) return absl::InvalidArgumentError("vm: task_id must not be empty");
  if (config.task_dir.empty()) {
    return core::FieldError("vm", config.task_id, "task_dir", "must not be empty");
  }
  {
    absl::MutexLock lock(&mu_);
    if (vms_.count(config.task_id)) {
      return absl::AlreadyExistsError(Cat("task \"", config.task_id, "\" already exists"));
    }
  }
  BERTH_ASSIGN_OR_RETURN(VmLaunchSpec spec, LaunchSpecFor(config));
  spec.incoming_file = incoming;
  // Tap devices live in the network namespace of their bridge: QEMU opens them there.
  std::string netns;
  for (const TaskNic& n : config.nics) {
    if (n.host_ifname.empty() || n.netns_path.empty()) continue;
    netns = n.netns_path;
    break;
  }
  std::error_code ec;
  fs::create_directories(config.task_dir, ec);
  if (ec) return absl::InternalError(Cat("vm \"", spec.name, "\": task_dir: ", ec.message()));
  fs::remove(spec.qmp_socket, ec);
  fs::remove(spec.pidfile, ec);
  BERTH_RETURN_IF_ERROR(OverlayImageDisk(config.task_dir, spec));
  BERTH_ASSIGN_OR_RETURN(std::vector<std::string> argv, BuildQemuArgv(spec));

  auto vm = std::make_shared<Vm>();
  vm->id = config.task_id;
  vm->workload = spec.name;
  vm->task_dir = config.task_dir;
  vm->qmp_socket = spec.qmp_socket;
  vm->console_log = spec.serial_log;
  vm->run_job = !config.command.empty();
  // Passed-through devices go to vfio-pci before QEMU opens them, and back when it failed.
  for (const std::string& pci : spec.vfio_pci) {
    auto bound = vfio().Bind(pci);
    if (!bound.ok()) {
      GiveBackDevices(*vm);
      return absl::FailedPreconditionError(
          Cat("vm \"", spec.name, "\": GPU ", pci, ": ", bound.status().message()));
    }
    vm->vfio.push_back(*bound);
  }

  // -daemonize: the command returns once QEMU is initialized (QMP listening) or has failed.
  auto run = host::RunTool(host::ExecutorOr(options_.executor), argv,
                           {.timeout = options_.start_timeout, .netns = netns});
  const std::string stderr_log = Cat(config.task_dir, "/", kStderrLogName);
  if (run.ok() && !run->err.empty()) {
    core::ReportError("qemu", Cat("vm ", spec.name, ": save QEMU's start-up errors"),
                      host::WriteFileAtomically(stderr_log, run->err));
  }
  auto pidtext = host::ReadFile(spec.pidfile);
  auto cleanup = [&](absl::Status s) {
    GiveBackDevices(*vm);
    if (pidtext.ok()) {
      // Only the QEMU that wrote this pid file: the pid may have been reused since.
      const std::string pidfile = spec.pidfile;
      absl::Status killed =
          host::SignalProcessIf(std::atoi(pidtext->c_str()), SIGKILL, [&pidfile](pid_t pid) {
            for (const std::string& arg : host::ProcessCmdline(pid)) {
              if (arg == pidfile) return true;
            }
            return false;
          });
      if (!killed.ok() && !absl::IsNotFound(killed)) {
        core::ReportError("qemu", Cat("vm ", spec.name, ": kill QEMU after a failed start"),
                          killed);
      }
    }
    return s;
  };
  if (!run.ok()) return cleanup(run.status());
  if (!run->ok()) {
    return cleanup(absl::FailedPreconditionError(
        Cat("vm \"", spec.name,
            "\": QEMU failed to start: ", host::ResultStatus(argv, *run).message())));
  }
  if (!pidtext.ok()) return cleanup(pidtext.status());
  vm->pid = std::atoi(pidtext->c_str());
  std::optional<host::ProcessIdentity> identity = host::IdentifyProcess(vm->pid);
  if (vm->pid <= 0 || !identity) {
    GiveBackDevices(*vm);
    return absl::FailedPreconditionError(Cat("vm \"", spec.name, "\": QEMU exited at start"));
  }
  vm->start_ticks = static_cast<int64_t>(identity->start_ticks);
  vm->started_at = absl::FromUnixMicros(absl::ToUnixMicros(absl::Now()));
  if (auto s = Attach(vm); !s.ok()) return cleanup(s);

  if (!incoming.empty()) {
    // Wait for the incoming state to load, then run from where the snapshot was taken.
    const absl::Time deadline = absl::Now() + options_.start_timeout;
    while (true) {
      auto st = vm->qmp->Execute("query-status");
      if (!st.ok()) return cleanup(st.status());
      std::string status = st->value("status", "");
      if (status == "running") break;
      if (status != "inmigrate") {
        auto c = vm->qmp->Execute("cont");
        if (!c.ok()) return cleanup(c.status());
        break;
      }
      if (absl::Now() > deadline) {
        return cleanup(absl::DeadlineExceededError(
            Cat("vm \"", spec.name, "\": snapshot did not load in time")));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  TaskHandle handle;
  handle.driver = Name();
  handle.task_id = config.task_id;
  handle.state = {{"pid", vm->pid},
                  {"start_ticks", vm->start_ticks},
                  {"started_at_us", absl::ToUnixMicros(vm->started_at)},
                  {"workload", vm->workload},
                  {"task_dir", vm->task_dir},
                  {"qmp_socket", vm->qmp_socket},
                  {"console_log", vm->console_log},
                  {"run_job", vm->run_job}};
  if (!vm->vfio.empty()) {
    json devices = json::array();
    for (const VfioBinding& b : vm->vfio) {
      devices.push_back(
          {{"pci", b.pci_address}, {"driver", b.original_driver}, {"iommu_group", b.iommu_group}});
    }
    handle.state["vfio"] = devices;
  }
  {
    absl::MutexLock lock(&mu_);
    if (vms_.count(config.task_id)) {
      return cleanup(absl::AlreadyExistsError(Cat("task \"", config.task_id, "\" already exists")));
    }
    vms_[config.task_id] = vm;
  }
  events_.Publish({.task_id = vm->id,
                   .type = TaskEventType::kStarted,
                   .time = absl::Now(),
                   .message = Cat("QEMU pid ", vm->pid)});
  vm->watcher = std::thread([this, vm] { Watch(vm); });
  return handle;
}

absl::Status QemuDriver::Attach(const std::shared_ptr<Vm>& vm) {
  std::weak_ptr<Vm> weak = vm;
  QmpOptions qo;
  qo.on_event = [this, weak](const QmpEvent& e) {
    if (auto v = weak.lock()) OnEvent(v, e);
  };
  auto client = QmpClient::Connect(vm->qmp_socket, std::move(qo));
  if (!client.ok()) return client.status();
  vm->qmp = std::move(*client);
  return absl::OkStatus();
}

void QemuDriver::OnEvent(const std::shared_ptr<Vm>& vm, const QmpEvent& e) {
  std::optional<TaskEventType> publish;
  {
    absl::MutexLock lock(&vm->mu);
    if (e.name == "SHUTDOWN") {
      vm->shutdown_reason = e.data.value("reason", "");
      if (vm->shutdown_reason == "guest-panic") vm->panicked = true;
    } else if (e.name == "GUEST_PANICKED") {
      vm->panicked = true;
    } else if (e.name == "STOP" && vm->state == TaskState::kRunning) {
      vm->state = TaskState::kPaused;
      publish = TaskEventType::kPaused;
    } else if (e.name == "RESUME" && vm->state == TaskState::kPaused) {
      vm->state = TaskState::kRunning;
      publish = TaskEventType::kResumed;
    }
  }
  if (publish) {
    events_.Publish({.task_id = vm->id, .type = *publish, .time = absl::Now(), .message = e.name});
  }
}

void QemuDriver::Watch(std::shared_ptr<Vm> vm) {
  while (!vm->stop_watch) {
    if (host::WaitForProcessExit(IdentityOf(*vm), absl::Milliseconds(200))) {
      // QEMU writes its last events before exiting; let the reader deliver them.
      if (vm->qmp) vm->qmp->WaitClosed(absl::Seconds(5));
      Finish(vm, std::nullopt);
      return;
    }
  }
}

void QemuDriver::Finish(const std::shared_ptr<Vm>& vm, std::optional<std::string> lost_reason) {
  ExitResult r;
  r.finished_at = absl::Now();
  TaskEventType type = TaskEventType::kExited;
  std::optional<int> marker = ConsoleExitCode(vm->console_log);
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->exit) return;
    if (vm->panicked) {
      r.exit_code = -1;
      r.reason = "guest kernel panicked";
      type = TaskEventType::kFailed;
    } else if (lost_reason) {
      r.exit_code = marker.value_or(-1);
      r.reason = *lost_reason;
      if (!marker) type = TaskEventType::kFailed;
    } else if (vm->killed) {
      r.exit_code = -1;
      r.signal = SIGKILL;
      r.reason = "did not power off within the grace period; killed by the agent";
    } else if (vm->shutdown_reason == "guest-shutdown" || vm->shutdown_reason == "guest-reset") {
      if (marker) {
        r.exit_code = *marker;
      } else if (vm->run_job && !vm->stop_requested) {
        r.exit_code = -1;
        r.reason = "guest powered off before its command finished";
      }
      if (vm->stop_requested) r.reason = "stopped by the agent";
    } else if (vm->shutdown_reason == "host-qmp-quit") {
      r.exit_code = vm->stop_requested ? 0 : -1;
      r.reason = "quit over QMP";
    } else if (vm->shutdown_reason == "host-signal") {
      r.exit_code = -1;
      r.signal = SIGTERM;
      r.reason = "QEMU received a signal";
    } else {
      r.exit_code = -1;
      r.signal = SIGKILL;
      r.reason = "QEMU exited without a shutdown event (killed?)";
      type = TaskEventType::kFailed;
    }
    vm->exit = r;
    vm->state = TaskState::kExited;
  }
  events_.Publish(
      {.task_id = vm->id, .type = type, .time = r.finished_at, .message = r.reason, .exit = r});
}

std::shared_ptr<QemuDriver::Vm> QemuDriver::Find(std::string_view task_id) {
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(task_id);
  return it == vms_.end() ? nullptr : it->second;
}

namespace {
// The names releases before hashed names gave a VM's disks: the disk's own name at start,
// "hp-NAME" when hot-plugged; still looked up for VMs they started.
std::string LegacyHotplugNode(std::string_view disk) { return Cat("hp-", disk); }
}  // namespace

std::string VmDiskNode(std::string_view disk, bool hotplug) {
  // FNV-1a, 64 bits: stable across releases, so a re-adopted VM's nodes are found again.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : disk) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return absl::StrFormat("%s%016x", hotplug ? "hp" : "vd", h);
}

absl::Status QemuDriver::AttachDisk(std::string_view task_id, const TaskDisk& disk) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  if (disk.name.empty()) return core::FieldError("vm", vm->workload, "disk.name", "is empty");
  if (disk.path.empty()) return core::FieldError("vm", vm->workload, "disk.path", "is empty");
  const std::string node = VmDiskNode(disk.name, /*hotplug=*/true);
  json file = {{"driver", "file"}, {"node-name", node + "-file"}, {"filename", disk.path}};
  json format = {{"driver", disk.format == "qcow2" ? "qcow2" : "raw"},
                 {"node-name", node},
                 {"file", node + "-file"}};
  if (disk.read_only) file["read-only"] = format["read-only"] = true;
  auto added = Qmp(vm, "blockdev-add", file);
  if (!added.ok() && absl::StrContains(added.status().message(), "Duplicate nodes")) {
    // Left behind by an unplug whose nodes QEMU still held at the time; nothing uses them now
    // (the server gives a disk one holder), so they go and the plug is tried again.
    if (RemoveBlockNodes(vm, node, absl::Now()).ok()) added = Qmp(vm, "blockdev-add", file);
  }
  if (!added.ok()) {
    return absl::Status(added.status().code(), Cat("vm \"", vm->workload, "\": disk \"", disk.name,
                                                   "\": ", added.status().message()));
  }
  added = Qmp(vm, "blockdev-add", format);
  absl::Status last = added.status();
  if (added.ok()) {
    // Each empty root port takes one device, at slot 0: the only one a guest scans behind a
    // PCIe port. Without the address QEMU would put a second device into a taken port's next
    // slot, where the guest never sees it; with it, a taken port refuses and the next is tried.
    for (int i = 0; i < VmLaunchSpec{}.hotplug_ports; ++i) {
      auto plugged = Qmp(vm, "device_add",
                         {{"driver", "virtio-blk-pci"},
                          {"drive", node},
                          {"id", node + "-dev"},
                          {"bus", HotplugPortId(i)},
                          {"addr", "0"}});
      if (plugged.ok()) return absl::OkStatus();
      last = plugged.status();
    }
    core::ReportError("qemu", Cat("vm ", vm->workload, ": remove block node ", node),
                      Qmp(vm, "blockdev-del", {{"node-name", node}}).status());
  }
  core::ReportError("qemu", Cat("vm ", vm->workload, ": remove block node ", node, "-file"),
                    Qmp(vm, "blockdev-del", {{"node-name", node + "-file"}}).status());
  return absl::FailedPreconditionError(Cat("vm \"", vm->workload, "\": disk \"", disk.name,
                                           "\" could not be plugged in: ", last.message()));
}

absl::Status QemuDriver::DetachDisk(std::string_view task_id, std::string_view name) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  std::string node = VmDiskNode(name, /*hotplug=*/true);
  auto asked = Qmp(vm, "device_del", {{"id", node + "-dev"}});
  if (!asked.ok()) {
    // Plugged in by an earlier release, under its name.
    node = LegacyHotplugNode(name);
    asked = Qmp(vm, "device_del", {{"id", node + "-dev"}});
  }
  if (!asked.ok()) {
    return absl::NotFoundError(Cat("vm \"", vm->workload, "\": disk \"", name,
                                   "\" is not plugged in: ", asked.status().message()));
  }
  // The guest gives the device up through PCIe hot-unplug (the kernel waits about 5 s after
  // the attention button); only then may its block nodes go. The device is gone when QEMU
  // says so (DeviceNotFound); any other answer but a closed connection means ask again.
  const absl::Time deadline = absl::Now() + options_.hot_unplug_timeout;
  while (true) {
    auto listed = Qmp(vm, "qom-list", {{"path", "/machine/peripheral/" + node + "-dev"}});
    if (!listed.ok() && absl::StrContains(listed.status().message(), "not found")) break;
    if (listed.status().code() == absl::StatusCode::kUnavailable) {
      return absl::Status(listed.status().code(), Cat("vm \"", vm->workload, "\": disk \"", name,
                                                      "\": ", listed.status().message()));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          Cat("vm \"", vm->workload, "\": the guest did not release disk \"", name, "\" within ",
              absl::FormatDuration(options_.hot_unplug_timeout),
              "; it stays plugged in until the VM stops"));
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  core::ReportError("qemu", Cat("vm ", vm->workload, ": disk ", name),
                    RemoveBlockNodes(vm, node, absl::Now() + absl::Seconds(10)));
  return absl::OkStatus();
}

absl::Status QemuDriver::RemoveBlockNodes(const std::shared_ptr<Vm>& vm, const std::string& node,
                                          absl::Time deadline) {
  for (const std::string& name : {node, node + "-file"}) {
    while (true) {
      absl::Status s = Qmp(vm, "blockdev-del", {{"node-name", name}}).status();
      if (s.ok() || absl::StrContains(s.message(), "Failed to find node")) break;  // gone
      const bool held =
          absl::StrContains(s.message(), "in use") || absl::StrContains(s.message(), "busy");
      if (!held || absl::Now() > deadline) {
        return absl::Status(s.code(), Cat("remove block node ", name, ": ", s.message()));
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
  }
  return absl::OkStatus();
}

absl::Status QemuDriver::SnapshotDisk(std::string_view task_id, std::string_view name,
                                      std::string_view snapshot) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  // A disk given at start or plugged in later; then the names of earlier releases.
  absl::Status last;
  for (const std::string& node : {VmDiskNode(name, false), VmDiskNode(name, true),
                                  std::string(name), LegacyHotplugNode(name)}) {
    auto r = Qmp(vm, "blockdev-snapshot-internal-sync",
                 {{"device", node}, {"name", std::string(snapshot)}});
    if (r.ok()) return absl::OkStatus();
    last = r.status();
  }
  return absl::FailedPreconditionError(Cat("vm \"", vm->workload, "\": snapshot \"", snapshot,
                                           "\" of disk \"", name, "\": ", last.message()));
}

absl::StatusOr<json> QemuDriver::Qmp(const std::shared_ptr<Vm>& vm, std::string_view command,
                                     const json& args) {
  if (!vm->qmp) return absl::UnavailableError(Cat("vm \"", vm->workload, "\": no QMP connection"));
  return vm->qmp->Execute(command, args);
}

absl::Status QemuDriver::Recover(const TaskHandle& handle) {
  if (handle.driver != Name()) {
    return absl::InvalidArgumentError(Cat("task \"", handle.task_id,
                                          "\": handle.driver must be \"qemu\", got \"",
                                          handle.driver, "\""));
  }
  if (handle.task_id.empty()) return absl::InvalidArgumentError("vm: handle.task_id is empty");
  if (Find(handle.task_id)) return absl::OkStatus();
  auto vm = std::make_shared<Vm>();
  vm->id = handle.task_id;
  try {
    const json& s = handle.state;
    vm->pid = s.at("pid").get<pid_t>();
    vm->start_ticks = s.at("start_ticks").get<int64_t>();
    vm->started_at = absl::FromUnixMicros(s.at("started_at_us").get<int64_t>());
    vm->workload = s.at("workload").get<std::string>();
    vm->task_dir = s.at("task_dir").get<std::string>();
    vm->qmp_socket = s.at("qmp_socket").get<std::string>();
    vm->console_log = s.at("console_log").get<std::string>();
    vm->run_job = s.value("run_job", false);
    if (auto it = s.find("vfio"); it != s.end()) {
      for (const json& d : *it) {
        vm->vfio.push_back({.pci_address = d.at("pci").get<std::string>(),
                            .original_driver = d.at("driver").get<std::string>(),
                            .iommu_group = d.value("iommu_group", -1)});
      }
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        Cat("task \"", handle.task_id, "\": handle.state is malformed: ", e.what()));
  }
  bool alive = host::IsRunning(IdentityOf(*vm));
  if (alive) {
    absl::Status s = Attach(vm);
    if (s.ok()) {
      auto st = vm->qmp->Execute("query-status");
      if (st.ok()) {
        absl::MutexLock lock(&vm->mu);
        vm->state = st->value("running", true) ? TaskState::kRunning : TaskState::kPaused;
      }
    } else {
      alive = host::IsRunning(IdentityOf(*vm));
    }
  }
  {
    absl::MutexLock lock(&mu_);
    if (vms_.count(vm->id)) return absl::OkStatus();
    vms_[vm->id] = vm;
  }
  if (alive) {
    events_.Publish({.task_id = vm->id,
                     .type = TaskEventType::kRecovered,
                     .time = absl::Now(),
                     .message = Cat("re-adopted QEMU pid ", vm->pid)});
    vm->watcher = std::thread([this, vm] { Watch(vm); });
  } else {
    Finish(vm, "VM exited while the agent was down");
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitResult> QemuDriver::Wait(std::string_view task_id, absl::Duration timeout) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  absl::MutexLock lock(&vm->mu);
  auto done = [&vm]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(vm->mu) { return vm->exit.has_value(); };
  if (!vm->mu.AwaitWithTimeout(absl::Condition(&done), timeout)) {
    return absl::DeadlineExceededError(Cat("vm \"", vm->workload, "\" still running"));
  }
  return *vm->exit;
}

absl::Status QemuDriver::Kill(const std::shared_ptr<Vm>& vm) {
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->exit) return absl::OkStatus();
    vm->killed = true;
  }
  // A QEMU that does not answer is killed below all the same.
  if (auto quit = Qmp(vm, "quit"); !quit.ok()) {
    core::LogDebug("vm %s: quit over QMP: %s", vm->workload, quit.status().ToString());
  }
  if (!host::WaitForProcessExit(IdentityOf(*vm), absl::Seconds(5))) {
    absl::Status killed = host::SignalProcess(IdentityOf(*vm), SIGKILL);
    if (!killed.ok() && !absl::IsNotFound(killed)) return killed;
  }
  auto r = Wait(vm->id, absl::Seconds(60));
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status QemuDriver::Stop(std::string_view task_id, const StopOptions& options) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  bool paused;
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->exit) return absl::OkStatus();
    vm->stop_requested = true;
    paused = vm->state == TaskState::kPaused;
  }
  // A paused guest cannot see the power button.
  if (paused) {
    core::ReportError("qemu", Cat("vm ", vm->workload, ": resume to stop"),
                      Qmp(vm, "cont").status());
  }
  // The guest may still be booting and miss the first press: press again every second.
  const absl::Time deadline = absl::Now() + options.grace;
  while (true) {
    // A guest still booting may refuse; the press is repeated and Kill() ends it otherwise.
    if (auto pressed = Qmp(vm, "system_powerdown"); !pressed.ok()) {
      core::LogDebug("vm %s: power button: %s", vm->workload, pressed.status().ToString());
    }
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    if (Wait(task_id, std::min(left, absl::Seconds(1))).ok()) return absl::OkStatus();
  }
  if (Wait(task_id, absl::ZeroDuration()).ok()) return absl::OkStatus();
  return Kill(vm);
}

absl::Status QemuDriver::Destroy(std::string_view task_id, const DestroyOptions& options) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  {
    absl::MutexLock lock(&vm->mu);
    if (!vm->exit && !options.force) {
      return absl::FailedPreconditionError(
          Cat("vm \"", vm->workload, "\" is still running; stop it or destroy with force"));
    }
  }
  BERTH_RETURN_IF_ERROR(Kill(vm));
  vm->stop_watch = true;
  if (vm->watcher.joinable() && vm->watcher.get_id() != std::this_thread::get_id()) {
    vm->watcher.join();
  }
  {
    absl::MutexLock lock(&mu_);
    vms_.erase(vm->id);
  }
  GiveBackDevices(*vm);
  std::error_code ec;
  fs::remove_all(vm->task_dir, ec);
  return absl::OkStatus();
}

void QemuDriver::GiveBackDevices(Vm& vm) {
  for (const VfioBinding& b : vm.vfio) {
    core::ReportError("qemu",
                      Cat("vm ", vm.workload, ": give ", b.pci_address, " back to ",
                          b.original_driver.empty() ? "the host" : b.original_driver),
                      vfio().Release(b));
  }
  vm.vfio.clear();
}

absl::StatusOr<TaskStatus> QemuDriver::Inspect(std::string_view task_id) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  TaskStatus st;
  st.task_id = vm->id;
  st.started_at = vm->started_at;
  st.pid = vm->pid;
  absl::MutexLock lock(&vm->mu);
  st.state = vm->state;
  st.exit = vm->exit;
  st.details = {{"console_log", vm->console_log},
                {"qmp_socket", vm->qmp_socket},
                {"accel", accel_ == VmAccel::kKvm ? "kvm" : "tcg"}};
  if (!vm->shutdown_reason.empty()) st.details["shutdown_reason"] = vm->shutdown_reason;
  if (vm->panicked) st.details["guest_panicked"] = true;
  return st;
}

absl::StatusOr<TaskStats> QemuDriver::Stats(std::string_view task_id) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->exit) {
      return absl::FailedPreconditionError(Cat("vm \"", vm->workload, "\" has exited"));
    }
  }
  std::optional<host::ProcessUsage> u = host::ReadProcessUsage(vm->pid);
  if (!u)
    return absl::NotFoundError(Cat("vm \"", vm->workload, "\": process ", vm->pid, " not found"));
  TaskStats stats{.at = absl::Now(),
                  .cpu_user = u->user,
                  .cpu_system = u->system,
                  .rss_bytes = u->rss_bytes,
                  .processes = u->threads};
  // What QEMU read from and wrote to the VM's images.
  stats.disk = host::ReadProcessIo(vm->pid);
  // The VM's taps, from QEMU's own arguments (so a VM adopted after an agent restart is counted
  // too), as the namespace QEMU runs in counts them: what a tap receives the guest sent.
  std::vector<std::string> taps;
  for (const std::string& arg : host::ProcessCmdline(vm->pid)) {
    for (absl::string_view part : absl::StrSplit(arg, ',')) {
      if (absl::StartsWith(part, "ifname=")) taps.emplace_back(part.substr(7));
    }
  }
  if (!taps.empty()) {
    if (auto devs = host::ReadNetDev(vm->pid)) {
      host::NetDevBytes net;
      for (const std::string& tap : taps) {
        auto it = devs->find(tap);
        if (it == devs->end()) continue;
        net.rx += it->second.tx;
        net.tx += it->second.rx;
      }
      stats.net = net;
    }
  }
  return stats;
}

absl::StatusOr<VmStats> QemuDriver::GetVmStats(std::string_view task_id) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  VmStats out;
  BERTH_ASSIGN_OR_RETURN(json cpus, Qmp(vm, "query-cpus-fast"));
  for (const json& c : cpus) {
    int64_t tid = c.value("thread-id", int64_t{0});
    std::optional<host::ProcStat> stat = host::ReadThreadStat(vm->pid, static_cast<pid_t>(tid));
    if (!stat) continue;
    out.guest_cpu += host::TicksToDuration(stat->utime_ticks + stat->stime_ticks);
  }
  auto blocks = Qmp(vm, "query-blockstats");
  if (blocks.ok()) {
    for (const json& b : *blocks) {
      if (!b.contains("stats")) continue;
      out.block_read_bytes += b["stats"].value("rd_bytes", int64_t{0});
      out.block_write_bytes += b["stats"].value("wr_bytes", int64_t{0});
    }
  }
  auto st = Qmp(vm, "query-status");
  if (st.ok()) out.qmp_status = st->value("status", "");
  return out;
}

absl::Status QemuDriver::Pause(std::string_view task_id) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->state != TaskState::kRunning) {
      return absl::FailedPreconditionError(
          Cat("vm \"", vm->workload, "\" is ", TaskStateName(vm->state), ", not running"));
    }
  }
  BERTH_RETURN_IF_ERROR(Qmp(vm, "stop").status());
  bool publish = false;
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->state == TaskState::kRunning) {
      vm->state = TaskState::kPaused;
      publish = true;
    }
  }
  if (publish) {
    events_.Publish({.task_id = vm->id, .type = TaskEventType::kPaused, .time = absl::Now()});
  }
  return absl::OkStatus();
}

absl::Status QemuDriver::Resume(std::string_view task_id) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->state != TaskState::kPaused) {
      return absl::FailedPreconditionError(
          Cat("vm \"", vm->workload, "\" is ", TaskStateName(vm->state), ", not paused"));
    }
  }
  BERTH_RETURN_IF_ERROR(Qmp(vm, "cont").status());
  bool publish = false;
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->state == TaskState::kPaused) {
      vm->state = TaskState::kRunning;
      publish = true;
    }
  }
  if (publish) {
    events_.Publish({.task_id = vm->id, .type = TaskEventType::kResumed, .time = absl::Now()});
  }
  return absl::OkStatus();
}

absl::StatusOr<ExecResult> QemuDriver::Exec(std::string_view task_id,
                                            const std::vector<std::string>& argv,
                                            const ExecOptions& options) {
  return absl::UnimplementedError("qemu: exec needs a guest agent, which the VM does not run");
}

std::vector<std::string> QemuDriver::Tasks() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [id, vm] : vms_) out.push_back(id);
  return out;
}

int64_t QemuDriver::Subscribe(TaskEventCallback callback) {
  return events_.Subscribe(std::move(callback));
}

void QemuDriver::Unsubscribe(int64_t subscription) { events_.Unsubscribe(subscription); }

absl::Status QemuDriver::SaveState(std::string_view task_id, const std::string& path) {
  return Snapshot(task_id, {.path = path, .resume = true});
}

absl::Status QemuDriver::Snapshot(std::string_view task_id, const SnapshotOptions& options) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  if (options.path.empty()) {
    return core::FieldError("vm", vm->workload, "snapshot.path", "must not be empty");
  }
  {
    absl::MutexLock lock(&vm->mu);
    if (vm->exit) return absl::FailedPreconditionError(Cat("vm \"", vm->workload, "\" exited"));
  }
  // Pausing first makes the snapshot consistent and lets the copy finish in one pass.
  BERTH_RETURN_IF_ERROR(Qmp(vm, "stop").status());
  absl::Status saved = WriteMigration(vm, options);
  // A VM that was to go on does so even when its state could not be written.
  if (options.resume) {
    absl::Status resumed = Qmp(vm, "cont").status();
    if (saved.ok()) return resumed;
    core::ReportError("qemu", Cat("vm ", vm->workload, ": resume after a failed snapshot"),
                      resumed);
  }
  return saved;
}

absl::Status QemuDriver::WriteMigration(const std::shared_ptr<Vm>& vm,
                                        const SnapshotOptions& options) {
  BERTH_RETURN_IF_ERROR(
      Qmp(vm, "migrate", {{"uri", Cat("exec:cat > ", ShellQuote(options.path))}}).status());
  const absl::Time deadline = absl::Now() + options.timeout;
  while (true) {
    BERTH_ASSIGN_OR_RETURN(json m, Qmp(vm, "query-migrate"));
    std::string status = m.value("status", "");
    if (status == "completed") break;
    if (status == "failed" || status == "cancelled") {
      return absl::InternalError(
          Cat("vm \"", vm->workload, "\": snapshot ", status, ": ", m.value("error-desc", "")));
    }
    if (absl::Now() > deadline) {
      core::ReportError("qemu", Cat("vm ", vm->workload, ": cancel a slow snapshot"),
                        Qmp(vm, "migrate_cancel").status());
      return absl::DeadlineExceededError(Cat("vm \"", vm->workload, "\": snapshot too slow"));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> QemuDriver::ConsolePath(std::string_view task_id) {
  auto vm = Find(task_id);
  if (!vm) return TaskNotFound(task_id);
  return vm->console_log;
}

}  // namespace berth::runtime
