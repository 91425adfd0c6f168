// Internal state of a Cluster, shared with the Scheduler: hosts, the groups of hosts in
// identical states, allocations and quotas. Not part of the public API.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "sched/cluster.h"

namespace berth::sched {

struct Cluster::Index {
  std::vector<HostState> hosts;
  std::vector<bool> schedulable;
  std::vector<std::vector<std::string>> host_allocations;
  absl::flat_hash_map<std::string, int> host_by_name;
  absl::flat_hash_map<std::string, Allocation> allocations;
  std::map<std::string, Quota, std::less<>> quotas;
  std::map<std::string, TenantUsage, std::less<>> usage;
};

}  // namespace berth::sched
