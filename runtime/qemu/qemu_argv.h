// Spec -> QEMU command line, as a pure function: the same VmLaunchSpec always yields the same argv,
// so the translation is golden-tested (runtime/qemu/testdata/*.argv; regenerate with
// BERTH_UPDATE_GOLDENS=1). Nothing here touches the host (accel_probe.h decides
// between KVM and TCG).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::runtime {

enum class VmAccel { kKvm, kTcg };

struct VmDisk {
  std::string id;                // "disk0"; also the QEMU node name
  std::string path;              // host path of the image file or block device
  std::string format = "qcow2";  // "qcow2", "raw"
  bool read_only = false;
};

struct VmPortForward {
  int host_port = 0;
  int guest_port = 0;
  std::string protocol = "tcp";  // "tcp" or "udp"
  std::string host_address = "127.0.0.1";
};

struct VmNic {
  enum class Mode { kUser, kTap };
  std::string id;  // "net0"
  Mode mode = Mode::kUser;
  std::string mac;                      // empty = QEMU picks one
  std::string tap_device;               // kTap: an existing tap interface, already on its bridge
  std::vector<VmPortForward> forwards;  // kUser: host -> guest port forwards
};

// Everything QEMU needs to run one VM. Paths are absolute.
struct VmLaunchSpec {
  std::string name;  // workload name, shown as the QEMU process name
  std::string binary = "qemu-system-x86_64";
  std::string machine = "q35";
  VmAccel accel = VmAccel::kTcg;
  int vcpus = 1;
  int sockets = 1;  // topology: sockets * cores * threads == vcpus
  int cores = 1;
  int threads = 1;
  int64_t memory_mib = 256;
  // Direct kernel boot when kernel is set, disk boot (first disk) otherwise.
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  std::vector<VmDisk> disks;
  std::vector<VmNic> nics;
  std::string serial_log;  // the serial console is written here
  std::string qmp_socket;  // QMP server on this unix socket
  std::string pidfile;
  std::vector<std::string> vfio_pci;  // host PCI addresses passed through ("0000:3b:00.0")
  // Empty PCIe root ports (q35) that disks can be plugged into while the VM runs.
  int hotplug_ports = 4;
  bool daemonize = true;      // QEMU detaches once it is initialized
  std::string incoming_file;  // restore from a snapshot file written by migrate
};

// The argv (argv[0] = binary). InvalidArgument naming the field for an inconsistent spec
// (`vm "tiny": vcpus must be >= 1, got 0`).
absl::StatusOr<std::vector<std::string>> BuildQemuArgv(const VmLaunchSpec& spec);

// Splits vcpus into a topology QEMU accepts: one socket of `vcpus` cores.
void SetDefaultTopology(VmLaunchSpec& spec);

// The id of hot-plug port `i` ("hotplug0"): the bus a disk plugged in later goes on.
std::string HotplugPortId(int i);

// Quotes `s` for /bin/sh, which runs QEMU's exec: migration commands.
std::string ShellQuote(std::string_view s);

}  // namespace berth::runtime
