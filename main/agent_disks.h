// AgentDisks: a `berth agent`'s part of the fleet's disks. The server decides and records
// (control/fleet_storage.h) and reaches this host's pools through its task API
// (api/host_storage.h); before a workload's task starts, this asks the server for the disks the
// workload holds (POST /v1/hosts/NAME/disk-attach, which records it as their holder), finds each
// volume in this host's own pool or in the shared pool it mounts, and gives the task its disks:
// a VM's virtio disks, a container's raw disks loop-mounted and bound at their mount paths. Once
// the task is gone, its mounts go; the disks stay the workload's until it is deleted.
//
// A workload with no disks (and not a VM, which may hold disks attached with `berth disk
// attach`) starts without asking the server.
//
// Ownership: borrows the pools, which must outlive it. Thread-safety: thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/agent.h"
#include "control/fleet_storage.h"
#include "control/storage_service.h"
#include "core/workload.h"
#include "runtime/compute_driver.h"

namespace berth {

struct AgentDisksOptions {
  std::string host;  // this host's name (messages)
  // Asks the server for the disks `workload` holds (recording it as their holder).
  std::function<absl::StatusOr<std::vector<control::HostDisk>>(std::string_view workload)> fetch;
  // This host's pools: "default" (its own) and, with --shared-pool, "shared". Not owned.
  std::map<std::string, control::StorageHost*> pools;
  // A container's disk: mounts the raw `image` and answers the directory bound into it.
  std::function<absl::StatusOr<std::string>(
      std::string_view workload, const control::HostDisk& disk, const std::string& image)>
      mount;
  // Undoes every mount of the workload.
  std::function<void(std::string_view workload)> unmount;
};

class AgentDisks {
 public:
  explicit AgentDisks(AgentDisksOptions options) : options_(std::move(options)) {}

  // Puts Attach before the hooks already set (networks) and Detach after them.
  void Wire(agent::AgentOptions& options);

  // The hooks, public for tests.
  absl::Status Attach(const core::WorkloadSpec& spec, runtime::TaskConfig* config);
  void Detach(std::string_view workload);

 private:
  const AgentDisksOptions options_;
};

// The options of a `berth agent`: it asks the server with `call`, and mounts containers' disks
// under AGENT_DIR/mounts.
AgentDisksOptions AgentDisksFor(
    std::function<absl::StatusOr<core::Json>(std::string_view method, const std::string& path,
                                             const core::Json* body)>
        call,
    const std::string& agent_dir, const std::string& host,
    std::map<std::string, control::StorageHost*> pools);

}  // namespace berth
