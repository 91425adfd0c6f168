#include "control/rebalance.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "control/cluster_model.h"
#include "control/control_plane.h"
#include "core/milli.h"
#include "core/status.h"
#include "core/strings.h"
#include "sched/defrag.h"
#include "sched/scheduler.h"

namespace berth::control {

using core::Cat;
using core::Json;
using core::Workload;
using core::WorkloadKind;
using core::WorkloadState;

std::string_view RebalanceOutcomeName(RebalanceOutcome outcome) {
  switch (outcome) {
    case RebalanceOutcome::kFits:
      return "fits";
    case RebalanceOutcome::kPreempts:
      return "preempts";
    case RebalanceOutcome::kPlan:
      return "plan";
    case RebalanceOutcome::kNoPlan:
      return "no-plan";
  }
  return "no-plan";
}

std::optional<int64_t> RebalanceMoveCost(const Workload& w, int for_priority) {
  const bool running = w.status.state == WorkloadState::kScheduled ||
                       w.status.state == WorkloadState::kStarting ||
                       w.status.state == WorkloadState::kRunning;
  if (!running || w.status.desired != core::DesiredState::kRunning) return std::nullopt;
  if (w.spec.restart.policy == core::RestartPolicy::kNever) return std::nullopt;
  if (!w.spec.preemptible || w.spec.priority > for_priority) return std::nullopt;
  if (!w.spec.disks.empty()) return std::nullopt;
  switch (w.spec.kind) {
    case WorkloadKind::kProcess:
      return 1;
    case WorkloadKind::kContainer:
      return 2;
    case WorkloadKind::kVm:
      return 4;
  }
  return std::nullopt;
}

int64_t StrandedGpuMilli(const sched::Cluster& cluster) {
  int64_t stranded = 0;
  for (int h = 0; h < cluster.num_hosts(); ++h) {
    if (!cluster.schedulable(h)) continue;
    for (const sched::GpuState& g : cluster.host(h).gpus) {
      if (g.free_milli > 0 && g.free_milli < core::kWholeGpuMilli) stranded += g.free_milli;
    }
  }
  return stranded;
}

namespace {

// What the model's cluster holds, copied out under the model's lock and built again outside it:
// the plans try moves on the copy, never on the model.
struct ClusterCopy {
  std::vector<sched::HostSpec> hosts;
  std::vector<bool> schedulable;
  std::vector<std::pair<std::string, sched::Quota>> quotas;
  std::vector<sched::Allocation> allocations;  // host by host, oldest first on each
};

ClusterCopy CopyOut(const sched::Cluster& c) {
  ClusterCopy out;
  for (int h = 0; h < c.num_hosts(); ++h) {
    const sched::HostState& hs = c.host(h);
    sched::HostSpec spec{.name = hs.name, .capacity = hs.capacity, .labels = hs.labels};
    for (const sched::GpuState& g : hs.gpus) spec.gpus.push_back(g.device);
    for (const sched::DeviceClassState& d : c.devices(h)) {
      for (const std::string& id : d.ids) spec.devices.push_back({.cls = d.cls, .id = id});
    }
    out.hosts.push_back(std::move(spec));
    out.schedulable.push_back(c.schedulable(h));
    for (const std::string& id : c.AllocationsOn(h)) {
      if (const sched::Allocation* a = c.FindAllocation(id)) out.allocations.push_back(*a);
    }
  }
  for (const std::string& tenant : c.Tenants()) {
    if (const sched::Quota* q = c.FindQuota(tenant)) out.quotas.push_back({tenant, *q});
  }
  return out;
}

// The model built its cluster from the same specs and placements, so a copy that refuses one
// is a bug, reported as such.
absl::Status Build(const ClusterCopy& copy, sched::Cluster* cluster) {
  for (size_t i = 0; i < copy.hosts.size(); ++i) {
    absl::StatusOr<int> index = cluster->AddHost(copy.hosts[i]);
    if (!index.ok() || *index != int(i)) {
      return absl::InternalError(Cat("rebalance: copying host \"", copy.hosts[i].name,
                                     "\" of the cluster model failed: ",
                                     index.ok() ? "index differs" : index.status().message()));
    }
    cluster->SetSchedulable(*index, copy.schedulable[i]);
  }
  for (const auto& [tenant, quota] : copy.quotas) cluster->SetQuota(tenant, quota);
  for (const sched::Allocation& a : copy.allocations) {
    if (absl::Status s = cluster->Commit(a.request, a.placement); !s.ok()) {
      return absl::InternalError(Cat("rebalance: copying the allocation of workload \"",
                                     a.request.id, "\" failed: ", s.message()));
    }
  }
  return absl::OkStatus();
}

std::vector<int> GpuIndices(const sched::Placement& p) {
  std::vector<int> out;
  for (const core::GpuAssignment& g : p.gpus) out.push_back(g.index);
  return out;
}

// The planner over the copy: one pending workload at a time, each against the cluster as it
// stands (every trial is rolled back).
class Planner {
 public:
  Planner(sched::Cluster* cluster, sched::Scheduler* scheduler,
          const std::map<std::string, Workload, std::less<>>* workloads,
          std::vector<uint32_t> drivers, int max_moves)
      : cluster_(*cluster),
        scheduler_(*scheduler),
        workloads_(*workloads),
        drivers_(std::move(drivers)),
        max_moves_(max_moves) {}

