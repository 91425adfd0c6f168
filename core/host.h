// Hosts (machines an agent runs on) and events. A host registers its inventory (CPU, memory,
// disk, GPUs, labels); the server keeps its liveness (heartbeats) and what is allocated on it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/device.h"
#include "core/gpu.h"
#include "core/json.h"
#include "core/resources.h"

namespace berth::core {

// What an agent reports about its machine.
struct HostInventory {
  Resources capacity;
  std::vector<GpuDevice> gpus;
  // Other accelerators, by class and id (device.h), from the host's CDI specs.
  std::vector<Device> devices;
  std::map<std::string, std::string> labels;
  std::vector<std::string> drivers;  // compute drivers usable here: "process", "vm", ...
  std::string address;               // where the agent can be reached, informational
  std::string os;                    // kernel release
  // What the host's drivers found out about it, e.g. {"vm_accel": "tcg", "vm_accel_reason":
  // "kvm probe failed: ...; using tcg"}. Informational; the scheduler does not read it.
  std::map<std::string, std::string> fingerprint;
};

enum class HostState { kReady, kDown };
std::string_view HostStateName(HostState s);

struct Host {
  std::string name;
  HostInventory inventory;
  HostState state = HostState::kReady;
  absl::Time last_heartbeat = absl::InfinitePast();
  absl::Time registered_at = absl::InfinitePast();
  int64_t revision = 0;
  // Set by `berth host cordon` (and by a drain): nothing new is placed here. Survives the
  // agent registering again; `uncordon` clears it.
  bool cordoned = false;
  // A drain in progress (`berth host drain`): the workload being moved off now ("" between two),
  // and how many have been moved so far.
  bool draining = false;
  std::string drain_current;
  int drain_moved = 0;
};

absl::StatusOr<HostInventory> DecodeHostInventory(std::string_view host_name, const Json& j);
Json EncodeHostInventory(const HostInventory& inv);
Json EncodeHost(const Host& h);
absl::StatusOr<Host> DecodeHost(const Json& j);

// What the placed workloads hold on a host, from the server's allocation records: the sum of
// their requests and, per GPU device, the share held and by whom. GET /v1/hosts serves it with
// each host as "allocated".
struct GpuDeviceAllocation {
  int index = 0;
  int64_t milli = 0;                 // allocated share, 1000 = the whole device
  int64_t memory_mib = 0;            // device memory reserved by shares
  std::vector<std::string> holders;  // workload names
  bool operator==(const GpuDeviceAllocation&) const = default;
};
// A device of a class and the workload holding it (empty when free).
struct DeviceAllocation {
  std::string cls;
  std::string id;
  std::string holder;
  bool operator==(const DeviceAllocation&) const = default;
};
struct HostAllocation {
  Resources resources;
  int64_t gpu_milli = 0;
  int workloads = 0;
  std::vector<GpuDeviceAllocation> gpus;  // one per device of the inventory, in its order
  std::vector<DeviceAllocation> devices;  // one per schedulable device of a class
  bool operator==(const HostAllocation&) const = default;
};
Json EncodeHostAllocation(const HostAllocation& a);
absl::StatusOr<HostAllocation> DecodeHostAllocation(std::string_view host_name, const Json& j);

// What an agent measured on its host, sent with each heartbeat: CPU busy over the last interval,
// memory in use, and per GPU device (where nvidia-smi answers) utilization and memory in use.
// The server keeps the latest report per host in memory; GET /v1/hosts serves it as "used".
struct GpuDeviceUsage {
  int index = 0;
  int utilization_percent = 0;  // 0..100
  int64_t memory_used_mib = 0;
  bool operator==(const GpuDeviceUsage&) const = default;
};
// What one workload used over the agent's last interval.
struct WorkloadUsage {
  std::string name;
  MilliCpu cpu;          // CPU time per second, in milli-CPU
  MemoryMiB memory;      // resident memory
  MemoryMiB gpu_memory;  // device memory its processes hold on the host's GPUs
  // Storage and network throughput in bytes per second; unset where the driver does not count
  // them (a process shares the host's network, so it has no network figures of its own).
  std::optional<int64_t> disk_read_per_second;
  std::optional<int64_t> disk_write_per_second;
  std::optional<int64_t> net_rx_per_second;  // received by the workload
  std::optional<int64_t> net_tx_per_second;  // sent by the workload
  // When the workload last wrote its checkpoint (the newest change in its BERTH_CHECKPOINT_DIR);
  // unset without one. Preemption prefers victims that lose the least work.
  std::optional<absl::Time> checkpoint_at;
  bool operator==(const WorkloadUsage&) const = default;
};
// The most bytes per second a usage report may carry for one counter (1 PB/s).
inline constexpr int64_t kMaxUsageBytesPerSecond = int64_t{1} << 50;

struct HostUsage {
  MilliCpu cpu;      // CPU time per second over the last interval, in milli-CPU
  MemoryMiB memory;  // memory in use (total less available)
  std::vector<GpuDeviceUsage> gpus;
  // The workloads the agent runs that it measured twice or more (CPU needs an interval).
  std::vector<WorkloadUsage> workloads;
  bool operator==(const HostUsage&) const = default;
};
inline constexpr size_t kMaxUsageGpus = 64;
inline constexpr size_t kMaxUsageWorkloads = 4096;
Json EncodeHostUsage(const HostUsage& u);
// Errors name the host and the field (`host "h": usage.cpu ...`); at most kMaxUsageGpus devices
// and kMaxUsageWorkloads workloads, each named as a workload name must be.
absl::StatusOr<HostUsage> DecodeHostUsage(std::string_view host_name, const Json& j);

// Something that happened to an object: "workload hello: scheduled on host-1".
struct Event {
  int64_t revision = 0;  // the store revision it was written at; events are ordered by it
  absl::Time time = absl::InfinitePast();
  std::string kind;    // "workload", "host"
  std::string object;  // the object's name
  std::string type;    // "created", "scheduled", "running", "stopped", "failed", "down", ...
  std::string message;
};

Json EncodeEvent(const Event& e);
Event DecodeEvent(const Json& j);

}  // namespace berth::core
