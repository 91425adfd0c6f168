#include "sched/defrag.h"

#include <algorithm>
#include <tuple>

#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "sched/cluster_index.h"

namespace berth::sched {
namespace {

int64_t GpuMilliHeld(const Placement& p) {
  int64_t milli = 0;
  for (const core::GpuAssignment& g : p.gpus) milli += g.milli;
  return milli;
}

// A movable allocation of the candidate host, copied: trying a plan releases and recommits it.
struct Movable {
  Allocation alloc;
  int64_t cost = 0;
  int64_t milli = 0;
};

}  // namespace

absl::StatusOr<DefragPlan> PlanDefrag(Cluster* cluster, Scheduler* scheduler, const Request& r,
                                      const DefragOptions& options) {
  BERTH_RETURN_IF_ERROR(ValidateRequest(r));
  Scheduler& s = *scheduler;
  DefragPlan none;
  BERTH_ASSIGN_OR_RETURN(Decision now, s.ScheduleWithoutLearning(r));
  if (now.scheduled) {
    none.found = true;
    none.placement = std::move(now.plan.placement);
    return none;
  }
  Cluster::Index& x = cluster->index();
  const int64_t need = r.gpu.TotalMilli();
  if (need == 0 || x.totals.gpu_milli_capacity - x.totals.gpu_milli_allocated < need) return none;
  auto cost_of = [&](const Allocation& a) -> std::optional<int64_t> {
    if (options.move_cost) return options.move_cost(a);
    if (a.request.preemptible) return 1;
    return std::nullopt;
  };

  // Candidate hosts: those that free GPU plus movable GPU could clear, the least short first.
  std::vector<std::pair<int64_t, int>> candidates;
  for (int h = 0; h < int(x.hosts.size()); ++h) {
    const HostState& host = x.hosts[h];
    if (!x.schedulable[h] || host.GpuCapacityMilli() < need) continue;
    int64_t movable = 0;
    for (const std::string& id : x.host_allocations[h]) {
      const Allocation& a = x.allocations.find(id)->second;
      if (cost_of(a)) movable += GpuMilliHeld(a.placement);
    }
    const int64_t free = host.FreeGpuMilli();
    if (free + movable >= need) candidates.push_back({need - free, h});
  }
  std::sort(candidates.begin(), candidates.end());
  if (int(candidates.size()) > options.max_hosts) candidates.resize(options.max_hosts);

  // Model changes are undone in reverse; each one undoes a change just made, so a failure is a
  // bug in the model, reported rather than hidden.
  auto release = [&](const std::string& id) {
    core::OkOrReport("sched", core::Cat("workload ", id, ": trial release"), cluster->Release(id));
  };
  auto restore = [&](const Allocation& a) {
    core::OkOrReport("sched", core::Cat("workload ", a.request.id, ": restore after trial"),
                     cluster->Commit(a.request, a.placement));
  };
  auto fits_on = [&](int h) -> absl::StatusOr<std::optional<Placement>> {
    BERTH_ASSIGN_OR_RETURN(Decision d, s.ScheduleOnHosts(r, {h}));
    if (!d.scheduled) return std::nullopt;
    return std::move(d.plan.placement);
  };

  std::optional<DefragPlan> best;
  int best_host = -1;
  for (const auto& [short_milli, h] : candidates) {
    std::vector<Movable> pool;
    for (const std::string& id : x.host_allocations[h]) {
      const Allocation& a = x.allocations.find(id)->second;
      if (std::optional<int64_t> cost = cost_of(a)) {
        pool.push_back({a, *cost, GpuMilliHeld(a.placement)});
      }
    }
    // Cheapest first, then the largest (fewer moves), then by id for a stable order.
    std::sort(pool.begin(), pool.end(), [](const Movable& a, const Movable& b) {
      return std::make_tuple(a.cost, -a.milli, a.alloc.request.id) <
             std::make_tuple(b.cost, -b.milli, b.alloc.request.id);
    });
    const std::vector<std::string> saved_order = x.host_allocations[h];
    std::vector<Movable> evicted;
    std::optional<Placement> placement;
    for (const Movable& m : pool) {
      if (int(evicted.size()) >= options.max_moves) break;
      release(m.alloc.request.id);
      evicted.push_back(m);
      BERTH_ASSIGN_OR_RETURN(placement, fits_on(h));
      if (placement) break;
    }
    if (placement) {
      // Evictions the request turns out not to need stay put, the costliest first.
      for (size_t i = evicted.size(); i-- > 0 && evicted.size() > 1;) {
        restore(evicted[i].alloc);
        BERTH_ASSIGN_OR_RETURN(std::optional<Placement> without, fits_on(h));
        if (without) {
          placement = std::move(without);
          evicted.erase(evicted.begin() + i);
        } else {
          release(evicted[i].alloc.request.id);
        }
      }
    }
    DefragPlan plan;
    if (placement) {
      // The request takes the host; each evicted workload, largest first, goes where the policy
      // puts it among the other hosts.
      core::OkOrReport("sched", core::Cat("workload ", r.id, ": trial placement"),
                       cluster->Commit(r, *placement));
      // The other hosts: h is set aside for the trial, so the scheduler's cached pass over
      // groups serves the moves.
      const bool was_schedulable = x.schedulable[h];
      cluster->SetSchedulable(h, false);
      std::vector<Movable> order = evicted;
      std::stable_sort(order.begin(), order.end(),
                       [](const Movable& a, const Movable& b) { return a.milli > b.milli; });
      plan.found = true;
      plan.placement = *placement;
      absl::Status failed;
      for (const Movable& m : order) {
        absl::StatusOr<Decision> d = s.ScheduleWithoutLearning(m.alloc.request);
        if (!d.ok()) failed = d.status();
        if (!d.ok() || !d->scheduled) {
          plan.found = false;
          break;
        }
        core::OkOrReport("sched", core::Cat("workload ", m.alloc.request.id, ": trial move"),
                         cluster->Commit(m.alloc.request, d->plan.placement));
        plan.moves.push_back({m.alloc.request.id, h, d->plan.placement, m.cost});
        plan.cost += m.cost;
      }
      for (auto it = plan.moves.rbegin(); it != plan.moves.rend(); ++it) release(it->allocation_id);
      cluster->SetSchedulable(h, was_schedulable);
      release(r.id);
      if (!failed.ok()) {
        for (const Movable& m : evicted) restore(m.alloc);
        return failed;
      }
    }
    for (const Movable& m : evicted) restore(m.alloc);
    x.host_allocations[h] = saved_order;
    if (!plan.found) continue;
    if (!best || std::make_tuple(plan.moves.size(), plan.cost, h) <
                     std::make_tuple(best->moves.size(), best->cost, best_host)) {
      best = std::move(plan);
      best_host = h;
    }
  }
  if (!best) return none;
  return *std::move(best);
}

}  // namespace berth::sched
