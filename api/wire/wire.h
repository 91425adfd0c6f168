// The values that cross the REST API, defined once with their JSON codecs: the server decodes a
// request with the same function the client encodes it with, and the client decodes a reply with
// the function the server encodes it with. Resources the control layer already models (workload
// specs, workloads, hosts, inventories, events) reuse core's codecs; this file adds the shapes
// that exist only on the wire (status reports, registrations, exec, lists, small replies).
//
// Every Decode* checks the shape strictly (unknown fields are refused) and reports the first
// problem as InvalidArgument naming the object and the field, e.g.
// `workload status "web": state is not a workload state, got "sleeping"`.
// Plain values: copyable, no internal synchronization.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/host.h"
#include "core/job.h"
#include "core/json.h"
#include "core/service.h"
#include "core/workload.h"

namespace berth::api::wire {

// PUT /v1/workloads/{name}/status: what an agent says about a workload's task.
struct StatusReport {
  // The reporting host; may be left empty by a host credential (the server knows the caller).
  std::string host;
  int64_t generation = 0;  // the placement generation the agent acted on
  core::WorkloadState state = core::WorkloadState::kRunning;
  std::string reason;
  std::optional<int> exit_code;
  bool oom_killed = false;

  bool operator==(const StatusReport&) const = default;
};
core::Json EncodeStatusReport(const StatusReport& report);
// `workload` names the object in errors.
absl::StatusOr<StatusReport> DecodeStatusReport(std::string_view workload, const core::Json& j);

// POST /v1/hosts: a host (re-)registers its inventory.
struct HostRegistration {
  std::string name;
  core::HostInventory inventory;
};
core::Json EncodeHostRegistration(const HostRegistration& registration);
absl::StatusOr<HostRegistration> DecodeHostRegistration(const core::Json& j);

// The reply to a registration: the host as stored, and, for a host joining with a join token,
// its new credential (shown once; the server keeps only a digest).
struct RegistrationReply {
  core::Host host;
  std::string credential;
  // The server's host TTL and failover grace (zero from servers that do not say): the agent
  // heartbeats well within the TTL and fences its workloads once it has not reached a server
  // for that long (docs/cluster.md).
  absl::Duration host_ttl = absl::ZeroDuration();
  absl::Duration failover_grace = absl::ZeroDuration();
};
core::Json EncodeRegistrationReply(const RegistrationReply& reply);
absl::StatusOr<RegistrationReply> DecodeRegistrationReply(const core::Json& j);

// GET /v1/hosts/{name}: the host and the workloads assigned to it.
struct HostDetail {
  core::Host host;
  std::vector<std::string> workloads;
};
absl::StatusOr<HostDetail> DecodeHostDetail(const core::Json& j);

// The "task_api" field of a heartbeat (PUT /v1/hosts/{name}/heartbeat): where the host's agent
// serves its task API (logs, console, stats, exec of its workloads) and the bearer token it takes.
// The server reaches it at the address the heartbeat came from, on this port; it keeps both in
// memory only and shows them in no answer.
struct TaskApiReport {
  uint16_t port = 0;  // 1..65535
  std::string token;  // kTaskApiTokenLength lower-case hex digits
  bool operator==(const TaskApiReport&) const = default;
};
// The length of a task API token: 32 random bytes as hex.
inline constexpr size_t kTaskApiTokenLength = 64;
// The header that carries a warm state's size with its bytes (the task API's GET
// /v1/warm-states/KEY, and the API server's relay of it), so that a receiver tells a whole copy
// from a cut one.
inline constexpr std::string_view kWarmStateSizeHeader = "X-Berth-Warm-State-Bytes";
core::Json EncodeTaskApiReport(const TaskApiReport& report);
// `host` names the object in errors, which name the field: `host "h": task_api.port must be ...`.
absl::StatusOr<TaskApiReport> DecodeTaskApiReport(std::string_view host, const core::Json& j);

// A list of warm states (SERVICE.rREVISION) in a heartbeat ("warm_states": those the host's
// agent keeps) or in its reply ("drop_warm_states"): at most core::kMaxReportedWarmStates keys,
// each one that core::ParseWarmStateKey takes. Errors name the host and `field`.
core::Json EncodeWarmStates(const std::vector<std::string>& keys);
absl::StatusOr<std::vector<std::string>> DecodeWarmStates(std::string_view host,
                                                          std::string_view field,
                                                          const core::Json& j);

// What a heartbeat carries (PUT /v1/hosts/{name}/heartbeat): what the agent measured on its
// host, where it serves its task API and the warm states it keeps; each part is sent when given,
// and a heartbeat without warm states says the host keeps none.
struct HeartbeatReport {
  std::optional<core::HostUsage> usage;
  std::optional<TaskApiReport> task_api;
  std::vector<std::string> warm_states;  // sorted
};
core::Json EncodeHeartbeatReport(const HeartbeatReport& report);

// The reply to a heartbeat: {"name", "status": "ok"} and, when there are any,
// "drop_warm_states": the warm states the heartbeat reported that no service wants any longer,
// which the agent deletes.
struct HeartbeatReply {
  std::vector<std::string> drop_warm_states;
};
core::Json EncodeHeartbeatReply(std::string_view host, const HeartbeatReply& reply);
absl::StatusOr<HeartbeatReply> DecodeHeartbeatReply(std::string_view host, const core::Json& j);

// POST /v1/workloads/{name}/exec: a command to run inside a workload's task.
struct ExecRequest {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  absl::Duration timeout = absl::Seconds(30);

