// Defragmentation planning: for a request that no host takes although the cluster has enough GPU
// free in total, a short list of moves of running workloads after which one host takes it. The
// plan is worked out on the cluster model and rolled back: nothing is committed, so the caller
// (the simulator's replay) decides whether to carry it out.
//
// The search, per candidate host (the ones that need the least GPU freed first): evict the
// host's movable workloads cheapest first until the request fits there, drop the evictions that
// turn out unneeded (costliest first), then place each evicted workload on another host with the
// scheduler's policy. The plan kept has the fewest moves, then the lowest total cost, then the
// lowest host index. It is the smallest such set on that host, not a global optimum over all
// move sequences (which would cost a search over every host's workloads).
//
// Thread-safety: like the Cluster it plans on, none.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sched/cluster.h"
#include "sched/scheduler.h"

namespace berth::sched {

struct DefragMove {
  std::string allocation_id;
  int from_host = -1;
  Placement to;
  int64_t cost = 0;
};

struct DefragPlan {
  bool found = false;
  Placement placement;            // where the request goes once the moves are done
  std::vector<DefragMove> moves;  // in the order to carry them out; empty when it fits already
  int64_t cost = 0;               // Σ move cost
};

struct DefragOptions {
  // The cost of moving an allocation, or nullopt when it must stay. Null: workloads marked
  // preemptible move at cost 1, the others stay.
  std::function<std::optional<int64_t>(const Allocation&)> move_cost;
  int max_moves = 4;   // per plan
  int max_hosts = 32;  // candidate hosts tried
};

// InvalidArgument for a malformed request. A plan with found == false when no candidate host
// can be cleared within the limits or the cluster lacks the GPU in total. `scheduler` places on
// `cluster` with the policy the moves follow; it is used for trials only (it learns nothing).
absl::StatusOr<DefragPlan> PlanDefrag(Cluster* cluster, Scheduler* scheduler,
                                      const Request& request, const DefragOptions& options = {});

}  // namespace berth::sched
