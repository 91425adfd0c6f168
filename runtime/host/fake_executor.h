// An Executor for unit tests: records every call and answers from a script instead of touching
// the host. A command is answered by the most recently scripted entry whose argv is a prefix of
// it; an unscripted command "exits 0" with no output. Spawned processes get made-up pids.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/host/executor.h"

namespace berth::runtime::host {

class FakeExecutor final : public Executor {
 public:
  // One recorded Run (the options a test asserts on most, copied).
  struct Call {
    std::vector<std::string> argv;
    std::string netns;
    std::string stdin_data;
    absl::Duration timeout;
  };

  // Answers commands starting with `prefix` with `result` (or with `error`, as Run's status).
  void Script(std::vector<std::string> prefix, RunResult result);
  void ScriptError(std::vector<std::string> prefix, absl::Status error);
  // Shorthands for results.
  static RunResult Exited(int code, std::string out = "", std::string err = "");
  static RunResult Signaled(int signal);

  std::vector<Call> Calls() const;
  std::vector<std::vector<std::string>> Commands() const;  // the argv of every Run, in order
  std::vector<std::vector<std::string>> Spawned() const;   // the argv of every Spawn*

  using Executor::Run;
  absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv,
                                const RunOptions& options) override;
  absl::StatusOr<ProcessIdentity> Spawn(const std::vector<std::string>& argv,
                                        const SpawnOptions& options) override;
  absl::StatusOr<SupervisedProcess> SpawnSupervised(const SupervisedSpawnSpec& spec) override;

 private:
  struct Entry {
    std::vector<std::string> prefix;
    absl::StatusOr<RunResult> answer;
  };

  mutable absl::Mutex mu_;
  std::vector<Entry> script_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> spawned_ ABSL_GUARDED_BY(mu_);
  pid_t next_pid_ ABSL_GUARDED_BY(mu_) = 100000;
};

}  // namespace berth::runtime::host