  absl::StatusOr<RebalanceEntry> Plan(const Workload& w) {
    RebalanceEntry e;
    e.workload = w.spec.name;
    e.kind = w.spec.kind;
    e.priority = w.spec.priority;
    e.gpu_milli = w.spec.gpu.TotalMilli();
    const sched::Request request = WorkloadRequest(w);
    if (absl::Status s = sched::ValidateRequest(request); !s.ok()) {
      e.reason = Cat("the scheduler refuses the request: ", s.message());
      return e;
    }
    // As in the scheduling pass, hosts without a driver for the workload's kind take no part.
    std::vector<int> masked;
    for (int h = 0; h < cluster_.num_hosts(); ++h) {
      if (cluster_.schedulable(h) && !HasKind(h, w.spec.kind)) {
        cluster_.SetSchedulable(h, false);
        masked.push_back(h);
      }
    }
    absl::StatusOr<RebalanceEntry> out = PlanOnMasked(w, request, std::move(e));
    for (int h : masked) cluster_.SetSchedulable(h, true);
    return out;
  }

 private:
  bool HasKind(int host, WorkloadKind kind) const {
    return (drivers_[host] & (1u << static_cast<int>(kind))) != 0;
  }

  absl::StatusOr<RebalanceEntry> PlanOnMasked(const Workload& w, const sched::Request& request,
                                              RebalanceEntry e) {
    BERTH_ASSIGN_OR_RETURN(sched::Decision now, scheduler_.ScheduleWithoutLearning(request));
    if (now.scheduled) {
      e.outcome = RebalanceOutcome::kFits;
      e.host = now.plan.placement.host_name;
      e.gpus = GpuIndices(now.plan.placement);
      return e;
    }
    for (const sched::ReasonCount& r : now.reasons) {
      if (r.reason == "quota") {
        e.reason = "over its tenant's quota: moving other workloads does not help";
        return e;
      }
    }
    BERTH_ASSIGN_OR_RETURN(sched::Decision preempt, scheduler_.ScheduleWithPreemption(request));
    if (preempt.scheduled) {
      e.outcome = RebalanceOutcome::kPreempts;
      e.host = preempt.plan.placement.host_name;
      e.gpus = GpuIndices(preempt.plan.placement);
      e.victims = preempt.plan.victims;
      return e;
    }
    if (std::string why = Shortfall(request); !why.empty()) {
      e.reason = std::move(why);
      return e;
    }
    // A plan whose move lands on a host without a driver for the moved workload's kind is
    // planned again with that workload kept in place; each round pins one more, so this ends.
    std::set<std::string> pinned;
    sched::DefragOptions options;
    options.max_moves = max_moves_;
    options.move_cost = [&](const sched::Allocation& a) -> std::optional<int64_t> {
      if (pinned.contains(a.request.id)) return std::nullopt;
      auto it = workloads_.find(a.request.id);
      if (it == workloads_.end()) return std::nullopt;
      return RebalanceMoveCost(it->second, request.priority);
    };
    while (true) {
      BERTH_ASSIGN_OR_RETURN(sched::DefragPlan plan,
                             sched::PlanDefrag(&cluster_, &scheduler_, request, options));
      if (!plan.found) break;
      bool moved_badly = false;
      for (const sched::DefragMove& m : plan.moves) {
        auto it = workloads_.find(m.allocation_id);
        if (it == workloads_.end() || !HasKind(m.to.host, it->second.spec.kind)) {
          pinned.insert(m.allocation_id);
          moved_badly = true;
        }
      }
      if (moved_badly) continue;
      return Describe(request, plan, std::move(e));
    }
    e.reason = NoPlanReason(request, pinned.size());
    return e;
  }

