// Spec -> OCI runtime config.json, as a pure function: the same ContainerLaunchSpec always yields
// the same document, golden-tested in runtime/oci/testdata/*.json (regenerate with
// BERTH_UPDATE_GOLDENS=1). Covers rootfs, process, hostname, mounts, namespaces, cgroup limits
// (CPU quota and shares, memory, pids), GPU exposure through the NVIDIA container environment,
// and CDI device edits: device nodes with device-cgroup rules that allow exactly those nodes,
// mounts, environment and OCI hooks.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/quantity.h"
#include "nlohmann/json.hpp"
#include "runtime/cdi.h"

namespace berth::runtime {

struct ContainerMount {
  std::string source;       // host path (bind) or filesystem source
  std::string destination;  // path inside the container
  std::string type = "bind";
  bool read_only = false;
};

// One GPU exposed to a container.
struct ContainerGpu {
  // What NVIDIA_VISIBLE_DEVICES lists: a GPU ("GPU-<uuid>" or an index "0") or a MIG instance
  // ("MIG-<uuid>" or "0:1").
  std::string id;
  int device_index = 0;    // host device index, for /dev/nvidiaN
  int64_t milli = 1000;    // share of the device; < 1000 runs the task as an MPS client
  int64_t memory_mib = 0;  // with a share: device memory the share may pin
};

struct ContainerLaunchSpec {
  std::string id;      // container id (runc), also the cgroup leaf
  std::string rootfs;  // absolute path
  bool read_only_rootfs = false;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string cwd = "/";
  std::string hostname;
  std::vector<ContainerMount> mounts;  // in addition to /proc, /dev, /sys and friends
  core::MilliCpu cpu{0};               // 0 = no CPU limit
  core::MemoryMiB memory{0};           // 0 = no memory limit
  int64_t pids_limit = 0;              // 0 = no limit
  int64_t max_open_files = 1024;
  std::string cgroups_path;  // "/berth/<id>"
  // Network namespace: empty = a new, empty one; a path = join it (set up by the network driver);
  // "host" = share the host's.
  std::string netns;
  std::vector<ContainerGpu> gpus;
  // The MPS control daemon's pipe directory for a share: mounted in at the same path and named
  // in CUDA_MPS_PIPE_DIRECTORY.
  std::string mps_pipe_dir;
  // CDI edits for the container's GPUs, with every device node's type and numbers known
  // (CompleteDeviceNodes). When they name device nodes, those are the only GPU devices the
  // container gets (no built-in NVIDIA nodes).
  CdiEdits devices;
  // CDI edits for its devices of other classes (core/device.h), completed the same way.
  CdiEdits class_devices;
};

// The config.json document. InvalidArgument naming the field for an unusable spec
// (`container "box": args must not be empty`).
absl::StatusOr<nlohmann::json> BuildOciConfig(const ContainerLaunchSpec& spec);

// CFS period used for CPU quotas, in microseconds.
inline constexpr int64_t kCfsPeriodUs = 100000;

}  // namespace berth::runtime
