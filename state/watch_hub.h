// WatchHub: fans committed events out to watch callbacks on one dispatcher thread that the hub
// owns. Each watcher has its own queue, so a watcher never misses or reorders an event; the
// store publishes events in revision order while it holds its commit lock, and registers a new
// watcher (with its history backlog) under the same lock, so no event falls between backlog
// and live stream.
//
// Ownership: stores hold the hub by shared_ptr and every handle shares it, so a handle may
// outlive the store; Shutdown() stops delivery and joins the thread.
// Thread-safety: all methods are thread-safe. Callbacks run one at a time, with no hub lock held.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "state/store.h"

namespace berth::state {

class WatchHub : public std::enable_shared_from_this<WatchHub> {
 public:
  static std::shared_ptr<WatchHub> Create();
  ~WatchHub();

  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Registers a watcher for keys under `prefix`; `backlog` (already filtered by prefix) is
  // delivered first.
  std::unique_ptr<WatchHandle> Add(std::string prefix, std::vector<Event> backlog,
                                   WatchCallback callback);

  // Queues events (in revision order) for every watcher whose prefix matches.
  void Publish(const std::vector<Event>& events);

  // Stops delivery and joins the dispatcher thread. Must not be called from a callback.
  void Shutdown();

 private:
  struct Watcher {
    std::string prefix;
    WatchCallback callback;
    std::deque<Event> pending;
    bool cancelled = false;
  };
  class Handle;

  WatchHub() = default;
  void Start();
  void Cancel(int64_t id);
  void Run();

  absl::Mutex mu_;
  std::map<int64_t, std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int64_t pending_count_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t running_id_ ABSL_GUARDED_BY(mu_) = 0;   // whose callback runs now; 0: none
  int64_t last_served_ ABSL_GUARDED_BY(mu_) = 0;  // round-robin position
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  std::thread::id thread_id_;
};

}  // namespace berth::state
