// Fill mode, the method of the GPU-fragmentation literature: shuffle the trace's requests with a
// seed, pad the list by resampling requests (with replacement, appended at the end) until the
// GPU demand reaches a target share of cluster GPU capacity (or, when the trace alone passes it,
// cut the shuffled list at the request that reaches it), and offer them one at a time with no
// departures. A request that fits nowhere is dropped. After each request the run records the
// arrived workload, the GPU allocation ratio and the fragmentation.
//
// Thread-safety: RunFill is reentrant; concurrent runs share only their const inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/engine.h"
#include "sim/model.h"

namespace berth::sim {

struct FillOptions {
  std::string policy = "first-fit";
  uint64_t seed = 42;
  // Pad until the offered GPU demand is at least this share of cluster GPU capacity.
  int64_t target_pct = 130;
  // Fragmentation after every request; off saves time when only allocation matters.
  bool measure_fragmentation = true;
  // Ties between hosts go to a host order drawn from the seed (EngineConfig::shuffle_hosts).
  bool shuffle_hosts = false;
};

// The cluster after one request was offered.
struct FillStep {
  double arrived_pct = 0;     // GPU demand offered so far, % of cluster GPU capacity
  double allocated_pct = 0;   // GPU milli allocated, % of cluster GPU capacity
  double fragmented_pct = 0;  // fragmented GPU milli, % of cluster GPU capacity
  double frag_ratio_pct = 0;  // fragmented GPU milli, % of idle GPU milli (0 when none idle)
};

struct FillResult {
  std::string policy;
  uint64_t seed = 0;
  std::vector<FillStep> steps;  // one per offered request, in order
  int64_t offered = 0;
  int64_t placed = 0;
  int64_t dropped = 0;
  double seconds = 0;  // wall time of the run (the only field that varies between runs)

  // The step after the first request at which arrived_pct reaches `arrived_pct`, or the last
  // step when the run never got there; an all-zero step for a run with no steps.
  const FillStep& At(double arrived_pct) const;
  // 100 - allocated_pct at arrived = 100%.
  double UnallocatedAt100() const { return 100.0 - At(100.0).allocated_pct; }
};

// Runs one fill simulation on an engine made by `factory`. InvalidArgument when the cluster has
// no GPUs or the trace asks for none (the padding could never reach the target).
absl::StatusOr<FillResult> RunFill(const SimCluster& cluster, const SimTrace& trace,
                                   const FillOptions& options, const EngineFactory& factory);

// The order in which a fill run offers requests: indices into trace.requests, shuffled with the
// seed and padded to the target. Exposed so tests can check the padding rule.
std::vector<size_t> FillOrder(const SimTrace& trace, int64_t capacity_milli, uint64_t seed,
                              int64_t target_pct);

}  // namespace berth::sim
