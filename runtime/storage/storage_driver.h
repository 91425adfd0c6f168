// The storage driver interface: directory-backed pools of volume images on one host, and what the
// agent does with them (create, clone, grow, snapshot, back up, restore, delete). The real
// implementation (QemuStorageDriver) drives qemu-img and mkfs; FakeStorageDriver keeps the same
// behaviour in memory. One contract suite (storage_contract_test.cc) runs against both.
//
// Ownership: a driver owns the files under each pool's directory. Pool specs and attachment state
// belong to the caller (the agent, from the store): pools are declared with EnsurePool on every
// start, and calls that must not run on an attached volume take the attachment in their options.
//
// Crash safety: every multi-step mutation writes a journal record first and commits with one
// rename, so a crash at any step leaves either the old state or the finished one after Recover().
// The agent calls Recover() once at start, after EnsurePool for every pool and before any other
// call.
//
// Thread-safety: every method may be called concurrently from any thread. Calls on the same
// volume are serialized by the driver.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::runtime::storage {

enum class VolumeFormat { kQcow2, kRaw };
enum class Filesystem { kNone, kExt4, kXfs };

std::string_view FormatName(VolumeFormat f);    // "qcow2" | "raw"
std::string_view FilesystemName(Filesystem f);  // "" | "ext4" | "xfs"
absl::StatusOr<VolumeFormat> ParseVolumeFormat(std::string_view text);
absl::StatusOr<Filesystem> ParseFilesystem(std::string_view text);  // "", "none", "ext4", "xfs"

struct PoolSpec {
  std::string name;          // a DNS label
  std::string directory;     // absolute; created when missing
  int64_t capacity_mib = 0;  // > 0
  // Total virtual size of the pool's volumes may reach capacity * overcommit_permille / 1000.
  // 1000 = no overcommit; 2000 = twice the capacity. Must be >= 1000.
  int64_t overcommit_permille = 1000;
  // Several hosts mounting one directory (a fleet's shared pool): each names itself here and
  // keeps its operations in flight apart, under .tmp/INSTANCE and .journal/INSTANCE, so one
  // host's recovery never rolls back what another is doing. Empty: .tmp and .journal.
  std::string instance;
};

// Thin-provisioning accounting of one pool.
struct PoolStatus {
  PoolSpec spec;
  int64_t volume_count = 0;
  int64_t provisioned_mib = 0;  // sum of the volumes' virtual sizes
  int64_t allocated_bytes = 0;  // bytes really allocated on disk (stat blocks * 512)
  int64_t limit_mib = 0;        // capacity * overcommit
  int64_t available_mib = 0;    // limit - provisioned, never negative
};

struct SnapshotInfo {
  std::string name;
  int64_t vm_state_bytes = 0;
  int64_t created_unix = 0;
};

struct VolumeInfo {
  std::string pool;
  std::string name;
  VolumeFormat format = VolumeFormat::kQcow2;
  int64_t size_mib = 0;         // virtual size
  int64_t allocated_bytes = 0;  // really allocated on disk
  std::string path;             // host path given to QEMU (-drive file=) or mounted for runc
  std::string backing_file;     // copy-on-write base image, empty when none
  std::vector<SnapshotInfo> snapshots;
};

struct CreateVolumeSpec {
  std::string pool;
  std::string name;
  VolumeFormat format = VolumeFormat::kQcow2;
  int64_t size_mib = 0;                       // > 0; for clones of an image 0 = the image's size
  Filesystem filesystem = Filesystem::kNone;  // made without mounting anything
  // Copy-on-write clone of this image file (qcow2 volumes only; the image must outlive the
  // volume). Empty = a blank volume.
  std::string backing_image;
};

// Where a clone takes its data from: a volume's named snapshot, copied into a new independent
// volume of the same pool.
struct CloneFromSnapshotSpec {
  std::string pool;
  std::string source_volume;
  std::string snapshot;
  std::string name;  // the new volume
  VolumeFormat format = VolumeFormat::kQcow2;
};

// Progress of a long copy, in permille (0..1000). Called on the calling thread.
using ProgressFn = std::function<void(int permille)>;

struct BackupOptions {
  // Backup file to write, absolute, in an existing directory; a sidecar "<destination>.sha256"
  // holds its checksum. Neither may exist yet (AlreadyExists): a backup never replaces a file,
  // and no temporary file is left beside it whatever happens.
  std::string destination;
  ProgressFn progress;
  // Written into the sidecar after the checksum, one "KEY VALUE" line each (what the volume was,
  // e.g. {"format": "raw"}), for the restore to read back with ParseBackupSidecar. Keys are
  // words without spaces; values end at the line.
  std::map<std::string, std::string> labels;
};

