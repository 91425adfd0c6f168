// StorageService: Berth disks as stored objects (/disks/NAME: spec, status, revision, times,
// events) and the rules around them (validation, attachment, refusing deletes of attached
// disks). The volumes themselves live on a host and are made through StorageHost, which main
// implements over the host's StorageDriver (dev mode: the local host, called directly).
//
// Every operation validates its input first; when the host fails, the stored object is left as
// it was. Ownership: the service borrows the store, clock and host, which must outlive it.
// Thread-safety: all methods are thread-safe; mutations are serialized by one mutex (a disk
// operation is host I/O that must not interleave with another on the same disk) and written
// with compare-and-set.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "control/events.h"
#include "control/object_store.h"
#include "core/clock.h"
#include "core/disk.h"
#include "core/json.h"
#include "core/workload.h"
#include "state/store.h"

namespace berth::control {

// A volume as the host sees it.
struct HostVolume {
  std::string format;  // "qcow2" | "raw"
  int64_t size_mib = 0;
  int64_t allocated_bytes = 0;
  std::string path;
  std::string backing_file;
  std::vector<std::string> snapshots;
  std::string filesystem;  // Restore only: the filesystem found on a raw volume; "" = none
};

struct HostVolumeSpec {
  std::string name;
  std::string format = "qcow2";
  int64_t size_mib = 0;
  std::string filesystem;  // "" | "ext4" | "xfs"
  std::string from_image;  // an image the host's catalog holds (its rules); empty = blank
};

struct HostBackup {
  int64_t bytes = 0;
  std::string sha256;
  std::string path;  // where the host wrote it (the client's name resolved); empty = that name
};

using Progress = std::function<void(int permille)>;

// A pool's thin-provisioning accounting.
struct HostPool {
  std::string name;
  std::string directory;
  int64_t capacity_mib = 0;
  int64_t overcommit_permille = 1000;
  int64_t volume_count = 0;
  int64_t provisioned_mib = 0;  // the volumes' virtual sizes
  int64_t allocated_bytes = 0;  // what they really take on disk
  int64_t limit_mib = 0;        // capacity * overcommit
  int64_t available_mib = 0;    // limit - provisioned
};

// The storage operations of one host, in the service's terms. Errors carry the driver's
// message (InvalidArgument naming the field, NotFound, FailedPrecondition, ...).
class StorageHost {
 public:
  virtual ~StorageHost() = default;
  // Declares the host's pool and finishes or rolls back interrupted operations.
  virtual absl::Status Prepare() = 0;
  virtual absl::StatusOr<HostVolume> Create(const HostVolumeSpec& spec) = 0;
  virtual absl::StatusOr<HostVolume> Get(std::string_view name) = 0;
  virtual absl::StatusOr<HostVolume> Resize(std::string_view name, int64_t size_mib,
                                            std::string_view attached_to) = 0;
  virtual absl::Status Snapshot(std::string_view name, std::string_view snapshot) = 0;
  virtual absl::Status Revert(std::string_view name, std::string_view snapshot,
                              std::string_view attached_to) = 0;
  virtual absl::Status DeleteSnapshot(std::string_view name, std::string_view snapshot) = 0;
  virtual absl::StatusOr<HostVolume> Clone(std::string_view source, std::string_view snapshot,
                                           std::string_view name, std::string_view format) = 0;
  virtual absl::StatusOr<HostBackup> Backup(std::string_view name, const std::string& file,
                                            const Progress& progress) = 0;
  // `format` empty: the format the backup records (a raw disk comes back raw, with the
  // filesystem found on it), qcow2 when it records none.
  virtual absl::StatusOr<HostVolume> Restore(const std::string& file, std::string_view name,
                                             std::string_view format, const Progress& progress) = 0;
  virtual absl::Status Delete(std::string_view name, std::string_view attached_to) = 0;
  virtual absl::StatusOr<std::vector<HostPool>> Pools() = 0;
};

// Where a new disk goes (a fleet): `host` empty = a host the fleet picks; `pool` empty = that
// host's own pool, or core::kSharedPool. `serve --dev` takes neither: its host holds every disk.
struct DiskPlace {
  std::string host;
  std::string pool;
};

struct DiskCreateOptions {
  std::string name;
  std::string size;  // "1Gi"; optional with from_image
  std::string format = "qcow2";
  std::string filesystem;
  std::string from_image;
  DiskPlace place;
};

// Where a fleet's disks live (`berth serve` without --dev): each host's own pool, and the
// shared pool every host that declares it mounts, reached through the hosts' agents.
// Thread-safety: implementations are thread-safe.
class StorageHosts {
 public:
  virtual ~StorageHosts() = default;
  // For a new disk `disk` asked for at `place`: checks the place (InvalidArgument naming
  // `host` or `pool`; FailedPrecondition when the host cannot take it now) and answers the spec's
  // host and pool, the host being the one that makes the volume.
  virtual absl::StatusOr<DiskPlace> Choose(std::string_view disk, const DiskPlace& place) = 0;
  // The host that carries out operations on an existing disk: its own host for a host's pool;
  // for the shared pool, that host while it is up, else another that mounts the pool.
  virtual absl::StatusOr<std::shared_ptr<StorageHost>> For(std::string_view disk,
                                                           const core::DiskSpec& spec) = 0;
  // Every host's pools (named HOST/POOL) and the shared pool once.
  virtual absl::StatusOr<std::vector<HostPool>> Pools() = 0;
};

// Plugs a disk into a workload's running task, or pulls it out, before the store records the
// change. NotFound (no running task) or Unimplemented (its driver takes disks only at start)
// mean the workload sees the change at its next start; any other error refuses the change.
struct LiveDisks {
  std::function<absl::Status(std::string_view workload, const core::Json& disk)> attach;
  std::function<absl::Status(std::string_view workload, std::string_view disk)> detach;
  // Takes the snapshot through the running task that holds the disk open.
  std::function<absl::Status(std::string_view workload, std::string_view disk,
                             std::string_view snapshot)>
      snapshot;
};

class StorageService {
 public:
  // Dev mode: `host` holds every disk.
  StorageService(state::Store* store, core::Clock* clock, StorageHost* host);
  // A fleet: each disk on the host its spec names (`hosts` must outlive the service).
  StorageService(state::Store* store, core::Clock* clock, StorageHosts* hosts);
  // Set before serving, from one thread.
  void SetLiveDisks(LiveDisks live) { live_ = std::move(live); }

