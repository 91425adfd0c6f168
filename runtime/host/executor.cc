#include "runtime/host/executor.h"

namespace berth::runtime::host {
namespace {

class HostExecutor final : public Executor {
 public:
  using Executor::Run;
  absl::StatusOr<RunResult> Run(const std::vector<std::string>& argv,
                                const RunOptions& options) override {
    return RunCommand(argv, options);
  }
  absl::StatusOr<ProcessIdentity> Spawn(const std::vector<std::string>& argv,
                                        const SpawnOptions& options) override {
    return SpawnDetached(argv, options);
  }
  absl::StatusOr<SupervisedProcess> SpawnSupervised(const SupervisedSpawnSpec& spec) override {
    return host::SpawnSupervised(spec);
  }
};

}  // namespace

Executor& RealExecutor() {
  static HostExecutor* const executor = new HostExecutor();
  return *executor;
}

Executor& ExecutorOr(Executor* executor) {
  return executor != nullptr ? *executor : RealExecutor();
}

absl::StatusOr<RunResult> RunTool(Executor& executor, const std::vector<std::string>& argv,
                                  const RunOptions& options) {
  absl::StatusOr<RunResult> result = executor.Run(argv, options);
  if (!result.ok()) return result.status();
  if (result->cause == ExitCause::kTimedOut || result->cause == ExitCause::kStartFailed) {
    return ResultStatus(argv, *result);
  }
  return result;
}

absl::StatusOr<std::string> RunOk(Executor& executor, const std::vector<std::string>& argv,
                                  const RunOptions& options) {
  absl::StatusOr<RunResult> result = executor.Run(argv, options);
  if (absl::Status s = ResultStatus(argv, result); !s.ok()) return s;
  return std::move(result->out);
}

}  // namespace berth::runtime::host
