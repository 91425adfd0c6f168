#include "runtime/host/fake_executor.h"

#include <algorithm>

namespace berth::runtime::host {

void FakeExecutor::Script(std::vector<std::string> prefix, RunResult result) {
  absl::MutexLock lock(&mu_);
  script_.push_back({std::move(prefix), std::move(result)});
}

void FakeExecutor::ScriptError(std::vector<std::string> prefix, absl::Status error) {
  absl::MutexLock lock(&mu_);
  script_.push_back({std::move(prefix), std::move(error)});
}

RunResult FakeExecutor::Exited(int code, std::string out, std::string err) {
  RunResult r;
  r.cause = ExitCause::kExited;
  r.exit_code = code;
  r.out = std::move(out);
  r.err = std::move(err);
  return r;
}

RunResult FakeExecutor::Signaled(int signal) {
  RunResult r;
  r.cause = ExitCause::kSignaled;
  r.signal = signal;
  return r;
}

std::vector<FakeExecutor::Call> FakeExecutor::Calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<std::vector<std::string>> FakeExecutor::Commands() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::vector<std::string>> out;
  for (const Call& c : calls_) out.push_back(c.argv);
  return out;
}

std::vector<std::vector<std::string>> FakeExecutor::Spawned() const {
  absl::MutexLock lock(&mu_);
  return spawned_;
}

absl::StatusOr<RunResult> FakeExecutor::Run(const std::vector<std::string>& argv,
                                            const RunOptions& options) {
  absl::MutexLock lock(&mu_);
  calls_.push_back({argv, options.netns, options.stdin_data, options.timeout});
  for (auto it = script_.rbegin(); it != script_.rend(); ++it) {
    if (it->prefix.size() <= argv.size() &&
        std::equal(it->prefix.begin(), it->prefix.end(), argv.begin())) {
      return it->answer;
    }
  }
  return Exited(0);
}

absl::StatusOr<ProcessIdentity> FakeExecutor::Spawn(const std::vector<std::string>& argv,
                                                    const SpawnOptions&) {
  absl::MutexLock lock(&mu_);
  spawned_.push_back(argv);
  pid_t pid = next_pid_++;
  return ProcessIdentity{.pid = pid, .start_ticks = static_cast<uint64_t>(pid)};
}

absl::StatusOr<SupervisedProcess> FakeExecutor::SpawnSupervised(const SupervisedSpawnSpec& spec) {
  absl::MutexLock lock(&mu_);
  spawned_.push_back(spec.spawn.argv);
  pid_t sup = next_pid_++;
  pid_t pid = next_pid_++;
  return SupervisedProcess{.supervisor = {.pid = sup, .start_ticks = static_cast<uint64_t>(sup)},
                           .workload = {.pid = pid, .start_ticks = static_cast<uint64_t>(pid)}};
}

}  // namespace berth::runtime::host
