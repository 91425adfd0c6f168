// What this machine offers: CPUs and memory from /proc, disk from the data directory's file
// system, GPUs from nvidia-smi when it is present or else from the agent's config file, and
// labels from the config. The config may also cap what Berth may use (reserving the rest for
// the host itself).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/host.h"
#include "runtime/host/executor.h"

namespace berth::agent {

// The agent's config file (YAML or JSON):
//   name: gpu-node-1                  # default: the machine's host name
//   labels: {rack: r1}
//   cpu: 30                           # default: all online CPUs
//   memory: 200Gi                     # default: MemTotal
//   gpus:                             # used only where nvidia-smi is absent
//     - {model: A100-SXM4-80GB, memory: 80Gi, numa_node: 0, nvlink_island: 0}
//   cdi_dirs: [/etc/cdi, /var/run/cdi]  # where CDI specs are read (this is the default)
//   nvidia_smi: /usr/bin/nvidia-smi     # default: nvidia-smi found in PATH
//   mps_control: /usr/bin/nvidia-cuda-mps-control  # default: found in PATH
struct AgentConfig {
  std::string name;
  std::string vm_accel;          // "auto", "kvm" or "tcg"; empty = not set (auto)
  core::HostInventory declared;  // capacity fields of 0 mean "detect"
  std::vector<std::string> cdi_dirs = {"/etc/cdi", "/var/run/cdi"};
  std::string nvidia_smi;                               // empty = look in PATH
  std::string mps_control = "nvidia-cuda-mps-control";  // a path, or a name looked up in PATH
  std::string xid_log;  // a kernel log the NVIDIA driver's Xid lines appear in (xid.h); "" = none
};

absl::StatusOr<AgentConfig> ParseAgentConfig(const core::Json& json);
absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path);

// A PCI address as sysfs and QEMU write it: lower case, a 4-digit domain ("0000:3b:00.0").
std::string NormalizePciAddress(std::string_view address);

// Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id[,mig.mode.current,
// driver_version] --format=csv,noheader,nounits` output.
absl::StatusOr<std::vector<core::GpuDevice>> ParseNvidiaSmi(std::string_view csv);

// What nvidia-smi says about the host's GPUs: devices (with MIG instances and NVLink islands)
// and the driver version.
struct NvidiaSmiReport {
  std::vector<core::GpuDevice> gpus;
  std::string driver_version;
  std::vector<std::string> warnings;  // optional queries that failed
};

// The nvidia-smi to run: `configured` when it is executable, else the first in PATH when
// nothing is configured; empty when there is none.
std::string FindNvidiaSmi(const std::string& configured);

struct NvidiaSmiOptions {
  // Each call's limit: a driver in trouble can leave nvidia-smi hanging, and a query that takes
  // longer counts as failed.
  absl::Duration timeout = absl::Seconds(30);
};

// Runs `binary` (nvidia-smi): --query-gpu for the devices, -L and `mig -lgi` for MIG instances
// where MIG is on, `topo -m` for NVLink islands and NUMA nodes, and `-q` for the error counters
// that make a GPU unhealthy (ParseNvidiaSmiErrors). An error when the device query fails or
// times out (a driver in trouble); the optional queries only warn.
absl::StatusOr<NvidiaSmiReport> QueryNvidiaSmi(runtime::host::Executor& executor,
                                               const std::string& binary,
                                               const NvidiaSmiOptions& options = {});

// The faults `nvidia-smi -q` reports for each GPU, by PCI address as NormalizePciAddress writes
// it: uncorrectable ECC errors counted since the driver loaded (volatile; "Double Bit" totals on
// older GPUs, "SRAM/DRAM Uncorrectable" on newer ones), pages pending retirement, rows pending
// remapping and a failed row remapping. Each value says what was seen; a GPU without faults is
// absent. Sections nested deeper (a MIG device's own counters) are not the GPU's and are skipped.
std::map<std::string, std::string> ParseNvidiaSmiErrors(std::string_view text);
// Marks the GPUs ParseNvidiaSmiErrors finds faulty unhealthy, with what it saw as the reason.
void ApplyNvidiaSmiErrors(std::string_view text, std::vector<core::GpuDevice>* gpus);

// Adds the MIG instances of `nvidia-smi -L` output ("  MIG 3g.40gb Device 0: (UUID: MIG-...)"
// under "GPU 0: ... (UUID: GPU-...)") to the devices of `gpus`.
absl::Status ParseNvidiaSmiList(std::string_view text, std::vector<core::GpuDevice>* gpus);
// Sets each MIG instance's start slice from `nvidia-smi mig -lgi` output, where the instances
// of a GPU match its rows one for one.
void ApplyMigPlacements(std::string_view text, std::vector<core::GpuDevice>* gpus);
// Sets NVLink islands (GPUs joined by NVLink, directly or through others) and NUMA nodes from
// `nvidia-smi topo -m` output, where its matrix covers every GPU of `gpus`.
void ApplyNvidiaTopology(std::string_view text, std::vector<core::GpuDevice>* gpus);

// Gives every GPU without a UUID (declared in the config) the stable one derived from the host
// name and its index (core::DeclaredGpuUuid), the id its workloads see.
void NameDeclaredGpus(std::string_view host, std::vector<core::GpuDevice>* gpus);

// Detects the machine and merges the config over it. The GPUs nvidia-smi lists are kept in
// LastKnownGpusPath(data_dir); when nvidia-smi fails, those GPUs are offered unhealthy with its
// error as the reason (and the error is the fingerprint's gpu_error).
absl::StatusOr<core::HostInventory> DetectInventory(const AgentConfig& config,
                                                    const std::string& data_dir);
// Where DetectInventory keeps the GPUs nvidia-smi listed last.
std::string LastKnownGpusPath(const std::string& data_dir);

// The machine's host name as a valid Berth host name (lower case).
std::string LocalHostName();

}  // namespace berth::agent
