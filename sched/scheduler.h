// The placement pipeline: a request and the cluster model in, a plan (host, concrete devices,
// victims to evict) or a structured "unschedulable" answer out. The feasibility checkers of one
// table (checker.h) run first, in its order, each recording why it rejected a host; the rankers
// a policy names (ranker.h) then score the survivors and the policy sums their scores with
// weights. Two preferences come before the scores: a request's spread (the fewest of its group)
// and then the hosts that hold the saved state it resumes from (SchedulerOptions). No I/O, no
// threads, no clock.
//
// Ownership: a Scheduler borrows the Cluster, which must outlive it. Schedule* calls never
// change the cluster's allocations (a gang is tried on the model and rolled back); the caller
// commits a plan with Cluster::Commit (the server with compare-and-set in its store).
// Thread-safety: not thread-safe, like the Cluster it uses.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sched/cluster.h"
#include "sched/fits.h"
#include "sched/mix.h"
#include "sched/model.h"

namespace berth::sched {

class Checker;  // checker.h
struct ClassCheck;
class Ranker;  // ranker.h

// Rankers a policy can name (the table in rankers.cc):
//   first-fit    every feasible host scores the same: the lowest-index host wins
//   binpack      best fit: the host left with the least free capacity after placing
//   spread       the least allocated host
//   dotprod      alignment (cosine) of the host's free vector with the request
//   gpu-packing  a share goes to an already-shared GPU with the tightest fit, then to a free GPU
//                on a host already in use, then to an idle host
//   fgd          the host (and GPU) where the mix's fragmentation F_n(M) grows least
//   fgd-ref      FGD as published (ATC'23): the mix's popular classes (PopularClasses), the score
//                floor(100 · sigmoid(ΔF / 1000 milli-GPU)), ties to the lowest host index
//   fgd-pool     fgd-ref, but a class tied to GPU models counts no fragmentation on hosts of
//                other models, and requests free to choose a model favour the GPU model pool
//                with the largest free share (room kept for requests tied to a model)
//   topology     multi-GPU requests prefer devices on one NVLink island, then one NUMA node
std::vector<std::string> RankerNames();

// A weighted sum of rankers. Parsed from "fgd", "binpack:1+topology:0.5" (terms joined with
// '+', the one spelling the server's --policy and `berth sim --policy` lists share; a comma is
// refused because it separates policies in those lists) or "default" (kDefaultPolicy); a weight
// is a decimal with up to three places, kept as integer milli.
struct Policy {
  struct Term {
    std::string ranker;
    int64_t weight_milli = 1000;
    bool operator==(const Term&) const = default;
  };
  std::vector<Term> terms;

  static absl::StatusOr<Policy> Parse(std::string_view text);
  std::string ToString() const;
  bool Uses(std::string_view ranker) const;
  bool operator==(const Policy&) const = default;
};

// The policy the server uses unless configured otherwise: fgd-pool, which left the least GPU
// unallocated on every profile of docs/placement-study.md, with topology weighed so lightly that
// it only breaks fgd-pool's ties (its 0.005 spans half of one fgd-pool score step) and picks
// NVLink-local devices for multi-GPU requests.
inline constexpr std::string_view kDefaultPolicy = "fgd-pool:1+topology:0.005";
// The name that stands for kDefaultPolicy wherever a policy is parsed.
inline constexpr std::string_view kDefaultPolicyName = "default";

struct SchedulerOptions {
  Policy policy;
  // The mix FGD scores against. Null: the scheduler's own tracker, which learns it from the
  // requests passed to Schedule (see MixTrackerOptions).
  const WorkloadMix* mix = nullptr;
  MixTrackerOptions tracker;
  // Fill Decision::reasons even when the request is scheduled (costs a full pass).
  bool always_explain = false;
  // The seconds of work evicting an allocation (by id) would lose: since its last checkpoint, or
  // since it started. Among victim sets of equal priority and size, preemption picks the one
  // that loses the least. Null: every eviction loses the same.
  std::function<int64_t(const std::string& id)> lost_work;
  // Whether the host (by name) holds the saved state `key` a request names in warm_state. Among
  // the feasible hosts that hold the fewest of the request's spread group, those holding it come
  // first, whatever the policy's scores; so the preference never places a request where it does
  // not fit, nor gives up spreading. Null: no host holds any.
  std::function<bool(const std::string& host, const std::string& key)> holds_warm_state;
};

// Where one request goes, and whom it evicts first.
struct Plan {
  std::string request_id;
  Placement placement;
  std::vector<std::string> victims;  // allocation ids to release before committing
};

// The answer for one request: a plan, or why no host would take it.
struct Decision {
  bool scheduled = false;
  Plan plan;                         // valid when scheduled
  std::vector<ReasonCount> reasons;  // per-checker rejected host counts, largest first
  std::string Explain() const;       // FormatReasons(reasons), or "scheduled on HOST"
};

// The answer for a gang: every member placed, or none.
struct GangDecision {
  bool scheduled = false;
  std::vector<Plan> plans;  // one per member, in the order given, when scheduled
  std::vector<ReasonCount> reasons;
  std::string failed_member;  // the first member that found no host
};

class Scheduler {
 public:
  // InvalidArgument for an unknown ranker comes from Policy::Parse; the policy given here is
  // used as is (an empty policy is first-fit).
  Scheduler(Cluster* cluster, SchedulerOptions options);
  ~Scheduler();

