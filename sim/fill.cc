#include "sim/fill.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "core/status.h"
#include "core/strings.h"
#include "sim/rng.h"

namespace berth::sim {

using core::Cat;

const FillStep& FillResult::At(double arrived_pct) const {
  static const FillStep kEmpty;
  if (steps.empty()) return kEmpty;
  // arrived_pct never decreases along a run.
  auto it = std::lower_bound(steps.begin(), steps.end(), arrived_pct,
                             [](const FillStep& s, double value) { return s.arrived_pct < value; });
  return it == steps.end() ? steps.back() : *it;
}

std::vector<size_t> FillOrder(const SimTrace& trace, int64_t capacity_milli, uint64_t seed,
                              int64_t target_pct) {
  Rng rng(seed);
  const size_t n = trace.requests.size();
  std::vector<size_t> order(n);
  int64_t demand = 0;
  for (size_t i = 0; i < n; ++i) {
    order[i] = i;
    demand += trace.requests[i].TotalGpuMilli();
  }
  rng.Shuffle(order);
  if (n == 0 || demand == 0) return order;
  // Integer comparison: demand / capacity >= target / 100.
  const __int128 goal = static_cast<__int128>(capacity_milli) * target_pct;
  if (static_cast<__int128>(demand) * 100 >= goal) {
    // The trace alone passes the target: offer only up to the request that reaches it.
    int64_t offered = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      offered += trace.requests[order[k]].TotalGpuMilli();
      if (static_cast<__int128>(offered) * 100 >= goal) {
        order.resize(k + 1);
        break;
      }
    }
    return order;
  }
  while (static_cast<__int128>(demand) * 100 < goal) {
    size_t pick = static_cast<size_t>(rng.UniformInt(0, static_cast<int64_t>(n) - 1));
    order.push_back(pick);
    demand += trace.requests[pick].TotalGpuMilli();
  }
  return order;
}

absl::StatusOr<FillResult> RunFill(const SimCluster& cluster, const SimTrace& trace,
                                   const FillOptions& options, const EngineFactory& factory) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t capacity = cluster.TotalGpuMilli();
  if (capacity == 0) {
    return absl::InvalidArgumentError("cluster: has no GPUs, so fill mode has nothing to fill");
  }
  int64_t demand = 0;
  for (const SimRequest& r : trace.requests) demand += r.TotalGpuMilli();
  if (demand == 0) {
    return absl::InvalidArgumentError(
        "trace: no request asks for a GPU, so fill mode can never reach its target");
  }
  if (options.target_pct <= 0 || options.target_pct > 10000) {
    return absl::InvalidArgumentError(
        Cat("--target must be between 1 and 10000 (percent), got ", options.target_pct));
  }
  EngineConfig config{&cluster, options.policy, &trace, options.shuffle_hosts, options.seed};
  BERTH_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, factory(config));

  FillResult result;
  result.policy = options.policy;
  result.seed = options.seed;
  std::vector<size_t> order = FillOrder(trace, capacity, options.seed, options.target_pct);
  result.steps.reserve(order.size());
  const double to_pct = 100.0 / static_cast<double>(capacity);
  int64_t arrived = 0;
  int64_t next_id = 0;
  for (size_t index : order) {
    const SimRequest& r = trace.requests[index];
    arrived += r.TotalGpuMilli();
    BERTH_ASSIGN_OR_RETURN(PlaceOutcome outcome, engine->Place(next_id++, r, PlaceOptions{}));
    ++result.offered;
    if (outcome.placed) {
      ++result.placed;
    } else {
      ++result.dropped;
    }
    FillStep step;
    step.arrived_pct = static_cast<double>(arrived) * to_pct;
    step.allocated_pct = static_cast<double>(engine->AllocatedGpuMilli()) * to_pct;
    if (options.measure_fragmentation) {
      FragmentationStats frag = engine->Fragmentation();
      step.fragmented_pct = frag.fragmented_milli * to_pct;
      step.frag_ratio_pct = frag.free_milli == 0 ? 0.0
                                                 : 100.0 * frag.fragmented_milli /
                                                       static_cast<double>(frag.free_milli);
    }
    result.steps.push_back(step);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace berth::sim
