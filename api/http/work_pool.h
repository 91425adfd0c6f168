// WorkPool: a fixed set of threads that run queued tasks, for the work an HTTP server must keep
// off its I/O threads (handlers that read the store, encode large lists, or wait on a lock). The
// queue is bounded, so a burst the pool cannot take is refused at once (the caller answers 503)
// rather than queued without limit; work that was already admitted (a parked long poll
// resuming) may pass the bound, since each such task already holds a connection.
//
// Ownership: the pool owns its threads. Thread-safety: every method may be called from any
// thread; Stop (and the destructor) must not be called from a task of the pool itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace berth::api {

class WorkPool {
 public:
  struct Options {
    // Worker threads; 0 means one per hardware thread, at least 4, so that a few slow handlers
    // never take every worker on a small machine.
    int threads = 0;
    // Tasks waiting for a worker before TrySubmit refuses more.
    size_t max_queued = 1024;
  };

  // The thread count `threads` resolves to (0: the machine's size, at least 4).
  static int ResolveThreads(int threads);

  explicit WorkPool(Options options);
  ~WorkPool();  // Stop()
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues `task` unless max_queued tasks already wait or the pool stopped; false then. A task
  // that throws is logged as a bug and the worker goes on.
  bool TrySubmit(std::function<void()> task);
  // Queues `task` whatever the queue holds (work already admitted); false only once stopped.
  bool Submit(std::function<void()> task);
  // Runs what is queued, then joins the workers; later submissions are refused. Idempotent.
  void Stop();

  int threads() const { return static_cast<int>(workers_.size()); }
  size_t max_queued() const { return options_.max_queued; }
  // Tasks waiting for a worker now, and tasks TrySubmit refused since the start.
  size_t queued() const;
  int64_t rejected() const;

 private:
  void Work();
  bool Push(std::function<void()> task, bool bounded);

  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t rejected_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::thread> workers_;
};

}  // namespace berth::api
