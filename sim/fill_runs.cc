#include "sim/fill_runs.h"

#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/guard.h"
#include "core/strings.h"
#include "sim/fill.h"
#include "sim/report.h"
#include "sim/runner.h"

namespace berth::sim {

using core::Cat;
using core::Json;

struct FillRuns::Run {
  int64_t id = 0;
  FillRunRequest request;
  FillReport report;
  std::string state = "running";
  std::string error;
  size_t done = 0;
  absl::Time started_at;
  double seconds = 0;
};

FillRuns::FillRuns(EngineFactory factory, FillRunsOptions options)
    : factory_(std::move(factory)), options_(options) {}

FillRuns::~FillRuns() {
  stopping_ = true;
  absl::MutexLock lock(&start_mu_);
  if (worker_.joinable()) worker_.join();
}

absl::StatusOr<int64_t> FillRuns::Start(FillRunRequest request) {
  if (request.policies.empty()) {
    return absl::InvalidArgumentError("sim fill: policies: name at least one policy");
  }
  if (request.seeds.empty())
    return absl::InvalidArgumentError("sim fill: seeds: name at least one");
  if (request.cluster.TotalGpus() == 0) {
    return absl::InvalidArgumentError(
        Cat("sim fill: cluster (", request.cluster_source, "): it has no GPUs to fill"));
  }
  bool asks_gpu = false;
  for (const SimRequest& r : request.trace.requests) asks_gpu = asks_gpu || r.TotalGpuMilli() > 0;
  if (!asks_gpu) {
    return absl::InvalidArgumentError(
        Cat("sim fill: trace (", request.trace_source, "): no request asks for a GPU"));
  }
  SimCluster empty;
  for (size_t i = 0; i < request.policies.size(); ++i) {
    auto engine = factory_(EngineConfig{&empty, request.policies[i], nullptr});
    if (!engine.ok()) {
      return absl::InvalidArgumentError(
          Cat("sim fill: policies[", i, "]: ", engine.status().message()));
    }
  }
  absl::MutexLock start(&start_mu_);
  std::shared_ptr<Run> run = std::make_shared<Run>();
  {
    absl::MutexLock lock(&mu_);
    if (busy_) {
      return absl::FailedPreconditionError(
          Cat("sim fill: comparison ", runs_.front()->id,
              " is still running; wait for it (one runs at a time)"));
    }
    busy_ = true;
    run->id = next_id_++;
    run->request = std::move(request);
    run->started_at = absl::Now();
    FillReport& report = run->report;
    report.policies = run->request.policies;
    report.seeds = run->request.seeds;
    report.hosts = static_cast<int64_t>(run->request.cluster.hosts.size());
    report.gpus = run->request.cluster.TotalGpus();
    report.requests = static_cast<int64_t>(run->request.trace.requests.size());
    report.target_pct = run->request.target_pct;
    report.runs.resize(report.policies.size() * report.seeds.size());
    runs_.push_front(run);
    while (runs_.size() > options_.keep) runs_.pop_back();
  }
  // The previous comparison's thread has finished (busy_ was clear): join it before reuse.
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread([this, run] { Execute(run); });
  return run->id;
}

void FillRuns::Execute(std::shared_ptr<Run> run) {
  const FillRunRequest& request = run->request;
  const size_t k = request.seeds.size();
  const size_t count = request.policies.size() * k;
  std::vector<absl::Status> statuses(count);
  std::vector<FillResult> results(count);
  absl::Status guarded = core::RunGuarded("sim fill", [&] {
    RunParallel(
        count,
        [&](size_t i) {
          if (stopping_.load()) {
            statuses[i] = absl::CancelledError("the server is stopping");
            return std::string("stopped");
          }
          FillOptions options;
          options.policy = request.policies[i / k];
          options.seed = request.seeds[i % k];
          options.target_pct = request.target_pct;
          options.shuffle_hosts = request.shuffle_hosts;
          absl::StatusOr<FillResult> result =
              RunFill(request.cluster, request.trace, options, factory_);
          if (result.ok()) {
            results[i] = *std::move(result);
          } else {
            statuses[i] = result.status();
          }
          absl::MutexLock lock(&mu_);
          ++run->done;
          return std::string();
        },
        ParallelOptions{.jobs = options_.jobs, .progress = nullptr});
  });
  absl::MutexLock lock(&mu_);
  run->seconds = absl::ToDoubleSeconds(absl::Now() - run->started_at);
  busy_ = false;
  absl::Status failed = guarded;
  for (const absl::Status& s : statuses) {
    if (failed.ok() && !s.ok()) failed = s;
  }
  if (!failed.ok()) {
    run->state = absl::IsCancelled(failed) ? "stopped" : "failed";
    run->error = std::string(failed.message());
    return;
  }
  run->report.runs = std::move(results);
  run->state = "done";
}

Json FillRuns::Describe(const Run& run, bool full) const {
  const FillRunRequest& r = run.request;
  Json j = {
      {"id", run.id},
      {"state", run.state},
      {"cluster", r.cluster_source},
      {"trace", r.trace_source},
      {"hosts", run.report.hosts},
      {"gpus", run.report.gpus},
      {"requests", run.report.requests},
      {"policies", r.policies},
      {"seeds", r.seeds},
      {"target_pct", r.target_pct},
      {"progress", {{"done", run.done}, {"total", run.report.runs.size()}}},
      {"started_at", absl::FormatTime(absl::RFC3339_sec, run.started_at, absl::UTCTimeZone())},
      {"seconds",
       run.state == "running" ? absl::ToDoubleSeconds(absl::Now() - run.started_at) : run.seconds}};
  if (!run.error.empty()) j["error"] = run.error;
  if (full && run.state == "done") {
    j["summary"] = Json::parse(FillJson(run.report, /*timings=*/true), nullptr, false);
    j["curves"] = FillCurvesJson(run.report);
  }
  return j;
}

absl::StatusOr<Json> FillRuns::Get(int64_t id) const {
  absl::ReaderMutexLock lock(&mu_);
  for (const std::shared_ptr<Run>& run : runs_) {
    if (run->id == id) return Describe(*run, true);
  }
  return absl::NotFoundError(Cat("sim fill ", id, ": not found (the server keeps the newest ",
                                 options_.keep, " comparisons, in memory)"));
}

Json FillRuns::List() const {
  absl::ReaderMutexLock lock(&mu_);
  Json out = Json::array();
  for (const std::shared_ptr<Run>& run : runs_) out.push_back(Describe(*run, false));
  return out;
}

}  // namespace berth::sim
