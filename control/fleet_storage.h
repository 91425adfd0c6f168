// FleetStorage: Berth disks on a fleet (`berth serve` without --dev). The server decides and
// records (StorageService over the store); every volume is made by the agent of the host whose
// pool holds it, reached through a StorageHost the caller supplies (the agent's task API,
// api/host_storage.h). The server runs no qemu-img of its own.
//
// * A disk lives in one host's own pool (`berth disk create NAME --host H`; without --host, the
//   ready host with the fewest disks), or in the shared pool (`--pool shared`): a directory every
//   host started with `berth agent --shared-pool DIR` mounts (NFS in production), labelled
//   core::kSharedPoolLabel. Operations on a shared disk go through its host while it is up, else
//   through any other host that mounts the pool.
// * A workload's disks pin its placement: at create, each adds a constraint to its spec
//   (core::kHostNameLabel in [H] for a host's disk, core::kSharedPoolLabel exists for a shared
//   one). So a workload runs where its disks are, and one on a shared disk can be placed again
//   on any host that mounts the pool when its host is lost; one whose disk is only on a dead host
//   stays pending, and its explanation names the constraint.
// * Before a task starts, its agent asks for the workload's disks (AttachFor): the service
//   records the workload as each disk's holder (one at a time) and answers what the agent mounts.
// * Attaching a disk to a running VM plugs it in on its host (PCIe hot-plug through its agent),
//   detaching pulls it out, and a snapshot of a disk it holds is taken by its QEMU; a running
//   container keeps the disks it mounted (a detach is refused: stop it first), and one attached
//   to it is mounted at its next start. A disk in another host's pool cannot be attached to a
//   running workload. Deleting a workload releases its disks.
//
// Ownership: borrows the store, clock and control plane, which must outlive it. Thread-safety:
// all methods are thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "control/control_plane.h"
#include "control/storage_service.h"
#include "core/clock.h"
#include "core/workload.h"
#include "state/store.h"

namespace berth::control {

// The StorageHost of `pool` ("default": the host's own; core::kSharedPool) on `host`.
using RemoteStorageFactory =
    std::function<std::shared_ptr<StorageHost>(const std::string& host, const std::string& pool)>;

// A running task's disks on one host, through its agent: a VM's QEMU plugs, pulls out or
// snapshots the disk (`pool`: where the volume lives, "" for the host's own). NotFound: no task
// runs there; Unimplemented: its driver takes disks only at start.
struct TaskDisks {
  std::function<absl::Status(std::string_view workload, std::string_view disk,
                             std::string_view pool)>
      plug;
  std::function<absl::Status(std::string_view workload, std::string_view disk,
                             std::string_view pool)>
      unplug;
  std::function<absl::Status(std::string_view workload, std::string_view disk,
                             std::string_view pool, std::string_view snapshot)>
      snapshot;
};
using TaskDisksFactory = std::function<TaskDisks(const std::string& host)>;

// A disk as a host's agent gives it to a task.
struct HostDisk {
  std::string name;
  std::string pool;  // "" (the host's own) or core::kSharedPool
  std::string format;
  std::string filesystem;
  bool read_only = false;
  std::string mount;  // a container's mount path; empty for a VM's disk
  bool operator==(const HostDisk&) const = default;
};

class FleetStorage : public StorageHosts {
 public:
  // `task_disks` (optional) reaches running tasks: without it, a disk changes hands only while
  // its holder is stopped.
  FleetStorage(state::Store* store, core::Clock* clock, ControlPlane* control,
               RemoteStorageFactory remote, TaskDisksFactory task_disks = nullptr);
  FleetStorage(const FleetStorage&) = delete;
  FleetStorage& operator=(const FleetStorage&) = delete;

  StorageService& service() { return storage_; }
  // Releases the disks of workloads that no longer exist (deletions the server missed).
  absl::Status Start();

  // StorageHosts.
  absl::StatusOr<DiskPlace> Choose(std::string_view disk, const DiskPlace& place) override;
  absl::StatusOr<std::shared_ptr<StorageHost>> For(std::string_view disk,
                                                   const core::DiskSpec& spec) override;
  absl::StatusOr<std::vector<HostPool>> Pools() override;

  // Part of ControlPlane::SetReferenceCheck on a fleet: the disks a new workload names must
  // exist (a container's raw, with a filesystem) and lie on one host or in the shared pool; the
  // placement constraints they imply are added to `spec`. Errors name disks[i].disk.
  absl::Status CheckAndPin(core::WorkloadSpec* spec);
  // Records `workload`, which must be placed on `host`, as the holder of each disk its spec
  // names (each must be in that host's pool or in the shared pool it mounts), then answers every
  // disk it holds. Errors name the workload and disks[i].disk; FailedPrecondition when it is on
  // another host or a disk has another holder.
  absl::StatusOr<std::vector<HostDisk>> AttachFor(std::string_view host, std::string_view workload);
  // Releases every disk `workload` (deleted) holds.
  void Release(const std::string& workload);

 private:
  // Ready hosts with a task API, optionally only those that mount the shared pool.
  absl::StatusOr<std::vector<core::Host>> Usable(bool shared);
  static bool MountsShared(const core::Host& h);
  // The live-disk hooks on a fleet: changes under a running task are refused.
  LiveDisks Live();

  state::Store* const store_;
  ControlPlane* const control_;
  const RemoteStorageFactory remote_;
  const TaskDisksFactory task_disks_;
  StorageService storage_;
};

}  // namespace berth::control
