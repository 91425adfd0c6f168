// Workloads: what a user asks to run (WorkloadSpec), what Berth reports about it
// (WorkloadStatus), and the stored object holding both with its revision and times. Specs are
// decoded strictly from JSON (YAML is turned into JSON at the edge) and validated here, so the
// API, the CLI and the simulator all accept and refuse the same things.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/device.h"
#include "core/gpu.h"
#include "core/json.h"
#include "core/resources.h"

namespace berth::core {

enum class WorkloadKind { kProcess, kVm, kContainer };
std::string_view WorkloadKindName(WorkloadKind kind);
std::optional<WorkloadKind> ParseWorkloadKind(std::string_view text);

// A host-label constraint: `label op values`.
struct LabelConstraint {
  enum class Op { kEquals, kIn, kNotIn, kExists };
  std::string label;
  Op op = Op::kEquals;
  std::vector<std::string> values;
  bool operator==(const LabelConstraint&) const = default;
};

// A port forward from the host to the workload (dev networking, VM user-mode NICs).
struct PortMapping {
  int host_port = 0;
  int guest_port = 0;
  std::string protocol = "tcp";
  bool operator==(const PortMapping&) const = default;
};

// A workload's interface on a Berth network: an address from the network's IPAM (`address`
// asks for that one) and the security groups that filter its ingress (none = no filtering).
struct NetworkAttachment {
  std::string network;
  std::string address;
  std::vector<std::string> security_groups;
  bool operator==(const NetworkAttachment&) const = default;
};

// A Berth disk given to a workload: a VM sees it as a virtio disk (after its image's, in list
// order); a container gets its filesystem mounted at `mount`.
struct DiskAttachment {
  std::string disk;
  std::string mount;  // containers: absolute path inside; VMs: empty
  bool read_only = false;
  bool operator==(const DiskAttachment&) const = default;
};

// What happens when a workload's task ends or its host is lost (`restart:` in the spec).
// `never` (the default) leaves a failed workload failed; `on-failure` starts it again after a
// failure (a non-zero exit, a signal, a failed start, a host that stopped heartbeating);
// `always` after any end the user did not ask for, a clean exit included. Restarts after exits
// wait `backoff`, doubled after each (at most kMaxRestartBackoff), and stop after `max_retries`
// (unset = no limit); a lost host's workloads are placed again elsewhere without counting.
// `fence`: the host's agent stops the workload when it loses the servers for the host TTL, which
// is what lets the server run it elsewhere; a workload with `fence: false` keeps running through
// a partition and is therefore never placed elsewhere while its host is unreachable.
enum class RestartPolicy { kNever, kOnFailure, kAlways };
std::string_view RestartPolicyName(RestartPolicy policy);
inline constexpr absl::Duration kDefaultRestartBackoff = absl::Seconds(1);
inline constexpr absl::Duration kMaxRestartBackoff = absl::Minutes(5);
struct RestartSpec {
  RestartPolicy policy = RestartPolicy::kNever;
  std::optional<int> max_retries;  // unset: no limit
  absl::Duration backoff = kDefaultRestartBackoff;
  bool fence = true;
  bool operator==(const RestartSpec&) const = default;
  // Whether the server may start it on another host once its host is lost.
  bool ReplaceOnHostLoss() const { return policy != RestartPolicy::kNever && fence; }
};

struct WorkloadSpec {
  std::string name;
  WorkloadKind kind = WorkloadKind::kProcess;
  std::vector<std::string> command;
  std::map<std::string, std::string> env;
  std::string working_dir;
  // process kind: the account it runs as, a name ("alice") or "uid[:gid]" ("1000:1000"); empty =
  // the host's unprivileged default (see UserSpec). Root needs the server's permission.
  std::string user;
  std::string image;    // vm and container kinds
  std::string cmdline;  // vm: extra kernel command line
  Resources resources;
  GpuRequest gpu;
  // Devices of other classes (device.h), processes and containers only; each class once.
  std::vector<DeviceRequest> devices;
  std::string tenant = "default";
  int priority = 0;
  bool preemptible = true;
  std::map<std::string, std::string> labels;
  std::vector<LabelConstraint> constraints;
  std::vector<PortMapping> ports;
  std::vector<NetworkAttachment> networks;  // vm and container kinds
  std::vector<DiskAttachment> disks;        // vm and container kinds
  RestartSpec restart;
  bool operator==(const WorkloadSpec&) const = default;
};

// A workload's `user` field, parsed: either an account name resolved on the host, or numeric ids.
struct UserSpec {
  std::string name;             // set for a name, empty for numeric ids
  std::optional<uint32_t> uid;  // set for numeric ids
  std::optional<uint32_t> gid;  // set for "uid:gid"
  bool operator==(const UserSpec&) const = default;
};
// The uid and gid process workloads run as when their spec names no user: nobody/nogroup.
inline constexpr uint32_t kDefaultWorkloadUid = 65534;
inline constexpr uint32_t kDefaultWorkloadGid = 65534;
// Parses "name", "uid" or "uid:gid". InvalidArgument (without object context) when malformed.
absl::StatusOr<UserSpec> ParseUserSpec(std::string_view text);
// Whether `user` asks for root: the name "root", uid 0 or gid 0. Such workloads are created only
// where the server allows root workloads; agents refuse other names that resolve to uid/gid 0.
bool RequestsRoot(std::string_view user);

// Decodes and validates a spec; errors name the workload and the field.
absl::StatusOr<WorkloadSpec> DecodeWorkloadSpec(const Json& json);
Json EncodeWorkloadSpec(const WorkloadSpec& spec);

// The life of a workload. Transitions: pending → scheduled → starting → running →
// stopping → stopped | failed; running ⇄ paused.
enum class WorkloadState {
  kPending,
  kScheduled,
  kStarting,
  kRunning,
  kPaused,
  kStopping,
  kStopped,
  kFailed,
};
std::string_view WorkloadStateName(WorkloadState state);
std::optional<WorkloadState> ParseWorkloadState(std::string_view text);
bool IsTerminal(WorkloadState state);

// What the user wants: the server and the agent converge the actual state on it.
enum class DesiredState { kRunning, kPaused, kStopped, kDeleted };
std::string_view DesiredStateName(DesiredState state);
std::optional<DesiredState> ParseDesiredState(std::string_view text);

struct WorkloadStatus {
  WorkloadState state = WorkloadState::kPending;
  DesiredState desired = DesiredState::kRunning;
  std::string reason;  // why it is in this state
  std::string host;    // where it is placed, empty while pending
  std::vector<GpuAssignment> gpus;
  std::vector<DeviceAssignment> devices;  // the devices of other classes it holds there
  std::optional<int> exit_code;
  bool oom_killed = false;
  int64_t generation = 0;   // bumped at each placement: an agent acts on (name, generation)
  std::string explanation;  // why pending: "gpu model not allowed: 3 hosts; cpu: 1"
  int restarts = 0;  // restarts after exits so far (the restart policy's max_retries counts them)
  // A pending workload restarting after an exit is not placed before this (the backoff).
  absl::Time retry_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
};

Json EncodeWorkloadStatus(const WorkloadStatus& status);
absl::StatusOr<WorkloadStatus> DecodeWorkloadStatus(const Json& json);

// The stored object. `revision` is the store's mod revision of the object.
struct Workload {
  WorkloadSpec spec;
  WorkloadStatus status;
  int64_t revision = 0;
  absl::Time created_at = absl::InfinitePast();
  absl::Time updated_at = absl::InfinitePast();
};

Json EncodeWorkload(const Workload& w);
absl::StatusOr<Workload> DecodeWorkload(const Json& json);

// RFC 3339 in UTC with milliseconds; InfinitePast encodes as null.
Json EncodeTime(absl::Time t);
absl::Time DecodeTime(const Json& j);

}  // namespace berth::core
