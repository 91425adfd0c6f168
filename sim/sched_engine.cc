#include "sim/sched_engine.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "core/status.h"
#include "core/strings.h"
#include "sched/cluster.h"
#include "sched/defrag.h"
#include "sched/mix.h"
#include "sched/model.h"
#include "sched/scheduler.h"
#include "sim/args.h"
#include "sim/rng.h"

namespace berth::sim {
namespace {

using core::Cat;

sched::HostSpec ToHostSpec(const SimHost& h) {
  sched::HostSpec spec;
  spec.name = h.name;
  spec.capacity.cpu = core::MilliCpu(h.cpu_milli);
  spec.capacity.memory = core::MemoryMiB(h.memory_mib);
  spec.labels = h.labels;
  for (int i = 0; i < h.gpu_count; ++i) {
    core::GpuDevice d;
    d.index = i;
    d.model = h.gpu_model;
    d.memory_mib = h.gpu_memory_mib;
    spec.gpus.push_back(std::move(d));
  }
  return spec;
}

// The request without an id: the part that decides placement.
sched::Request ToRequest(const SimRequest& r) {
  sched::Request out;
  out.priority = r.priority;
  out.resources.cpu = core::MilliCpu(r.cpu_milli);
  out.resources.memory = core::MemoryMiB(r.memory_mib);
  if (r.num_gpu > 0) {
    if (r.gpu_milli < core::kWholeGpuMilli) {
      out.gpu.kind = core::GpuRequest::Kind::kShare;
      out.gpu.milli = r.gpu_milli;
    } else {
      out.gpu.kind = core::GpuRequest::Kind::kWhole;
      out.gpu.count = r.num_gpu;
    }
    out.gpu.models = r.gpu_models;
  }
  return out;
}

class SchedEngine final : public Engine {
 public:
  SchedEngine() = default;

