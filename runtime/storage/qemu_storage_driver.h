// The real StorageDriver: each pool is a directory of image files managed with qemu-img, with
// filesystems made by mkfs.ext4 / mkfs.xfs directly on an image file (nothing is mounted on the
// host). Layout of a pool directory:
//   volumes/<name>.qcow2 | volumes/<name>.raw   one file per volume (the format is the suffix)
//   .tmp/                                       files being built, renamed into volumes/ at commit
//   .journal/<id>.json                          one record per multi-step operation in flight
//
// Ownership: the driver owns everything under each pool directory; backups it writes belong to
// the caller. Thread-safety: all methods are thread-safe; mutations within one pool are
// serialized by a per-pool lock, reads never block on it.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/storage/journal.h"
#include "runtime/storage/storage_driver.h"

namespace berth::runtime::storage {

class QemuStorageDriver final : public StorageDriver {
 public:
  struct Options {
    // Called between the steps of every journaled operation with the step's name ("journal",
    // "build", "commit", "rename", ...). A non-OK return makes the operation stop right there,
    // leaving everything as a crash at that point would (no cleanup), and return that status.
    // Tests use it to check Recover(); production leaves it empty.
    std::function<absl::Status(std::string_view step)> fault_hook;
  };

  QemuStorageDriver() : QemuStorageDriver(Options{}) {}
  explicit QemuStorageDriver(Options options) : options_(std::move(options)) {}

  absl::Status EnsurePool(const PoolSpec& spec) override;
  absl::StatusOr<PoolStatus> GetPool(std::string_view pool) override;
  absl::Status Recover() override;
  absl::StatusOr<std::vector<VolumeInfo>> ListVolumes(std::string_view pool) override;
  absl::StatusOr<VolumeInfo> GetVolume(std::string_view pool, std::string_view name) override;
  absl::StatusOr<VolumeInfo> CreateVolume(const CreateVolumeSpec& spec,
                                          const CreateOptions& options) override;
  absl::StatusOr<VolumeInfo> CloneFromSnapshot(const CloneFromSnapshotSpec& spec,
                                               const CreateOptions& options) override;
  absl::StatusOr<VolumeInfo> ResizeVolume(std::string_view pool, std::string_view name,
                                          int64_t new_size_mib,
                                          const ResizeOptions& options) override;
  absl::Status CreateSnapshot(std::string_view pool, std::string_view volume,
                              std::string_view snapshot, const SnapshotOptions& options) override;
  absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(std::string_view pool,
                                                          std::string_view volume) override;
  absl::Status RevertSnapshot(std::string_view pool, std::string_view volume,
                              std::string_view snapshot, const SnapshotOptions& options) override;
  absl::Status DeleteSnapshot(std::string_view pool, std::string_view volume,
                              std::string_view snapshot, const SnapshotOptions& options) override;
  absl::StatusOr<BackupInfo> ExportBackup(std::string_view pool, std::string_view volume,
                                          const BackupOptions& options) override;
  absl::StatusOr<VolumeInfo> RestoreBackup(const RestoreSpec& spec) override;
  absl::Status DeleteVolume(std::string_view pool, std::string_view name,
                            const DeleteVolumeOptions& options) override;

 private:
  struct Pool {
    PoolSpec spec;
    absl::Mutex mu;  // serializes mutations of this pool
  };
  class Operation;

  absl::StatusOr<std::shared_ptr<Pool>> FindPool(std::string_view name);
  // Path of an existing volume's file, or NotFound.
  absl::StatusOr<std::string> VolumeFile(const Pool& pool, std::string_view name);
  absl::StatusOr<PoolStatus> Account(const Pool& pool);
  absl::StatusOr<VolumeInfo> Inspect(const Pool& pool, std::string_view name);
  absl::Status Step(std::string_view step);

  const Options options_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Pool>, std::less<>> pools_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::runtime::storage
