// A controller's background loop: one pass every period, or sooner when poked, on a thread of
// its own, while the server leads. Failed passes are counted; each new failure message is logged
// once (a pass that keeps failing the same way does not flood the log). The service and job
// controllers run their passes through it.
//
// Thread-safety: Start, Stop, Poke and failures may be called from any thread; Start once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace berth::control {

struct PassLoopOptions {
  std::string name;  // in log lines: "job controller"
  absl::Duration period = absl::Seconds(1);
  // Whether this server should run passes now (it leads); null: always.
  std::function<bool()> active;
  // Run instead of a pass while not active (to let go of what only the leader holds); may be null.
  std::function<void()> while_inactive;
};

class PassLoop {
 public:
  PassLoop(PassLoopOptions options, std::function<absl::Status()> pass);
  ~PassLoop();  // Stop()
  PassLoop(const PassLoop&) = delete;
  PassLoop& operator=(const PassLoop&) = delete;

  void Start();
  // Returns once the thread has finished its pass and ended; later calls do nothing.
  void Stop();
  // The next pass starts without waiting for the period.
  void Poke();
  int64_t failures() const { return failures_.load(); }

 private:
  void Run();

  const PassLoopOptions options_;
  const std::function<absl::Status()> pass_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool poked_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex join_mu_;  // one Stop joins; a concurrent one waits for it
  std::thread thread_ ABSL_GUARDED_BY(join_mu_);
  std::atomic<int64_t> failures_{0};
  std::string last_failure_;  // only the loop's thread touches it
};

}  // namespace berth::control
