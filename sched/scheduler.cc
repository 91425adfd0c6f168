#include "sched/scheduler.h"

namespace berth::sched {

std::vector<std::string> RankerNames() {
  return {"first-fit", "binpack", "spread", "dotprod", "gpu-packing", "fgd", "topology"};
}
absl::StatusOr<Policy> Policy::Parse(std::string_view text) {
  return absl::UnimplementedError("Policy::Parse");
}
std::string Policy::ToString() const { return ""; }
bool Policy::Uses(std::string_view) const { return false; }
std::string Decision::Explain() const { return FormatReasons(reasons); }

Scheduler::Scheduler(Cluster* cluster, SchedulerOptions options)
    : cluster_(cluster), options_(std::move(options)), tracker_(options_.tracker) {}
absl::StatusOr<Decision> Scheduler::Schedule(const Request&) {
  return absl::UnimplementedError("Schedule");
}
absl::StatusOr<GangDecision> Scheduler::ScheduleGang(const std::vector<Request>&) {
  return absl::UnimplementedError("ScheduleGang");
}
absl::StatusOr<Decision> Scheduler::ScheduleWithPreemption(const Request&) {
  return absl::UnimplementedError("ScheduleWithPreemption");
}
absl::StatusOr<Decision> Scheduler::Place(const Request&) {
  return absl::UnimplementedError("Place");
}
const WorkloadMix& Scheduler::mix() const { return options_.mix ? *options_.mix : tracker_.mix(); }

}  // namespace berth::sched