  // Why no host can take the request whatever moves: the cluster lacks a resource in total, or
  // no host is large enough. Empty when moves might help.
  std::string Shortfall(const sched::Request& r) const {
    const int64_t need = r.gpu.TotalMilli();
    if (need == 0) {
      return "asks for no GPU: a plan frees GPUs only; see `berth workload explain " + r.id + "`";
    }
    int64_t free_gpu = 0, largest = 0;
    core::Resources free;
    for (int h = 0; h < cluster_.num_hosts(); ++h) {
      if (!cluster_.schedulable(h)) continue;
      const sched::HostState& hs = cluster_.host(h);
      free_gpu += hs.FreeGpuMilli();
      largest = std::max(largest, hs.GpuCapacityMilli());
      free += hs.Free();
    }
    if (free_gpu < need) {
      return Cat("the cluster lacks GPU in total: asks ", core::MilliText(need), ", ",
                 core::MilliText(free_gpu), " free on the hosts that can run it");
    }
    if (largest < need) {
      return Cat("no host has ", core::MilliText(need), " GPUs: the largest that can run it has ",
                 core::MilliText(largest));
    }
    if (free.cpu < r.resources.cpu) {
      return Cat("the cluster lacks cpu in total: asks ", core::FormatCpu(r.resources.cpu), ", ",
                 core::FormatCpu(free.cpu), " free");
    }
    if (free.memory < r.resources.memory) {
      return Cat("the cluster lacks memory in total: asks ",
                 core::FormatMiB(r.resources.memory.value()), ", ",
                 core::FormatMiB(free.memory.value()), " free");
    }
    return "";
  }

  std::string NoPlanReason(const sched::Request& r, size_t pinned) const {
    int staying = 0, movable = 0;
    for (int h = 0; h < cluster_.num_hosts(); ++h) {
      if (!cluster_.schedulable(h)) continue;
      for (const std::string& id : cluster_.AllocationsOn(h)) {
        auto it = workloads_.find(id);
        if (it != workloads_.end() && RebalanceMoveCost(it->second, r.priority)) {
          ++movable;
        } else {
          ++staying;
        }
      }
    }
    std::string out = Cat("no host can be cleared for it within ", max_moves_, " moves: ", movable,
                          " workloads may move, ", staying,
                          " stay (not running, restart policy never, not preemptible, higher "
                          "priority, or disks attached)");
    if (pinned > 0) out += Cat("; ", pinned, " more stay for want of a driver elsewhere");
    return out;
  }

