#include "control/storage_service.h"

#include "core/log.h"
#include "core/names.h"
#include "core/quantity.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;
using core::Disk;
using core::Json;

std::string DiskKey(std::string_view name) { return Cat(kDiskPrefix, name); }

namespace {

constexpr std::string_view kWhere = "storage";

core::DiskStatus VolumeStatus(const HostVolume& v, std::string_view attached_to) {
  core::DiskStatus s;
  s.state = core::DiskState::kReady;
  s.size_mib = v.size_mib;
  s.allocated_bytes = v.allocated_bytes;
  s.path = v.path;
  s.backing_file = v.backing_file;
  s.snapshots = v.snapshots;
  s.attached_to = std::string(attached_to);
  return s;
}

absl::Status CheckSnapshotName(std::string_view disk, std::string_view snapshot) {
  if (snapshot.empty()) return core::FieldError("disk", disk, "snapshot", "must not be empty");
  absl::Status s = core::ValidateName("snapshot", snapshot);
  if (!s.ok()) return core::FieldError("disk", disk, "snapshot", std::string(s.message()));
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ParseDiskSize(std::string_view disk, std::string_view text) {
  auto mib = core::ParseSizeMiB(text);
  if (!mib.ok()) {
    return core::FieldError("disk", disk, "size",
                            Cat("must be a size like 1Gi or 512Mi, got \"", text, "\""));
  }
  if (*mib <= 0) {
    return core::FieldError("disk", disk, "size", Cat("must be > 0, got \"", text, "\""));
  }
  return *mib;
}

// Only what the host and the users see: the times move on every write.
bool SameContent(const Disk& a, const Disk& b) {
  return a.name == b.name && a.spec == b.spec && a.status == b.status;
}

}  // namespace

StorageService::StorageService(state::Store* store, core::Clock* clock, StorageHost* host)
    : store_(store),
      clock_(clock),
      host_(host),
      fleet_(nullptr),
      events_(store, clock),
      disks_(store, "disk", std::string(kDiskPrefix)) {}

StorageService::StorageService(state::Store* store, core::Clock* clock, StorageHosts* hosts)
    : store_(store),
      clock_(clock),
      host_(nullptr),
      fleet_(hosts),
      events_(store, clock),
      disks_(store, "disk", std::string(kDiskPrefix)) {}

absl::StatusOr<std::shared_ptr<StorageHost>> StorageService::HostOf(std::string_view name,
                                                                    const core::DiskSpec& spec) {
  if (fleet_ != nullptr) return fleet_->For(name, spec);
  // Not owned: the aliasing constructor shares no ownership.
  return std::shared_ptr<StorageHost>(std::shared_ptr<StorageHost>(), host_);
}

absl::StatusOr<DiskPlace> StorageService::Place(std::string_view name, const DiskPlace& place) {
  if (fleet_ != nullptr) return fleet_->Choose(name, place);
  if (!place.pool.empty()) {
    return core::FieldError(
        "disk", name, "pool",
        Cat("must be empty: serve --dev has its own host's pool only, got \"", place.pool, "\""));
  }
  if (!place.host.empty()) {
    return core::FieldError(
        "disk", name, "host",
        Cat("must be empty: serve --dev keeps every disk on its own host, got \"", place.host,
            "\""));
  }
  return DiskPlace{};
}

absl::StatusOr<DiskRepository::ListResult> StorageService::ListDisks() const {
  std::vector<absl::Status> undecodable;
  BERTH_ASSIGN_OR_RETURN(DiskRepository::ListResult list, disks_.List(&undecodable));
  for (const absl::Status& s : undecodable) {
    core::ReportError(kWhere, "stored disk skipped", s);
  }
  return list;
}

absl::Status StorageService::Start() {
  if (fleet_ != nullptr) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(host_->Prepare());
  BERTH_ASSIGN_OR_RETURN(DiskRepository::ListResult list, ListDisks());
  for (const DiskRepository::Item& item : list.items) {
    const std::string& name = item.name;
    auto volume = host_->Get(name);
    Disk disk = item.value;
    if (volume.ok()) {
      disk.status = VolumeStatus(*volume, item.value.status.attached_to);
    } else {
      disk.status.state = core::DiskState::kFailed;
      disk.status.reason = std::string(volume.status().message());
    }
    if (SameContent(disk, item.value)) continue;
    // A disk that cannot be refreshed now keeps its stored status; the server still starts.
    core::OkOrReport(kWhere, Cat("disk ", name, ": refresh at server start"),
                     Write(item, std::move(disk), volume.ok() ? "recovered" : "failed",
                           volume.ok() ? "status refreshed from the host at server start"
                                       : std::string(volume.status().message()))
                         .status());
  }
  return absl::OkStatus();
}

absl::StatusOr<DiskRepository::Item> StorageService::Read(std::string_view name) const {
  BERTH_ASSIGN_OR_RETURN(std::optional<DiskRepository::Item> item, disks_.Find(name));
  if (!item) return absl::NotFoundError(Cat("disk \"", name, "\" not found"));
  return std::move(*item);
}

absl::Status StorageService::CheckNameFree(std::string_view name) const {
  BERTH_ASSIGN_OR_RETURN(state::GetResponse existing, store_->Get(DiskKey(name)));
  if (existing.kv) {
    return absl::AlreadyExistsError(Cat("disk \"", name, "\": name is already taken"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Json> StorageService::Record(std::string_view name, core::DiskSpec spec,
                                            const HostVolume& volume, StorageHost& host,
                                            std::string_view message) {
  Disk disk;
  disk.name = std::string(name);
  disk.spec = std::move(spec);
  disk.status = VolumeStatus(volume, "");
  Touch(&disk, clock_, true);
  auto commit = [&]() -> absl::StatusOr<int64_t> {
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(disks_.AddCreate(&txn, name, disk));
    events_.Add(&txn.then_ops, "disk", name, "created", message);
    return CommitChange(store_, txn, "disk", name);
  };
  absl::StatusOr<int64_t> rev = commit();
  if (!rev.ok()) {
    core::OkOrReport(kWhere, Cat("disk ", name, ": remove the volume the store refused"),
                     host.Delete(name, ""));
    return rev.status();
  }
  disk.revision = *rev;
  return core::EncodeDisk(disk);
}

absl::StatusOr<Json> StorageService::Write(const DiskRepository::Item& item, Disk disk,
                                           std::string_view type, std::string_view message) {
  Touch(&disk, clock_, false);
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(disks_.AddUpdate(&txn, item.name, disk, item.mod_revision));
  events_.Add(&txn.then_ops, "disk", item.name, type, message);
  BERTH_ASSIGN_OR_RETURN(disk.revision, CommitChange(store_, txn, "disk", item.name));
  return core::EncodeDisk(disk);
}

absl::StatusOr<Json> StorageService::Update(const DiskRepository::Item& item,
                                            const HostVolume& volume, std::string_view type,
                                            std::string_view message) {
  Disk disk = item.value;
  disk.status = VolumeStatus(volume, item.value.status.attached_to);
  return Write(item, std::move(disk), type, message);
}

absl::StatusOr<Json> StorageService::Create(const DiskCreateOptions& o) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("disk", o.name));
  HostVolumeSpec spec;
  spec.name = o.name;
  spec.format = o.format.empty() ? "qcow2" : o.format;
  if (spec.format != "qcow2" && spec.format != "raw") {
    return core::FieldError("disk", o.name, "format",
                            Cat("must be qcow2 or raw, got \"", o.format, "\""));
  }
  spec.filesystem = o.filesystem == "none" ? "" : o.filesystem;
  if (!spec.filesystem.empty() && spec.filesystem != "ext4" && spec.filesystem != "xfs") {
    return core::FieldError("disk", o.name, "filesystem",
                            Cat("must be ext4, xfs or none, got \"", o.filesystem, "\""));
  }
  spec.from_image = o.from_image;
  if (o.size.empty() && o.from_image.empty()) {
    return core::FieldError("disk", o.name, "size", "is required (e.g. 10Gi)");
  }
  if (!o.size.empty()) {
    BERTH_ASSIGN_OR_RETURN(spec.size_mib, ParseDiskSize(o.name, o.size));
  }
  if (!spec.from_image.empty() && spec.format != "qcow2") {
    return core::FieldError("disk", o.name, "format",
                            "must be qcow2 for a disk made from an image (copy-on-write)");
  }
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(CheckNameFree(o.name));
  BERTH_ASSIGN_OR_RETURN(DiskPlace place, Place(o.name, o.place));
  core::DiskSpec stored{.size = o.size,
                        .format = spec.format,
                        .filesystem = spec.filesystem,
                        .from_image = spec.from_image,
                        .host = place.host,
                        .pool = place.pool};
  BERTH_ASSIGN_OR_RETURN(std::shared_ptr<StorageHost> host, HostOf(o.name, stored));
  BERTH_ASSIGN_OR_RETURN(HostVolume volume, host->Create(spec));
  return Record(o.name, std::move(stored), volume, *host,
                Cat(spec.format, " disk of ", core::FormatMiB(volume.size_mib), " created",
                    place.host.empty() ? "" : Cat(" on host ", place.host),
                    place.pool.empty() ? "" : Cat(" in the ", place.pool, " pool")));
}

absl::StatusOr<Json> StorageService::Get(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  return core::EncodeDisk(WithRevision(std::move(item)));
}

absl::StatusOr<std::vector<Json>> StorageService::List(int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(DiskRepository::ListResult list, ListDisks());
  std::vector<Json> out;
  for (auto& item : list.items) out.push_back(core::EncodeDisk(WithRevision(std::move(item))));
  if (revision) *revision = list.revision;
  return out;
}

absl::StatusOr<Disk> StorageService::GetDisk(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  return WithRevision(std::move(item));
}

absl::StatusOr<std::vector<Disk>> StorageService::Disks() {
  BERTH_ASSIGN_OR_RETURN(DiskRepository::ListResult list, ListDisks());
  std::vector<Disk> out;
  for (auto& item : list.items) out.push_back(WithRevision(std::move(item)));
  return out;
}

absl::StatusOr<std::vector<Disk>> CheckWorkloadDisks(StorageService& storage,
                                                     const core::WorkloadSpec& spec) {
  std::vector<Disk> out;
  for (size_t i = 0; i < spec.disks.size(); ++i) {
    const core::DiskAttachment& d = spec.disks[i];
    const std::string at = Cat("disks[", static_cast<int>(i), "].disk");
    absl::StatusOr<Disk> disk = storage.GetDisk(d.disk);
    if (!disk.ok()) {
      if (!absl::IsNotFound(disk.status())) return disk.status();
      return core::FieldError("workload", spec.name, at,
                              Cat("names disk \"", d.disk,
                                  "\", which does not exist; create it with `berth disk create`"));
    }
    if (spec.kind == core::WorkloadKind::kContainer &&
        (disk->spec.format != "raw" || disk->spec.filesystem.empty())) {
      return core::FieldError(
          "workload", spec.name, at,
          Cat("names disk \"", d.disk, "\" (", disk->spec.format,
              disk->spec.filesystem.empty() ? ", no filesystem" : "",
              "); a container mounts raw disks with a filesystem: berth disk create NAME "
              "--format raw --fs ext4"));
    }
    out.push_back(*std::move(disk));
  }
  return out;
}

absl::StatusOr<Json> StorageService::Resize(std::string_view name, std::string_view size) {
  BERTH_ASSIGN_OR_RETURN(int64_t mib, ParseDiskSize(name, size));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  int64_t current = item.value.status.size_mib;
  if (mib < current) {
    return core::FieldError("disk", name, "size",
                            Cat("must not shrink the disk: it is ", core::FormatMiB(current),
                                ", asked for ", core::FormatMiB(mib)));
  }
  BERTH_ASSIGN_OR_RETURN(std::shared_ptr<StorageHost> host, HostOf(name, item.value.spec));
  BERTH_ASSIGN_OR_RETURN(HostVolume v, host->Resize(name, mib, item.value.status.attached_to));
  Disk disk = item.value;
  disk.spec.size = std::string(size);
  disk.status = VolumeStatus(v, item.value.status.attached_to);
  return Write(item, std::move(disk), "resized", Cat("grown to ", core::FormatMiB(v.size_mib)));
}

absl::StatusOr<Json> StorageService::Snapshot(std::string_view name, std::string_view snapshot) {
  BERTH_RETURN_IF_ERROR(CheckSnapshotName(name, snapshot));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  // A running VM holds its disks open (and locked): it takes the snapshot itself.
  absl::Status live = absl::NotFoundError("not attached");
  if (const std::string& holder = item.value.status.attached_to;
      !holder.empty() && live_.snapshot) {
    live = live_.snapshot(holder, name, snapshot);
    if (!live.ok() && !absl::IsNotFound(live) && !absl::IsUnimplemented(live)) return live;
  }
  BERTH_ASSIGN_OR_RETURN(std::shared_ptr<StorageHost> host, HostOf(name, item.value.spec));
  if (!live.ok()) BERTH_RETURN_IF_ERROR(host->Snapshot(name, snapshot));
  BERTH_ASSIGN_OR_RETURN(HostVolume v, host->Get(name));
  return Update(item, v, "snapshot", Cat("snapshot \"", snapshot, "\" taken"));
}

absl::StatusOr<Json> StorageService::Revert(std::string_view name, std::string_view snapshot) {
  BERTH_RETURN_IF_ERROR(CheckSnapshotName(name, snapshot));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  const std::string& holder = item.value.status.attached_to;
  if (!holder.empty()) {
    return absl::FailedPreconditionError(Cat("disk \"", name, "\": status.attached_to is \"",
                                             holder,
                                             "\"; detach it before reverting to a snapshot"));
  }
  BERTH_ASSIGN_OR_RETURN(std::shared_ptr<StorageHost> host, HostOf(name, item.value.spec));
  BERTH_RETURN_IF_ERROR(host->Revert(name, snapshot, holder));
  BERTH_ASSIGN_OR_RETURN(HostVolume v, host->Get(name));
  return Update(item, v, "reverted", Cat("reverted to snapshot \"", snapshot, "\""));
}

absl::StatusOr<Json> StorageService::Clone(std::string_view source, std::string_view snapshot,
                                           std::string_view name) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("disk", name));
  if (!snapshot.empty()) BERTH_RETURN_IF_ERROR(CheckSnapshotName(source, snapshot));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item src, Read(source));
  BERTH_RETURN_IF_ERROR(CheckNameFree(name));
  // A clone lives beside its source: same host, same pool.
  BERTH_ASSIGN_OR_RETURN(std::shared_ptr<StorageHost> host, HostOf(source, src.value.spec));
  std::string snap(snapshot);
  bool temporary = snap.empty();
  if (temporary) {
    // A clone of the current data goes through a snapshot that exists only for the copy.
    snap = Cat("clone-", name);
    BERTH_RETURN_IF_ERROR(host->Snapshot(source, snap));
  }
  auto v = host->Clone(source, snap, name, "qcow2");
  if (temporary) {
    // Left behind, it only costs space on the source; the clone itself is complete.
    core::OkOrReport(kWhere, Cat("disk ", source, ": remove the clone's snapshot ", snap),
                     host->DeleteSnapshot(source, snap));
  }
  if (!v.ok()) return v.status();
  core::DiskSpec spec{.size = src.value.spec.size,
                      .format = "qcow2",
                      .filesystem = src.value.spec.filesystem,
                      .from_image = "",
                      .cloned_from = Cat(source, temporary ? "" : "@", temporary ? "" : snapshot),
                      .host = src.value.spec.host,
                      .pool = src.value.spec.pool};
  return Record(name, std::move(spec), *v, *host,
                Cat("cloned from disk \"", source, "\"",
                    temporary ? std::string() : Cat(" snapshot \"", snapshot, "\"")));
}

