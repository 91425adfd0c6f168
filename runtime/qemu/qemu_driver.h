// The `qemu` compute driver: runs each task as a QEMU virtual machine (KVM when /dev/kvm is
// usable, TCG otherwise) and drives it over QMP. QEMU daemonizes, so VMs outlive the agent; the
// handle records pid, process start time and the QMP socket, and Recover() reconnects to QMP.
//
// How a TaskConfig maps to a VM:
//   image_path   a directory holding vmlinuz (+ initrd.img) for direct kernel boot, or a
//                qcow2/raw file booted as the first disk; disks are appended as virtio-blk
//   command+args run by the guest's init (berth.run64=...), then the guest powers off and the
//                exit code it prints (BERTH-RUN-EXIT=N) is the task's; without a command the VM
//                runs until stopped
//   env["BERTH_VM_CMDLINE"]  extra kernel command line (TaskConfig has no field for it)
//   resources    vCPUs = ceil(cpu), memory = memory (default 256 MiB)
//   ports        user-mode networking with host port forwards; nics with host_ifname: tap
//   gpu_device_ids that are PCI addresses: vfio-pci passthrough
// The serial console is task_dir/stdout.log; QEMU's own messages go to task_dir/stderr.log.
//
// Thread-safety: as ComputeDriver. Each VM has one watcher thread while this driver runs.
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
#include "runtime/qemu/accel_probe.h"
#include "runtime/qemu/qemu_argv.h"
#include "runtime/qemu/qmp_client.h"
#include "runtime/qemu/vfio.h"

namespace berth::runtime {

struct QemuDriverOptions {
  std::string qemu_binary = "qemu-system-x86_64";
  // auto: KVM when a probe guest runs under it (once per process), TCG otherwise.
  VmAccelMode accel = VmAccelMode::kAuto;
  std::string base_cmdline = "console=ttyS0 quiet panic=-1";
  int64_t default_memory_mib = 256;
  absl::Duration start_timeout = absl::Seconds(60);
  // How long DetachDisk waits for the guest to give a hot-plugged disk up.
  absl::Duration hot_unplug_timeout = absl::Seconds(30);
  host::Executor* executor = nullptr;  // runs QEMU; null = the host
  // Binds passed-through GPUs to vfio-pci and gives them back; null = one on /sys.
  VfioBinder* vfio = nullptr;
};

struct SnapshotOptions {
  std::string path;     // file the VM's memory and device state is written to
  bool resume = false;  // resume the VM afterwards (otherwise it stays paused)
  absl::Duration timeout = absl::Minutes(5);
};

struct RestoreOptions {
  std::string snapshot_path;  // written by Snapshot() from a VM with the same config
};

// Live VM counters beyond TaskStats.
struct VmStats {
  absl::Duration guest_cpu = absl::ZeroDuration();  // sum of the vCPU threads' CPU time
  int64_t block_read_bytes = 0;
  int64_t block_write_bytes = 0;
  std::string qmp_status;  // "running", "paused", ...
};

// QEMU's name for a Berth disk in a VM: its block node ("-file" added for the file node) and,
// with "-dev", its device. Disk names may start with a digit, run to 63 characters or equal
// another id of the VM ("image", "tap0"); node names must start with a letter and stay under 32
// characters. So the name is hashed: "vd" (given at start) or "hp" (hot-plugged), 16 hex digits.
std::string VmDiskNode(std::string_view disk, bool hotplug);

class QemuDriver final : public ComputeDriver {
 public:
  explicit QemuDriver(QemuDriverOptions options = {});
  ~QemuDriver() override;

  std::string Name() const override { return "qemu"; }
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
  absl::Status AttachDisk(std::string_view task_id, const TaskDisk& disk) override;
  absl::Status DetachDisk(std::string_view task_id, std::string_view name) override;
  absl::Status SnapshotDisk(std::string_view task_id, std::string_view name,
                            std::string_view snapshot) override;
  // Snapshot() with resume.
  absl::Status SaveState(std::string_view task_id, const std::string& path) override;
  std::vector<std::string> Tasks() override;
  int64_t Subscribe(TaskEventCallback callback) override;
  void Unsubscribe(int64_t subscription) override;

  // The launch spec Start() would use; pure apart from reading the image directory.
  absl::StatusOr<VmLaunchSpec> LaunchSpecFor(const TaskConfig& config) const;
  // Writes the running VM's memory and devices to options.path (QMP migrate to a file).
  absl::Status Snapshot(std::string_view task_id, const SnapshotOptions& options);
  // Starts a VM from a snapshot instead of booting it; it resumes where the snapshot was taken.
  absl::StatusOr<TaskHandle> Restore(const TaskConfig& config, const RestoreOptions& options);
  absl::StatusOr<VmStats> GetVmStats(std::string_view task_id);
  // Path of the serial console log (`berth vm console`).
  absl::StatusOr<std::string> ConsolePath(std::string_view task_id);

 private:
  struct Vm;

  absl::StatusOr<TaskHandle> Launch(const TaskConfig& config, const std::string& incoming);
  absl::Status OverlayImageDisk(const std::string& task_dir, VmLaunchSpec& spec);
  absl::Status Attach(const std::shared_ptr<Vm>& vm);
  // Migrates the (paused) VM to options.path and waits for it to complete.
  absl::Status WriteMigration(const std::shared_ptr<Vm>& vm, const SnapshotOptions& options);
  void OnEvent(const std::shared_ptr<Vm>& vm, const QmpEvent& event);
  void Watch(std::shared_ptr<Vm> vm);
  void Finish(const std::shared_ptr<Vm>& vm, std::optional<std::string> lost_reason);
  std::shared_ptr<Vm> Find(std::string_view task_id);
  absl::StatusOr<nlohmann::json> Qmp(const std::shared_ptr<Vm>& vm, std::string_view command,
                                     const nlohmann::json& args = nullptr);
  // Removes the block node NODE and then NODE-file. QEMU lets an unplugged device go only
  // after in-flight references drain, so a node still "in use" is asked again until deadline.
  absl::Status RemoveBlockNodes(const std::shared_ptr<Vm>& vm, const std::string& node,
                                absl::Time deadline);
  absl::Status Kill(const std::shared_ptr<Vm>& vm);
  // Gives the VM's passed-through devices back to their drivers (failures are reported).
  void GiveBackDevices(Vm& vm);
  VfioBinder& vfio() { return options_.vfio != nullptr ? *options_.vfio : default_vfio_; }

  const QemuDriverOptions options_;
  VfioBinder default_vfio_;
  const AccelChoice accel_choice_;
  const VmAccel accel_;
  TaskEventHub events_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Vm>, std::less<>> vms_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace berth::runtime
