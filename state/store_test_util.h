// Test support for Store implementations: a scratch directory that removes itself, and an
// event collector that waits (with a generous deadline) for watch callbacks.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "state/store.h"

namespace berth::state::testing {

class ScratchDir {
 public:
  ScratchDir() {
    const char* base = getenv("TEST_TMPDIR");
    std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/berth-state-XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : "";
  }
  ~ScratchDir() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Collects watch events; thread-safe.
class EventLog {
 public:
  WatchCallback Callback() {
    return [this](const Event& event) {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
    };
  }
  // Waits until at least `n` events arrived (or a deadline generous for slow machines) and
  // returns all events seen so far.
  std::vector<Event> WaitFor(size_t n, absl::Duration deadline = absl::Seconds(60)) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return events_.size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), deadline);
    return events_;
  }
  std::vector<Event> Snapshot() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Event> events_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::state::testing