absl::StatusOr<std::vector<Json>> StorageService::Pools() {
  BERTH_ASSIGN_OR_RETURN(std::vector<HostPool> pools,
                         fleet_ != nullptr ? fleet_->Pools() : host_->Pools());
  std::vector<Json> out;
  for (const HostPool& p : pools) {
    out.push_back(Json{{"name", p.name},
                       {"directory", p.directory},
                       {"capacity_mib", p.capacity_mib},
                       {"overcommit", static_cast<double>(p.overcommit_permille) / 1000.0},
                       {"volume_count", p.volume_count},
                       {"provisioned_mib", p.provisioned_mib},
                       {"allocated_bytes", p.allocated_bytes},
                       {"limit_mib", p.limit_mib},
                       {"available_mib", p.available_mib}});
  }
  return out;
}

absl::StatusOr<Json> StorageService::Attach(std::string_view name, std::string_view workload) {
  if (workload.empty()) return core::FieldError("disk", name, "workload", "must not be empty");
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  BERTH_ASSIGN_OR_RETURN(state::GetResponse w, store_->Get(Cat("/workloads/", workload)));
  if (!w.kv) {
    return absl::NotFoundError(Cat("disk \"", name, "\": workload \"", workload, "\" not found"));
  }
  const std::string holder = item.value.status.attached_to;
  if (holder == workload) return core::EncodeDisk(WithRevision(std::move(item)));
  if (!holder.empty()) {
    return absl::FailedPreconditionError(
        Cat("disk \"", name, "\": status.attached_to is \"", holder, "\"; detach it first"));
  }
  // A running VM gets the disk now; a workload with no running task here sees it at its start.
  bool plugged = false;
  if (live_.attach) {
    Disk shown = item.value;
    shown.revision = item.mod_revision;
    absl::Status s = live_.attach(workload, core::EncodeDisk(shown));
    if (!s.ok() && !absl::IsNotFound(s) && !absl::IsUnimplemented(s)) return s;
    plugged = s.ok();
  }
  Disk disk = item.value;
  disk.status.attached_to = std::string(workload);
  auto written = Write(item, std::move(disk), "attached",
                       Cat("attached to workload \"", workload, "\"",
                           plugged ? " (plugged into the running VM)" : ""));
  if (!written.ok() && plugged) {
    // The store refused: pull the disk out again so the VM matches what is recorded.
    core::OkOrReport(kWhere, Cat("disk ", name, ": unplug from workload ", workload),
                     live_.detach(workload, name));
  }
  return written;
}