// A sidecar's content: the checksum (its first line) and the labels of the lines after it.
struct BackupSidecar {
  std::string sha256;
  std::map<std::string, std::string> labels;
};
BackupSidecar ParseBackupSidecar(std::string_view text);

struct BackupInfo {
  std::string path;
  int64_t bytes = 0;   // size of the compressed backup file
  std::string sha256;  // hex checksum of the backup file
};

struct RestoreSpec {
  std::string pool;
  std::string name;  // the new volume
  VolumeFormat format = VolumeFormat::kQcow2;
  // A backup written by ExportBackup, or any self-contained image qemu-img reads: a regular
  // file, not a symbolic link, naming no backing or data file (InvalidArgument otherwise).
  std::string source;
  // Checked against the source file before anything is written; empty = the sidecar
  // "<source>.sha256" when it exists, else no check (a plain import).
  std::string expected_sha256;
  ProgressFn progress;
};

// Who holds a volume, as the caller's store knows it; empty = nobody.
struct AttachmentOptions {
  std::string attached_to;  // e.g. `workload "vm-1"`
};

struct CreateOptions {};
struct ResizeOptions {
  AttachmentOptions attachment;  // grow is allowed while attached (the guest sees it on rescan)
};
struct SnapshotOptions {
  AttachmentOptions attachment;  // revert refuses while attached
};
struct DeleteVolumeOptions {
  AttachmentOptions attachment;  // delete refuses while attached
};

class StorageDriver {
 public:
  virtual ~StorageDriver() = default;

  // Declares a pool (idempotent); a changed capacity or overcommit takes effect at once.
  virtual absl::Status EnsurePool(const PoolSpec& spec) = 0;
  virtual absl::StatusOr<PoolStatus> GetPool(std::string_view pool) = 0;

  // Finishes or rolls back every journaled operation a crash interrupted, in every known pool.
  virtual absl::Status Recover() = 0;

  virtual absl::StatusOr<std::vector<VolumeInfo>> ListVolumes(std::string_view pool) = 0;
  virtual absl::StatusOr<VolumeInfo> GetVolume(std::string_view pool, std::string_view name) = 0;

  // Creates a blank volume or a copy-on-write clone of an image. AlreadyExists when the name is
  // taken; ResourceExhausted past the pool's overcommit limit.
  virtual absl::StatusOr<VolumeInfo> CreateVolume(const CreateVolumeSpec& spec,
                                                  const CreateOptions& options = {}) = 0;
  virtual absl::StatusOr<VolumeInfo> CloneFromSnapshot(const CloneFromSnapshotSpec& spec,
                                                       const CreateOptions& options = {}) = 0;

  // Grows a volume to new_size_mib; shrinking is refused (InvalidArgument naming size_mib).
  virtual absl::StatusOr<VolumeInfo> ResizeVolume(std::string_view pool, std::string_view name,
                                                  int64_t new_size_mib,
                                                  const ResizeOptions& options = {}) = 0;

  // Named internal snapshots (qcow2 volumes only).
  virtual absl::Status CreateSnapshot(std::string_view pool, std::string_view volume,
                                      std::string_view snapshot,
                                      const SnapshotOptions& options = {}) = 0;
  virtual absl::StatusOr<std::vector<SnapshotInfo>> ListSnapshots(std::string_view pool,
                                                                  std::string_view volume) = 0;
  virtual absl::Status RevertSnapshot(std::string_view pool, std::string_view volume,
                                      std::string_view snapshot,
                                      const SnapshotOptions& options = {}) = 0;
  virtual absl::Status DeleteSnapshot(std::string_view pool, std::string_view volume,
                                      std::string_view snapshot,
                                      const SnapshotOptions& options = {}) = 0;

  // Writes a compressed, checksummed backup of the volume's current data.
  virtual absl::StatusOr<BackupInfo> ExportBackup(std::string_view pool, std::string_view volume,
                                                  const BackupOptions& options) = 0;
  // Creates a new volume from a backup or an importable image.
  virtual absl::StatusOr<VolumeInfo> RestoreBackup(const RestoreSpec& spec) = 0;

  // Deletes a volume and its snapshots; refused (FailedPrecondition) while attached.
  virtual absl::Status DeleteVolume(std::string_view pool, std::string_view name,
                                    const DeleteVolumeOptions& options = {}) = 0;
};

}  // namespace berth::runtime::storage
