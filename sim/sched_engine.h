// The Engine (engine.h) that runs Berth's real placement engine: a sched::Cluster built from the
// simulated hosts and a sched::Scheduler with the named policy ("first-fit", "binpack",
// "spread", "dotprod", "gpu-packing", "fgd", or a weighted sum such as "fgd:1+topology:0.2").
// FGD and the fragmentation measure use the mix of request shapes in the trace.
//
// Thread-safety: each engine is used by one thread; separate engines share nothing.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "sim/engine.h"

namespace berth::sim {

// InvalidArgument for an unknown policy or a host the cluster model rejects.
absl::StatusOr<std::unique_ptr<Engine>> NewSchedEngine(const EngineConfig& config);

// The EngineFactory that makes engines with NewSchedEngine.
EngineFactory SchedEngineFactory();

}  // namespace berth::sim