absl::StatusOr<Json> StorageService::Detach(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  const std::string holder = item.value.status.attached_to;
  if (holder.empty()) return core::EncodeDisk(WithRevision(std::move(item)));
  if (live_.detach) {
    absl::Status s = live_.detach(holder, name);
    if (absl::IsUnimplemented(s)) {
      // Its running task keeps the disk (a container's mount): pulling it out of the record
      // would let a second workload take a disk the first still writes.
      return absl::FailedPreconditionError(Cat("disk \"", name,
                                               "\": status.attached_to is workload \"", holder,
                                               "\", whose task holds it (", s.message(),
                                               "); stop the workload first, then detach the disk"));
    }
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  Disk disk = item.value;
  disk.status.attached_to.clear();
  return Write(item, std::move(disk), "detached", Cat("detached from workload \"", holder, "\""));
}

absl::Status StorageService::Release(std::string_view name, std::string_view workload) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  if (item.value.status.attached_to != workload) return absl::OkStatus();
  Disk disk = item.value;
  disk.status.attached_to.clear();
  return Write(item, std::move(disk), "detached",
               Cat("released by workload \"", workload, "\", whose task is gone"))
      .status();
}

absl::StatusOr<Json> StorageService::Backup(std::string_view name, const std::string& file,
                                            const Progress& progress) {
  // Where a name may lead is the host's to decide (its backup directory); this only refuses
  // what no host could take.
  if (file.empty()) {
    return core::FieldError("disk", name, "file",
                            "is required: a file name in the server's backup directory");
  }
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  BERTH_ASSIGN_OR_RETURN(std::shared_ptr<StorageHost> host, HostOf(name, item.value.spec));
  BERTH_ASSIGN_OR_RETURN(HostBackup b, host->Backup(name, file, progress));
  const std::string written = b.path.empty() ? file : b.path;
  // The backup is recorded as an event only; the disk object itself does not change, but the
  // event is written only while the disk is still at the revision the backup read.
  state::TxnRequest txn;
  txn.compares.push_back(state::Compare::ModRevision(DiskKey(name), item.mod_revision));
  events_.Add(&txn.then_ops, "disk", name, "backup",
              Cat("backup written to ", written, " (", b.bytes, " bytes)"));
  BERTH_RETURN_IF_ERROR(CommitChange(store_, txn, "disk", name).status());
  return Json{
      {"disk", std::string(name)}, {"file", written}, {"bytes", b.bytes}, {"sha256", b.sha256}};
}

