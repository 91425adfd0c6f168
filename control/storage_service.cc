#include "control/storage_service.h"

#include "core/names.h"
#include "core/quantity.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;
using core::Json;

std::string DiskKey(std::string_view name) { return Cat(kDiskPrefix, name); }

namespace {

Json VolumeStatus(const HostVolume& v, std::string_view attached_to) {
  return Json{{"state", "ready"},
              {"size_mib", v.size_mib},
              {"size", core::FormatMiB(v.size_mib)},
              {"allocated_bytes", v.allocated_bytes},
              {"path", v.path},
              {"backing_file", v.backing_file},
              {"snapshots", v.snapshots},
              {"attached_to", std::string(attached_to)}};
}

std::string AttachedTo(const Json& obj) {
  if (!obj.contains("status") || !obj["status"].is_object()) return "";
  return obj["status"].value("attached_to", "");
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

}  // namespace

StorageService::StorageService(state::Store* store, core::Clock* clock, StorageHost* host)
    : store_(store), clock_(clock), host_(host) {}

absl::Status StorageService::Start() {
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(host_->Prepare());
  BERTH_ASSIGN_OR_RETURN(auto objects, ListObjects(store_, kDiskPrefix));
  for (auto& obj : objects) {
    std::string name = obj.body.value("name", "");
    auto volume = host_->Get(name);
    Json before = obj.body;
    if (volume.ok()) {
      obj.body["status"] = VolumeStatus(*volume, AttachedTo(obj.body));
    } else {
      obj.body["status"]["state"] = "failed";
      obj.body["status"]["reason"] = std::string(volume.status().message());
    }
    before.erase("revision");
    Json after = obj.body;
    after.erase("revision");
    if (before == after) continue;
    StampObject(&obj.body, 0, clock_, false);
    (void)CommitObjects(store_, clock_, {{obj.key, obj.mod_revision, obj.body}},
                        {"disk", name, volume.ok() ? "recovered" : "failed",
                         volume.ok() ? "status refreshed from the host at server start"
                                     : std::string(volume.status().message())});
  }
  return absl::OkStatus();
}

absl::StatusOr<StoredObject> StorageService::Read(std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(auto obj, ReadObject(store_, DiskKey(name)));
  if (!obj) return absl::NotFoundError(Cat("disk \"", name, "\" not found"));
  return std::move(*obj);
}

absl::StatusOr<Json> StorageService::Record(std::string_view name, Json spec,
                                            const HostVolume& volume, std::string_view message) {
  Json body = {{"kind", "disk"},
               {"name", std::string(name)},
               {"spec", std::move(spec)},
               {"status", VolumeStatus(volume, "")}};
  StampObject(&body, 0, clock_, true);
  auto rev = CommitObjects(store_, clock_, {{DiskKey(name), 0, body}},
                           {"disk", std::string(name), "created", std::string(message)});
  if (!rev.ok()) {
    (void)host_->Delete(name, "");
    return rev.status();
  }
  body["revision"] = *rev;
  return body;
}

absl::StatusOr<Json> StorageService::Update(StoredObject obj, const HostVolume& volume,
                                            std::string_view type, std::string_view message) {
  obj.body["status"] = VolumeStatus(volume, AttachedTo(obj.body));
  StampObject(&obj.body, 0, clock_, false);
  BERTH_ASSIGN_OR_RETURN(
      int64_t rev,
      CommitObjects(store_, clock_, {{obj.key, obj.mod_revision, obj.body}},
                    {"disk", obj.body.value("name", ""), std::string(type), std::string(message)}));
  obj.body["revision"] = rev;
  return obj.body;
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
  BERTH_ASSIGN_OR_RETURN(auto existing, ReadObject(store_, DiskKey(o.name)));
  if (existing) {
    return absl::AlreadyExistsError(Cat("disk \"", o.name, "\": name is already taken"));
  }
  BERTH_ASSIGN_OR_RETURN(HostVolume volume, host_->Create(spec));
  Json jspec = {{"size", o.size},
                {"format", spec.format},
                {"filesystem", spec.filesystem},
                {"from_image", spec.from_image}};
  return Record(o.name, std::move(jspec), volume,
                Cat(spec.format, " disk of ", core::FormatMiB(volume.size_mib), " created"));
}

absl::StatusOr<Json> StorageService::Get(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, Read(name));
  return obj.body;
}