  // Plans `request` without evicting anyone. InvalidArgument for a malformed request;
  // otherwise a Decision, scheduled or with reasons (a quota breach is the reason "quota").
  absl::StatusOr<Decision> Schedule(const Request& request);
  // Plans all members (all or nothing). Members with a spread_key are spread across that host
  // label; otherwise the gang is packed onto as few hosts as possible.
  absl::StatusOr<GangDecision> ScheduleGang(const std::vector<Request>& members);
  // Like Schedule, but when the request fits nowhere, looks for victims of strictly lower
  // priority (preemptible ones only) whose eviction makes it fit, minimizing in order the
  // highest victim priority, the number of victims, the work they lose (options.lost_work) and
  // the resources freed.
  absl::StatusOr<Decision> ScheduleWithPreemption(const Request& request);

  // Like Schedule without learning the mix from the request: for trial placements.
  absl::StatusOr<Decision> ScheduleWithoutLearning(const Request& request);
  // The same, looking only at `hosts` (indices).
  absl::StatusOr<Decision> ScheduleOnHosts(const Request& request, const std::vector<int>& hosts);

  // Schedule and, when scheduled, Commit: the simulator's and the benchmark's loop.
  absl::StatusOr<Decision> Place(const Request& request);

  const Policy& policy() const { return options_.policy; }
  // The mix FGD uses now.
  const WorkloadMix& mix() const;

 private:
  class Pass;
  // Schedule without validation or mix tracking; `only`, when set, limits the hosts looked at.
  absl::StatusOr<Decision> ScheduleOn(const Request& request, const std::vector<int>* only);

  // Evaluations of a request shape on a group, valid while the group (gen), the mix and the
  // host set are unchanged: most groups keep their state from one request to the next.
  // What a group answered for one shape while its state (gen) and the mix stayed the same: a
  // Reason when the group's checks turned it down (score unused), else the evaluation's score.
  struct CachedEval {
    uint64_t gen = 0;
    uint64_t mix_version = 0;
    int reason = -1;
    int64_t score = 0;
  };
  // Small id of a request shape for the evaluation cache, or -1 when it is not cacheable.
  int ShapeId(const Request& request);

  Cluster* cluster_;
  SchedulerOptions options_;
  MixTracker tracker_;
  // The policy's rankers, made from the table (ranker.h), with their weights.
  std::vector<std::pair<std::unique_ptr<Ranker>, int64_t>> rankers_;
  // Every checker of the table (checker.h), in pipeline order.
  std::vector<std::unique_ptr<Checker>> checkers_;
  // Scratch of the pass over every group, kept to spare an allocation per request.
  std::vector<int> verdicts_;
  std::vector<int> unchecked_, unchecked_verdicts_;
  std::vector<const ClassCheck*> batch_classes_;
  // The shapes ShapeId has numbered: what a request asks for and where it may go. Every input
  // of the class and group checks is here (or makes the request uncacheable), so a verdict
  // cached for a group under a shape holds for every request of that shape.
  struct CachedShape {
    Shape shape;
    std::vector<LabelSelector> host_selector;
  };
  std::vector<CachedShape> shapes_;
  // The class-scope verdicts per shape id and host class (ClassInfo is defined in
  // scheduler.cc), dropped when hosts are added.
  struct ClassInfo;
  std::vector<std::vector<std::unique_ptr<ClassInfo>>> class_cache_;
  uint64_t class_cache_version_ = 0;
  std::vector<std::vector<CachedEval>> eval_cache_;  // [group id][shape id]
  uint64_t cache_hosts_version_ = 0;
};

}  // namespace berth::sched
