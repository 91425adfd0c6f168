#include "sim/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <queue>
#include <set>
#include <tuple>
#include <utility>

#include "absl/time/time.h"
#include "core/clock.h"
#include "core/status.h"
#include "sim/rng.h"

namespace berth::sim {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

int64_t Duration(const SimRequest& r) {
  if (r.deletion_time == kNoTime) return kNever;
  int64_t start = r.scheduled_time != kNoTime ? r.scheduled_time : r.creation_time;
  if (start == kNoTime) start = 0;
  return std::max<int64_t>(0, r.deletion_time - start);
}

struct Job {
  int64_t arrival = 0;
  int64_t duration = 0;
  int priority = 0;
  int64_t seq = 0;  // position in arrival order; breaks ties
  int64_t start = -1;
  int64_t failed_epoch = -1;  // the capacity epoch in which it last failed to place
};

}  // namespace

double ReplayResult::Percentile(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  double rank = std::ceil(p / 100.0 * static_cast<double>(sorted.size()));
  size_t index = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  if (index >= sorted.size()) index = sorted.size() - 1;
  return static_cast<double>(sorted[index]);
}

absl::StatusOr<ReplayResult> RunReplay(const SimCluster& cluster, const SimTrace& trace,
                                       const ReplayOptions& options, const EngineFactory& factory) {
  const auto wall_start = std::chrono::steady_clock::now();
  EngineConfig config{&cluster, options.policy, &trace, options.shuffle_hosts, options.seed};
  BERTH_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, factory(config));
  const int64_t capacity = engine->CapacityGpuMilli();
  const double to_pct = capacity == 0 ? 0.0 : 100.0 / static_cast<double>(capacity);

  // Arrival order: time, then a seeded shuffle among requests of the same second.
  const size_t n = trace.requests.size();
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  Rng rng(options.seed);
  rng.Shuffle(order);
  auto arrival_of = [&](size_t i) {
    int64_t t = trace.requests[i].creation_time;
    return t == kNoTime ? 0 : t;
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return arrival_of(a) < arrival_of(b); });
  std::vector<Job> jobs(n);
  for (size_t k = 0; k < n; ++k) {
    size_t i = order[k];
    jobs[i].arrival = arrival_of(i);
    jobs[i].duration = Duration(trace.requests[i]);
    jobs[i].priority = options.priorities ? trace.requests[i].priority : 0;
    jobs[i].seq = static_cast<int64_t>(k);
  }

  // The queue, in scheduling order: higher priority first, then earlier arrival.
  auto queue_less = [&](size_t a, size_t b) {
    return std::make_tuple(-jobs[a].priority, jobs[a].seq) <
           std::make_tuple(-jobs[b].priority, jobs[b].seq);
  };
  std::set<size_t, decltype(queue_less)> queue(queue_less);
  // Departures: (end time, request index), earliest first.
  using Departure = std::pair<int64_t, size_t>;
  std::priority_queue<Departure, std::vector<Departure>, std::greater<>> departures;
  // Start time of each running request's current run, to discard stale departures after a
  // preemption restarts it.
  std::vector<int64_t> running_since(n, -1);

  ReplayResult result;
  result.policy = options.policy;
  result.seed = options.seed;
  result.submitted = static_cast<int64_t>(n);
  core::ManualClock clock(absl::FromUnixSeconds(0));
  std::vector<bool> ever_started(n, false);
  int64_t running = 0;
  int64_t epoch = 0;  // grows whenever capacity is given back
  size_t next_arrival = 0;
  double weighted_alloc = 0;
  int64_t first_time = n == 0 ? 0 : jobs[order[0]].arrival;
  int64_t last_time = first_time;
  double last_alloc_pct = 0;
  int64_t queued_gpu = 0;  // queued requests that ask for a GPU
  bool last_waiting = false;
  double weighted_stranded = 0;

  auto schedule_queue = [&](int64_t now) -> absl::Status {
    // Defragmentation is planned for the first request of the pass that fits nowhere: planning
    // for every queued one would cost a search per request and instant.
    bool defrag_tried = false;
    for (auto it = queue.begin(); it != queue.end();) {
      size_t i = *it;
      Job& job = jobs[i];
      if (job.failed_epoch == epoch) {
        // Nothing was freed since it last failed, so it still cannot fit.
        if (!options.backfill) break;
        ++it;
        continue;
      }
      PlaceOptions place;
      place.allow_preemption = options.preemption;
      place.defrag = options.defrag && !defrag_tried;
      BERTH_ASSIGN_OR_RETURN(PlaceOutcome outcome,
                             engine->Place(static_cast<int64_t>(i), trace.requests[i], place));
      if (!outcome.placed) {
        defrag_tried |= place.defrag;
        job.failed_epoch = epoch;
        if (!options.backfill) break;
        ++it;
        continue;
      }
      it = queue.erase(it);
      if (trace.requests[i].TotalGpuMilli() > 0) --queued_gpu;
      for (int64_t moved : outcome.moved) {
        // The moved request restarts its remaining work after the migration: it ends later, and
        // the departure already queued for it goes stale.
        size_t v = static_cast<size_t>(moved);
        ++result.moves;
        running_since[v] += options.migration_cost_s;
        if (jobs[v].duration != kNever) departures.emplace(running_since[v] + jobs[v].duration, v);
      }
      for (int64_t victim : outcome.preempted) {
        size_t v = static_cast<size_t>(victim);
        running_since[v] = -1;
        --running;
        ++result.preemptions;
        jobs[v].failed_epoch = -1;
        queue.insert(v);
        if (trace.requests[v].TotalGpuMilli() > 0) ++queued_gpu;
      }
      if (!outcome.preempted.empty()) {
        ++epoch;
        it = queue.begin();  // victims may sort before the current position
      }
      job.start = now;
      running_since[i] = now;
      ++running;
      if (!ever_started[i]) {
        ever_started[i] = true;
        ++result.started;
      }
      if (job.duration != kNever) departures.emplace(now + job.duration, i);
    }
    return absl::OkStatus();
  };

  while (next_arrival < n || !departures.empty()) {
    int64_t now = kNever;
    if (next_arrival < n) now = jobs[order[next_arrival]].arrival;
    if (!departures.empty()) now = std::min(now, departures.top().first);
    clock.Set(absl::FromUnixSeconds(now));
    weighted_alloc += last_alloc_pct * static_cast<double>(now - last_time);
    if (last_waiting)
      weighted_stranded += (100.0 - last_alloc_pct) * static_cast<double>(now - last_time);
    last_time = now;
    // Departures first, so what arrives at the same second can use the freed capacity.
    while (!departures.empty() && departures.top().first == now) {
      auto [end, i] = departures.top();
      departures.pop();
      if (running_since[i] < 0 || running_since[i] + jobs[i].duration != end) continue;
      BERTH_RETURN_IF_ERROR(engine->Release(static_cast<int64_t>(i)));
      running_since[i] = -1;
      --running;
      ++epoch;
      ++result.finished;
      result.queue_delays.push_back(jobs[i].start - jobs[i].arrival);
      result.completion_times.push_back(end - jobs[i].arrival);
    }
    while (next_arrival < n && jobs[order[next_arrival]].arrival == now) {
      queue.insert(order[next_arrival]);
      if (trace.requests[order[next_arrival]].TotalGpuMilli() > 0) ++queued_gpu;
      ++next_arrival;
    }
    BERTH_RETURN_IF_ERROR(schedule_queue(now));
    last_alloc_pct = static_cast<double>(engine->AllocatedGpuMilli()) * to_pct;
    last_waiting = queued_gpu > 0;
    result.timeline.push_back(ReplaySample{absl::ToUnixSeconds(clock.Now()), last_alloc_pct,
                                           running, static_cast<int64_t>(queue.size())});
  }
  // Requests still running never depart; their queueing delay still counts.
  for (size_t i = 0; i < n; ++i) {
    if (running_since[i] >= 0) result.queue_delays.push_back(jobs[i].start - jobs[i].arrival);
  }
  result.never_started = 0;
  for (size_t i : queue) {
    if (!ever_started[i]) ++result.never_started;
  }
  std::sort(result.queue_delays.begin(), result.queue_delays.end());
  std::sort(result.completion_times.begin(), result.completion_times.end());
  result.mean_allocated_pct = last_time > first_time
                                  ? weighted_alloc / static_cast<double>(last_time - first_time)
                                  : last_alloc_pct;
  if (last_time > first_time) {
    const double span = static_cast<double>(last_time - first_time);
    result.stranded_gpu_pct = weighted_stranded / span;
    result.moves_per_hour = static_cast<double>(result.moves) * 3600.0 / span;
  }
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result;
}

}  // namespace berth::sim
