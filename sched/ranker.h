// Rankers: the scoring stage of the placement pipeline (scheduler.h). After the feasibility
// checkers (checker.h) have kept the hosts that can take a request, each ranker of the policy
// scores every survivor in [0, kScoreMax] and the policy sums the scores with its weights. Besides
// scoring, a ranker may steer which devices a request takes on a host (FGD weighs each candidate
// share, topology picks NVLink-local whole devices) and may say that its score follows from a group
// summary alone, which lets the scheduler skip the device search.
//
// Adding a ranker takes one new file and its registration in the table:
//   1. sched/rank_<name>.cc: a class implementing Ranker and a factory
//      `std::unique_ptr<Ranker> New<Name>Ranker()` (and the file in sched/CMakeLists.txt);
//   2. in sched/rankers.cc, the factory's declaration and its row in kRankerTable (name,
//      factory, one line of doc);
// plus a test in sched/rankers_test.cc. Policies then name it ("<name>:0.5+fgd:1").
//
// Ownership: a Scheduler makes one instance of each ranker its policy names, owns it, and may
// keep caches in it. Thread-safety: like the Scheduler, none.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/types/span.h"
#include "sched/cluster_index.h"
#include "sched/mix.h"
#include "sched/model.h"

namespace berth::sched {

// Every ranker scores a host in [0, kScoreMax]; a policy sums weight_milli * score / 1000.
inline constexpr int64_t kScoreMax = 1'000'000'000;

// One device's change under a tentative placement: position in HostState::gpus, the milli and
// device memory taken, and the MIG slices carved.
struct GpuChange {
  int pos;
  int64_t milli;
  int64_t memory_mib;
  uint8_t mig_mask;
};
using GpuChanges = absl::InlinedVector<GpuChange, 8>;

// What every ranker may read during one scheduling pass for one request.
struct RankContext {
  Cluster::Index& cluster;  // mutable only for its caches (fragmentation, mix plan)
  const Request& request;
  int64_t request_gpu_milli;  // request.gpu.TotalMilli()
  const WorkloadMix& mix;
};

// A feasible host and the devices the pass chose on it.
struct Candidate {
  int host;
  const GroupSummary& summary;  // of the host's group
  int64_t util_after;           // binpack's utilization of the host after placing (PackKey)
  const GpuChange* changes;
  size_t num_changes;
  // This ranker's DeviceCost of exactly these changes, when the device search computed it.
  const int64_t* device_cost = nullptr;
};

// How a ranker's score relates to a group summary, for one request.
// The scheduler computes kPack and kSpread scores itself, without a call per group.
enum class SummaryRole {
  kVaries,    // needs the device search: SummaryScore is not used
  kConstant,  // the same for every host: SummaryScore of any group
  kPack,      // the host's utilization after placing: exactly util_after
  kSpread,    // exactly kScoreMax - util_after
};

// How a share or MIG slice picks among the devices that hold it, when this ranker weighs most.
enum class DeviceOrder { kLowestIndex, kTightest, kLoosest };

class Ranker {
 public:
  virtual ~Ranker() = default;

  // The host's score in [0, kScoreMax]; higher wins.
  virtual int64_t Score(RankContext& ctx, const Candidate& c) = 0;

  virtual SummaryRole summary_role(const Request&) const { return SummaryRole::kVaries; }
  // The score from the group summary alone, equal to Score for any host of the group: what
  // summary_role says it is (the scheduler calls it once per request for kConstant).
  virtual int64_t SummaryScore(const RankContext&, const GroupSummary&, int64_t util_after) const {
    return 0;
  }

  // A part of the score that depends on the cluster as a whole, not on the host's own state, so
  // that it cannot be kept with a group's cached evaluation: the scheduler adds
  // weight * ClusterScore / 1000 to Score each time it weighs a host of class `cls`, asking once
  // per class and request. Rankers that have one say so for the request here. Score plus
  // ClusterScore stays in [0, kScoreMax].
  virtual bool has_cluster_score(const Request&) const { return false; }
  virtual int64_t ClusterScore(RankContext&, int cls) { return 0; }

  virtual DeviceOrder device_order() const { return DeviceOrder::kTightest; }
  // Rankers that weigh each candidate device of a share or MIG slice (lower cost wins, before
  // device_order) say so here and implement DeviceCost.
  virtual bool costs_devices() const { return false; }
  virtual int64_t DeviceCost(RankContext&, int host, const GpuChange* changes, size_t n) {
    return 0;
  }
  // For a request of `count` >= 2 whole devices: writes `count` positions from `idle` (the
  // devices that hold one, in order) to `chosen` and returns true to override the default (the
  // first `count`). The first ranker of the policy that returns true decides.
  virtual bool ChooseWholeDevices(const RankContext&, int host, absl::Span<const int> idle,
                                  int count, int* chosen) const {
    return false;
  }
};

using RankerFactory = std::unique_ptr<Ranker> (*)();

struct RankerEntry {
  std::string_view name;
  RankerFactory make;
  std::string_view doc;
};

// The table of rankers a policy can name, in the order RankerNames lists them.
const std::vector<RankerEntry>& RankerTable();
// The entry named `name`, or null.
const RankerEntry* FindRanker(std::string_view name);

}  // namespace berth::sched
