// The workload mix FGD optimizes for: a set of request shapes with integer weights (their
// frequency). Given explicitly, or learned by MixTracker from a sliding window of recent
// requests. Weights are integers so fragmentation sums stay exact and deterministic.
//
// Thread-safety: not thread-safe; the owner serializes access.
#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "core/gpu.h"
#include "core/resources.h"
#include "sched/model.h"

namespace berth::sched {

// The part of a request that decides where it can run (resources and GPU form).
struct Shape {
  core::Resources resources;
  core::GpuRequest gpu;
  bool operator==(const Shape&) const = default;
  static Shape Of(const Request& r) { return Shape{r.resources, r.gpu}; }
};

class WorkloadMix {
 public:
  struct Entry {
    Shape shape;
    int64_t weight = 0;  // > 0
  };
  WorkloadMix() = default;

  // Adds `weight` to `shape` (merging with an equal shape). Weight <= 0 is ignored.
  void Add(const Shape& shape, int64_t weight);
  const std::vector<Entry>& entries() const { return entries_; }
  int64_t total_weight() const { return total_; }
  bool empty() const { return entries_.empty(); }
  // Changes whenever the content changes; unique across all mixes in the process, so caches
  // keyed by it never confuse two mixes.
  uint64_t version() const { return version_; }

 private:
  std::vector<Entry> entries_;
  int64_t total_ = 0;
  uint64_t version_ = NextVersion();
  static uint64_t NextVersion();
};

// The target workload of the published FGD method (Weng et al., "Beware of Fragmentation",
// USENIX ATC 2023): request classes keyed by CPU, GPU count, GPU share and allowed models only
// (memory, disk and GPU memory dropped), the most popular first, cut after the class that brings
// the covered weight to `coverage_permille` of the total (950: 95 %). Classes of equal weight keep
// the order in which `mix` first lists them. The result's weights are the classes' summed weights.
WorkloadMix PopularClasses(const WorkloadMix& mix, int64_t coverage_permille = 950);

struct MixTrackerOptions {
  size_t window = 1000;        // the mix is the last `window` requests observed
  size_t refresh_every = 100;  // publish a new mix after this many observations
};

// Learns the mix from the requests a scheduler sees. The published mix changes only on the
// first and then every `refresh_every`-th observation, so caches built on it stay useful.
class MixTracker {
 public:
  explicit MixTracker(MixTrackerOptions options = {});
  void Observe(const Request& request);
  const WorkloadMix& mix() const { return mix_; }

 private:
  void Publish();
  MixTrackerOptions options_;
  std::deque<Shape> window_;
  uint64_t observed_ = 0;
  WorkloadMix mix_;
};

}  // namespace berth::sched