absl::StatusOr<Json> StorageService::Restore(const std::string& file, std::string_view name,
                                             const DiskPlace& asked, const Progress& progress) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("disk", name));
  if (file.empty()) {
    return core::FieldError("disk", name, "file",
                            "is required: a backup file name in the server's backup directory");
  }
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(CheckNameFree(name));
  BERTH_ASSIGN_OR_RETURN(DiskPlace place, Place(name, asked));
  core::DiskSpec spec{.restored_from = file, .host = place.host, .pool = place.pool};
  BERTH_ASSIGN_OR_RETURN(std::shared_ptr<StorageHost> host, HostOf(name, spec));
  BERTH_ASSIGN_OR_RETURN(HostVolume v, host->Restore(file, name, "", progress));
  spec.size = core::FormatMiB(v.size_mib);
  spec.format = v.format.empty() ? "qcow2" : v.format;
  spec.filesystem = v.filesystem;
  return Record(name, std::move(spec), v, *host, Cat("restored from ", file));
}

absl::Status StorageService::Delete(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(DiskRepository::Item item, Read(name));
  const std::string& holder = item.value.status.attached_to;
  if (!holder.empty()) {
    return absl::FailedPreconditionError(Cat("disk \"", name, "\": status.attached_to is \"",
                                             holder, "\"; detach it before deleting"));
  }
  // A disk whose host has left the fleet (NotFound) has nothing left to delete but its record.
  absl::StatusOr<std::shared_ptr<StorageHost>> host = HostOf(name, item.value.spec);
  if (!host.ok() && !absl::IsNotFound(host.status())) return host.status();
  absl::Status gone = host.ok() ? (*host)->Delete(name, "") : host.status();
  if (!gone.ok() && !absl::IsNotFound(gone)) return gone;
  state::TxnRequest txn;
  disks_.AddDelete(&txn, name, item.mod_revision);
  events_.Add(&txn.then_ops, "disk", name, "deleted", "disk deleted");
  return CommitChange(store_, txn, "disk", name).status();
}

}  // namespace berth::control
