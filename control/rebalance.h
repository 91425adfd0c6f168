// Rebalance plans for the live cluster: for each pending workload that no host takes, whether it
// fits after all, whether the next scheduling pass places it by preemption, or which moves of
// running workloads would make room for it (sched::PlanDefrag), worked out on a copy of the
// cluster model's sched::Cluster with the server's policy. A dry run: nothing is stopped, moved
// or written, and the plans do not reserve anything. Carrying a plan out (live migration, or a
// stop and a start elsewhere as a drain does) is not implemented.
//
// Each pending workload is planned alone against the cluster as it stands, so two plans may
// count on the same free room; carried out one after the other, the second may need planning
// again.
//
// What may move, and what a move costs (RebalanceMoveCost): a workload moves only if its task
// would start again elsewhere without losing what it was asked to keep. It stays when it is not
// running (pending, paused, stopping), when its restart policy is never (as a drain leaves it),
// when it is not preemptible, when its priority is above the pending workload's, or when it has
// disks attached (a disk lives in one host's storage pool). A move costs its kind's weight: a
// process 1, a container 2 (an image to start again), a VM 4 (a guest to boot again, or memory
// to copy). PlanDefrag keeps the plan with the fewest moves, then the lowest total cost.
//
// A move goes only to a host with a driver for the moved workload's kind; a plan that would put
// it elsewhere is planned again with that workload kept in place.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/json.h"
#include "core/workload.h"
#include "sched/cluster.h"

namespace berth::control {

class ControlPlane;

inline constexpr int kMaxRebalanceMoves = 16;
inline constexpr size_t kMaxRebalanceLimit = 200;

struct RebalanceOptions {
  // Only this workload (it must be pending); empty: the pending workloads in placement order
  // (priority first, then age), at most `limit`.
  std::string workload;
  int max_moves = 4;  // per plan, 1..kMaxRebalanceMoves
  size_t limit = 20;  // 1..kMaxRebalanceLimit
};

struct RebalanceMove {
  std::string workload;
  core::WorkloadKind kind = core::WorkloadKind::kProcess;
  std::string from_host;
  std::string to_host;
  std::vector<int> to_gpus;  // device indices on to_host
  int64_t cost = 0;
};

enum class RebalanceOutcome {
  kFits,      // a host takes it as the cluster stands: the next pass places it
  kPreempts,  // the next pass places it by preempting lower-priority workloads
  kPlan,      // these moves make room for it
  kNoPlan,    // none within the limits; `reason` says why
};
std::string_view RebalanceOutcomeName(RebalanceOutcome outcome);

struct RebalanceEntry {
  std::string workload;
  core::WorkloadKind kind = core::WorkloadKind::kProcess;
  int priority = 0;
  int64_t gpu_milli = 0;  // what it asks, in milli-GPU
  RebalanceOutcome outcome = RebalanceOutcome::kNoPlan;
  std::string host;                  // where it goes (all outcomes but kNoPlan)
  std::vector<int> gpus;             // its device indices there
  std::vector<std::string> victims;  // kPreempts: the workloads the pass would preempt
  std::vector<RebalanceMove> moves;  // kPlan, in the order to carry them out
  int64_t cost = 0;                  // kPlan: Σ move cost
  // kPlan: the cluster's stranded GPU (see RebalanceReport) once the moves are done and the
  // workload placed.
  int64_t stranded_gpu_milli_after = 0;
  std::string reason;  // kNoPlan
};

struct RebalanceReport {
  std::string policy;  // the server's scheduling policy, which the plans follow
  int max_moves = 0;
  // Over the hosts that take workloads (ready, not cordoned): GPU capacity, free, and stranded,
  // the free GPU on partly allocated devices, which no request for a whole device can use.
  int64_t gpu_milli_capacity = 0;
  int64_t gpu_milli_free = 0;
  int64_t stranded_gpu_milli = 0;
  size_t pending = 0;  // pending workloads in all
  bool more = false;   // `limit` left pending workloads out
  std::vector<RebalanceEntry> entries;
};

// The plans for the pending workloads of `control`'s cluster model (brought up to the store's
// latest first), on a copy of the model's cluster with the server's policy (ControlPlaneOptions::
// policy); FGD's mix is learned from the workloads the model holds, oldest first, as a server
// does when it starts to lead. Nothing is written. InvalidArgument for limits out of range,
// NotFound for an unknown options.workload, FailedPrecondition for one that is not pending (or
// a server policy that does not parse).
absl::StatusOr<RebalanceReport> PlanRebalance(ControlPlane* control,
                                              const RebalanceOptions& options);

// The cost of moving `w` for a pending workload of priority `for_priority`, or nullopt when it
// stays (the rules above).
std::optional<int64_t> RebalanceMoveCost(const core::Workload& w, int for_priority);

// The free GPU, in milli-GPU, on devices partly allocated, over the schedulable hosts.
int64_t StrandedGpuMilli(const sched::Cluster& cluster);

// {"dry_run": true, "policy", "max_moves", "gpu": {"capacity_milli", "free_milli",
// "stranded_milli"}, "pending", "more", "items": [{"workload", "kind", "priority", "gpu_milli",
// "outcome": "fits"|"preempts"|"plan"|"no-plan", "host", "gpus", "victims", "moves": [{"workload",
// "kind", "from", "to", "gpus", "cost"}], "cost", "stranded_milli_after", "reason"}]}; each item
// carries the fields of its outcome.
core::Json EncodeRebalanceReport(const RebalanceReport& report);

}  // namespace berth::control
