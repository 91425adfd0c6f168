// Disks: a volume Berth made in a host's storage pool, as the server stores it under
// /disks/NAME and the API shows it. The spec is what was asked for (kept as asked: "10Gi"), the
// status what the host reported last. The codecs are shared by the server, which stores and
// serves disks, and by whatever later realizes them on other hosts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/json.h"

namespace berth::core {

struct DiskSpec {
  std::string size;              // as asked ("10Gi"); empty for a disk sized by its image
  std::string format = "qcow2";  // qcow2 | raw
  std::string filesystem;        // "" | ext4 | xfs
  std::string from_image;
  std::string cloned_from;    // "SOURCE" or "SOURCE@SNAPSHOT" for a clone; else empty
  std::string restored_from;  // the backup file of a restored disk; else empty
  // Where the volume lives. A fleet: `host` names the host whose pool holds it, and `pool` is
  // empty (that host's own pool) or "shared" (kSharedPool: a directory every host that declares
  // it mounts, so the disk can follow its workload; `host` is then the host that made it).
  // `serve --dev` leaves both empty: its one host holds every disk.
  std::string host;
  std::string pool;
  bool operator==(const DiskSpec&) const = default;
};

// The pool every host of a fleet that declares it mounts (`berth agent --shared-pool DIR`).
inline constexpr std::string_view kSharedPool = "shared";
// The host label of a host that mounts the shared pool ("true"), and the label every host
// carries with its own name: what a workload's disks pin its placement with.
inline constexpr std::string_view kSharedPoolLabel = "berth.shared-pool";
inline constexpr std::string_view kHostNameLabel = "berth.host";

enum class DiskState { kReady, kFailed };
std::string_view DiskStateName(DiskState state);
std::optional<DiskState> ParseDiskState(std::string_view text);

struct DiskStatus {
  DiskState state = DiskState::kReady;
  std::string reason;  // why it failed; empty while ready
  int64_t size_mib = 0;
  int64_t allocated_bytes = 0;
  std::string path;
  std::string backing_file;
  std::vector<std::string> snapshots;
  std::string attached_to;  // the workload holding it; one at a time
  bool operator==(const DiskStatus&) const = default;
};

// The stored object. `revision` is the store's mod revision; it is shown, never stored.
struct Disk {
  std::string name;
  DiskSpec spec;
  DiskStatus status;
  int64_t revision = 0;
  absl::Time created_at = absl::InfinitePast();
  absl::Time updated_at = absl::InfinitePast();
  bool operator==(const Disk&) const = default;
};

// {kind: "disk", name, spec, status, revision, created_at, updated_at}; status.size is the
// size in words ("10Gi"), derived from size_mib. Fields of a spec that are empty for most disks
// (cloned_from, restored_from, host, pool) and status.reason appear only when set.
Json EncodeDisk(const Disk& disk);
// Decodes what EncodeDisk wrote (and what earlier servers stored); absent fields keep their
// defaults. InvalidArgument naming the disk and the dotted field for a wrong type, an unknown
// field or an unknown state.
absl::StatusOr<Disk> DecodeDisk(const Json& json);

}  // namespace berth::core
