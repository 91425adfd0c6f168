#include "runtime/storage/fake_storage_driver.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <optional>

#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/storage/validation.h"

namespace berth::runtime::storage {
namespace {

using core::Cat;

std::string Digest(std::string_view data) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016zx", std::hash<std::string_view>{}(data));
  return std::string(buf) + std::string(48, '0');
}

}  // namespace

std::string FakeStorageDriver::Flatten(const std::string& backing, const std::string& data) const {
  if (backing.empty()) return data;
  std::string base = backing;  // a registered image stands for itself
  for (const auto& [_, pool] : pools_) {
    for (const auto& [name, v] : pool.volumes) {
      if (Info(pool, name, v).path == backing) base = Flatten(v.backing, v.data);
    }
  }
  return data.empty() ? base : Cat(base, "|", data);
}

void FakeStorageDriver::AddImage(const std::string& path, int64_t size_mib) {
  absl::MutexLock lock(&mu_);
  images_[path] = size_mib;
}

absl::Status FakeStorageDriver::WriteForTest(std::string_view pool, std::string_view volume,
                                             std::string data) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, volume));
  v->data = std::move(data);
  return absl::OkStatus();
}

absl::StatusOr<std::string> FakeStorageDriver::DigestForTest(std::string_view pool,
                                                             std::string_view volume) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, volume));
  return Digest(Flatten(v->backing, v->data));
}

absl::StatusOr<FakeStorageDriver::Pool*> FakeStorageDriver::FindPool(std::string_view name) {
  auto it = pools_.find(name);
  if (it == pools_.end()) return PoolNotFound(name);
  return &it->second;
}

absl::StatusOr<FakeStorageDriver::Volume*> FakeStorageDriver::FindVolume(std::string_view pool,
                                                                         std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(pool));
  auto it = p->volumes.find(name);
  if (it == p->volumes.end()) return VolumeNotFound(pool, name);
  return &it->second;
}

PoolStatus FakeStorageDriver::Account(const Pool& pool) const {
  PoolStatus s;
  s.spec = pool.spec;
  for (const auto& [_, v] : pool.volumes) {
    ++s.volume_count;
    s.provisioned_mib += v.size_mib;
    s.allocated_bytes += static_cast<int64_t>(v.data.size());
  }
  FinishPoolStatus(s);
  return s;
}

VolumeInfo FakeStorageDriver::Info(const Pool& pool, const std::string& name,
                                   const Volume& v) const {
  VolumeInfo info;
  info.pool = pool.spec.name;
  info.name = name;
  info.format = v.format;
  info.size_mib = v.size_mib;
  info.allocated_bytes = static_cast<int64_t>(v.data.size());
  info.path = Cat(pool.spec.directory, "/volumes/", name, ".", FormatName(v.format));
  info.backing_file = v.backing;
  for (const auto& s : v.snapshots) info.snapshots.push_back(s.info);
  return info;
}

absl::Status FakeStorageDriver::EnsurePool(const PoolSpec& spec) {
  BERTH_RETURN_IF_ERROR(ValidatePoolSpec(spec));
  absl::MutexLock lock(&mu_);
  pools_[spec.name].spec = spec;
  return absl::OkStatus();
}

absl::StatusOr<PoolStatus> FakeStorageDriver::GetPool(std::string_view pool) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(pool));
  return Account(*p);
}

absl::StatusOr<std::vector<VolumeInfo>> FakeStorageDriver::ListVolumes(std::string_view pool) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(pool));
  std::vector<VolumeInfo> out;
  for (const auto& [name, v] : p->volumes) out.push_back(Info(*p, name, v));
  return out;
}

absl::StatusOr<VolumeInfo> FakeStorageDriver::GetVolume(std::string_view pool,
                                                        std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(pool));
  BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, name));
  return Info(*p, std::string(name), *v);
}

