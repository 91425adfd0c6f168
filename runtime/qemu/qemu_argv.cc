#include "runtime/qemu/qemu_argv.h"

#include "absl/strings/match.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::runtime {
namespace {

using core::Cat;

absl::Status VmError(const VmLaunchSpec& spec, std::string_view field, std::string_view msg) {
  return core::FieldError("vm", spec.name, field, msg);
}

// QEMU's option parser splits on ',' ("a,,b" is a literal comma in a value).
std::string EscapeOpt(std::string_view value) {
  std::string out;
  for (char c : value) {
    out.push_back(c);
    if (c == ',') out.push_back(',');
  }
  return out;
}

bool IsPciAddress(std::string_view a) {
  // dddd:bb:dd.f
  if (a.size() != 12) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (i == 4 || i == 7) {
      if (c != ':') return false;
    } else if (i == 10) {
      if (c != '.') return false;
    } else if (!hex) {
      return false;
    }
  }
  return true;
}

bool IsMac(std::string_view m) {
  if (m.size() != 17) return false;
  for (size_t i = 0; i < m.size(); ++i) {
    char c = m[i];
    if (i % 3 == 2) {
      if (c != ':') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

absl::Status Validate(const VmLaunchSpec& spec) {
  if (spec.name.empty()) return absl::InvalidArgumentError("vm: name must not be empty");
  if (spec.hotplug_ports < 0 || spec.hotplug_ports > 16) {
    return VmError(spec, "hotplug_ports", Cat("must be 0-16, got ", spec.hotplug_ports));
  }
  if (spec.vcpus < 1) return VmError(spec, "vcpus", Cat("must be >= 1, got ", spec.vcpus));
  if (spec.sockets < 1 || spec.cores < 1 || spec.threads < 1 ||
      spec.sockets * spec.cores * spec.threads != spec.vcpus) {
    return VmError(spec, "topology",
                   Cat("sockets*cores*threads must equal vcpus ", spec.vcpus, ", got ",
                       spec.sockets, "*", spec.cores, "*", spec.threads));
  }
  if (spec.memory_mib < 16) {
    return VmError(spec, "memory", Cat("must be >= 16Mi, got ", spec.memory_mib, "Mi"));
  }
  if (spec.kernel.empty() && spec.disks.empty()) {
    return VmError(spec, "boot", "needs a kernel or at least one disk");
  }
  if (spec.kernel.empty() && (!spec.initrd.empty() || !spec.cmdline.empty())) {
    return VmError(spec, "kernel", "must be set when initrd or cmdline is");
  }
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const VmDisk& d = spec.disks[i];
    std::string f = Cat("disks[", static_cast<int>(i), "]");
    if (d.id.empty()) return VmError(spec, Cat(f, ".id"), "must not be empty");
    if (d.path.empty()) return VmError(spec, Cat(f, ".path"), "must not be empty");
    if (d.format != "qcow2" && d.format != "raw") {
      return VmError(spec, Cat(f, ".format"), Cat("must be qcow2 or raw, got \"", d.format, "\""));
    }
  }
  for (size_t i = 0; i < spec.nics.size(); ++i) {
    const VmNic& n = spec.nics[i];
    std::string f = Cat("nics[", static_cast<int>(i), "]");
    if (n.id.empty()) return VmError(spec, Cat(f, ".id"), "must not be empty");
    if (!n.mac.empty() && !IsMac(n.mac)) {
      return VmError(spec, Cat(f, ".mac"),
                     Cat("must look like 52:54:00:12:34:56, got \"", n.mac, "\""));
    }
    if (n.mode == VmNic::Mode::kTap) {
      if (n.tap_device.empty()) return VmError(spec, Cat(f, ".tap_device"), "must be set for tap");
      if (!n.forwards.empty()) {
        return VmError(spec, Cat(f, ".forwards"), "only user-mode networking forwards ports");
      }
    }
    for (const VmPortForward& p : n.forwards) {
      if (p.host_port < 1 || p.host_port > 65535 || p.guest_port < 1 || p.guest_port > 65535) {
        return VmError(spec, Cat(f, ".forwards"),
                       Cat("ports must be in 1..65535, got ", p.host_port, "->", p.guest_port));
      }
      if (p.protocol != "tcp" && p.protocol != "udp") {
        return VmError(spec, Cat(f, ".forwards.protocol"),
                       Cat("must be tcp or udp, got \"", p.protocol, "\""));
      }
    }
  }
  for (size_t i = 0; i < spec.vfio_pci.size(); ++i) {
    if (!IsPciAddress(spec.vfio_pci[i])) {
      return VmError(
          spec, Cat("vfio_pci[", static_cast<int>(i), "]"),
          Cat("must be a PCI address like 0000:3b:00.0, got \"", spec.vfio_pci[i], "\""));
    }
  }
  if (spec.qmp_socket.empty()) return VmError(spec, "qmp_socket", "must not be empty");
  if (spec.daemonize && spec.pidfile.empty()) {
    return VmError(spec, "pidfile", "must be set when daemonizing");
  }
  return absl::OkStatus();
}

}  // namespace

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out += "'";
  return out;
}

