#include "runtime/oci/oci_config.h"

#include <algorithm>

#include "core/status.h"
#include "core/strings.h"
#include "runtime/gpu_env.h"

namespace berth::runtime {
namespace {

using core::Cat;
using nlohmann::json;

absl::Status ContainerError(const ContainerLaunchSpec& spec, std::string_view field,
                            std::string_view msg) {
  return core::FieldError("container", spec.id, field, msg);
}

// Capabilities of a default container: what most workloads need and nothing that reaches past
// the container (no SYS_ADMIN, NET_ADMIN, SYS_MODULE).
const std::vector<std::string>& DefaultCapabilities() {
  static const auto* caps = new std::vector<std::string>{
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return *caps;
}

json DefaultMounts() {
  return json::array({
      {{"destination", "/proc"}, {"type", "proc"}, {"source", "proc"}},
      {{"destination", "/dev"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}},
      {{"destination", "/dev/pts"},
       {"type", "devpts"},
       {"source", "devpts"},
       {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
      {{"destination", "/dev/shm"},
       {"type", "tmpfs"},
       {"source", "shm"},
       {"options", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}}},
      {{"destination", "/dev/mqueue"},
       {"type", "mqueue"},
       {"source", "mqueue"},
       {"options", {"nosuid", "noexec", "nodev"}}},
      {{"destination", "/sys"},
       {"type", "sysfs"},
       {"source", "sysfs"},
       {"options", {"nosuid", "noexec", "nodev", "ro"}}},
      {{"destination", "/sys/fs/cgroup"},
       {"type", "cgroup"},
       {"source", "cgroup"},
       {"options", {"nosuid", "noexec", "nodev", "relatime", "ro"}}},
  });
}

// NVIDIA character devices: major 195, minor = device index; nvidiactl is 195:255.
constexpr int64_t kNvidiaMajor = 195;
constexpr int64_t kNvidiaCtlMinor = 255;

}  // namespace

absl::StatusOr<json> BuildOciConfig(const ContainerLaunchSpec& spec) {
  if (spec.id.empty()) return absl::InvalidArgumentError("container: id must not be empty");
  if (spec.rootfs.empty() || spec.rootfs[0] != '/') {
    return ContainerError(spec, "rootfs",
                          Cat("must be an absolute path, got \"", spec.rootfs, "\""));
  }
  if (spec.args.empty() || spec.args[0].empty()) {
    return ContainerError(spec, "args", "must not be empty");
  }
  if (spec.cwd.empty() || spec.cwd[0] != '/') {
    return ContainerError(spec, "cwd", Cat("must be an absolute path, got \"", spec.cwd, "\""));
  }
  if (spec.cpu.value() < 0) {
    return ContainerError(spec, "cpu", Cat("must be >= 0, got ", spec.cpu.value(), "m"));
  }
  if (spec.memory.value() < 0) {
    return ContainerError(spec, "memory", Cat("must be >= 0, got ", spec.memory.value(), "Mi"));
  }
  if (spec.pids_limit < 0) {
    return ContainerError(spec, "pids_limit", Cat("must be >= 0, got ", spec.pids_limit));
  }
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    const ContainerMount& m = spec.mounts[i];
    if (m.destination.empty() || m.destination[0] != '/') {
      return ContainerError(spec, Cat("mounts[", static_cast<int>(i), "].destination"),
                            Cat("must be an absolute path, got \"", m.destination, "\""));
    }
    if (m.source.empty()) {
      return ContainerError(spec, Cat("mounts[", static_cast<int>(i), "].source"),
                            "must not be empty");
    }
  }
  for (size_t i = 0; i < spec.gpus.size(); ++i) {
    const ContainerGpu& g = spec.gpus[i];
    if (g.id.empty()) {
      return ContainerError(spec, Cat("gpus[", static_cast<int>(i), "].id"), "must not be empty");
    }
    if (g.milli < 1 || g.milli > 1000) {
      return ContainerError(spec, Cat("gpus[", static_cast<int>(i), "].milli"),
                            Cat("must be in 1..1000, got ", g.milli));
    }
  }

  // The GPUs' edits, then those of the devices of other classes.
  CdiEdits edits = spec.devices;
  edits.Append(spec.class_devices);
  for (size_t i = 0; i < edits.device_nodes.size(); ++i) {
    const CdiDeviceNode& n = edits.device_nodes[i];
    if (n.major < 0 || n.minor < 0) {
      return ContainerError(spec, Cat("devices.device_nodes[", static_cast<int>(i), "]"),
                            Cat("node ", n.path, " has no major and minor numbers"));
    }
  }
  // Environment: the spec's, then what GPU exposure needs. A std::map keeps the order stable.
  std::map<std::string, std::string> env = spec.env;
  if (!env.count("PATH"))
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (!spec.gpus.empty()) {
    std::vector<GrantedGpu> granted;
    for (const ContainerGpu& g : spec.gpus) {
      granted.push_back({.id = g.id, .milli = g.milli, .memory_mib = g.memory_mib});
    }
    for (auto& [k, v] : GpuEnvironment(granted, spec.mps_pipe_dir)) env[k] = v;
    env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility";
  }
  for (const std::string& kv : edits.env) {
    size_t eq = kv.find('=');
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  json env_list = json::array();
  for (const auto& [k, v] : env) env_list.push_back(Cat(k, "=", v));

  json caps = DefaultCapabilities();
  json process = {
      {"terminal", false},
      {"user", {{"uid", 0}, {"gid", 0}}},
      {"args", spec.args},
      {"env", env_list},
      {"cwd", spec.cwd},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"rlimits", json::array({{{"type", "RLIMIT_NOFILE"},
                                {"hard", spec.max_open_files},
                                {"soft", spec.max_open_files}}})},
      {"noNewPrivileges", true},
  };

  json mounts = DefaultMounts();
  for (const ContainerMount& m : spec.mounts) {
    json options = json::array();
    if (m.type == "bind") {
      options.push_back("rbind");
      options.push_back("rprivate");
    }
    options.push_back(m.read_only ? "ro" : "rw");
    mounts.push_back({{"destination", m.destination},
                      {"type", m.type},
                      {"source", m.source},
                      {"options", options}});
  }
  if (!spec.mps_pipe_dir.empty()) {
    mounts.push_back({{"destination", spec.mps_pipe_dir},
                      {"type", "bind"},
                      {"source", spec.mps_pipe_dir},
                      {"options", {"rbind", "rprivate", "rw"}}});
  }
  for (const CdiMount& m : edits.mounts) {
    json options = m.options;
    const bool bind = m.type.empty() || m.type == "bind";
    if (bind && std::find(m.options.begin(), m.options.end(), "bind") == m.options.end() &&
        std::find(m.options.begin(), m.options.end(), "rbind") == m.options.end()) {
      options.push_back("rbind");
    }
    mounts.push_back({{"destination", m.container_path},
                      {"type", bind ? "bind" : m.type},
                      {"source", m.host_path},
                      {"options", options}});
  }

  json namespaces =
      json::array({{{"type", "pid"}}, {{"type", "ipc"}}, {{"type", "uts"}}, {{"type", "mount"}}});
  if (spec.netns.empty()) {
    namespaces.push_back({{"type", "network"}});
  } else if (spec.netns != "host") {
    namespaces.push_back({{"type", "network"}, {"path", spec.netns}});
  }

  json resources = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (spec.cpu.value() > 0) {
    resources["cpu"] = {
        {"quota", spec.cpu.value() * kCfsPeriodUs / 1000},
        {"period", kCfsPeriodUs},
        // 1024 shares per CPU, as the kernel counts them; at least the kernel's minimum of 2.
        {"shares", std::max<int64_t>(2, spec.cpu.value() * 1024 / 1000)},
    };
  }
  if (spec.memory.value() > 0) {
    const int64_t bytes = spec.memory.value() * 1024 * 1024;
    // No swap beyond the limit, so exceeding it is an OOM kill, not slow paging.
    resources["memory"] = {{"limit", bytes}, {"swap", bytes}};
  }
  if (spec.pids_limit > 0) resources["pids"] = {{"limit", spec.pids_limit}};

  json devices = json::array();
  for (const CdiDeviceNode& n : edits.device_nodes) {
    const std::string type = n.type.empty() ? "c" : n.type;
    devices.push_back({{"path", n.path},
                       {"type", type},
                       {"major", n.major},
                       {"minor", n.minor},
                       {"fileMode", n.file_mode >= 0 ? n.file_mode : 0666},
                       {"uid", n.uid >= 0 ? n.uid : 0},
                       {"gid", n.gid >= 0 ? n.gid : 0}});
    resources["devices"].push_back({{"allow", true},
                                    {"type", type},
                                    {"major", n.major},
                                    {"minor", n.minor},
                                    {"access", n.permissions.empty() ? "rwm" : n.permissions}});
  }
  if (!spec.gpus.empty() && spec.devices.device_nodes.empty()) {
    std::vector<int> indexes;
    for (const ContainerGpu& g : spec.gpus) indexes.push_back(g.device_index);
    std::sort(indexes.begin(), indexes.end());
    indexes.erase(std::unique(indexes.begin(), indexes.end()), indexes.end());
    auto add_dev = [&](const std::string& path, int64_t minor) {
      devices.push_back({{"path", path},
                         {"type", "c"},
                         {"major", kNvidiaMajor},
                         {"minor", minor},
                         {"fileMode", 0666},
                         {"uid", 0},
                         {"gid", 0}});
      resources["devices"].push_back({{"allow", true},
                                      {"type", "c"},
                                      {"major", kNvidiaMajor},
                                      {"minor", minor},
                                      {"access", "rwm"}});
    };
    add_dev("/dev/nvidiactl", kNvidiaCtlMinor);
    for (int idx : indexes) add_dev(Cat("/dev/nvidia", idx), idx);
  }

  json linux = {
      {"namespaces", namespaces},
      {"resources", resources},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
        "/proc/scsi"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
  if (!spec.cgroups_path.empty()) linux["cgroupsPath"] = spec.cgroups_path;
  if (!devices.empty()) linux["devices"] = devices;

  json hooks = json::object();
  for (const CdiHook& h : edits.hooks) {
    json hook = {{"path", h.path}};
    if (!h.args.empty()) hook["args"] = h.args;
    if (!h.env.empty()) hook["env"] = h.env;
    if (h.timeout > 0) hook["timeout"] = h.timeout;
    hooks[h.hook_name].push_back(hook);
  }
  json doc = json{
      {"ociVersion", "1.0.2"},
      {"root", {{"path", spec.rootfs}, {"readonly", spec.read_only_rootfs}}},
      {"process", process},
      {"hostname", spec.hostname.empty() ? spec.id : spec.hostname},
      {"mounts", mounts},
      {"linux", linux},
  };
  if (!hooks.empty()) doc["hooks"] = hooks;
  return doc;
}

}  // namespace berth::runtime
