// The interface through which runtime code runs host commands and starts host processes, so
// that drivers can be unit-tested with FakeExecutor (fake_executor.h) instead of real tools.
// RealExecutor() forwards to run.h, process.h and supervise.h.
//
// Thread-safety: implementations must allow concurrent calls from any thread.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/host/process.h"
#include "runtime/host/run.h"
#include "runtime/host/supervise.h"

namespace berth::runtime::host {

class Executor {
 public:
  virtual ~Executor() = default;

  // Runs argv to completion (see RunCommand).
  virtual absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv,
                                        const RunOptions& options) = 0;
  // Starts argv detached, as the caller's child (see SpawnDetached).
  virtual absl::StatusOr<ProcessIdentity> Spawn(const std::vector<std::string>& argv,
                                                const SpawnOptions& options) = 0;
  // Starts a workload under a supervisor (see host::SpawnSupervised).
  virtual absl::StatusOr<SupervisedProcess> SpawnSupervised(const SupervisedSpawnSpec& spec) = 0;

  absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv) { return Run(argv, {}); }
};

// The process-wide executor that touches the host. Never null; lives for the whole program.
Executor& RealExecutor();

// `executor`, or RealExecutor() when it is null: for options structs whose executor is optional.
Executor& ExecutorOr(Executor* executor);

// Runs argv for a caller that judges the exit itself: a command that timed out or could not
// start becomes its ResultStatus error, so the result returned is of one that ran and exited
// (any code) or was killed by a signal.
[[nodiscard]] absl::StatusOr<RunResult> RunTool(Executor& executor,
                                                const std::vector<std::string>& argv,
                                                const RunOptions& options = {});

// Runs argv and returns its standard output; a result that is not ok() becomes ResultStatus.
[[nodiscard]] absl::StatusOr<std::string> RunOk(Executor& executor,
                                                const std::vector<std::string>& argv,
                                                const RunOptions& options = {});

}  // namespace berth::runtime::host
