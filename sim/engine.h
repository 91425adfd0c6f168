// The placement engine as the simulator drives it: one simulated cluster that places, commits
// and releases requests under one policy, and measures GPU allocation and fragmentation. The
// production implementation (sched_engine.h) runs Berth's real scheduler (sched/); tests may
// substitute a small fake to check the drivers' bookkeeping exactly.
//
// Ownership: an Engine owns its cluster state. Thread-safety: not thread-safe; each simulation
// run creates and owns its own Engine, so runs proceed in parallel without sharing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sim/model.h"

namespace berth::sim {

struct PlaceOptions {
  // May evict running requests of strictly lower priority to make room.
  bool allow_preemption = false;
  // When it fits nowhere, may move running requests to make room (sched::PlanDefrag); the
  // moved ones keep running, on their new hosts.
  bool defrag = false;
};

struct PlaceOutcome {
  bool placed = false;
  std::vector<int64_t> preempted;  // ids released to make room (only with allow_preemption)
  std::vector<int64_t> moved;      // ids moved to other hosts to make room (only with defrag)
};

struct FragmentationStats {
  double fragmented_milli = 0;  // idle GPU milli the workload mix cannot use
  int64_t free_milli = 0;       // idle GPU milli
};

class Engine {
 public:
  virtual ~Engine() = default;

  // Places `request` under the engine's policy and commits it as allocation `id` (unique among
  // live allocations). placed == false when it fits nowhere; nothing changes then.
  virtual absl::StatusOr<PlaceOutcome> Place(int64_t id, const SimRequest& request,
                                             const PlaceOptions& options) = 0;
  // Gives back everything allocation `id` holds.
  virtual absl::Status Release(int64_t id) = 0;
  virtual int64_t CapacityGpuMilli() const = 0;
  virtual int64_t AllocatedGpuMilli() const = 0;
  virtual FragmentationStats Fragmentation() = 0;
};

// What an Engine is built from: the hosts, the policy name and the workload mix (the request
// shapes with their frequencies) that fragmentation is measured against.
struct EngineConfig {
  const SimCluster* cluster = nullptr;
  std::string policy;
  const SimTrace* mix_source = nullptr;  // every request counts once in the mix
  // The scheduler breaks ties between equally scored hosts by host order. False: the cluster
  // file's order; true: an order drawn from `seed`, as the simulators of the fragmentation
  // literature do (a fresh random order per seed).
  bool shuffle_hosts = false;
  uint64_t seed = 0;
};

using EngineFactory =
    std::function<absl::StatusOr<std::unique_ptr<Engine>>(const EngineConfig& config)>;

}  // namespace berth::sim