  absl::Status Init(const EngineConfig& config) {
    if (config.cluster == nullptr) return absl::InvalidArgumentError("engine: no cluster");
    std::vector<size_t> order(config.cluster->hosts.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    if (config.shuffle_hosts) {
      // The scheduler breaks ties by host index, so the order hosts are added in is the tie
      // order. Its own stream, so the request order drawn from the same seed is not disturbed.
      Rng rng(config.seed ^ 0x9e3779b97f4a7c15ULL);
      rng.Shuffle(order);
    }
    for (size_t i : order) {
      const SimHost& h = config.cluster->hosts[i];
      absl::StatusOr<int> added = cluster_.AddHost(ToHostSpec(h));
      if (!added.ok()) return added.status();
      capacity_milli_ += int64_t{h.gpu_count} * core::kWholeGpuMilli;
    }
    if (config.mix_source != nullptr) {
      for (const SimRequest& r : config.mix_source->requests) {
        mix_.Add(sched::Shape::Of(ToRequest(r)), 1);
      }
    }
    absl::StatusOr<sched::Policy> policy = sched::Policy::Parse(config.policy);
    if (!policy.ok()) {
      return absl::InvalidArgumentError(
          Cat("--policy \"", config.policy, "\": ", std::string(policy.status().message())));
    }
    if (policy->Uses("fgd-ref") || policy->Uses("fgd-pool")) {
      // fgd-ref and fgd-pool score against their own mix (the trace's popular classes) while the
      // report measures every policy against the whole trace: a twin cluster for the measure keeps
      // each cluster's fragmentation caches on one mix.
      measure_ = std::make_unique<sched::Cluster>();
      for (size_t i : order) {
        BERTH_RETURN_IF_ERROR(measure_->AddHost(ToHostSpec(config.cluster->hosts[i])).status());
      }
    }
    options_.policy = *std::move(policy);
    options_.mix = &mix_;
    scheduler_ = std::make_unique<sched::Scheduler>(&cluster_, options_);
    return absl::OkStatus();
  }

  absl::StatusOr<PlaceOutcome> Place(int64_t id, const SimRequest& request,
                                     const PlaceOptions& options) override {
    sched::Request req = ToRequest(request);
    req.id = Cat(id);
    PlaceOutcome outcome;
    if (!options.allow_preemption) {
      BERTH_ASSIGN_OR_RETURN(sched::Decision d, scheduler_->Place(req));
      if (d.scheduled) {
        if (measure_) BERTH_RETURN_IF_ERROR(measure_->Commit(req, d.plan.placement));
      } else if (options.defrag) {
        BERTH_ASSIGN_OR_RETURN(sched::DefragPlan plan,
                               sched::PlanDefrag(&cluster_, scheduler_.get(), req));
        if (!plan.found) return outcome;
        for (const sched::DefragMove& m : plan.moves) {
          int64_t moved_id = 0;
          if (!absl::SimpleAtoi(m.allocation_id, &moved_id) || !allocated_.contains(moved_id)) {
            return absl::InternalError(
                Cat("engine: unexpected allocation id \"", m.allocation_id, "\""));
          }
          const sched::Request& moved = requests_[moved_id];
          BERTH_RETURN_IF_ERROR(cluster_.Release(m.allocation_id));
          BERTH_RETURN_IF_ERROR(cluster_.Commit(moved, m.to));
          if (measure_) {
            BERTH_RETURN_IF_ERROR(measure_->Release(m.allocation_id));
            BERTH_RETURN_IF_ERROR(measure_->Commit(moved, m.to));
          }
          outcome.moved.push_back(moved_id);
        }
        BERTH_RETURN_IF_ERROR(cluster_.Commit(req, plan.placement));
        if (measure_) BERTH_RETURN_IF_ERROR(measure_->Commit(req, plan.placement));
      } else {
        return outcome;
      }
      outcome.placed = true;
      allocated_[id] = request.TotalGpuMilli();
      allocated_milli_ += request.TotalGpuMilli();
      requests_[id] = std::move(req);
      return outcome;
    }
    BERTH_ASSIGN_OR_RETURN(sched::Decision d, scheduler_->ScheduleWithPreemption(req));
    if (!d.scheduled) return outcome;
    for (const std::string& victim : d.plan.victims) {
      int64_t victim_id = 0;
      if (!absl::SimpleAtoi(victim, &victim_id)) {
        return absl::InternalError(Cat("engine: unexpected allocation id \"", victim, "\""));
      }
      BERTH_RETURN_IF_ERROR(Release(victim_id));
      outcome.preempted.push_back(victim_id);
    }
    BERTH_RETURN_IF_ERROR(cluster_.Commit(req, d.plan.placement));
    if (measure_) BERTH_RETURN_IF_ERROR(measure_->Commit(req, d.plan.placement));
    outcome.placed = true;
    allocated_[id] = request.TotalGpuMilli();
    allocated_milli_ += request.TotalGpuMilli();
    requests_[id] = std::move(req);
    return outcome;
  }

  absl::Status Release(int64_t id) override {
    auto it = allocated_.find(id);
    if (it == allocated_.end()) {
      return absl::NotFoundError(Cat("engine: allocation ", id, " is not live"));
    }
    BERTH_RETURN_IF_ERROR(cluster_.Release(Cat(id)));
    if (measure_) BERTH_RETURN_IF_ERROR(measure_->Release(Cat(id)));
    allocated_milli_ -= it->second;
    allocated_.erase(it);
    requests_.erase(id);
    return absl::OkStatus();
  }

  int64_t CapacityGpuMilli() const override { return capacity_milli_; }
  int64_t AllocatedGpuMilli() const override { return allocated_milli_; }

  FragmentationStats Fragmentation() override {
    sched::FragmentationReport report = (measure_ ? *measure_ : cluster_).Fragmentation(mix_);
    return FragmentationStats{report.fragmented_milli, report.free_milli};
  }

 private:
  sched::Cluster cluster_;
  std::unique_ptr<sched::Cluster> measure_;  // the measure's twin of cluster_, or null
  sched::WorkloadMix mix_;
  sched::SchedulerOptions options_;
  std::unique_ptr<sched::Scheduler> scheduler_;
  int64_t capacity_milli_ = 0;
  int64_t allocated_milli_ = 0;
  absl::flat_hash_map<int64_t, int64_t> allocated_;  // id -> GPU milli
  // id -> what was placed, for defragmentation to move it.
  absl::flat_hash_map<int64_t, sched::Request> requests_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> NewSchedEngine(const EngineConfig& config) {
  auto engine = std::make_unique<SchedEngine>();
  BERTH_RETURN_IF_ERROR(engine->Init(config));
  return engine;
}

EngineFactory SchedEngineFactory() { return NewSchedEngine; }

}  // namespace berth::sim