  // At server start (dev mode): prepares the host (pool, recovery) and refreshes every stored
  // disk's status from its volume, marking disks whose volume is gone as failed. A fleet's
  // agents prepare their own pools: nothing to do.
  absl::Status Start();

  // Disk objects as JSON: {name, spec, status, revision, created_at, updated_at}.
  absl::StatusOr<core::Json> Create(const DiskCreateOptions& options);
  absl::StatusOr<core::Json> Get(std::string_view name);
  absl::StatusOr<std::vector<core::Json>> List(int64_t* revision = nullptr);
  // The same, typed: NotFound naming the disk; every disk that decodes.
  absl::StatusOr<core::Disk> GetDisk(std::string_view name);
  absl::StatusOr<std::vector<core::Disk>> Disks();
  // The host's pools with their accounting: {name, directory, capacity_mib, overcommit,
  // volume_count, provisioned_mib, allocated_bytes, limit_mib, available_mib}.
  absl::StatusOr<std::vector<core::Json>> Pools();
  absl::StatusOr<core::Json> Resize(std::string_view name, std::string_view size);
  absl::StatusOr<core::Json> Snapshot(std::string_view name, std::string_view snapshot);
  absl::StatusOr<core::Json> Revert(std::string_view name, std::string_view snapshot);
  // A new independent disk from `source`'s snapshot (empty = its current data).
  absl::StatusOr<core::Json> Clone(std::string_view source, std::string_view snapshot,
                                   std::string_view name);
  // Records that `workload` (which must exist) uses the disk; one holder at a time.
  absl::StatusOr<core::Json> Attach(std::string_view name, std::string_view workload);
  // Refused (FailedPrecondition naming status.attached_to) while the holder's running task
  // cannot give the disk up (a container has it mounted): one holder at a time.
  absl::StatusOr<core::Json> Detach(std::string_view name);
  // Records that `workload`, whose task is gone, no longer holds the disk; a no-op when another
  // workload (or none) holds it.
  absl::Status Release(std::string_view name, std::string_view workload);
  // Writes a compressed backup to `file`, a name the host resolves in its backup directory
  // (the host refuses names elsewhere, and existing files: InvalidArgument, AlreadyExists).
  absl::StatusOr<core::Json> Backup(std::string_view name, const std::string& file,
                                    const Progress& progress);
  // A new disk from the backup `file` (in the host's backup directory, as for Backup), in the
  // format it had, with its filesystem (a raw ext4 disk comes back raw ext4, mountable).
  // On a fleet, `place` names the host whose backup directory holds the file (or the shared
  // pool's, through any host that mounts it).
  absl::StatusOr<core::Json> Restore(const std::string& file, std::string_view name,
                                     const DiskPlace& place, const Progress& progress);
  absl::StatusOr<core::Json> Restore(const std::string& file, std::string_view name,
                                     const Progress& progress) {
    return Restore(file, name, DiskPlace{}, progress);
  }
  // Refused (FailedPrecondition naming status.attached_to) while attached.
  absl::Status Delete(std::string_view name);

 private:
  // NotFound naming the disk when absent.
  absl::StatusOr<DiskRepository::Item> Read(std::string_view name) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckNameFree(std::string_view name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Creates the stored object for a volume `host` just made; deletes the volume if the store
  // refuses.
  absl::StatusOr<core::Json> Record(std::string_view name, core::DiskSpec spec,
                                    const HostVolume& volume, StorageHost& host,
                                    std::string_view message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The host of an existing disk (dev mode: the one host).
  absl::StatusOr<std::shared_ptr<StorageHost>> HostOf(std::string_view name,
                                                      const core::DiskSpec& spec);
  // Where a new disk goes: the fleet's choice, or (dev mode) the one host, which takes no place.
  absl::StatusOr<DiskPlace> Place(std::string_view name, const DiskPlace& place);
  // Writes `disk` back over `item` (at its revision) with an event.
  absl::StatusOr<core::Json> Write(const DiskRepository::Item& item, core::Disk disk,
                                   std::string_view type, std::string_view message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rewrites an existing object's status from `volume` with an event.
  absl::StatusOr<core::Json> Update(const DiskRepository::Item& item, const HostVolume& volume,
                                    std::string_view type, std::string_view message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Every stored disk; those that do not decode are reported and left out.
  absl::StatusOr<DiskRepository::ListResult> ListDisks() const;

  state::Store* const store_;
  core::Clock* const clock_;
  StorageHost* const host_;    // dev mode; else null
  StorageHosts* const fleet_;  // a fleet; else null
  const EventLog events_;
  DiskRepository disks_;
  LiveDisks live_;
  absl::Mutex mu_;
};

std::string DiskKey(std::string_view name);

// The disks a new workload's spec names, which must exist (InvalidArgument naming
// disks[i].disk otherwise); a container's must be raw with a filesystem, which it mounts.
absl::StatusOr<std::vector<core::Disk>> CheckWorkloadDisks(StorageService& storage,
                                                           const core::WorkloadSpec& spec);

}  // namespace berth::control