absl::StatusOr<std::vector<Json>> StorageService::List(int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(auto objects, ListObjects(store_, kDiskPrefix, revision));
  std::vector<Json> out;
  for (auto& o : objects) out.push_back(std::move(o.body));
  return out;
}

absl::StatusOr<Json> StorageService::Resize(std::string_view name, std::string_view size) {
  BERTH_ASSIGN_OR_RETURN(int64_t mib, ParseDiskSize(name, size));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, Read(name));
  int64_t current = obj.body["status"].value("size_mib", int64_t{0});
  if (mib < current) {
    return core::FieldError("disk", name, "size",
                            Cat("must not shrink the disk: it is ", core::FormatMiB(current),
                                ", asked for ", core::FormatMiB(mib)));
  }
  BERTH_ASSIGN_OR_RETURN(HostVolume v, host_->Resize(name, mib, AttachedTo(obj.body)));
  obj.body["spec"]["size"] = std::string(size);
  return Update(std::move(obj), v, "resized", Cat("grown to ", core::FormatMiB(v.size_mib)));
}

absl::StatusOr<Json> StorageService::Snapshot(std::string_view name, std::string_view snapshot) {
  BERTH_RETURN_IF_ERROR(CheckSnapshotName(name, snapshot));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, Read(name));
  // A running VM holds its disks open (and locked): it takes the snapshot itself.
  absl::Status live = absl::NotFoundError("not attached");
  if (const std::string holder = AttachedTo(obj.body); !holder.empty() && live_.snapshot) {
    live = live_.snapshot(holder, name, snapshot);
    if (!live.ok() && !absl::IsNotFound(live) && !absl::IsUnimplemented(live)) return live;
  }
  if (!live.ok()) BERTH_RETURN_IF_ERROR(host_->Snapshot(name, snapshot));
  BERTH_ASSIGN_OR_RETURN(HostVolume v, host_->Get(name));
  return Update(std::move(obj), v, "snapshot", Cat("snapshot \"", snapshot, "\" taken"));
}

absl::StatusOr<Json> StorageService::Revert(std::string_view name, std::string_view snapshot) {
  BERTH_RETURN_IF_ERROR(CheckSnapshotName(name, snapshot));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, Read(name));
  std::string holder = AttachedTo(obj.body);
  if (!holder.empty()) {
    return absl::FailedPreconditionError(Cat("disk \"", name, "\": status.attached_to is \"",
                                             holder,
                                             "\"; detach it before reverting to a snapshot"));
  }
  BERTH_RETURN_IF_ERROR(host_->Revert(name, snapshot, holder));
  BERTH_ASSIGN_OR_RETURN(HostVolume v, host_->Get(name));
  return Update(std::move(obj), v, "reverted", Cat("reverted to snapshot \"", snapshot, "\""));
}

absl::StatusOr<Json> StorageService::Clone(std::string_view source, std::string_view snapshot,
                                           std::string_view name) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("disk", name));
  if (!snapshot.empty()) BERTH_RETURN_IF_ERROR(CheckSnapshotName(source, snapshot));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject src, Read(source));
  BERTH_ASSIGN_OR_RETURN(auto existing, ReadObject(store_, DiskKey(name)));
  if (existing) return absl::AlreadyExistsError(Cat("disk \"", name, "\": name is already taken"));
  std::string snap(snapshot);
  bool temporary = snap.empty();
  if (temporary) {
    // A clone of the current data goes through a snapshot that exists only for the copy.
    snap = Cat("clone-", name);
    BERTH_RETURN_IF_ERROR(host_->Snapshot(source, snap));
  }
  auto v = host_->Clone(source, snap, name, "qcow2");
  if (temporary) (void)host_->DeleteSnapshot(source, snap);
  if (!v.ok()) return v.status();
  Json spec = {{"size", src.body["spec"].value("size", "")},
               {"format", "qcow2"},
               {"filesystem", src.body["spec"].value("filesystem", "")},
               {"from_image", ""},
               {"cloned_from", Cat(source, temporary ? "" : "@", temporary ? "" : snapshot)}};
  return Record(name, std::move(spec), *v,
                Cat("cloned from disk \"", source, "\"",
                    temporary ? std::string() : Cat(" snapshot \"", snapshot, "\"")));
}

