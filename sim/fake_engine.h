// A small, fully predictable Engine for tests of the simulation drivers: first fit in host
// order, whole GPUs on idle devices, a share on the first device with room. Fragmentation is
// the free milli of partly used devices, so tests can compute expected values by hand.
// Preemption evicts the newest lower-priority allocations on the first host where that works.
//
// Thread-safety: not thread-safe; one per run, like every Engine.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/engine.h"

namespace berth::sim {

class FakeEngine final : public Engine {
 public:
  explicit FakeEngine(const SimCluster& cluster);

  absl::StatusOr<PlaceOutcome> Place(int64_t id, const SimRequest& request,
                                     const PlaceOptions& options) override;
  absl::Status Release(int64_t id) override;
  int64_t CapacityGpuMilli() const override { return capacity_; }
  int64_t AllocatedGpuMilli() const override { return allocated_; }
  FragmentationStats Fragmentation() override;

  // A factory; policies other than "fake" and "first-fit" are InvalidArgument.
  static EngineFactory Factory();

 private:
  struct Host {
    int64_t cpu = 0, memory = 0;
    std::string model;
    std::vector<int64_t> gpu_free;
  };
  struct Allocation {
    size_t host = 0;
    int64_t cpu = 0, memory = 0, total_milli = 0;
    int priority = 0;
    std::vector<std::pair<size_t, int64_t>> gpus;  // device, milli
  };
  bool TryPlace(size_t host, const SimRequest& r, Allocation* out) const;

  std::vector<Host> hosts_;
  std::map<int64_t, Allocation> allocations_;
  int64_t capacity_ = 0;
  int64_t allocated_ = 0;
};

}  // namespace berth::sim
