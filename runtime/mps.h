// CUDA MPS control daemons for shared GPUs: workloads that hold a share of one GPU run as MPS
// clients of one daemon per GPU, which enforces their thread and memory limits. The agent asks
// for the daemon of a GPU before a share starts (Acquire) and lets go when the share's task is
// destroyed (Release); the first holder starts `nvidia-cuda-mps-control -f` for that GPU under a
// detached supervisor (host/supervise.h, so it outlives an agent restart like the tasks do), the
// last one stops it (`quit` on its control pipe). A daemon that died is started again at the
// next Acquire or Check.
//
// State lives on disk under root_dir/<gpu id>/: pipe/ and log/ (the daemon's directories),
// daemon.json (its supervisor's and its own identities) and holders/<workload> (one empty file per
// holder), so a restarted agent finds its daemons and their holders again.
//
// Thread-safety: thread-safe; calls for one GPU are serialized.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "runtime/host/executor.h"

namespace berth::runtime {

struct MpsOptions {
  std::string control_binary = "nvidia-cuda-mps-control";  // a path, or a name found in PATH
  std::string root_dir;                                    // absolute; created as needed
  host::Executor* executor = nullptr;                      // null = the host
  absl::Duration stop_grace = absl::Seconds(10);           // after `quit`, before SIGKILL
};

class MpsDaemons {
 public:
  explicit MpsDaemons(MpsOptions options);

  // Whether the control binary can be run here; when not, the reason.
  absl::Status Available() const;

  // Records `holder` (a workload name) on GPU `device_id` and makes sure that GPU's daemon runs.
  // Returns the daemon's pipe directory (CUDA_MPS_PIPE_DIRECTORY for the holder).
  // FailedPrecondition when the daemon cannot start; nothing is recorded then.
  absl::StatusOr<std::string> Acquire(std::string_view device_id, std::string_view holder);

  // Drops `holder` from every GPU it holds; a GPU left without holders has its daemon stopped.
  // Idempotent. Errors stopping a daemon are returned after every GPU was visited.
  absl::Status Release(std::string_view holder);

  // Starts again the daemon of every GPU that has holders but no running daemon. Returns the
  // GPUs whose daemon had to be restarted.
  std::vector<std::string> Check();

  // GPUs with a running daemon.
  std::vector<std::string> Running();

  // The directory of GPU `device_id`.
  std::string GpuDir(std::string_view device_id) const;

 private:
  absl::Status EnsureRunning(const std::string& device_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool DaemonRunning(const std::string& device_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status StopDaemon(const std::string& device_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::string> Gpus() const;
  host::Executor& executor() const { return host::ExecutorOr(options_.executor); }

  const MpsOptions options_;
  absl::Mutex mu_;
};

}  // namespace berth::runtime