absl::StatusOr<VolumeInfo> FakeStorageDriver::CreateVolume(const CreateVolumeSpec& spec,
                                                           const CreateOptions& options) {
  BERTH_RETURN_IF_ERROR(ValidateCreateSpec(spec));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(spec.pool));
  if (p->volumes.contains(spec.name)) return VolumeExists(spec.pool, spec.name);
  int64_t size_mib = spec.size_mib;
  if (!spec.backing_image.empty()) {
    std::optional<int64_t> base_mib;
    if (auto it = images_.find(spec.backing_image); it != images_.end()) base_mib = it->second;
    for (const auto& [_, pool] : pools_) {
      for (const auto& [name, v] : pool.volumes) {
        if (Info(pool, name, v).path == spec.backing_image) base_mib = v.size_mib;
      }
    }
    if (!base_mib) {
      return core::FieldError("volume", spec.name, "backing_image",
                              Cat("cannot be read: ", spec.backing_image));
    }
    if (size_mib == 0) size_mib = *base_mib;
    if (size_mib < *base_mib) {
      return core::FieldError(
          "volume", spec.name, "size_mib",
          Cat("must be >= the backing image's ", *base_mib, ", got ", size_mib));
    }
  }
  BERTH_RETURN_IF_ERROR(CheckOvercommit(Account(*p), spec.name, size_mib));
  Volume v;
  v.format = spec.format;
  v.size_mib = size_mib;
  v.backing = spec.backing_image;
  if (spec.filesystem != Filesystem::kNone) v.data = Cat("fs:", FilesystemName(spec.filesystem));
  auto [it, _] = p->volumes.emplace(spec.name, std::move(v));
  return Info(*p, spec.name, it->second);
}

absl::StatusOr<VolumeInfo> FakeStorageDriver::CloneFromSnapshot(const CloneFromSnapshotSpec& spec,
                                                                const CreateOptions& options) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("volume", spec.name));
  BERTH_RETURN_IF_ERROR(ValidateSnapshotName(spec.source_volume, spec.snapshot));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(spec.pool));
  BERTH_ASSIGN_OR_RETURN(Volume * src, FindVolume(spec.pool, spec.source_volume));
  if (src->format != VolumeFormat::kQcow2) return NeedsQcow2(spec.source_volume, "snapshots");
  auto snap = std::find_if(src->snapshots.begin(), src->snapshots.end(),
                           [&](const Snapshot& s) { return s.info.name == spec.snapshot; });
  if (snap == src->snapshots.end()) return SnapshotNotFound(spec.source_volume, spec.snapshot);
  if (p->volumes.contains(spec.name)) return VolumeExists(spec.pool, spec.name);
  BERTH_RETURN_IF_ERROR(CheckOvercommit(Account(*p), spec.name, src->size_mib));
  Volume v;
  v.format = spec.format;
  v.size_mib = src->size_mib;
  v.data = Flatten(src->backing, snap->data);  // a clone is flattened: independent of the base
  auto [it, _] = p->volumes.emplace(spec.name, std::move(v));
  return Info(*p, spec.name, it->second);
}

absl::StatusOr<VolumeInfo> FakeStorageDriver::ResizeVolume(std::string_view pool,
                                                           std::string_view name,
                                                           int64_t new_size_mib,
                                                           const ResizeOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(pool));
  BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, name));
  if (new_size_mib < v->size_mib) return RefuseShrink(name, v->size_mib, new_size_mib);
  BERTH_RETURN_IF_ERROR(CheckOvercommit(Account(*p), name, new_size_mib - v->size_mib));
  v->size_mib = new_size_mib;
  return Info(*p, std::string(name), *v);
}

absl::Status FakeStorageDriver::CreateSnapshot(std::string_view pool, std::string_view volume,
                                               std::string_view snapshot,
                                               const SnapshotOptions& options) {
  BERTH_RETURN_IF_ERROR(ValidateSnapshotName(volume, snapshot));
  BERTH_RETURN_IF_ERROR(RefuseAttached(volume, "snapshot with qemu-img", options.attachment));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, volume));
  if (v->format != VolumeFormat::kQcow2) return NeedsQcow2(volume, "snapshots");
  for (const auto& s : v->snapshots) {
    if (s.info.name == snapshot) {
      return absl::AlreadyExistsError(
          Cat("volume \"", volume, "\": snapshot \"", snapshot, "\" already exists"));
    }
  }
  Snapshot s;
  s.info.name = std::string(snapshot);
  s.data = v->data;
  v->snapshots.push_back(std::move(s));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<SnapshotInfo>> FakeStorageDriver::ListSnapshots(
    std::string_view pool, std::string_view volume) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, volume));
  std::vector<SnapshotInfo> out;
  for (const auto& s : v->snapshots) out.push_back(s.info);
  return out;
}

