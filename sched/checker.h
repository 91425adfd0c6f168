// Feasibility checkers: the filtering stage of the placement pipeline (scheduler.h). Each checker
// answers one question about a host for one request (is it schedulable, do its labels match,
// does it have devices of an allowed model, is there room for the CPU, memory and disk, do
// enough devices hold the GPU request, do its workloads satisfy affinity) and, when the answer
// is no, names the reason that "why is my workload pending?" reports. The scheduler runs the
// checkers of the table in its order; the first that rejects a host decides its reason. Rankers
// (ranker.h) then score the hosts every checker kept.
//
// A checker answers at the cheapest scope that can decide:
//   kClass  once per host class (identical hardware and labels) per request: static checks;
//   kGroup  once per group of hosts in an identical free state, from the group's summary; it
//           may say kMaybe, and then CheckHost on the group's first host decides;
//   kHost   per host: checks that look at the workloads a host runs.
// Capacity questions go through the one fits rule (fits.h).
//
// Adding a checker takes one new file and its registration in the table:
//   1. sched/check_<name>.cc: a class implementing Checker and a factory
//      `std::unique_ptr<Checker> New<Name>Checker()` (and the file in sched/CMakeLists.txt);
//   2. in sched/checkers.cc, the factory's declaration and its row in the table, at the place
//      in the pipeline where it belongs (name, factory, one line of doc); a new reason goes
//      into Reason and kReasonNames here;
// plus a test in sched/checkers_test.cc.
//
// Ownership: a Scheduler makes one instance of each checker of the table and owns it; a checker
// may keep per-request state from Prepare. Thread-safety: like the Scheduler, none.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "sched/cluster.h"
#include "sched/cluster_index.h"
#include "sched/fits.h"
#include "sched/model.h"

namespace berth::sched {

// Why a checker turned a host down. The order is the pipeline's: it also breaks ties between
// reasons with equal host counts in an explanation.
enum Reason : int {
  kNotSchedulable,  // cordoned or draining
  kLabels,          // host_selector does not match
  kNoGpu,           // GPU request, host has no GPU devices
  kGpuModel,        // no device of an allowed model
  kGpuMemory,       // no allowed device with enough device memory
  kMigProfile,      // no MIG-partitioned device offering the profile
  kQuotaModel,      // the tenant's quota for the device model is used up
  kDeviceClass,     // too few devices of a requested class on the host at all
  kCpu,
  kMemory,
  kDisk,
  kGpuCount,     // not enough idle whole devices
  kGpuShare,     // no device with enough free share and memory
  kMigSlot,      // no free MIG slot for the profile
  kDeviceCount,  // too few free devices of a requested class
  kAffinity,
  kAntiAffinity,
  kNumReasons,
};

// What a check returns besides a Reason.
inline constexpr int kFeasible = -1;
inline constexpr int kMaybe = -2;  // CheckGroup only: the host's CheckHost decides
// A verdict of GroupBatch: a checker left the group open (kMaybe) and a later one rejected it,
// so the group surely fails but only the host checks can name the first reason.
inline constexpr int kSettledMaybe = -3;

// Folds one checker's answer `v` into a group's verdict so far (kFeasible or kMaybe: open; a
// Reason or kSettledMaybe: settled, and later checkers leave it alone).
inline void FoldVerdict(int& verdict, int v) {
  if (v >= 0) {
    verdict = verdict == kMaybe ? kSettledMaybe : v;
  } else if (v == kMaybe) {
    verdict = kMaybe;
  }
}
inline bool VerdictOpen(int verdict) { return verdict == kFeasible || verdict == kMaybe; }

// The text of a reason in explanations ("cpu", "insufficient gpu share", ...).
std::string_view ReasonName(int reason);

// What the class-scope checkers learn about one host class for one request, read by the later
// stages: the static half of the fits rule per device, and the devices that passed.
struct ClassCheck {
  absl::InlinedVector<DeviceFit, 8> gpu;  // by device position; default (no fit) if excluded
  uint32_t ok_mask = 0;                   // bit i: device i (i < 32) passed the static checks
};

// What host-scope checks leave for the device search: the devices that hold one GPU's worth of
// the request as the host is now, in position order.
struct HostCheck {
  absl::InlinedVector<int, 16> holding;
};

// What every checker may read during one scheduling pass for one request.
struct CheckContext {
  const Cluster& cluster;  // quotas
  const Cluster::Index& index;
  const Request& request;
};

enum class CheckScope { kClass, kGroup, kHost };

// Many groups at once, for the scheduler's pass over every group: entry k is group ids[k], with
// its verdict so far (see FoldVerdict).
struct GroupBatch {
  const int* ids;
  const GroupSummary* summaries;     // by group id
  const ClassCheck* const* classes;  // by class id
  int* verdicts;
  size_t size;
  const GroupSummary& group(size_t k) const { return summaries[ids[k]]; }
  const ClassCheck& class_check(size_t k) const { return *classes[group(k).cls]; }
};

class Checker {
 public:
  virtual ~Checker() = default;

