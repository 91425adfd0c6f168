// An in-memory StorageDriver with the same contract as QemuStorageDriver (the shared contract
// suite runs against both): pools, volumes, snapshots and backups are values in maps; a volume's
// "data" is a byte string tests write through WriteForTest and compare through DigestForTest.
// Backing images are registered with AddImage instead of existing as files.
//
// Thread-safety: all methods are thread-safe (one mutex).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/storage/storage_driver.h"

namespace berth::runtime::storage {

class FakeStorageDriver final : public StorageDriver {
 public:
  // Makes `path` usable as CreateVolumeSpec::backing_image.
  void AddImage(const std::string& path, int64_t size_mib);
  // Replaces the volume's data; DigestForTest returns a value that changes with it.
  absl::Status WriteForTest(std::string_view pool, std::string_view volume, std::string data);
  absl::StatusOr<std::string> DigestForTest(std::string_view pool, std::string_view volume);

  absl::Status EnsurePool(const PoolSpec& spec) override;
  absl::StatusOr<PoolStatus> GetPool(std::string_view pool) override;
  absl::Status Recover() override { return absl::OkStatus(); }
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
  struct Snapshot {
    SnapshotInfo info;
    std::string data;
  };
  struct Volume {
    VolumeFormat format = VolumeFormat::kQcow2;
    int64_t size_mib = 0;
    std::string backing;
    std::string data;
    std::vector<Snapshot> snapshots;
  };
  struct Pool {
    PoolSpec spec;
    std::map<std::string, Volume, std::less<>> volumes;
  };
  struct Backup {
    std::string data;
    int64_t size_mib = 0;
    std::string sha256;
  };

  absl::StatusOr<Pool*> FindPool(std::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Volume*> FindVolume(std::string_view pool, std::string_view name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PoolStatus Account(const Pool& pool) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  VolumeInfo Info(const Pool& pool, const std::string& name, const Volume& v) const;
  // The data a guest reads: the backing (a registered image, or another volume read through)
  // under `data`.
  std::string Flatten(const std::string& backing, const std::string& data) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::map<std::string, Pool, std::less<>> pools_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> images_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Backup> backups_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::runtime::storage
