// The host's CDI specs, read from disk: every *.json, *.yaml and *.yml file of the spec
// directories (by default /etc/cdi, then /var/run/cdi, where `nvidia-ctk cdi generate` and other
// vendors' tools write them; a later directory's device replaces an earlier one's of the same
// name). A file that cannot be read or decoded is skipped and named in `problems`, so one bad
// spec never hides the others. Also maps a workload's GPUs to their CDI device names.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/device.h"
#include "core/gpu.h"
#include "runtime/cdi.h"

namespace berth::agent {

inline constexpr size_t kMaxCdiSpecBytes = 4 << 20;
inline constexpr size_t kMaxCdiSpecFiles = 256;  // per directory

// Where CDI specs live on a host, lowest precedence first.
std::vector<std::string> DefaultCdiDirs();

struct CdiSpecs {
  runtime::CdiRegistry registry;
  std::vector<std::string> files;     // the specs read, in order
  std::vector<std::string> problems;  // "FILE: why it was skipped"
};

// Reads the specs of `dirs`; a directory that does not exist holds none.
CdiSpecs LoadCdiSpecs(const std::vector<std::string>& dirs);

// The kind NVIDIA's generator gives GPUs (and their MIG instances).
inline constexpr std::string_view kNvidiaGpuKind = "nvidia.com/gpu";

// The CDI device for a GPU granted with stable id `device_id` (and host index `gpu.index`):
// "nvidia.com/gpu=<id>" when a spec names the device by its UUID (as nvidia-ctk does), else
// "nvidia.com/gpu=<index>" for a whole GPU named by its index; "" when no spec has it.
std::string CdiNameForGpu(const runtime::CdiRegistry& registry, const core::GpuAssignment& gpu,
                          std::string_view device_id);

// The devices of other classes the specs describe: every device of a kind other than
// nvidia.com/gpu (GPUs come from nvidia-smi or the config), but the one named "all", which
// stands for the others. A device is healthy when the device nodes its edits (and its spec's)
// name are present on the host; otherwise its health names the missing node.
std::vector<core::Device> CdiClassDevices(const runtime::CdiRegistry& registry);

}  // namespace berth::agent