absl::Status FakeStorageDriver::RevertSnapshot(std::string_view pool, std::string_view volume,
                                               std::string_view snapshot,
                                               const SnapshotOptions& options) {
  BERTH_RETURN_IF_ERROR(RefuseAttached(volume, "revert", options.attachment));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, volume));
  if (v->format != VolumeFormat::kQcow2) return NeedsQcow2(volume, "snapshots");
  for (const auto& s : v->snapshots) {
    if (s.info.name == snapshot) {
      v->data = s.data;
      return absl::OkStatus();
    }
  }
  return SnapshotNotFound(volume, snapshot);
}

absl::Status FakeStorageDriver::DeleteSnapshot(std::string_view pool, std::string_view volume,
                                               std::string_view snapshot,
                                               const SnapshotOptions& options) {
  BERTH_RETURN_IF_ERROR(
      RefuseAttached(volume, "delete a snapshot with qemu-img", options.attachment));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, volume));
  if (v->format != VolumeFormat::kQcow2) return NeedsQcow2(volume, "snapshots");
  auto it = std::find_if(v->snapshots.begin(), v->snapshots.end(),
                         [&](const Snapshot& s) { return s.info.name == snapshot; });
  if (it == v->snapshots.end()) return SnapshotNotFound(volume, snapshot);
  v->snapshots.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<BackupInfo> FakeStorageDriver::ExportBackup(std::string_view pool,
                                                           std::string_view volume,
                                                           const BackupOptions& options) {
  if (options.destination.empty() || options.destination[0] != '/') {
    return absl::InvalidArgumentError(Cat("backup of volume \"", volume,
                                          "\": destination must be an absolute path, got \"",
                                          options.destination, "\""));
  }
  Backup b;
  {
    absl::MutexLock lock(&mu_);
    BERTH_ASSIGN_OR_RETURN(Volume * v, FindVolume(pool, volume));
    b.data = Flatten(v->backing, v->data);
    b.size_mib = v->size_mib;
    b.sha256 = Digest(b.data);
    if (!backups_.emplace(options.destination, b).second) {
      return absl::AlreadyExistsError(Cat("backup of volume \"", volume,
                                          "\": ", options.destination,
                                          " already exists; a backup never replaces a file"));
    }
  }
  if (options.progress) {
    options.progress(0);
    options.progress(1000);
  }
  return BackupInfo{options.destination, static_cast<int64_t>(b.data.size()), b.sha256};
}

absl::StatusOr<VolumeInfo> FakeStorageDriver::RestoreBackup(const RestoreSpec& spec) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("volume", spec.name));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(spec.pool));
  auto b = backups_.find(spec.source);
  if (b == backups_.end()) {
    return absl::NotFoundError(
        Cat("volume \"", spec.name, "\": source cannot be read: ", spec.source));
  }
  if (!spec.expected_sha256.empty() && spec.expected_sha256 != b->second.sha256) {
    return absl::DataLossError(Cat("volume \"", spec.name, "\": source ", spec.source,
                                   " has sha256 ", b->second.sha256, ", expected ",
                                   spec.expected_sha256));
  }
  if (p->volumes.contains(spec.name)) return VolumeExists(spec.pool, spec.name);
  BERTH_RETURN_IF_ERROR(CheckOvercommit(Account(*p), spec.name, b->second.size_mib));
  Volume v;
  v.format = spec.format;
  v.size_mib = b->second.size_mib;
  v.data = b->second.data;
  if (spec.progress) {
    spec.progress(0);
    spec.progress(1000);
  }
  auto [it, _] = p->volumes.emplace(spec.name, std::move(v));
  return Info(*p, spec.name, it->second);
}

absl::Status FakeStorageDriver::DeleteVolume(std::string_view pool, std::string_view name,
                                             const DeleteVolumeOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(Pool * p, FindPool(pool));
  auto it = p->volumes.find(name);
  if (it == p->volumes.end()) return VolumeNotFound(pool, name);
  BERTH_RETURN_IF_ERROR(RefuseAttached(name, "delete", options.attachment));
  const std::string path = Info(*p, it->first, it->second).path;
  for (const auto& [other, v] : p->volumes) {
    if (v.backing == path) {
      return absl::FailedPreconditionError(Cat("volume \"", name,
                                               "\": cannot delete while volume \"", other,
                                               "\" uses it as its backing_image"));
    }
  }
  p->volumes.erase(it);
  return absl::OkStatus();
}

}  // namespace berth::runtime::storage
