// The `oci` compute driver: runs each task as an OCI container through runc. The container's
// root is an overlay of the image rootfs (read-only lower layer) and a per-task upper layer, so
// tasks never write into the image. A small /bin/sh supervisor per task runs `runc run --keep`
// and records the container's exit status in task_dir/exit_code; it lives in its own session, so
// containers and their exit codes outlive the agent, and Recover() re-adopts them from the
// handle (supervisor pid + start time) and runc's state.
//
// TaskConfig mapping: image_path = rootfs directory; command + args = process; env, working_dir;
// resources = cgroup CPU quota/shares and memory limit (OOM kills reported as such);
// disks with mount_path = bind mounts; nics[0].netns_path = network namespace to join (a new
// empty one otherwise, the host's when ports are requested without one); gpus +
// gpu_device_ids = NVIDIA_VISIBLE_DEVICES and MPS limits for shares (mps_pipe_dir mounted in);
// device_edits = CDI device nodes (numbers read from their host files where the spec leaves them
// out), device-cgroup rules allowing only them, mounts, env and hooks.
// stdout/stderr go to task_dir/stdout.log and stderr.log.
//
// Thread-safety: as ComputeDriver. One watcher thread per task while this driver runs.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/compute_driver.h"
#include "runtime/host/executor.h"
#include "runtime/oci/oci_config.h"

namespace berth::runtime {

struct OciDriverOptions {
  std::string runc_binary = "runc";
  std::string runc_root = "/run/berth/runc";  // runc's state directory
  std::string cgroup_parent = "/berth";
  int64_t pids_limit = 4096;
  absl::Duration start_timeout = absl::Seconds(60);
  host::Executor* executor = nullptr;  // runs runc and the shim; null = the host
};

class OciDriver final : public ComputeDriver {
 public:
  explicit OciDriver(OciDriverOptions options = {});
  ~OciDriver() override;

  std::string Name() const override { return "oci"; }
  DriverCapabilities Capabilities() const override;
  DriverFingerprint Fingerprint() override;
  absl::StatusOr<TaskHandle> Start(const TaskConfig& config) override;
  absl::Status Recover(const TaskHandle& handle) override;
  absl::StatusOr<ExitResult> Wait(std::string_view task_id, absl::Duration timeout) override;
  absl::Status Stop(std::string_view task_id, const StopOptions& options) override;
  absl::Status Destroy(std::string_view task_id, const DestroyOptions& options) override;
  absl::StatusOr<TaskStatus> Inspect(std::string_view task_id) override;
  absl::StatusOr<TaskStats> Stats(std::string_view task_id) override;
  absl::Status Pause(std::string_view task_id) override;
  absl::Status Resume(std::string_view task_id) override;
  absl::StatusOr<ExecResult> Exec(std::string_view task_id, const std::vector<std::string>& argv,
                                  const ExecOptions& options) override;
  std::vector<std::string> Tasks() override;
  int64_t Subscribe(TaskEventCallback callback) override;
  void Unsubscribe(int64_t subscription) override;

  // The launch spec Start() would use (rootfs = the task's overlay mount point). Pure.
  absl::StatusOr<ContainerLaunchSpec> LaunchSpecFor(const TaskConfig& config) const;

 private:
  struct Box;

  std::vector<std::string> Runc(std::initializer_list<std::string> args) const;
  // Runs runc; a timeout or a runc that cannot start is an error, any exit is a result.
  absl::StatusOr<host::RunResult> RunRunc(std::initializer_list<std::string> args) const;
  // Runs runc where nothing waits for the outcome (clean-up); a failure is reported.
  void RunRuncOrReport(std::string_view what, std::initializer_list<std::string> args) const;
  host::Executor& executor() const { return host::ExecutorOr(options_.executor); }
  void Watch(std::shared_ptr<Box> box);
  void Finish(const std::shared_ptr<Box>& box, std::optional<std::string> lost_reason);
  std::shared_ptr<Box> Find(std::string_view task_id);
  absl::Status Signal(const std::shared_ptr<Box>& box, const std::string& signal);

  const OciDriverOptions options_;
  TaskEventHub events_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Box>, std::less<>> boxes_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::runtime