void SetDefaultTopology(VmLaunchSpec& spec) {
  spec.sockets = 1;
  spec.cores = spec.vcpus > 0 ? spec.vcpus : 1;
  spec.threads = 1;
}

std::string HotplugPortId(int i) { return Cat("hotplug", i); }

absl::StatusOr<std::vector<std::string>> BuildQemuArgv(const VmLaunchSpec& spec) {
  BERTH_RETURN_IF_ERROR(Validate(spec));
  std::vector<std::string> a;
  auto add = [&](std::initializer_list<std::string> items) {
    a.insert(a.end(), items.begin(), items.end());
  };
  const bool kvm = spec.accel == VmAccel::kKvm;
  add({spec.binary});
  add({"-name", Cat("guest=", EscapeOpt(spec.name), ",process=berth-", EscapeOpt(spec.name))});
  // No default devices or user config: the VM has exactly what the spec says.
  add({"-nodefaults", "-no-user-config", "-display", "none"});
  add({"-machine", Cat(spec.machine, ",accel=", kvm ? "kvm" : "tcg")});
  add({"-cpu", kvm ? "host" : "max"});
  add({"-smp", Cat(spec.vcpus, ",sockets=", spec.sockets, ",cores=", spec.cores,
                   ",threads=", spec.threads)});
  add({"-m", Cat(spec.memory_mib, "M")});
  // A guest reboot ends the VM; the agent decides whether to start it again.
  add({"-no-reboot", "-action", "panic=shutdown"});
  if (!spec.kernel.empty()) {
    add({"-kernel", spec.kernel});
    if (!spec.initrd.empty()) add({"-initrd", spec.initrd});
    if (!spec.cmdline.empty()) add({"-append", spec.cmdline});
  }
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const VmDisk& d = spec.disks[i];
    add({"-blockdev", Cat("driver=file,node-name=", d.id, "-file,filename=", EscapeOpt(d.path),
                          d.read_only ? ",read-only=on" : "")});
    add({"-blockdev", Cat("driver=", d.format, ",node-name=", d.id, ",file=", d.id, "-file",
                          d.read_only ? ",read-only=on" : "")});
    std::string dev = Cat("virtio-blk-pci,drive=", d.id, ",id=", d.id, "-dev");
    if (spec.kernel.empty() && i == 0) dev += ",bootindex=1";
    add({"-device", dev});
  }
  for (const VmNic& n : spec.nics) {
    std::string netdev;
    if (n.mode == VmNic::Mode::kUser) {
      netdev = Cat("user,id=", n.id);
      for (const VmPortForward& p : n.forwards) {
        netdev +=
            Cat(",hostfwd=", p.protocol, ":", p.host_address, ":", p.host_port, "-:", p.guest_port);
      }
    } else {
      netdev = Cat("tap,id=", n.id, ",ifname=", n.tap_device, ",script=no,downscript=no");
      if (kvm) netdev += ",vhost=on";
    }
    add({"-netdev", netdev});
    std::string dev = Cat("virtio-net-pci,netdev=", n.id, ",id=", n.id, "-dev");
    if (!n.mac.empty()) dev += Cat(",mac=", n.mac);
    add({"-device", dev});
  }
  for (const std::string& pci : spec.vfio_pci) add({"-device", Cat("vfio-pci,host=", pci)});
  // A guest panic reaches QMP as GUEST_PANICKED.
  add({"-device", "pvpanic"});
  // q35's root bus takes no hot-plugged devices: disks attached later go into these ports.
  if (absl::StartsWith(spec.machine, "q35")) {
    for (int i = 0; i < spec.hotplug_ports; ++i) {
      add({"-device", Cat("pcie-root-port,id=", HotplugPortId(i), ",chassis=", i + 1)});
    }
  }
  if (!spec.serial_log.empty()) {
    add({"-chardev", Cat("file,id=serial0,path=", EscapeOpt(spec.serial_log))});
    add({"-serial", "chardev:serial0"});
  }
  add({"-chardev", Cat("socket,id=qmp,path=", EscapeOpt(spec.qmp_socket), ",server=on,wait=off")});
  add({"-mon", "chardev=qmp,mode=control"});
  if (!spec.pidfile.empty()) add({"-pidfile", spec.pidfile});
  if (!spec.incoming_file.empty()) {
    add({"-incoming", Cat("exec:cat ", ShellQuote(spec.incoming_file))});
  }
  if (spec.daemonize) add({"-daemonize"});
  return a;
}

}  // namespace berth::runtime
