#include "state/watch_hub.h"

#include <utility>

namespace berth::state {

class WatchHub::Handle final : public WatchHandle {
 public:
  Handle(std::shared_ptr<WatchHub> hub, int64_t id) : hub_(std::move(hub)), id_(id) {}
  ~Handle() override { hub_->Cancel(id_); }

 private:
  std::shared_ptr<WatchHub> hub_;
  int64_t id_;
};

std::shared_ptr<WatchHub> WatchHub::Create() {
  std::shared_ptr<WatchHub> hub(new WatchHub());
  hub->Start();
  return hub;
}

void WatchHub::Start() {
  thread_ = std::thread([this] { Run(); });
  thread_id_ = thread_.get_id();
}

WatchHub::~WatchHub() { Shutdown(); }

void WatchHub::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&mu_);
  watchers_.clear();
  pending_count_ = 0;
}

std::unique_ptr<WatchHandle> WatchHub::Add(std::string prefix, std::vector<Event> backlog,
                                           WatchCallback callback) {
  auto watcher = std::make_shared<Watcher>();
  watcher->prefix = std::move(prefix);
  watcher->callback = std::move(callback);
  watcher->pending.assign(std::make_move_iterator(backlog.begin()),
                          std::make_move_iterator(backlog.end()));
  absl::MutexLock lock(&mu_);
  int64_t id = next_id_++;
  if (!stop_) {
    pending_count_ += static_cast<int64_t>(watcher->pending.size());
    watchers_[id] = std::move(watcher);
  }
  return std::make_unique<Handle>(shared_from_this(), id);
}

void WatchHub::Publish(const std::vector<Event>& events) {
  if (events.empty()) return;
  absl::MutexLock lock(&mu_);
  for (auto& [id, watcher] : watchers_) {
    for (const Event& event : events) {
      if (event.kv.key.compare(0, watcher->prefix.size(), watcher->prefix) == 0) {
        watcher->pending.push_back(event);
        ++pending_count_;
      }
    }
  }
}

void WatchHub::Cancel(int64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(id);
  if (it != watchers_.end()) {
    it->second->cancelled = true;
    pending_count_ -= static_cast<int64_t>(it->second->pending.size());
    it->second->pending.clear();
    watchers_.erase(it);
  }
  // A callback that ends its own watch must not wait for itself.
  if (std::this_thread::get_id() == thread_id_) return;
  auto idle = [this, id]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return running_id_ != id; };
  mu_.Await(absl::Condition(&idle));
}

void WatchHub::Run() {
  for (;;) {
    std::shared_ptr<Watcher> watcher;
    std::deque<Event> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || pending_count_ > 0; };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      // Round robin, so one busy watcher cannot starve the others.
      auto it = watchers_.upper_bound(last_served_);
      for (size_t i = 0; i <= watchers_.size(); ++i) {
        if (it == watchers_.end()) it = watchers_.begin();
        if (!it->second->pending.empty()) break;
        ++it;
      }
      last_served_ = it->first;
      running_id_ = it->first;
      watcher = it->second;
      batch.swap(watcher->pending);
      pending_count_ -= static_cast<int64_t>(batch.size());
    }
    // A commit's events reach a watcher's queue together, so within a batch they sit side by
    // side: tell the callback when the next one completes the same revision.
    for (size_t i = 0; i + 1 < batch.size(); ++i) {
      batch[i].more_in_revision = batch[i + 1].revision() == batch[i].revision();
    }
    for (const Event& event : batch) {
      {
        absl::MutexLock lock(&mu_);
        if (watcher->cancelled || stop_) break;
      }
      watcher->callback(event);
    }
    absl::MutexLock lock(&mu_);
    running_id_ = 0;
  }
}

}  // namespace berth::state