  bool operator==(const ExecRequest&) const = default;
};
core::Json EncodeExecRequest(const ExecRequest& request);
// A missing timeout keeps the default; `workload` names the object in errors.
absl::StatusOr<ExecRequest> DecodeExecRequest(std::string_view workload, const core::Json& j);

struct ExecReply {
  int exit_code = 0;
  std::string stdout_data;
  std::string stderr_data;

  bool operator==(const ExecReply&) const = default;
};
core::Json EncodeExecReply(const ExecReply& reply);
absl::StatusOr<ExecReply> DecodeExecReply(std::string_view workload, const core::Json& j);

// {"items": [...], "revision": N, "continue": "..."}: every list the API serves. `revision` is
// the store revision the list was read at; pass it back as a blocking query's index to wait for
// the next change. `continue` is there when a `limit` cut the list short: pass it back as
// ?continue= for the next page.
template <typename T>
struct List {
  std::vector<T> items;
  int64_t revision = 0;
  std::string continue_token;
};
using WorkloadList = List<core::Workload>;
using HostList = List<core::Host>;
using EventList = List<core::Event>;
using ServiceList = List<core::Service>;
using JobList = List<core::Job>;
// Resources the control layer keeps as JSON documents (disks, networks, security groups, port
// forwards): their items as the server wrote them.
using JsonList = List<core::Json>;

core::Json EncodeWorkloadList(const WorkloadList& list);
absl::StatusOr<WorkloadList> DecodeWorkloadList(const core::Json& j);

// GET /v1/hosts/{host}/assignments[?since=REV]: the workloads placed on the host that are not
// terminal. {"items", "revision"} is the whole set; with "since" (> 0) it is what changed after
// that revision: the workloads written since, and the names of those that left the host since.
struct Assignments {
  std::vector<core::Workload> items;
  int64_t revision = 0;
  int64_t since = 0;
  std::vector<std::string> removed;
};
core::Json EncodeAssignments(const Assignments& a);
absl::StatusOr<Assignments> DecodeAssignments(std::string_view host, const core::Json& j);
core::Json EncodeHostList(const HostList& list);
absl::StatusOr<HostList> DecodeHostList(const core::Json& j);
core::Json EncodeEventList(const EventList& list);
absl::StatusOr<EventList> DecodeEventList(const core::Json& j);
absl::StatusOr<JsonList> DecodeJsonList(std::string_view kind, const core::Json& j);
core::Json EncodeServiceList(const ServiceList& list);
absl::StatusOr<ServiceList> DecodeServiceList(const core::Json& j);
core::Json EncodeJobList(const JobList& list);
absl::StatusOr<JobList> DecodeJobList(const core::Json& j);

// {"name": ..., "deleted": true}: what deleting a host, disk, network or group answers.
struct Deleted {
  std::string name;
  bool deleted = false;
};
absl::StatusOr<Deleted> DecodeDeleted(std::string_view kind, const core::Json& j);

// {"error": {"code": "not_found", "message": "..."}}: the body of every error response.
struct ErrorBody {
  std::string code;  // snake_case canonical code, e.g. "invalid_argument"
  std::string message;
};
core::Json EncodeErrorBody(const ErrorBody& error);
absl::StatusOr<ErrorBody> DecodeErrorBody(const core::Json& j);

// Requests of the resources the control layer keeps as JSON documents. Empty strings are left
// out of the encoding, so the server applies its defaults.
struct DiskCreate {
  std::string name;
  std::string size;        // "10Gi"
  std::string format;      // "qcow2" (default) or "raw"
  std::string filesystem;  // "ext4", or empty for a blank disk
  std::string from_image;  // an image to copy, instead of a blank disk
  std::string host;        // a fleet: the host whose pool holds it (empty: the server picks)
  std::string pool;        // a fleet: "shared" for the shared pool; empty: the host's own
};
core::Json EncodeDiskCreate(const DiskCreate& request);

struct NetworkCreate {
  std::string name;
  std::string subnet;   // "10.10.0.0/24"
  std::string gateway;  // empty: the subnet's first address
  std::optional<bool> nat;
};
core::Json EncodeNetworkCreate(const NetworkCreate& request);

struct SecurityRule {
  std::string protocol;    // "tcp", "udp", "icmp" or "all"
  std::string ports;       // "22" or "8000-8100"
  std::string from_cidr;   // "10.0.0.0/8"
  std::string from_group;  // another security group
};
core::Json EncodeSecurityRule(const SecurityRule& rule);

struct PortForwardCreate {
  std::string protocol;  // "tcp" (default) or "udp"
  int host_port = 0;
  std::string workload;
  int port = 0;      // the workload's port
  std::string host;  // a fleet's host that takes the connections; empty: the workload's host
};
core::Json EncodePortForwardCreate(const PortForwardCreate& request);

// POST /v1/hosts/{host}/images: an image for a host's catalog from exactly one source (kernel with
// an optional initrd, disk, or rootfs as a tar archive), each a file named relative to the
// directory the server imports from. Empty strings are left out of the encoding.
struct ImageImport {
  std::string name;
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  std::string disk;
  std::string rootfs;
  bool replace = false;  // replace an image of that name instead of AlreadyExists
};
core::Json EncodeImageImport(const ImageImport& request);

// POST /v1/services/{name}/scale: the number of replicas to keep.
struct ServiceScale {
  int replicas = 0;
  bool operator==(const ServiceScale&) const = default;
};
core::Json EncodeServiceScale(const ServiceScale& request);
// `service` names the object in errors; replicas is required and bounded like the spec's.
absl::StatusOr<ServiceScale> DecodeServiceScale(std::string_view service, const core::Json& j);

// DELETE /v1/services/{name}: the service as it stands and whether it is gone (false: its
// replicas are being deleted first).
struct ServiceDeletion {
  core::Service service;
  bool deleted = false;
};
core::Json EncodeServiceDeletion(const ServiceDeletion& deletion);
absl::StatusOr<ServiceDeletion> DecodeServiceDeletion(const core::Json& j);

// DELETE /v1/jobs/{name}: the job as it stands and whether it is gone (false: a running job was
// cancelled and is kept, or a finished one's tasks are being deleted first).
struct JobDeletion {
  core::Job job;
  bool deleted = false;
};
core::Json EncodeJobDeletion(const JobDeletion& deletion);
absl::StatusOr<JobDeletion> DecodeJobDeletion(const core::Json& j);

}  // namespace berth::api::wire
