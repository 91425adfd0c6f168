// Internal state of a Cluster, shared with the Scheduler: hosts, the groups of hosts in
// identical states, allocations, quotas and the fragmentation caches. Not part of the public
// API; only cluster.cc and scheduler.cc include it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "sched/cluster.h"
#include "sched/fits.h"

namespace berth::sched {

// Hosts with the same capacity, labels and GPU hardware share a class: everything that never
// changes about a host, so static checks (labels, GPU model) run once per class per request.
struct HostClass {
  core::Resources capacity;
  Labels labels;
  std::vector<core::GpuDevice> gpus;  // uuid and PCI address cleared
  // Devices of other classes: (class id, how many), by class id.
  std::vector<std::pair<int, int>> device_totals;
  int nvlink_islands = 0;
  int numa_nodes = 0;
  std::vector<int> pools;  // Index::model_pools position of each device's model
};

// All GPUs of one model across the cluster: how much of them is allocated.
struct ModelPool {
  std::string model;
  int64_t capacity_milli = 0;
  int64_t allocated_milli = 0;
};

// A host's free state as a flat key: class, schedulable, allocation, and per device free milli,
// free memory and MIG slices. Inline up to eight devices, so grouping rarely allocates.
using StateKeyVec = absl::InlinedVector<int64_t, 32>;

// The mix as the fragmentation code reads it, built once per mix version: its distinct GPU
// requests (shapes that differ only in CPU, memory or disk share one), each with the resources
// and weights of the entries that use it. Device checks then run once per GPU request instead of
// once per shape.
struct MixGpu {
  core::GpuRequest gpu;
  int need = 1;        // devices that must hold one GPU's worth: the count for whole GPUs, else 1
  int64_t weight = 0;  // Σ weight of the entries using it
  struct Use {
    core::Resources resources;
    int64_t weight = 0;
  };
  std::vector<Use> uses;
};

struct MixPlan {
  uint64_t version = 0;         // the WorkloadMix version it was built from; 0: none
  int64_t cpu_only_weight = 0;  // Σ weight of shapes without GPUs
  std::vector<MixGpu> gpus;
};

// DeviceFitFor every (distinct GPU request of the mix, device) of one class, at
// [request * devices + device].
struct ClassFragStatic {
  uint64_t version = 0;
  std::vector<DeviceFit> dev;
};

// Per distinct GPU request of the mix, for one free state: how many devices could hold one
// GPU's worth of it, and the free milli of the devices that cannot.
struct GpuFrag {
  int holding = 0;
  int64_t unheld_milli = 0;
};

// Hosts in one identical state. `hosts` is ordered so the lowest index, the one the scheduler
// places on, is first.
struct HostGroup {
  int cls = -1;
  StateKeyVec key;
  absl::btree_set<int> hosts;
  int live_pos = -1;  // position in Index::live_groups, -1 when free
  uint64_t gen = 0;   // unique per group lifetime: a group's state never changes while it lives
  // Fragmentation cache for the mix with version frag_version; gpu_frag is indexed like
  // MixPlan::gpus.
  uint64_t frag_version = 0;
  int64_t weighted_frag = 0;  // Σ_c w_c F(c)
  std::vector<GpuFrag> gpu_frag;
  // Whether Index::cluster_frag counts this group's hosts, at counted_frag each.
  bool counted = false;
  int64_t counted_frag = 0;
};

// A compact copy of what the scheduler's first pass over groups needs, so rejecting a group
// or scoring it for the simple rankers touches one small record.
struct GroupSummary {
  int cls = -1;
  int min_host = -1;
  bool schedulable = true;
  core::Resources free;
  int64_t pack_key = 0;  // PackKey of what is allocated
  int bucket = 0;        // min(idle devices, kMaxIdleBucket) * 5 + share level
  int64_t gpu_used_milli = 0;
  uint32_t idle_mask = 0;      // bit i: device i is idle (whole devices, not MIG)
  int64_t max_share_free = 0;  // most free milli on one non-MIG device
  bool mig_free = false;       // some MIG device has a free slice
};

// used * 1e9 / cap, rounded down; 0 when there is no capacity.
inline int64_t Util(int64_t used, int64_t cap) {
  if (cap <= 0) return 0;
  return int64_t((__int128(used) * 1'000'000'000) / cap);
}

// Binpack's utilization in [0, 1e9] is the separable sum PackKey(allocated) + PackKey(request):
// on a GPU host CPU and memory weigh a quarter each and GPUs half (in an AI cluster they are
// the scarce part); on a host without GPUs CPU and memory weigh half each.
inline int64_t PackKey(const core::Resources& capacity, int64_t gpu_capacity_milli,
                       const core::Resources& amount, int64_t gpu_milli) {
  auto part = [](int64_t used, int64_t cap, int64_t scale) -> int64_t {
    return cap <= 0 ? 0 : int64_t((__int128(used) * scale) / cap);
  };
  if (gpu_capacity_milli <= 0) {
    return part(amount.cpu.value(), capacity.cpu.value(), 500'000'000) +
           part(amount.memory.value(), capacity.memory.value(), 500'000'000);
  }
  return part(amount.cpu.value(), capacity.cpu.value(), 250'000'000) +
         part(amount.memory.value(), capacity.memory.value(), 250'000'000) +
         part(gpu_milli, gpu_capacity_milli, 500'000'000);
}

inline constexpr int kMaxIdleBucket = 16;
inline constexpr int64_t kShareLevel = 250;  // share levels: free milli / 250, at most 4

// An entry of the binpack order: highest key first, then lowest host.
struct PackEntry {
  int64_t key;
  int min_host;
  int group;
  bool operator<(const PackEntry& o) const {
    if (key != o.key) return key > o.key;
    if (min_host != o.min_host) return min_host < o.min_host;
    return group < o.group;
  }
};

struct Cluster::Index {
  std::vector<HostState> hosts;
  std::vector<HostDevices> host_devices;  // by host
  std::vector<int> host_class;
  std::vector<int> host_group;
  std::vector<bool> schedulable;
  std::vector<std::vector<std::string>> host_allocations;
  absl::flat_hash_map<std::string, int> host_by_name;

  std::vector<HostClass> classes;
  std::map<std::string, int> class_by_key;
  std::vector<ModelPool> model_pools;
  // Device classes (core/device.h) numbered in the order hosts first offered them.
  absl::flat_hash_map<std::string, int> device_class_ids;

  std::vector<HostGroup> groups;
  std::vector<GroupSummary> summary;  // by group id
  // Live groups per class and bucket in binpack order, and all live groups by lowest host.
  std::vector<std::map<int, absl::btree_set<PackEntry>>> pack;
  absl::btree_set<std::pair<int, int>> by_min_host;
  std::vector<int> free_groups;
  std::vector<int> live_groups;
  absl::flat_hash_map<StateKeyVec, int> group_by_key;

  // Node-based: Allocation is large, and pointers handed out by FindAllocation stay valid.
  absl::node_hash_map<std::string, Allocation> allocations;
  std::map<std::string, Quota, std::less<>> quotas;
  std::map<std::string, TenantUsage, std::less<>> usage;
  ClusterTotals totals;
  uint64_t next_gen = 1;
  uint64_t hosts_version = 0;  // changes when hosts are added
  int64_t max_host_gpu_milli = 0;

  // The cluster's Σ_n w-weighted F_n for the mix with version cluster_frag_version (0: not
  // kept), over groups with `counted` set; groups created since the last Fragmentation call
  // wait in frag_pending as (id, gen). Commit and Release adjust it for the one host they move.
  uint64_t cluster_frag_version = 0;
  int64_t cluster_frag = 0;
  std::vector<std::pair<int, uint64_t>> frag_pending;

  MixPlan mix_plan;
  std::vector<ClassFragStatic> class_frag_static;  // by class

  // Moves host `h` to the group of its current state.
  void Regroup(int h);
  void Summarize(int group);
  void IndexInsert(int group);
  void IndexErase(int group);
  StateKeyVec StateKey(int h) const;
  // Fills the group's fragmentation cache for `mix` if it is stale.
  const HostGroup& Frag(int group, const WorkloadMix& mix);
  // The plan of `mix`, rebuilt when the mix changed.
  const MixPlan& Plan(const WorkloadMix& mix);
  // The class's DeviceFit table for `plan`.
  const DeviceFit* ClassFragStatics(int cls, const MixPlan& plan);
  // Σ_n Σ_c w_c F_n(c) over all hosts, kept up to date incrementally.
  int64_t ClusterFrag(const WorkloadMix& mix);
};

// Bit mask of the memory slices a MIG instance of `profile` starting at `start` takes.
uint8_t MigMask(const core::MigProfile& profile, int start);
// Milli-GPU a MIG instance of `profile` counts for.
int64_t MigMilli(const core::MigProfile& profile);

}  // namespace berth::sched
