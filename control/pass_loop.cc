#include "control/pass_loop.h"

#include <utility>

#include "core/guard.h"
#include "core/log.h"

namespace berth::control {

PassLoop::PassLoop(PassLoopOptions options, std::function<absl::Status()> pass)
    : options_(std::move(options)), pass_(std::move(pass)) {}

PassLoop::~PassLoop() { Stop(); }

void PassLoop::Start() {
  absl::MutexLock lock(&join_mu_);
  thread_ = std::thread([this] { Run(); });
}

void PassLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  absl::MutexLock lock(&join_mu_);
  if (thread_.joinable()) thread_.join();
}

void PassLoop::Poke() {
  absl::MutexLock lock(&mu_);
  poked_ = true;
}

void PassLoop::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || poked_; };
      mu_.AwaitWithTimeout(absl::Condition(&wake), options_.period);
      if (stopping_) return;
      poked_ = false;
    }
    if (options_.active && !options_.active()) {
      if (options_.while_inactive) options_.while_inactive();
      continue;
    }
    absl::Status guarded = core::RunGuarded(options_.name + " pass", [&] {
      absl::Status s = pass_();
      if (s.ok()) return;
      ++failures_;
      std::string line(s.message());
      if (line == last_failure_) return;
      last_failure_ = line;
      core::LogError("%s: %s", options_.name, line);
    });
    if (!guarded.ok()) ++failures_;
  }
}

}  // namespace berth::control
