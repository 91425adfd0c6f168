// ServiceAutoscaler: decides how many replicas one service should run from the load its endpoint
// measured, the way Knative's pod autoscaler (KPA) does: the metric averaged over the stable
// window divided by the target per replica; a panic mode that follows the short panic window and
// only scales up while the load is at least twice what the ready replicas are meant to take; a
// scale-down delay that keeps the highest decision of its window; and, with min 0, scale to zero
// after idle_to_zero without a request (and back to at least one replica at the next request).
//
// Pure: time comes in as arguments, so tests drive it with a fake clock; no I/O, no threads.
// Thread-safety: none; the service controller keeps one per service and uses it on its pass.
#pragma once

#include <deque>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "core/service.h"

namespace berth::control {

// What was measured over (at - span, at]: at the endpoint, the average number of open
// connections, the new connections per second and whether any connection was open or new; from
// the agents' reports, the replicas' utilization.
struct AutoscaleSample {
  absl::Time at;
  absl::Duration span;
  double concurrency = 0;
  double rps = 0;
  // The running replicas' utilization summed (metrics cpu and gpu): 1.5 is one and a half
  // replicas' worth of what each requested.
  double utilization = 0;
  bool active = false;
};

struct AutoscaleDecision {
  int desired = 0;
  double stable_value = 0;  // the metric averaged over the stable window
  double panic_value = 0;   // and over the panic window
  bool panic = false;
  bool idle = false;  // scaled to zero for lack of requests
  std::string reason;
};

class ServiceAutoscaler {
 public:
  // `start`: when observing began; a service counts as active then, so it is not stopped for
  // idleness before idle_to_zero passed (InfinitePast: it has been idle forever).
  explicit ServiceAutoscaler(absl::Time start) : last_active_(start) {}

  void Record(const AutoscaleSample& sample);
  // The replicas to run now, given the spec, how many the service keeps now (`current`) and how
  // many of them are ready. Without samples the current number stays (within min and max).
  AutoscaleDecision Decide(const core::AutoscaleSpec& spec, absl::Time now, int current, int ready);
  absl::Time last_active() const { return last_active_; }

 private:
  // The time-weighted average of the metric over (now - window, now], over the part of the
  // window the samples cover; false when none falls in it.
  bool Average(const core::AutoscaleSpec& spec, absl::Time now, absl::Duration window,
               double* out) const;

  std::deque<AutoscaleSample> samples_;  // oldest first
  absl::Time last_active_;
  absl::Time panic_time_ = absl::InfinitePast();   // last time over the panic threshold
  int max_panic_ = 0;                              // the most replicas decided in this panic
  std::deque<std::pair<absl::Time, int>> recent_;  // decisions within the scale-down delay
};

}  // namespace berth::control
