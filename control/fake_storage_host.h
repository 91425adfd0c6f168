// A StorageHost in memory for the control layer's tests (the storage service's and the fleet's).
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "control/storage_service.h"
#include "core/strings.h"

namespace berth::control {

// A StorageHost in memory: volumes by name, every call recorded as "Method name[@snapshot]", and
// any method made to fail by naming it in `fail`.
class FakeStorageHost final : public StorageHost {
 public:
  std::map<std::string, HostVolume> volumes;
  std::vector<std::string> calls;
  std::map<std::string, absl::Status> fail;  // method -> what it returns
  HostVolumeSpec last_create;
  std::string last_file;  // of the last Backup or Restore
  std::string last_attached_to;

  absl::Status Prepare() override { return Call("Prepare", ""); }

  absl::StatusOr<HostVolume> Create(const HostVolumeSpec& spec) override {
    if (absl::Status s = Call("Create", spec.name); !s.ok()) return s;
    last_create = spec;
    if (volumes.contains(spec.name)) {
      return absl::AlreadyExistsError(core::Cat("volume \"", spec.name, "\" exists"));
    }
    HostVolume v;
    v.format = spec.format;
    v.size_mib = spec.size_mib > 0 ? spec.size_mib : 2048;  // an image's own size
    v.path = core::Cat("/pool/", spec.name, ".", spec.format);
    v.backing_file = spec.from_image;
    volumes[spec.name] = v;
    return v;
  }

  absl::StatusOr<HostVolume> Get(std::string_view name) override {
    if (absl::Status s = Call("Get", name); !s.ok()) return s;
    return Find(name);
  }

  absl::StatusOr<HostVolume> Resize(std::string_view name, int64_t size_mib,
                                    std::string_view attached_to) override {
    if (absl::Status s = Call("Resize", name); !s.ok()) return s;
    last_attached_to = std::string(attached_to);
    auto it = volumes.find(std::string(name));
    if (it == volumes.end()) return NotFound(name);
    it->second.size_mib = size_mib;
    return it->second;
  }

  absl::Status Snapshot(std::string_view name, std::string_view snapshot) override {
    if (absl::Status s = Call("Snapshot", name, snapshot); !s.ok()) return s;
    auto it = volumes.find(std::string(name));
    if (it == volumes.end()) return NotFound(name);
    it->second.snapshots.push_back(std::string(snapshot));
    return absl::OkStatus();
  }

  absl::Status Revert(std::string_view name, std::string_view snapshot,
                      std::string_view attached_to) override {
    if (absl::Status s = Call("Revert", name, snapshot); !s.ok()) return s;
    auto it = volumes.find(std::string(name));
    if (it == volumes.end()) return NotFound(name);
    if (!HasSnapshot(it->second, snapshot)) {
      return absl::NotFoundError(core::Cat("snapshot \"", snapshot, "\" not found"));
    }
    return absl::OkStatus();
  }

  absl::Status DeleteSnapshot(std::string_view name, std::string_view snapshot) override {
    if (absl::Status s = Call("DeleteSnapshot", name, snapshot); !s.ok()) return s;
    auto it = volumes.find(std::string(name));
    if (it == volumes.end()) return NotFound(name);
    std::erase(it->second.snapshots, std::string(snapshot));
    return absl::OkStatus();
  }

  absl::StatusOr<HostVolume> Clone(std::string_view source, std::string_view snapshot,
                                   std::string_view name, std::string_view format) override {
    if (absl::Status s = Call("Clone", source, snapshot); !s.ok()) return s;
    auto it = volumes.find(std::string(source));
    if (it == volumes.end()) return NotFound(source);
    if (!HasSnapshot(it->second, snapshot)) {
      return absl::NotFoundError(core::Cat("snapshot \"", snapshot, "\" not found"));
    }
    HostVolume v;
    v.format = std::string(format);
    v.size_mib = it->second.size_mib;
    v.path = core::Cat("/pool/", name, ".", format);
    volumes[std::string(name)] = v;
    return v;
  }

  absl::StatusOr<HostBackup> Backup(std::string_view name, const std::string& file,
                                    const Progress& progress) override {
    last_file = file;
    if (absl::Status s = Call("Backup", name); !s.ok()) return s;
    if (!volumes.contains(std::string(name))) return NotFound(name);
    if (progress) progress(1000);
    return HostBackup{.bytes = 4096, .sha256 = "feed", .path = core::Cat("/backups/", file)};
  }

  absl::StatusOr<HostVolume> Restore(const std::string& file, std::string_view name,
                                     std::string_view format, const Progress& progress) override {
    last_file = file;
    if (absl::Status s = Call("Restore", name); !s.ok()) return s;
    HostVolume v;
    v.format = format.empty() ? backup_format : std::string(format);
    v.filesystem = backup_filesystem;
    v.size_mib = 3072;
    v.path = core::Cat("/pool/", name, ".", v.format);
    volumes[std::string(name)] = v;
    return v;
  }
  // What a restored backup records (Restore with no format asked).
  std::string backup_format = "qcow2";
  std::string backup_filesystem;

  absl::Status Delete(std::string_view name, std::string_view attached_to) override {
    if (absl::Status s = Call("Delete", name); !s.ok()) return s;
    if (volumes.erase(std::string(name)) == 0) return NotFound(name);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<HostPool>> Pools() override {
    if (absl::Status s = Call("Pools", ""); !s.ok()) return s;
    HostPool p{.name = "default",
               .directory = "/pool",
               .capacity_mib = 10240,
               .overcommit_permille = 2000,
               .limit_mib = 20480};
    for (const auto& [name, v] : volumes) {
      ++p.volume_count;
      p.provisioned_mib += v.size_mib;
      p.allocated_bytes += v.allocated_bytes;
    }
    p.available_mib = std::max<int64_t>(0, p.limit_mib - p.provisioned_mib);
    return std::vector<HostPool>{p};
  }

  int CallsOf(std::string_view method) const {
    int n = 0;
    for (const auto& c : calls) n += c.starts_with(core::Cat(method, " ")) ? 1 : 0;
    return n;
  }

 private:
  absl::Status Call(std::string_view method, std::string_view name,
                    std::string_view snapshot = "") {
    calls.push_back(core::Cat(method, " ", name, snapshot.empty() ? "" : "@", snapshot));
    auto it = fail.find(std::string(method));
    return it == fail.end() ? absl::OkStatus() : it->second;
  }
  static absl::Status NotFound(std::string_view name) {
    return absl::NotFoundError(core::Cat("volume \"", name, "\" not found"));
  }
  absl::StatusOr<HostVolume> Find(std::string_view name) const {
    auto it = volumes.find(std::string(name));
    if (it == volumes.end()) return NotFound(name);
    return it->second;
  }
  static bool HasSnapshot(const HostVolume& v, std::string_view snapshot) {
    for (const auto& s : v.snapshots) {
      if (s == snapshot) return true;
    }
    return false;
  }
};

}  // namespace berth::control
