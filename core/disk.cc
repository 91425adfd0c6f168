#include "core/disk.h"

#include "core/object_json.h"
#include "core/quantity.h"
#include "core/status.h"
#include "core/strings.h"
#include "core/workload.h"

namespace berth::core {

std::string_view DiskStateName(DiskState state) {
  switch (state) {
    case DiskState::kReady:
      return "ready";
    case DiskState::kFailed:
      return "failed";
  }
  return "unknown";
}

std::optional<DiskState> ParseDiskState(std::string_view text) {
  if (text == "ready") return DiskState::kReady;
  if (text == "failed") return DiskState::kFailed;
  return std::nullopt;
}

Json EncodeDisk(const Disk& d) {
  Json spec = {{"size", d.spec.size},
               {"format", d.spec.format},
               {"filesystem", d.spec.filesystem},
               {"from_image", d.spec.from_image}};
  if (!d.spec.cloned_from.empty()) spec["cloned_from"] = d.spec.cloned_from;
  if (!d.spec.restored_from.empty()) spec["restored_from"] = d.spec.restored_from;
  if (!d.spec.host.empty()) spec["host"] = d.spec.host;
  if (!d.spec.pool.empty()) spec["pool"] = d.spec.pool;
  Json status = {{"state", std::string(DiskStateName(d.status.state))},
                 {"size_mib", d.status.size_mib},
                 {"size", FormatMiB(d.status.size_mib)},
                 {"allocated_bytes", d.status.allocated_bytes},
                 {"path", d.status.path},
                 {"backing_file", d.status.backing_file},
                 {"snapshots", d.status.snapshots},
                 {"attached_to", d.status.attached_to}};
  if (!d.status.reason.empty()) status["reason"] = d.status.reason;
  return Json{{"kind", "disk"},
              {"name", d.name},
              {"spec", std::move(spec)},
              {"status", std::move(status)},
              {"revision", d.revision},
              {"created_at", EncodeTime(d.created_at)},
              {"updated_at", EncodeTime(d.updated_at)}};
}

absl::StatusOr<Disk> DecodeDisk(const Json& j) {
  Disk d;
  JsonContext ctx{"disk", ""};
  if (j.is_object()) {
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "", "name", &d.name));
    ctx.name = d.name;
  }
  BERTH_RETURN_IF_ERROR(CheckObject(
      ctx, j, "", {"kind", "name", "spec", "status", "revision", "created_at", "updated_at"}));
  std::string kind = "disk";
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "", "kind", &kind));
  if (kind != "disk") return ctx.Error("kind", Cat("must be \"disk\", got \"", kind, "\""));
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "", "revision", 0, INT64_MAX, &d.revision));
  if (auto it = j.find("spec"); it != j.end() && !it->is_null()) {
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, *it, "spec",
                                      {"size", "format", "filesystem", "from_image", "cloned_from",
                                       "restored_from", "host", "pool"}));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "spec", "size", &d.spec.size));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "spec", "format", &d.spec.format));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "spec", "filesystem", &d.spec.filesystem));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "spec", "from_image", &d.spec.from_image));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "spec", "cloned_from", &d.spec.cloned_from));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "spec", "restored_from", &d.spec.restored_from));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "spec", "host", &d.spec.host));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "spec", "pool", &d.spec.pool));
    if (!d.spec.pool.empty() && d.spec.pool != kSharedPool) {
      return ctx.Error("spec.pool", Cat("must be empty (the host's own pool) or \"", kSharedPool,
                                        "\", got \"", d.spec.pool, "\""));
    }
    if (d.spec.format != "qcow2" && d.spec.format != "raw") {
      return ctx.Error("spec.format", Cat("must be qcow2 or raw, got \"", d.spec.format, "\""));
    }
  }
  if (auto it = j.find("status"); it != j.end() && !it->is_null()) {
    BERTH_RETURN_IF_ERROR(CheckObject(ctx, *it, "status",
                                      {"state", "reason", "size_mib", "size", "allocated_bytes",
                                       "path", "backing_file", "snapshots", "attached_to"}));
    std::string state = "ready";
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "status", "state", &state));
    auto parsed = ParseDiskState(state);
    if (!parsed) {
      return ctx.Error("status.state", Cat("must be ready or failed, got \"", state, "\""));
    }
    d.status.state = *parsed;
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "status", "reason", &d.status.reason));
    BERTH_RETURN_IF_ERROR(
        OptionalInt(ctx, *it, "status", "size_mib", 0, INT64_MAX, &d.status.size_mib));
    // status.size is derived from size_mib; only its type is checked.
    std::string size_words;
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "status", "size", &size_words));
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, *it, "status", "allocated_bytes", 0, INT64_MAX,
                                      &d.status.allocated_bytes));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "status", "path", &d.status.path));
    BERTH_RETURN_IF_ERROR(
        OptionalString(ctx, *it, "status", "backing_file", &d.status.backing_file));
    BERTH_RETURN_IF_ERROR(OptionalStringList(ctx, *it, "status", "snapshots", &d.status.snapshots));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "status", "attached_to", &d.status.attached_to));
  }
  BERTH_RETURN_IF_ERROR(OptionalTime(ctx, j, "", "created_at", &d.created_at));
  BERTH_RETURN_IF_ERROR(OptionalTime(ctx, j, "", "updated_at", &d.updated_at));
  return d;
}

}  // namespace berth::core
