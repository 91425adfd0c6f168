// What this machine offers: CPUs and memory from /proc, disk from the data directory's file
// system, GPUs from nvidia-smi when it is present or else from the agent's config file, and
// labels from the config. The config may also cap what Berth may use (reserving the rest for
// the host itself).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/host.h"

namespace berth::agent {

// The agent's config file (YAML or JSON):
//   name: gpu-node-1                  # default: the machine's host name
//   labels: {rack: r1}
//   cpu: 30                           # default: all online CPUs
//   memory: 200Gi                     # default: MemTotal
//   gpus:                             # used only where nvidia-smi is absent
//     - {model: A100-SXM4-80GB, memory: 80Gi, numa_node: 0, nvlink_island: 0}
struct AgentConfig {
  std::string name;
  std::string vm_accel;          // "auto", "kvm" or "tcg"; empty = not set (auto)
  core::HostInventory declared;  // capacity fields of 0 mean "detect"
};

absl::StatusOr<AgentConfig> ParseAgentConfig(const core::Json& json);
absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path);

// Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id
// --format=csv,noheader,nounits` output.
absl::StatusOr<std::vector<core::GpuDevice>> ParseNvidiaSmi(std::string_view csv);

// Detects the machine and merges the config over it.
absl::StatusOr<core::HostInventory> DetectInventory(const AgentConfig& config,
                                                    const std::string& data_dir);

// The machine's host name as a valid Berth host name (lower case).
std::string LocalHostName();

}  // namespace berth::agent
