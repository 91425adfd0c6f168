// The placement model: what a host offers, what a workload asks for, and where the scheduler
// put it. Plain value types shared by the cluster model (cluster.h), the scheduler
// (scheduler.h), the server's scheduling loop and the simulator. All quantities are integers:
// milli-CPU, MiB, milli-GPU (1000 = one whole device).
//
// Thread-safety: plain values; const access is safe from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/device.h"
#include "core/gpu.h"
#include "core/resources.h"

namespace berth::sched {

// Host and workload labels. Ordered so that every iteration over them is deterministic.
using Labels = std::map<std::string, std::string>;

// A constraint on host labels: `gpu.vendor = nvidia`, `zone in (a, b)`, `rack not in (r1)`,
// `has-ib exists`.
struct LabelSelector {
  enum class Op { kEquals, kIn, kNotIn, kExists };
  std::string key;
  Op op = Op::kEquals;
  std::vector<std::string> values;  // kEquals: exactly one; kExists: none

  bool Matches(const Labels& labels) const;
  bool operator==(const LabelSelector&) const = default;
};

// Affinity (same host) or anti-affinity (different host) to other workloads, chosen by one of
// their labels: {key "app", value "kv-cache"} matches every workload labelled app=kv-cache.
struct WorkloadAffinity {
  std::string key;
  std::string value;
  bool anti = false;  // true: must not share a host with any match; false: must share one
  bool operator==(const WorkloadAffinity&) const = default;
};

// What a host is: fixed for the host's life. GPU devices carry model, memory, NUMA node,
// NVLink island and whether the device is partitioned into MIG instances.
struct HostSpec {
  std::string name;
  core::Resources capacity;
  Labels labels;
  std::vector<core::GpuDevice> gpus;
  std::vector<core::Device> devices;  // other accelerators; health is the caller's to filter
};

// One GPU device and what is left of it.
struct GpuState {
  core::GpuDevice device;
  int64_t free_milli = core::kWholeGpuMilli;  // 1000 = idle
  int64_t free_memory_mib = 0;                // device memory not reserved by shares
  uint8_t mig_slices_used = 0;                // bit i: MIG memory slice i (of 8) is taken
  int shares = 0;                             // workloads holding a share or MIG slice of it
};

// A host's devices of one class (core/device.h) and which of them are taken.
struct DeviceClassState {
  std::string cls;   // "xilinx.com/fpga"
  int class_id = 0;  // the cluster's number for the class (Cluster::DeviceClassId)
  std::vector<std::string> ids;
  std::vector<bool> used;  // by position in ids
  int free = 0;            // count of !used
};
// A host's devices of other classes, by class id ascending (Cluster::devices).
using HostDevices = std::vector<DeviceClassState>;

// A host as the scheduler sees it: capacity, what is allocated, labels and its GPUs.
struct HostState {
  std::string name;
  core::Resources capacity;
  core::Resources allocated;
  Labels labels;
  std::vector<GpuState> gpus;

  core::Resources Free() const { return capacity - allocated; }
  int64_t GpuCapacityMilli() const { return int64_t(gpus.size()) * core::kWholeGpuMilli; }
  int64_t FreeGpuMilli() const;
  int64_t GpuMemoryMiB() const;      // total device memory
  int64_t FreeGpuMemoryMiB() const;  // device memory not reserved
};

// A Request::spread_key that makes every host its own spread domain.
inline constexpr std::string_view kSpreadByHost = "@host";

// A placement request: one workload (or one member of a gang).
struct Request {
  std::string id;      // unique among live allocations, e.g. the workload id
  std::string tenant;  // quota owner; empty = no quota applies
  int priority = 0;    // higher wins; preemption evicts only strictly lower priority
  bool preemptible = true;
  core::Resources resources;
  core::GpuRequest gpu;
  std::vector<core::DeviceRequest> devices;  // devices of other classes, each class once
  Labels labels;                             // this workload's own labels (for others' affinity)
  std::vector<LabelSelector> host_selector;  // all must match the host's labels
  std::vector<WorkloadAffinity> affinity;    // all must hold
  // Spread: prefer the value of this host label (e.g. "rack") holding the fewest workloads of
  // the same spread group (spread_group, or gang_id when that is empty, else the tenant).
  // kSpreadByHost spreads across the hosts themselves, with no label needed.
  std::string spread_key;
  std::string spread_group;
  std::string gang_id;  // members of one gang share it; see Scheduler::ScheduleGang
  int gang_size = 0;
  // The saved state the workload resumes from where its host holds one (a service replica's
  // warm state); empty: none. Hosts that hold it are preferred, see
  // SchedulerOptions::holds_warm_state.
  std::string warm_state;
  // Host names the request may go to (empty: any host) and may not go to: what a constraint on
  // a host's own name asks (a workload pinned to the host its disks are on). Kept apart from
  // the host labels, so that otherwise identical hosts stay one group for the scheduler; a host
  // they rule out counts as turned down by its labels.
  std::vector<std::string> only_hosts;
  std::vector<std::string> not_hosts;

  // The group counted by spread_key.
  const std::string& SpreadGroup() const {
    if (!spread_group.empty()) return spread_group;
    if (!gang_id.empty()) return gang_id;
    return tenant;
  }
};

// Where a request goes: the host and the concrete devices (GPU indices, share of each, MIG
// instance). `host` indexes Cluster::host().
struct Placement {
  int host = -1;
  std::string host_name;
  std::vector<core::GpuAssignment> gpus;
  std::vector<core::DeviceAssignment> devices;
  bool operator==(const Placement&) const = default;
};

// "Why pending": how many hosts one feasibility checker rejected.
struct ReasonCount {
  std::string reason;  // "cpu", "gpu model not allowed", "insufficient gpu share", "quota", ...
  int hosts = 0;
  bool operator==(const ReasonCount&) const = default;
};

// "gpu model not allowed: 312 hosts; insufficient gpu share: 801; cpu: 12".
std::string FormatReasons(const std::vector<ReasonCount>& reasons);

// Checks a request for malformed fields (negative quantities, unknown MIG profile, share out of
// range). InvalidArgument naming the workload and the field, e.g.
// `workload "train-7": gpu.count must be >= 0, got -2`.
absl::Status ValidateRequest(const Request& request);

}  // namespace berth::sched
