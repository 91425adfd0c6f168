#include "control/service_autoscaler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_format.h"
#include "core/strings.h"

namespace berth::control {
namespace {

using core::Cat;

// Knative's panic threshold: the panic window's load per ready replica at twice the target.
constexpr double kPanicThreshold = 2.0;

// Replicas for `load` at `target` each. A load a hair above a whole multiple (floating-point
// noise in an average) does not ask for one more.
int ReplicasFor(double load, double target) {
  const double n = std::ceil(load / target - 1e-9);
  return n <= 0 ? 0 : static_cast<int>(std::min(n, 1e6));
}

std::string Replicas(int n) { return Cat(n, n == 1 ? " replica" : " replicas"); }

}  // namespace

void ServiceAutoscaler::Record(const AutoscaleSample& sample) {
  samples_.push_back(sample);
  if (sample.active) last_active_ = std::max(last_active_, sample.at);
}

bool ServiceAutoscaler::Average(const core::AutoscaleSpec& spec, absl::Time now,
                                absl::Duration window, double* out) const {
  const absl::Time from = now - window;
  absl::Duration covered;
  double sum = 0;
  for (const AutoscaleSample& s : samples_) {
    const absl::Time lo = std::max(s.at - s.span, from);
    const absl::Time hi = std::min(s.at, now);
    if (hi <= lo) continue;
    double value = s.concurrency;
    if (spec.metric == core::AutoscaleSpec::Metric::kRps) value = s.rps;
    if (spec.metric == core::AutoscaleSpec::Metric::kCpu ||
        spec.metric == core::AutoscaleSpec::Metric::kGpu) {
      value = s.utilization;
    }
    sum += value * absl::ToDoubleSeconds(hi - lo);
    covered += hi - lo;
  }
  if (covered <= absl::ZeroDuration()) return false;
  *out = sum / absl::ToDoubleSeconds(covered);
  return true;
}

AutoscaleDecision ServiceAutoscaler::Decide(const core::AutoscaleSpec& spec, absl::Time now,
                                            int current, int ready) {
  while (!samples_.empty() && samples_.front().at <= now - spec.stable_window) {
    samples_.pop_front();
  }
  AutoscaleDecision d;
  const std::string metric(core::AutoscaleMetricName(spec.metric));
  // Scale to zero first: a service idle for idle_to_zero runs nothing, whatever the windows
  // still remember of older load.
  if (spec.min == 0 && now - last_active_ >= spec.idle_to_zero) {
    panic_time_ = absl::InfinitePast();
    max_panic_ = 0;
    recent_.clear();
    d.idle = true;
    d.desired = 0;
    double v = 0;
    if (Average(spec, now, spec.stable_window, &v)) d.stable_value = v;
    if (Average(spec, now, spec.panic_window, &v)) d.panic_value = v;
    // The words stay the same while it is idle, so an idle service's status is not rewritten.
    d.reason = Cat("no request for idle_to_zero (", absl::FormatDuration(spec.idle_to_zero),
                   "): scaled to zero");
    return d;
  }
  double stable = 0, panic = 0;
  int want = current;
  if (!Average(spec, now, spec.stable_window, &stable)) {
    d.reason = Cat("no measurement yet: keeps ", Replicas(current));
  } else {
    if (!Average(spec, now, spec.panic_window, &panic)) panic = stable;
    d.stable_value = stable;
    d.panic_value = panic;
    const int want_stable = ReplicasFor(stable, spec.target);
    const int want_panic = ReplicasFor(panic, spec.target);
    const double per_ready = panic / spec.target / std::max(1, ready);
    if (per_ready >= kPanicThreshold) {
      if (panic_time_ == absl::InfinitePast()) max_panic_ = current;
      panic_time_ = now;
    } else if (panic_time_ != absl::InfinitePast() && now - panic_time_ >= spec.stable_window) {
      panic_time_ = absl::InfinitePast();
      max_panic_ = 0;
    }
    d.panic = panic_time_ != absl::InfinitePast();
    if (d.panic) {
      // In panic the service only grows: it keeps the most replicas this panic asked for.
      want = std::max(want_panic, max_panic_);
      max_panic_ = want;
      d.reason =
          absl::StrFormat("panic: %s %.2f over %s is at least %.0fx the target %g for %d ready: %s",
                          metric, panic, absl::FormatDuration(spec.panic_window), kPanicThreshold,
                          spec.target, std::max(1, ready), Replicas(want));
    } else {
      want = want_stable;
      d.reason =
          absl::StrFormat("%s %.2f over %s at target %g per replica: %s", metric, stable,
                          absl::FormatDuration(spec.stable_window), spec.target, Replicas(want));
    }
  }
  // A scale-down waits until every decision of the delay allows it.
  if (spec.scale_down_delay > absl::ZeroDuration()) {
    recent_.emplace_back(now, want);
    while (!recent_.empty() && recent_.front().first <= now - spec.scale_down_delay) {
      recent_.pop_front();
    }
    int held = want;
    for (const auto& [at, n] : recent_) held = std::max(held, n);
    if (held > want) {
      d.reason = Cat(d.reason, "; scale_down_delay ", absl::FormatDuration(spec.scale_down_delay),
                     " holds ", Replicas(held));
      want = held;
    }
  } else {
    recent_.clear();
  }
  // Bounds: between min and max, and with min 0 at least one while requests come.
  const int floor = std::max(spec.min, 1);
  if (want < floor) {
    d.reason = Cat(d.reason, spec.min == 0 ? "; at least 1 while requests come" : "; min ",
                   spec.min == 0 ? "" : Cat(spec.min));
    want = floor;
  }
  if (want > spec.max) {
    d.reason = Cat(d.reason, "; max ", spec.max);
    want = spec.max;
  }
  d.desired = want;
  return d;
}

}  // namespace berth::control