  // The entry for a found plan, with the stranded GPU once it is carried out (tried on the copy
  // and rolled back).
  absl::StatusOr<RebalanceEntry> Describe(const sched::Request& request,
                                          const sched::DefragPlan& plan, RebalanceEntry e) {
    e.host = plan.placement.host_name;
    e.gpus = GpuIndices(plan.placement);
    if (plan.moves.empty()) {
      e.outcome = RebalanceOutcome::kFits;
      return e;
    }
    e.outcome = RebalanceOutcome::kPlan;
    e.cost = plan.cost;
    std::vector<sched::Allocation> before;
    for (const sched::DefragMove& m : plan.moves) {
      const sched::Allocation* a = cluster_.FindAllocation(m.allocation_id);
      if (a == nullptr) {
        return absl::InternalError(Cat("rebalance: the plan moves workload \"", m.allocation_id,
                                       "\", which the copy does not hold"));
      }
      before.push_back(*a);
      const Workload& moved = workloads_.find(m.allocation_id)->second;
      e.moves.push_back({.workload = m.allocation_id,
                         .kind = moved.spec.kind,
                         .from_host = cluster_.host(m.from_host).name,
                         .to_host = m.to.host_name,
                         .to_gpus = GpuIndices(m.to),
                         .cost = m.cost});
    }
    // Carried out on the copy: each move, then the request; undone in reverse.
    absl::Status s;
    size_t done = 0;
    for (; done < plan.moves.size() && s.ok(); ++done) {
      s = cluster_.Release(before[done].request.id);
      if (s.ok()) s = cluster_.Commit(before[done].request, plan.moves[done].to);
    }
    bool placed = false;
    if (s.ok()) {
      s = cluster_.Commit(request, plan.placement);
      placed = s.ok();
    }
    if (s.ok()) e.stranded_gpu_milli_after = StrandedGpuMilli(cluster_);
    absl::Status undo;
    if (placed) undo.Update(cluster_.Release(request.id));
    while (done-- > 0) {
      if (cluster_.FindAllocation(before[done].request.id) != nullptr) {
        undo.Update(cluster_.Release(before[done].request.id));
      }
      undo.Update(cluster_.Commit(before[done].request, before[done].placement));
    }
    if (!s.ok() || !undo.ok()) {
      return absl::InternalError(
          Cat("rebalance: trying the plan for workload \"", request.id,
              "\" on the copy failed: ", s.ok() ? undo.message() : s.message()));
    }
    return e;
  }

