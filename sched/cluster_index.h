// Internal state of a Cluster, shared with the Scheduler: hosts, the groups of hosts in
// identical states, allocations, quotas and the fragmentation caches. Not part of the public
// API; only cluster.cc and scheduler.cc include it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "sched/cluster.h"

namespace berth::sched {

// Hosts with the same capacity, labels and GPU hardware share a class: everything that never
// changes about a host, so static checks (labels, GPU model) run once per class per request.
struct HostClass {
  core::Resources capacity;
  Labels labels;
  std::vector<core::GpuDevice> gpus;  // uuid and PCI address cleared
  int nvlink_islands = 0;
  int numa_nodes = 0;
};

// Per-shape figures of one free state, for incremental FGD: whether the shape fits, how many
// GPUs could hold one GPU's worth of it, and the free milli of the GPUs that cannot.
struct ShapeFrag {
  bool fits = false;
  int holding = 0;
  int64_t unheld_milli = 0;
};

// Hosts in one identical state. `hosts` is ordered so the lowest index, the one the scheduler
// places on, is first.
struct HostGroup {
  int cls = -1;
  std::vector<int64_t> key;
  absl::btree_set<int> hosts;
  int live_pos = -1;  // position in Index::live_groups, -1 when free
  // Fragmentation cache for the mix with version frag_version.
  uint64_t frag_version = 0;
  int64_t weighted_frag = 0;  // Σ_c w_c F(c)
  std::vector<ShapeFrag> shape_frag;
};

// A compact copy of what the scheduler's first pass over groups needs, so rejecting a group
// or scoring it for the simple rankers touches one small record.
struct GroupSummary {
  int cls = -1;
  int min_host = -1;
  bool schedulable = true;
  core::Resources free;
  int64_t util_cpu = 0;  // allocated / capacity, scaled to 1e9 (see Util in scheduler.cc)
  int64_t util_memory = 0;
  int64_t util_gpu = 0;
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

struct Cluster::Index {
  std::vector<HostState> hosts;
  std::vector<int> host_class;
  std::vector<int> host_group;
  std::vector<bool> schedulable;
  std::vector<std::vector<std::string>> host_allocations;
  absl::flat_hash_map<std::string, int> host_by_name;

  std::vector<HostClass> classes;
  std::map<std::string, int> class_by_key;

  std::vector<HostGroup> groups;
  std::vector<GroupSummary> summary;  // by group id
  std::vector<int> free_groups;
  std::vector<int> live_groups;
  absl::flat_hash_map<std::vector<int64_t>, int> group_by_key;

  absl::flat_hash_map<std::string, Allocation> allocations;
  std::map<std::string, Quota, std::less<>> quotas;
  std::map<std::string, TenantUsage, std::less<>> usage;
  ClusterTotals totals;
  int64_t max_host_gpu_milli = 0;

  // Moves host `h` to the group of its current state.
  void Regroup(int h);
  void Summarize(int group);
  std::vector<int64_t> StateKey(int h) const;
  // Fills the group's fragmentation cache for `mix` if it is stale.
  const HostGroup& Frag(int group, const WorkloadMix& mix);
};

// One MIG placement: the first allowed start slice whose memory slices are all free, or -1.
int FirstFreeMigStart(uint8_t used, const core::MigProfile& profile);
// Bit mask of the memory slices a MIG instance of `profile` starting at `start` takes.
uint8_t MigMask(const core::MigProfile& profile, int start);
// Milli-GPU a MIG instance of `profile` counts for.
int64_t MigMilli(const core::MigProfile& profile);

}  // namespace berth::sched
