#include "runtime/storage/validation.h"

#include <algorithm>

#include "core/names.h"
#include "core/quantity.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::runtime::storage {

using core::Cat;

std::string_view FormatName(VolumeFormat f) { return f == VolumeFormat::kRaw ? "raw" : "qcow2"; }

BackupSidecar ParseBackupSidecar(std::string_view text) {
  BackupSidecar out;
  bool first = true;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (first) {
      out.sha256 = std::string(line);
      first = false;
      continue;
    }
    const size_t space = line.find(' ');
    if (space == 0 || space == std::string_view::npos) continue;
    out.labels[std::string(line.substr(0, space))] = std::string(line.substr(space + 1));
  }
  return out;
}

std::string_view FilesystemName(Filesystem f) {
  switch (f) {
    case Filesystem::kExt4:
      return "ext4";
    case Filesystem::kXfs:
      return "xfs";
    case Filesystem::kNone:
      break;
  }
  return "";
}

absl::StatusOr<VolumeFormat> ParseVolumeFormat(std::string_view text) {
  if (text == "qcow2") return VolumeFormat::kQcow2;
  if (text == "raw") return VolumeFormat::kRaw;
  return absl::InvalidArgumentError(Cat("format must be qcow2 or raw, got \"", text, "\""));
}

absl::StatusOr<Filesystem> ParseFilesystem(std::string_view text) {
  if (text.empty() || text == "none") return Filesystem::kNone;
  if (text == "ext4") return Filesystem::kExt4;
  if (text == "xfs") return Filesystem::kXfs;
  return absl::InvalidArgumentError(
      Cat("filesystem must be none, ext4 or xfs, got \"", text, "\""));
}

absl::Status ValidatePoolSpec(const PoolSpec& spec) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("pool", spec.name));
  if (spec.directory.empty() || spec.directory[0] != '/') {
    return core::FieldError("pool", spec.name, "directory",
                            Cat("must be an absolute path, got \"", spec.directory, "\""));
  }
  if (spec.capacity_mib <= 0) {
    return core::FieldError("pool", spec.name, "capacity_mib",
                            Cat("must be > 0, got ", spec.capacity_mib));
  }
  if (spec.overcommit_permille < 1000) {
    return core::FieldError("pool", spec.name, "overcommit_permille",
                            Cat("must be >= 1000, got ", spec.overcommit_permille));
  }
  // It names directories inside the pool's: a host's name (an FQDN is one component).
  if (!spec.instance.empty()) BERTH_RETURN_IF_ERROR(core::ValidateHostName(spec.instance));
  return absl::OkStatus();
}

absl::Status ValidateCreateSpec(const CreateVolumeSpec& spec) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("volume", spec.name));
  if (spec.size_mib < 0 || (spec.size_mib == 0 && spec.backing_image.empty())) {
    return core::FieldError("volume", spec.name, "size_mib",
                            Cat("must be > 0, got ", spec.size_mib));
  }
  if (!spec.backing_image.empty()) {
    if (spec.format != VolumeFormat::kQcow2) {
      return core::FieldError("volume", spec.name, "backing_image",
                              Cat("needs format qcow2, got ", FormatName(spec.format)));
    }
    if (spec.filesystem != Filesystem::kNone) {
      return core::FieldError("volume", spec.name, "filesystem",
                              "must be none for a clone of backing_image");
    }
    if (spec.backing_image[0] != '/') {
      return core::FieldError("volume", spec.name, "backing_image",
                              Cat("must be an absolute path, got \"", spec.backing_image, "\""));
    }
  }
  // mkfs.xfs refuses filesystems under 300 MiB; ext4 needs a few blocks.
  const int64_t min_mib = spec.filesystem == Filesystem::kXfs    ? 300
                          : spec.filesystem == Filesystem::kExt4 ? 2
                                                                 : 0;
  if (spec.size_mib < min_mib) {
    return core::FieldError("volume", spec.name, "size_mib",
                            Cat("must be >= ", min_mib, " for filesystem ",
                                FilesystemName(spec.filesystem), ", got ", spec.size_mib));
  }
  return absl::OkStatus();
}

absl::Status ValidateSnapshotName(std::string_view volume, std::string_view snapshot) {
  absl::Status s = core::ValidateName("snapshot", snapshot);
  if (!s.ok()) return absl::InvalidArgumentError(Cat("volume \"", volume, "\": ", s.message()));
  return absl::OkStatus();
}

void FinishPoolStatus(PoolStatus& status) {
  status.limit_mib = status.spec.capacity_mib * status.spec.overcommit_permille / 1000;
  status.available_mib = std::max<int64_t>(0, status.limit_mib - status.provisioned_mib);
}

absl::Status CheckOvercommit(const PoolStatus& pool, std::string_view volume, int64_t extra_mib) {
  if (pool.provisioned_mib + extra_mib <= pool.limit_mib) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      Cat("volume \"", volume, "\": size_mib needs ", core::FormatMiB(extra_mib), " but pool \"",
          pool.spec.name, "\" has ", core::FormatMiB(pool.available_mib),
          " left under its overcommit limit (", core::FormatMiB(pool.limit_mib), " = capacity ",
          core::FormatMiB(pool.spec.capacity_mib), " x ", pool.spec.overcommit_permille,
          "/1000, provisioned ", core::FormatMiB(pool.provisioned_mib), ")"));
}

absl::Status PoolNotFound(std::string_view pool) {
  return absl::NotFoundError(Cat("pool \"", pool, "\" not found"));
}
absl::Status VolumeNotFound(std::string_view pool, std::string_view volume) {
  return absl::NotFoundError(Cat("volume \"", volume, "\" not found in pool \"", pool, "\""));
}
absl::Status VolumeExists(std::string_view pool, std::string_view volume) {
  return absl::AlreadyExistsError(
      Cat("volume \"", volume, "\": name already exists in pool \"", pool, "\""));
}
absl::Status SnapshotNotFound(std::string_view volume, std::string_view snapshot) {
  return absl::NotFoundError(Cat("volume \"", volume, "\": snapshot \"", snapshot, "\" not found"));
}
absl::Status NeedsQcow2(std::string_view volume, std::string_view what) {
  return absl::FailedPreconditionError(
      Cat("volume \"", volume, "\": format must be qcow2 for ", what, ", got raw"));
}
absl::Status RefuseAttached(std::string_view volume, std::string_view action,
                            const AttachmentOptions& attachment) {
  if (attachment.attached_to.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(Cat("volume \"", volume, "\": cannot ", action,
                                           " while attached_to is ", attachment.attached_to,
                                           "; detach it first"));
}
absl::Status RefuseShrink(std::string_view volume, int64_t current_mib, int64_t new_mib) {
  return absl::InvalidArgumentError(Cat("volume \"", volume, "\": size_mib must be >= current ",
                                        current_mib, " (volumes only grow), got ", new_mib));
}

}  // namespace berth::runtime::storage
