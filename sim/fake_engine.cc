#include "sim/fake_engine.h"

#include <algorithm>

#include "core/strings.h"

namespace berth::sim {

FakeEngine::FakeEngine(const SimCluster& cluster) {
  for (const SimHost& h : cluster.hosts) {
    hosts_.push_back(
        Host{h.cpu_milli, h.memory_mib, h.gpu_model, std::vector<int64_t>(h.gpu_count, 1000)});
    capacity_ += int64_t{h.gpu_count} * 1000;
  }
}

bool FakeEngine::TryPlace(size_t index, const SimRequest& r, Allocation* out) const {
  const Host& h = hosts_[index];
  if (h.cpu < r.cpu_milli || h.memory < r.memory_mib) return false;
  if (r.num_gpu > 0 && !r.gpu_models.empty() &&
      std::find(r.gpu_models.begin(), r.gpu_models.end(), h.model) == r.gpu_models.end()) {
    return false;
  }
  Allocation a{index, r.cpu_milli, r.memory_mib, r.TotalGpuMilli(), r.priority, {}};
  int needed = r.num_gpu;
  for (size_t d = 0; d < h.gpu_free.size() && needed > 0; ++d) {
    if (h.gpu_free[d] >= r.gpu_milli) {
      a.gpus.emplace_back(d, r.gpu_milli);
      --needed;
    }
  }
  if (needed > 0) return false;
  *out = a;
  return true;
}

absl::StatusOr<PlaceOutcome> FakeEngine::Place(int64_t id, const SimRequest& r,
                                               const PlaceOptions& options) {
  if (allocations_.count(id)) return absl::AlreadyExistsError(core::Cat("id ", id, " is live"));
  PlaceOutcome outcome;
  Allocation a;
  for (size_t h = 0; h < hosts_.size(); ++h) {
    if (TryPlace(h, r, &a)) {
      outcome.placed = true;
      break;
    }
  }
  if (!outcome.placed && options.allow_preemption) {
    for (size_t h = 0; h < hosts_.size() && !outcome.placed; ++h) {
      const auto saved_hosts = hosts_;
      const auto saved_allocations = allocations_;
      const int64_t saved_allocated = allocated_;
      // Newest lower-priority allocations on this host, evicted one by one until it fits.
      std::vector<int64_t> candidates;
      for (const auto& [other, alloc] : allocations_) {
        if (alloc.host == h && alloc.priority < r.priority) candidates.push_back(other);
      }
      std::vector<int64_t> evicted;
      while (!candidates.empty()) {
        int64_t victim = candidates.back();
        candidates.pop_back();
        if (absl::Status s = Release(victim); !s.ok()) return s;
        evicted.push_back(victim);
        if (TryPlace(h, r, &a)) {
          outcome.placed = true;
          outcome.preempted = evicted;
          break;
        }
      }
      if (!outcome.placed) {
        hosts_ = saved_hosts;
        allocations_ = saved_allocations;
        allocated_ = saved_allocated;
      }
    }
  }
  if (!outcome.placed) return outcome;
  Host& host = hosts_[a.host];
  host.cpu -= a.cpu;
  host.memory -= a.memory;
  for (auto [d, milli] : a.gpus) host.gpu_free[d] -= milli;
  allocated_ += a.total_milli;
  allocations_[id] = a;
  return outcome;
}

absl::Status FakeEngine::Release(int64_t id) {
  auto it = allocations_.find(id);
  if (it == allocations_.end()) return absl::NotFoundError(core::Cat("id ", id, " not live"));
  Host& host = hosts_[it->second.host];
  host.cpu += it->second.cpu;
  host.memory += it->second.memory;
  for (auto [d, milli] : it->second.gpus) host.gpu_free[d] += milli;
  allocated_ -= it->second.total_milli;
  allocations_.erase(it);
  return absl::OkStatus();
}

FragmentationStats FakeEngine::Fragmentation() {
  FragmentationStats stats;
  for (const Host& h : hosts_) {
    for (int64_t free : h.gpu_free) {
      stats.free_milli += free;
      if (free < 1000) stats.fragmented_milli += static_cast<double>(free);
    }
  }
  return stats;
}

EngineFactory FakeEngine::Factory() {
  return [](const EngineConfig& config) -> absl::StatusOr<std::unique_ptr<Engine>> {
    if (config.policy != "fake" && config.policy != "first-fit") {
      return absl::InvalidArgumentError(
          core::Cat("--policy \"", config.policy, "\": unknown to the fake engine"));
    }
    return std::make_unique<FakeEngine>(*config.cluster);
  };
}

}  // namespace berth::sim
