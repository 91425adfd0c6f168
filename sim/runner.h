// Runs many independent simulation runs (one per policy and seed) on a fixed number of threads.
// Results land in the slot of their task, so output order never depends on which thread
// finished first. Progress lines go to an optional stream, one per finished run.
//
// Thread-safety: RunParallel blocks until every task is done; `task` is called concurrently
// from up to `jobs` threads with distinct indices and must not share mutable state between
// indices. The progress stream is written under a lock.
#pragma once

#include <cstddef>
#include <functional>
#include <ostream>
#include <string>

namespace berth::sim {

struct ParallelOptions {
  int jobs = 0;                      // threads; 0 = one per hardware thread
  std::ostream* progress = nullptr;  // "sim: 3/20 runs done (fgd seed 44, 0.41 s)"
};

// Calls task(i) for every i in [0, count). `task` returns a short label for the progress line.
void RunParallel(size_t count, const std::function<std::string(size_t)>& task,
                 const ParallelOptions& options);

// The number of threads `jobs` means on this machine (at least 1).
int EffectiveJobs(int jobs);

}  // namespace berth::sim
