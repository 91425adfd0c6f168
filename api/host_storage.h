// Disks on a fleet's hosts: the server decides and records (control::StorageService over
// control::FleetStorage), and each host's agent makes the volumes in its pools. The server reaches
// an agent through its task API (api/task_api.h), with the token the agent's heartbeats carry:
//
//   POST /v1/storage/POOL/OP   body: the operation's arguments   answer: its result
//
// POOL is "default" (the host's own pool) or "shared"; OP is one of create, get, resize,
// snapshot, revert, delete-snapshot, clone, backup, restore, delete, pools. Each body is a JSON
// object whose fields are the control::StorageHost method's arguments by name (`name`, `snapshot`,
// `size_mib`, `attached_to`, `source`, `format`, `filesystem`, `from_image`, `file`); unknown
// fields, names that are not disk names and sizes out of range are 400 naming the field. Volumes
// answer as {format, size_mib, allocated_bytes, path, backing_file, snapshots, filesystem},
// backups as {bytes, sha256, path}, pools as {items: [...]}, the rest as {}. An error is the
// task API's error object with the host's status (404 for a volume that is not there, ...).
//
// Thread-safety: the routes and remote hosts may be used from any thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/http/router.h"
#include "api/task_proxy.h"
#include "control/control_plane.h"
#include "control/fleet_storage.h"
#include "control/storage_service.h"
#include "core/json.h"

namespace berth::api {

// The pool names of the wire: a host's own pool, and the fleet's shared pool.
inline constexpr std::string_view kHostPool = "default";

// The running tasks of the agent's host, for the operations that change a running task's disks
// (plug, unplug, live-snapshot): a VM's QEMU plugs, pulls or snapshots the disk. NotFound: no
// task of that workload runs here; Unimplemented: its driver takes disks only at start.
struct HostTaskDisks {
  std::function<absl::Status(std::string_view workload, const control::HostVolume& volume,
                             std::string_view disk)>
      plug;
  std::function<absl::Status(std::string_view workload, std::string_view disk)> unplug;
  std::function<absl::Status(std::string_view workload, std::string_view disk,
                             std::string_view snapshot)>
      snapshot;
};

// Registers POST /v1/storage/{pool}/{op} on an agent's task API router, over its pools (pool
// name -> host; not owned, they must outlive the router). With `tasks`, also the operations on
// a running task's disks: plug {workload, name}, unplug {workload, name} and live-snapshot
// {workload, name, snapshot}; without, those are 404.
void AddHostStorageRoutes(Router& router, std::map<std::string, control::StorageHost*> pools,
                          HostTaskDisks tasks = {});

// A control::StorageHost whose every operation is carried out by the agent `target()` names, in
// its pool `pool`. `target` is asked at each call (an agent's address and token change when it
// restarts); an error from it (the host is down, it has no task API) is the operation's.
// Unreachable agents answer Unavailable naming the host.
std::unique_ptr<control::StorageHost> NewRemoteStorageHost(
    std::function<absl::StatusOr<TaskApiTarget>()> target, std::string pool);

// The StorageHosts a fleet's server reaches its hosts' pools through: each host's agent at the
// task API its latest heartbeat reported (Unavailable naming the host while it has none).
control::RemoteStorageFactory RemoteStorageOf(control::ControlPlane* control);

// A host's disks on a fleet, for its own credential (or the admin's): POST
// /v1/hosts/{name}/disk-attach {"workload"} records the workload, placed on that host, as the
// holder of its disks and answers {"disks": [{name, pool, format, filesystem, read_only,
// mount}]}: what the agent gives its task.
void AddFleetStorageRoutes(Router& router, control::FleetStorage* fleet);

// A running task's disks on each host of a fleet, through that host's agent (as
// RemoteStorageOf).
control::TaskDisksFactory RemoteTaskDisksOf(control::ControlPlane* control);

// The codecs, public for tests.
core::Json EncodeHostDisks(const std::vector<control::HostDisk>& disks);
absl::StatusOr<std::vector<control::HostDisk>> DecodeHostDisks(std::string_view host,
                                                               const core::Json& j);
core::Json EncodeHostVolume(const control::HostVolume& v);
absl::StatusOr<control::HostVolume> DecodeHostVolume(std::string_view host, const core::Json& j);
core::Json EncodeHostPool(const control::HostPool& p);
absl::StatusOr<control::HostPool> DecodeHostPool(std::string_view host, const core::Json& j);

}  // namespace berth::api
