// Replay mode: requests arrive and depart at the trace's times on a manual clock; what does not
// fit waits in a queue. The queue is ordered by priority (when enabled) and then by arrival;
// strict FIFO stops at the first request that does not fit, backfill lets later ones that fit
// start first. With preemption, a request that fits nowhere may evict running requests of
// strictly lower priority, which go back to the queue and restart from the beginning.
//
// A request's run time is deletion_time - scheduled_time from the trace (or deletion_time -
// creation_time when it was never scheduled there); without deletion_time it runs to the end.
// A request without creation_time arrives at time 0.
//
// Thread-safety: RunReplay is reentrant; concurrent runs share only their const inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/engine.h"
#include "sim/model.h"

namespace berth::sim {

struct ReplayOptions {
  std::string policy = "first-fit";
  // Orders requests that arrive at the same second (the trace's order is only one of many).
  uint64_t seed = 42;
  bool backfill = true;
  bool priorities = true;
  bool preemption = false;
  // Ties between hosts go to a host order drawn from the seed (EngineConfig::shuffle_hosts).
  bool shuffle_hosts = false;
  // The first queued request of a scheduling pass that fits nowhere may move running ones to
  // make room (PlaceOptions::defrag; with preemption on, only preemption is tried). Each moved
  // request loses this many seconds of progress, so it ends that much later.
  bool defrag = false;
  int64_t migration_cost_s = 60;
};

// The cluster just after the events of one instant were handled.
struct ReplaySample {
  int64_t time = 0;
  double allocated_pct = 0;  // GPU milli allocated, % of cluster GPU capacity
  int64_t running = 0;
  int64_t queued = 0;
};

struct ReplayResult {
  std::string policy;
  uint64_t seed = 0;
  std::vector<ReplaySample> timeline;  // one sample per instant with events
  std::vector<int64_t> queue_delays;   // seconds from arrival to (last) start, per started request
  std::vector<int64_t> completion_times;  // seconds from arrival to finish, per finished request
  int64_t submitted = 0;
  int64_t started = 0;  // requests that were running at some point
  int64_t finished = 0;
  int64_t never_started = 0;  // still queued at the end
  int64_t preemptions = 0;
  int64_t moves = 0;              // running requests moved by defragmentation
  double mean_allocated_pct = 0;  // time-weighted over [first arrival, last event]
  // Unallocated GPU while some GPU request waits in the queue, % of cluster GPU capacity,
  // time-weighted over [first arrival, last event] (0 while nothing waits for a GPU).
  double stranded_gpu_pct = 0;
  double moves_per_hour = 0;  // over [first arrival, last event]
  double seconds = 0;         // wall time of the run

  // Nearest-rank percentile (p in (0, 100]) of a sorted list; 0 for an empty one.
  static double Percentile(const std::vector<int64_t>& sorted, double p);
};

absl::StatusOr<ReplayResult> RunReplay(const SimCluster& cluster, const SimTrace& trace,
                                       const ReplayOptions& options, const EngineFactory& factory);

}  // namespace berth::sim
