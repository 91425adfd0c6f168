#include "api/http/work_pool.h"

#include <algorithm>

#include "core/guard.h"
#include "core/log.h"

namespace berth::api {

int WorkPool::ResolveThreads(int threads) {
  if (threads > 0) return threads;
  return std::max(4, static_cast<int>(std::thread::hardware_concurrency()));
}

WorkPool::WorkPool(Options options) : options_(options) {
  int n = ResolveThreads(options_.threads);
  workers_.reserve(n);
  for (int i = 0; i < n; ++i) workers_.emplace_back([this] { Work(); });
}

WorkPool::~WorkPool() { Stop(); }

bool WorkPool::Push(std::function<void()> task, bool bounded) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  if (bounded && queue_.size() >= options_.max_queued) {
    ++rejected_;
    return false;
  }
  queue_.push_back(std::move(task));
  return true;
}

bool WorkPool::TrySubmit(std::function<void()> task) { return Push(std::move(task), true); }
bool WorkPool::Submit(std::function<void()> task) { return Push(std::move(task), false); }

void WorkPool::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& t : workers_) {
    if (t.joinable()) t.join();
  }
  workers_.clear();
}

size_t WorkPool::queued() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

int64_t WorkPool::rejected() const {
  absl::MutexLock lock(&mu_);
  return rejected_;
}

void WorkPool::Work() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      // Stopping still drains the queue: each task holds a request that deserves its answer.
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    core::ReportError("http", "worker task", core::RunGuarded("worker task", task));
  }
}

}  // namespace berth::api
