#include "sched/mix.h"

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