absl::StatusOr<std::vector<Json>> StorageService::Pools() {
  BERTH_ASSIGN_OR_RETURN(std::vector<HostPool> pools, host_->Pools());
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
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, Read(name));
  BERTH_ASSIGN_OR_RETURN(state::GetResponse w, store_->Get(Cat("/workloads/", workload)));
  if (!w.kv) {
    return absl::NotFoundError(Cat("disk \"", name, "\": workload \"", workload, "\" not found"));
  }
  std::string holder = AttachedTo(obj.body);
  if (holder == workload) return obj.body;
  if (!holder.empty()) {
    return absl::FailedPreconditionError(
        Cat("disk \"", name, "\": status.attached_to is \"", holder, "\"; detach it first"));
  }
  // A running VM gets the disk now; a workload with no running task here sees it at its start.
  bool plugged = false;
  if (live_.attach) {
    absl::Status s = live_.attach(workload, obj.body);
    if (!s.ok() && !absl::IsNotFound(s) && !absl::IsUnimplemented(s)) return s;
    plugged = s.ok();
  }
  obj.body["status"]["attached_to"] = std::string(workload);
  StampObject(&obj.body, 0, clock_, false);
  auto rev = CommitObjects(store_, clock_, {{obj.key, obj.mod_revision, obj.body}},
                           {"disk", std::string(name), "attached",
                            Cat("attached to workload \"", workload, "\"",
                                plugged ? " (plugged into the running VM)" : "")});
  if (!rev.ok()) {
    if (plugged) (void)live_.detach(workload, name);
    return rev.status();
  }
  obj.body["revision"] = *rev;
  return obj.body;
}

absl::StatusOr<Json> StorageService::Detach(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, Read(name));
  std::string holder = AttachedTo(obj.body);
  if (holder.empty()) return obj.body;
  if (live_.detach) {
    absl::Status s = live_.detach(holder, name);
    if (!s.ok() && !absl::IsNotFound(s) && !absl::IsUnimplemented(s)) return s;
  }
  obj.body["status"]["attached_to"] = "";
  StampObject(&obj.body, 0, clock_, false);
  BERTH_ASSIGN_OR_RETURN(int64_t rev,
                         CommitObjects(store_, clock_, {{obj.key, obj.mod_revision, obj.body}},
                                       {"disk", std::string(name), "detached",
                                        Cat("detached from workload \"", holder, "\"")}));
  obj.body["revision"] = rev;
  return obj.body;
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
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, Read(name));
  BERTH_ASSIGN_OR_RETURN(HostBackup b, host_->Backup(name, file, progress));
  const std::string written = b.path.empty() ? file : b.path;
  // The backup is recorded as an event only; the disk object itself does not change.
  BERTH_RETURN_IF_ERROR(
      CommitObjects(store_, clock_, {{obj.key, obj.mod_revision, obj.body}},
                    {"disk", std::string(name), "backup",
                     Cat("backup written to ", written, " (", b.bytes, " bytes)")}));
  return Json{
      {"disk", std::string(name)}, {"file", written}, {"bytes", b.bytes}, {"sha256", b.sha256}};
}

absl::StatusOr<Json> StorageService::Restore(const std::string& file, std::string_view name,
                                             const Progress& progress) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("disk", name));
  if (file.empty()) {
    return core::FieldError("disk", name, "file",
                            "is required: a backup file name in the server's backup directory");
  }
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto existing, ReadObject(store_, DiskKey(name)));
  if (existing) return absl::AlreadyExistsError(Cat("disk \"", name, "\": name is already taken"));
  BERTH_ASSIGN_OR_RETURN(HostVolume v, host_->Restore(file, name, "qcow2", progress));
  Json spec = {{"size", core::FormatMiB(v.size_mib)},
               {"format", "qcow2"},
               {"filesystem", ""},
               {"from_image", ""},
               {"restored_from", file}};
  return Record(name, std::move(spec), v, Cat("restored from ", file));
}

absl::Status StorageService::Delete(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, Read(name));
  std::string holder = AttachedTo(obj.body);
  if (!holder.empty()) {
    return absl::FailedPreconditionError(Cat("disk \"", name, "\": status.attached_to is \"",
                                             holder, "\"; detach it before deleting"));
  }
  absl::Status gone = host_->Delete(name, "");
  if (!gone.ok() && !absl::IsNotFound(gone)) return gone;
  BERTH_ASSIGN_OR_RETURN(int64_t rev,
                         CommitObjects(store_, clock_, {{obj.key, obj.mod_revision, std::nullopt}},
                                       {"disk", std::string(name), "deleted", "disk deleted"}));
  (void)rev;
  return absl::OkStatus();
}

}  // namespace berth::control
