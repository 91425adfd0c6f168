// What the API serves from the tasks this process can reach directly (dev mode: the local
// agent; an agent's own task API, api/task_api.h): log files, the serial console, exec and live
// stats. The agent implements it; the API server and the task API call it. It sits below both,
// so the API needs no agent and the agent no server.
//
// Errors: NotFound when this host has no task (or log) for the workload, FailedPrecondition when
// the task cannot do it (exec in a VM, a console for a container), Unavailable while the local
// agent is not running.
// Thread-safety: called from the API's threads, concurrently; Exec may block up to its timeout.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "api/wire/wire.h"
#include "core/json.h"
#include "core/service.h"
#include "core/strings.h"

namespace berth::agent {

// Where workload logs live, for the hosts whose files this process can read.
class LogSource {
 public:
  virtual ~LogSource() = default;
  // `stream` is "stdout" or "stderr". NotFound when there is no such log for the workload.
  virtual absl::StatusOr<std::string> LogPath(std::string_view workload,
                                              std::string_view stream) = 0;
};

class LocalHost : public LogSource {
 public:
  // The name of the host these tasks run on; the API serves the workloads placed there from
  // here, and relays the others to their hosts' task APIs. Empty while unknown.
  virtual std::string HostName() = 0;
  // The serial console log of a VM workload.
  virtual absl::StatusOr<std::string> ConsolePath(std::string_view workload) = 0;
  // Runs a command inside the workload's task and waits for it (up to request.timeout).
  virtual absl::StatusOr<api::wire::ExecReply> Exec(std::string_view workload,
                                                    const api::wire::ExecRequest& request) = 0;
  // Live counters: {"workload", "kind", "task_id", "state", "pid", "cpu_user_ms",
  // "cpu_system_ms", "rss_bytes", "processes"}, "disk_read_bytes" and "disk_write_bytes" where
  // the driver counts storage I/O, "net_rx_bytes" and "net_tx_bytes" for a task with interfaces
  // of its own, and, for VMs, "guest_cpu_ms", "qmp_status", "block_read_bytes",
  // "block_write_bytes".
  virtual absl::StatusOr<core::Json> Stats(std::string_view workload) = 0;
  // Saves the memory and device state of the workload's running VM on this host under `key`
  // (a service's warm state, SERVICE.rREVISION), pausing the VM while it is written and
  // replacing the host's earlier states of the same service; returns the bytes written. A later
  // replica labelled berth.warm-state=KEY that is placed here resumes from it.
  // InvalidArgument for a malformed key, FailedPrecondition when the task cannot be saved.
  virtual absl::StatusOr<int64_t> SaveWarmState(std::string_view workload,
                                                std::string_view key) = 0;
  // The file of the warm state `key` this host keeps, for another host to copy (the task API's
  // GET /v1/warm-states/KEY). NotFound when it keeps none.
  virtual absl::StatusOr<std::string> WarmStateFile(std::string_view key) {
    return absl::NotFoundError(core::Cat("warm state ", key, ": host ", HostName(), " keeps none"));
  }
};

// Whether `key` names a warm state: SERVICE.rREVISION, a valid service name and a revision
// number (core::ParseWarmStateKey). Such a key is safe as a file name.
inline bool IsWarmStateKey(std::string_view key) {
  return core::ParseWarmStateKey(key).has_value();
}

}  // namespace berth::agent
