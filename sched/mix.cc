#include "sched/mix.h"

#include <algorithm>
#include <atomic>

namespace berth::sched {

uint64_t WorkloadMix::NextVersion() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

void WorkloadMix::Add(const Shape& shape, int64_t weight) {
  if (weight <= 0) return;
  version_ = NextVersion();
  total_ += weight;
  for (Entry& e : entries_) {
    if (e.shape == shape) {
      e.weight += weight;
      return;
    }
  }
  entries_.push_back(Entry{shape, weight});
}

WorkloadMix PopularClasses(const WorkloadMix& mix, int64_t coverage_permille) {
  // The classes in first-seen order, with their weights.
  WorkloadMix classes;
  for (const WorkloadMix::Entry& e : mix.entries()) {
    Shape key;
    key.resources.cpu = e.shape.resources.cpu;
    key.gpu.kind = e.shape.gpu.kind;
    key.gpu.count = e.shape.gpu.count;
    key.gpu.milli = e.shape.gpu.milli;
    key.gpu.models = e.shape.gpu.models;
    key.gpu.mig_profile = e.shape.gpu.mig_profile;
    classes.Add(key, e.weight);
  }
  std::vector<WorkloadMix::Entry> sorted = classes.entries();
  std::stable_sort(
      sorted.begin(), sorted.end(),
      [](const WorkloadMix::Entry& a, const WorkloadMix::Entry& b) { return a.weight > b.weight; });
  WorkloadMix out;
  int64_t covered = 0;
  for (const WorkloadMix::Entry& e : sorted) {
    // Integer form of covered < total * coverage.
    if (__int128(covered) * 1000 >= __int128(classes.total_weight()) * coverage_permille) break;
    out.Add(e.shape, e.weight);
    covered += e.weight;
  }
  return out;
}

MixTracker::MixTracker(MixTrackerOptions options) : options_(options) {
  if (options_.window == 0) options_.window = 1;
  if (options_.refresh_every == 0) options_.refresh_every = 1;
}

void MixTracker::Observe(const Request& request) {
  window_.push_back(Shape::Of(request));
  if (window_.size() > options_.window) window_.pop_front();
  // Every refresh_every-th observation publishes; so does the first, so that a fresh scheduler
  // has a mix to work with.
  ++observed_;
  if (observed_ % options_.refresh_every == 0 || mix_.empty()) Publish();
}

void MixTracker::Publish() {
  WorkloadMix mix;
  for (const Shape& s : window_) mix.Add(s, 1);
  mix_ = std::move(mix);
}

}  // namespace berth::sched