  sched::Cluster& cluster_;
  sched::Scheduler& scheduler_;
  const std::map<std::string, Workload, std::less<>>& workloads_;
  const std::vector<uint32_t> drivers_;  // by host index: bit k for WorkloadKind k
  const int max_moves_;
};

bool IsPending(const Workload& w) {
  return w.status.state == WorkloadState::kPending &&
         w.status.desired == core::DesiredState::kRunning;
}

}  // namespace

absl::StatusOr<RebalanceReport> PlanRebalance(ControlPlane* control,
                                              const RebalanceOptions& options) {
  if (options.max_moves < 1 || options.max_moves > kMaxRebalanceMoves) {
    return absl::InvalidArgumentError(Cat("rebalance: max_moves must be from 1 to ",
                                          kMaxRebalanceMoves, ", got ", options.max_moves));
  }
  if (options.limit < 1 || options.limit > kMaxRebalanceLimit) {
    return absl::InvalidArgumentError(
        Cat("rebalance: limit must be from 1 to ", kMaxRebalanceLimit, ", got ", options.limit));
  }
  absl::StatusOr<sched::Policy> policy = sched::Policy::Parse(control->options().policy);
  if (!policy.ok()) {
    // The server's own setting: no client can change it, and its passes place nothing either.
    return absl::FailedPreconditionError(
        Cat("rebalance: the server's policy does not parse: ", policy.status().message()));
  }
  ClusterModel& model = control->model();
  BERTH_RETURN_IF_ERROR(model.Sync());

  // One read of the model: its cluster, the pending queue and the workloads that hold an
  // allocation (what each may cost to move).
  ClusterCopy copy;
  std::vector<Workload> pending;
  size_t pending_in_all = 0;
  std::map<std::string, Workload, std::less<>> placed;
  absl::Status found = absl::OkStatus();
  model.ReadClusterAndWorkloads([&](const sched::Cluster& cluster,
                                    const std::map<std::string, Workload, std::less<>>& workloads) {
    copy = CopyOut(cluster);
    for (const sched::Allocation& a : copy.allocations) {
      if (auto it = workloads.find(a.request.id); it != workloads.end()) {
        placed.emplace(it->first, it->second);
      }
    }
    for (const auto& [name, w] : workloads) {
      if (!IsPending(w)) continue;
      ++pending_in_all;
      if (options.workload.empty()) pending.push_back(w);
    }
    if (options.workload.empty()) return;
    auto it = workloads.find(options.workload);
    if (it == workloads.end()) {
      found = absl::NotFoundError(Cat("workload \"", options.workload, "\" not found"));
    } else if (!IsPending(it->second)) {
      const Workload& w = it->second;
      found = absl::FailedPreconditionError(
          Cat("workload \"", w.spec.name, "\" is ", core::WorkloadStateName(w.status.state),
              w.status.host.empty() ? "" : Cat(" on ", w.status.host),
              ", not pending: a rebalance plan is for pending workloads"));
    } else {
      pending.push_back(it->second);
    }
  });
  BERTH_RETURN_IF_ERROR(found);

  RebalanceReport report;
  report.policy = policy->ToString();
  report.max_moves = options.max_moves;
  report.pending = pending_in_all;
  // Placement order, as the scheduling pass takes them: priority first, then age, then name.
  std::sort(pending.begin(), pending.end(), [](const Workload& a, const Workload& b) {
    return std::make_tuple(-a.spec.priority, a.created_at, std::cref(a.spec.name)) <
           std::make_tuple(-b.spec.priority, b.created_at, std::cref(b.spec.name));
  });
  if (pending.size() > options.limit) {
    report.more = true;
    pending.resize(options.limit);
  }

  sched::Cluster cluster;
  BERTH_RETURN_IF_ERROR(Build(copy, &cluster));
  std::vector<uint32_t> drivers(cluster.num_hosts(), 0);
  for (int h = 0; h < cluster.num_hosts(); ++h) {
    std::optional<core::Host> host = model.FindHost(cluster.host(h).name);
    if (!host) continue;  // removed since the read: it takes no part
    for (WorkloadKind kind :
         {WorkloadKind::kProcess, WorkloadKind::kVm, WorkloadKind::kContainer}) {
      if (HasDriver(host->inventory, kind)) drivers[h] |= 1u << static_cast<int>(kind);
    }
  }
  for (int h = 0; h < cluster.num_hosts(); ++h) {
    if (!cluster.schedulable(h)) continue;
    report.gpu_milli_capacity += cluster.host(h).GpuCapacityMilli();
    report.gpu_milli_free += cluster.host(h).FreeGpuMilli();
  }
  report.stranded_gpu_milli = StrandedGpuMilli(cluster);

  // FGD scores against the mix of the stored workloads, learned as a server that starts to lead
  // learns it; any server, the followers too, answers with the same.
  sched::MixTracker tracker;
  for (const sched::Request& r : model.RequestsByAge()) tracker.Observe(r);
  const sched::WorkloadMix mix = tracker.mix();
  sched::Scheduler scheduler(&cluster, sched::SchedulerOptions{.policy = *policy, .mix = &mix});
  Planner planner(&cluster, &scheduler, &placed, std::move(drivers), options.max_moves);
  for (const Workload& w : pending) {
    BERTH_ASSIGN_OR_RETURN(RebalanceEntry e, planner.Plan(w));
    report.entries.push_back(std::move(e));
  }
  return report;
}

Json EncodeRebalanceReport(const RebalanceReport& report) {
  Json items = Json::array();
  for (const RebalanceEntry& e : report.entries) {
    Json item = {{"workload", e.workload},
                 {"kind", core::WorkloadKindName(e.kind)},
                 {"priority", e.priority},
                 {"gpu_milli", e.gpu_milli},
                 {"outcome", RebalanceOutcomeName(e.outcome)}};
    if (e.outcome == RebalanceOutcome::kNoPlan) {
      item["reason"] = e.reason;
    } else {
      item["host"] = e.host;
      item["gpus"] = e.gpus;
    }
    if (e.outcome == RebalanceOutcome::kPreempts) item["victims"] = e.victims;
    if (e.outcome == RebalanceOutcome::kPlan) {
      Json moves = Json::array();
      for (const RebalanceMove& m : e.moves) {
        moves.push_back({{"workload", m.workload},
                         {"kind", core::WorkloadKindName(m.kind)},
                         {"from", m.from_host},
                         {"to", m.to_host},
                         {"gpus", m.to_gpus},
                         {"cost", m.cost}});
      }
      item["moves"] = std::move(moves);
      item["cost"] = e.cost;
      item["stranded_milli_after"] = e.stranded_gpu_milli_after;
    }
    items.push_back(std::move(item));
  }
  return {{"dry_run", true},
          {"policy", report.policy},
          {"max_moves", report.max_moves},
          {"gpu",
           {{"capacity_milli", report.gpu_milli_capacity},
            {"free_milli", report.gpu_milli_free},
            {"stranded_milli", report.stranded_gpu_milli}}},
          {"pending", report.pending},
          {"more", report.more},
          {"items", std::move(items)}};
}

}  // namespace berth::control
