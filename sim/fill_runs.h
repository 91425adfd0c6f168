// FillRuns: fill comparisons (what `berth sim fill` runs) in the background, for the API's
// /v1/sim routes and the dashboard's Simulator view. One comparison runs at a time, its
// simulations on `jobs` threads, with progress counted per finished simulation; the newest
// `keep` comparisons stay in memory with their summary and curves (a restarted server has none).
//
// Thread-safety: every method is thread-safe. The destructor stops the comparison in progress
// after the simulations already running and waits for them.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/json.h"
#include "sim/engine.h"
#include "sim/model.h"

namespace berth::sim {

struct FillRunRequest {
  SimCluster cluster;
  SimTrace trace;
  std::vector<std::string> policies;
  std::vector<uint64_t> seeds;
  int64_t target_pct = 130;
  bool shuffle_hosts = true;   // ties go to a host order drawn per seed, as `berth sim fill`
  std::string cluster_source;  // what the cluster is, for people: "profile openb", "live"
  std::string trace_source;
};

struct FillRunsOptions {
  int jobs = 1;     // threads per comparison
  size_t keep = 8;  // finished comparisons kept
};

class FillRuns {
 public:
  explicit FillRuns(EngineFactory factory, FillRunsOptions options = {});
  ~FillRuns();
  FillRuns(const FillRuns&) = delete;
  FillRuns& operator=(const FillRuns&) = delete;

  // Checks the request (InvalidArgument naming the field: an unknown policy, a cluster without
  // GPUs, a trace that asks for none) and starts it; returns its id (1, 2, ...).
  // FailedPrecondition while another comparison runs.
  absl::StatusOr<int64_t> Start(FillRunRequest request);
  // {"id", "state": "running" | "done" | "failed" | "stopped", "cluster", "trace", "hosts",
  // "gpus", "requests", "policies", "seeds", "target_pct", "progress": {"done", "total"},
  // "started_at", "seconds", and when done "summary" (as `berth sim fill --json` prints it) and
  // "curves" (FillCurvesJson); "error" when failed}. NotFound for an id not kept.
  absl::StatusOr<core::Json> Get(int64_t id) const;
  // Every kept comparison, newest first, without summary and curves.
  core::Json List() const;

 private:
  struct Run;
  core::Json Describe(const Run& run, bool full) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void Execute(std::shared_ptr<Run> run);

  const EngineFactory factory_;
  const FillRunsOptions options_;
  std::atomic<bool> stopping_{false};
  mutable absl::Mutex mu_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::deque<std::shared_ptr<Run>> runs_ ABSL_GUARDED_BY(mu_);  // newest first
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex start_mu_;  // one Start at a time: it joins and replaces worker_
  std::thread worker_ ABSL_GUARDED_BY(start_mu_);  // the newest comparison's thread
};

}  // namespace berth::sim