  virtual CheckScope scope() const = 0;
  // Called once per request before any check; false when the request asks nothing of this
  // checker (no GPU, no host selector, ...): the pass then skips it.
  virtual bool Prepare(const CheckContext& ctx) = 0;

  // kClass: a Reason or kFeasible for every host of class `cls`; may narrow `out` (which
  // earlier class checkers have filled) for the later stages.
  virtual int CheckClass(const CheckContext& ctx, int cls, ClassCheck& out) { return kFeasible; }
  // kGroup: a Reason, kFeasible, or kMaybe for every host of a group with summary `g`.
  virtual int CheckGroup(const CheckContext& ctx, const GroupSummary& g, const ClassCheck& cls) {
    return kFeasible;
  }
  // kGroup: CheckGroup folded into each open verdict of the batch. GroupChecker implements it
  // with one virtual call per batch instead of per group.
  virtual void CheckGroups(const CheckContext& ctx, const GroupBatch& batch) {
    for (size_t k = 0; k < batch.size; ++k) {
      if (!VerdictOpen(batch.verdicts[k])) continue;
      FoldVerdict(batch.verdicts[k], CheckGroup(ctx, batch.group(k), batch.class_check(k)));
    }
  }
  // kHost, and kGroup checkers on a host their group check passed or left open: a Reason or
  // kFeasible for host `h` as it is now; may fill `out`.
  virtual int CheckHost(const CheckContext& ctx, int h, const ClassCheck& cls, HostCheck& out) {
    return kFeasible;
  }
};

// The base of a group-scope checker `Self` with a non-virtual
// `int Check(const CheckContext&, const GroupSummary&, const ClassCheck&) const`: the batch loop
// calls it directly, so the pass over every group costs no virtual call per group.
template <typename Self>
class GroupChecker : public Checker {
 public:
  CheckScope scope() const final { return CheckScope::kGroup; }
  int CheckGroup(const CheckContext& ctx, const GroupSummary& g, const ClassCheck& cls) final {
    return static_cast<const Self*>(this)->Check(ctx, g, cls);
  }
  void CheckGroups(const CheckContext& ctx, const GroupBatch& batch) final {
    const Self& self = *static_cast<const Self*>(this);
    for (size_t k = 0; k < batch.size; ++k) {
      if (!VerdictOpen(batch.verdicts[k])) continue;
      FoldVerdict(batch.verdicts[k], self.Check(ctx, batch.group(k), batch.class_check(k)));
    }
  }
};

using CheckerFactory = std::unique_ptr<Checker> (*)();

struct CheckerEntry {
  std::string_view name;
  CheckerFactory make;
  std::string_view doc;
};

// The checkers in the order the pipeline runs them.
const std::vector<CheckerEntry>& CheckerTable();
// The entry named `name`, or null.
const CheckerEntry* FindChecker(std::string_view name);

}  // namespace berth::sched
