// host-state: a cordoned or draining host takes no new workloads, whatever else it has free.
#include "sched/checker.h"

namespace berth::sched {
namespace {

class HostStateChecker final : public GroupChecker<HostStateChecker> {
 public:
  bool Prepare(const CheckContext&) override { return true; }
  // Schedulability is part of a group's state, so the summary answers for every host.
  int Check(const CheckContext&, const GroupSummary& g, const ClassCheck&) const {
    return g.schedulable ? kFeasible : kNotSchedulable;
  }
};

}  // namespace

std::unique_ptr<Checker> NewHostStateChecker() { return std::make_unique<HostStateChecker>(); }

}  // namespace berth::sched
