// The typed client of Berth's REST API: one method per operation, requests and replies as the
// wire types of api/wire (the codecs the server uses), errors as absl::Status. Everything that
// talks to a server goes through it: the agent, the CLI, benchmarks and tests. Only tests of
// malformed requests speak raw HTTP.
//
// Errors: transport failures are Unavailable or DeadlineExceeded; an error answer of the server
// becomes the canonical code its body names (else the one its HTTP status implies: 400
// InvalidArgument, 401 Unauthenticated, 403 PermissionDenied, 404 NotFound, 409
// AlreadyExists/FailedPrecondition/Aborted, 429 ResourceExhausted, 501 Unimplemented, 503
// Unavailable) with the server's message, which names the object and the field.
//
// Every typed method takes an optional `Raw*` that receives the reply as the server sent it (the
// JSON body and the X-Berth-Index revision), for `--json` output and blocking-query loops.
//
// Several servers: `base_url` may list them, comma-separated ("http://a:7070,http://b:7070"; a
// missing scheme means http://). Requests go to one server until it cannot be reached, then to
// the next. A request that never left (no connection) is sent to the next server; a read whose
// answer was lost is asked again of the next; a write whose answer was lost is never resent,
// since it may have been applied: it fails with Unavailable saying so. A server that cannot
// reach a leader answers 503 with X-Berth-Unapplied, and the request is sent again (to the next
// server, pausing after each round) for up to ClientOptions::failover_wait.
//
// Thread-safety: calls on one Client are serialized per server (one kept-alive connection
// each); use one Client per thread for parallel requests.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/http/client.h"
#include "api/wire/wire.h"
#include "core/host.h"
#include "core/json.h"
#include "core/workload.h"

namespace berth::api {

struct ClientOptions {
  // Bearer token: the admin token, a host's credential, or a join token (registration only).
  std::string token;
  absl::Duration timeout = absl::Seconds(60);  // per request: connect, write and read
  absl::Duration connect_timeout = absl::Seconds(10);
  // With several servers: how long a request keeps trying while the servers answer that no
  // leader is reachable yet (an election after the leader's loss).
  absl::Duration failover_wait = absl::Seconds(20);
};

// A blocking query: answer once something under the resource changed past `index`, or when
// `wait` ends (the server caps it). index 0 answers at once.
struct Watch {
  int64_t index = 0;
  absl::Duration wait = absl::Seconds(30);
};

// The reply as the server sent it.
struct Raw {
  int status = 0;
  core::Json body;     // the parsed JSON body (null for text replies)
  int64_t index = -1;  // X-Berth-Index: the store revision the answer reflects; -1 when absent
};

// GET /v1/events: events after `index` (all when 0), at most `limit`; with `wait`, a blocking
// query that answers once a newer event exists.
struct EventQuery {
  int64_t index = 0;
  size_t limit = 1000;
  std::optional<absl::Duration> wait;
};

// GET /v1/rebalance/plan: a dry-run defragmentation plan. Unset fields take the server's
// defaults (every pending workload up to 20, 4 moves per plan).
struct RebalanceQuery {
  std::string workload;  // only this pending workload
  int max_moves = 0;     // 0: the server's default
  size_t limit = 0;      // pending workloads looked at; 0: the server's default
};

// One page of a list and the filters the server applies before paging (see the API reference:
// README.md, "Lists"). Empty fields filter nothing.
struct ListRequest {
  size_t limit = 0;            // at most this many items; 0: the whole list in one reply
  std::string continue_token;  // the "continue" of the page before
  std::string state;           // workloads: pending, running, ...; hosts: ready or down
  std::string host;            // workloads placed on this host
  std::string kind;            // workloads: process, container or vm
  std::string tenant;          // workloads of this tenant
  std::string selector;        // labels, e.g. "app=web,tier!=db" (workloads and hosts)
};

// DELETE /v1/workloads/{name}: the workload as it stands, and whether it is gone already
// (false: it is stopping and goes once its task is cleaned up).
struct WorkloadDeletion {
  core::Workload workload;
  bool deleted = false;
};

// A disk backup or restore reports progress in permille (0..1000) while it copies.
using CopyProgress = std::function<void(int permille)>;
// A streamed body (logs, console) in pieces as they arrive; return false to stop.
using ChunkSink = std::function<bool(std::string_view chunk)>;

// What GET /v1/admin/snapshot says of the snapshot it sends.
struct SnapshotDownload {
  std::string format;  // "sqlite" or "etcd"
  int64_t bytes = 0;   // the whole file
  int64_t revision = 0;
  int64_t keys = 0;
};

class Client {
 public:
  // `base_url` is "http://HOST:PORT" (with an optional path prefix), or several of them
  // separated by commas.
  explicit Client(std::string base_url, ClientOptions options = {});
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Replaces the bearer token sent with the next requests.
  void SetToken(std::string token);
  // The server requests go to now.
  const std::string& base_url() const;

  // Any request, for routes this client has no method for yet: `body` is sent as JSON when not
  // null. Returns the parsed JSON body of a 2xx answer (null when it is not JSON).
  absl::StatusOr<core::Json> Call(std::string_view method, std::string_view path_with_query,
                                  const core::Json* body = nullptr, Raw* raw = nullptr);

  // --- Server ---
  // GET /healthz (no token needed).
  absl::Status Health();
  // GET /metrics: the Prometheus text exposition.
  absl::StatusOr<std::string> MetricsText();
  // GET /v1/status: {"server", "leader" (null during an election), "members", "store"}.
  absl::StatusOr<core::Json> ClusterStatus(Raw* raw = nullptr);

  // --- Workloads ---
  absl::StatusOr<core::Workload> CreateWorkload(const core::WorkloadSpec& spec, Raw* raw = nullptr);
  // A spec as the user wrote it: JSON, or YAML with content_type "application/yaml".
  absl::StatusOr<core::Workload> CreateWorkloadFromText(
      std::string_view text, std::string_view content_type = "application/json",
      Raw* raw = nullptr);
  absl::StatusOr<core::Workload> GetWorkload(std::string_view name, const Watch& watch = {},
                                             Raw* raw = nullptr);
  absl::StatusOr<wire::WorkloadList> ListWorkloads(const Watch& watch = {}, Raw* raw = nullptr);
  // One page of the workloads that pass the request's filters (a blocking query with `watch`).
  absl::StatusOr<wire::WorkloadList> ListWorkloads(const ListRequest& request,
                                                   const Watch& watch = {}, Raw* raw = nullptr);
  // Every workload that passes the filters, fetched `page_size` at a time, so that no reply
  // grows with the fleet. The revision is the first page's.
  absl::StatusOr<wire::WorkloadList> ListAllWorkloads(ListRequest request, size_t page_size = 500);
  absl::StatusOr<WorkloadDeletion> DeleteWorkload(std::string_view name, Raw* raw = nullptr);
  // POST /v1/workloads/{name}/actions/{action}: "start", "stop", "pause" or "resume".
  absl::StatusOr<core::Workload> Act(std::string_view name, std::string_view action,
                                     Raw* raw = nullptr);
  absl::StatusOr<core::Workload> StartWorkload(std::string_view name) { return Act(name, "start"); }
  absl::StatusOr<core::Workload> StopWorkload(std::string_view name) { return Act(name, "stop"); }
  absl::StatusOr<core::Workload> PauseWorkload(std::string_view name) { return Act(name, "pause"); }
  absl::StatusOr<core::Workload> ResumeWorkload(std::string_view name) {
    return Act(name, "resume");
  }
  // Why the workload is where it is (pending: what every host lacks).
  absl::StatusOr<std::string> Explain(std::string_view name, Raw* raw = nullptr);
  // PUT /v1/workloads/{name}/status: an agent's report on the workload's task.
  absl::StatusOr<core::Workload> ReportStatus(std::string_view name,
                                              const wire::StatusReport& report, Raw* raw = nullptr);
  // A log ("stdout" or "stderr") as it is now.
  absl::StatusOr<std::string> Logs(std::string_view name, std::string_view stream = "stdout");
  // Streams a log to `sink`; with `follow`, until the workload ends or `sink` returns false.
  absl::Status StreamLogs(std::string_view name, std::string_view stream, bool follow,
                          const ChunkSink& sink);
  // The serial console of a VM workload, as it is now, or streamed.
  absl::StatusOr<std::string> Console(std::string_view name);
  absl::Status StreamConsole(std::string_view name, bool follow, const ChunkSink& sink);
  // Live counters of the workload's task (see agent::LocalHost::Stats for the fields).
  absl::StatusOr<core::Json> Stats(std::string_view name, Raw* raw = nullptr);
  absl::StatusOr<wire::ExecReply> Exec(std::string_view name, const wire::ExecRequest& request,
                                       Raw* raw = nullptr);

  // --- Hosts ---
  absl::StatusOr<wire::RegistrationReply> RegisterHost(const wire::HostRegistration& registration,
                                                       Raw* raw = nullptr);
  // PUT /v1/hosts/{name}/heartbeat, with what the agent measured on the host, where it serves
  // its task API and the warm states it keeps (wire::HeartbeatReport); the reply names the warm
  // states to delete.
  absl::StatusOr<wire::HeartbeatReply> Heartbeat(std::string_view host,
                                                 const wire::HeartbeatReport& report,
                                                 Raw* raw = nullptr);
  // The same with no warm states (the server then takes the host to keep none), for callers
  // that need no reply.
  absl::Status Heartbeat(std::string_view host,
                         const std::optional<core::HostUsage>& usage = std::nullopt,
                         const std::optional<wire::TaskApiReport>& task_api = std::nullopt,
                         Raw* raw = nullptr);
  // The workloads placed on `host`, as a blocking query.
  absl::StatusOr<wire::WorkloadList> Assignments(std::string_view host, const Watch& watch = {},
                                                 Raw* raw = nullptr);
  // The same as a change since store revision `since` (> 0; the reply's `since` is 0 when the
  // server answers the whole set instead, as it does when it cannot tell what changed).
  absl::StatusOr<wire::Assignments> AssignmentsSince(std::string_view host, int64_t since,
                                                     const Watch& watch = {}, Raw* raw = nullptr);
  absl::StatusOr<wire::HostDetail> GetHost(std::string_view name, Raw* raw = nullptr);
  absl::StatusOr<wire::HostList> ListHosts(Raw* raw = nullptr);
  absl::StatusOr<wire::HostList> ListHosts(const ListRequest& request, Raw* raw = nullptr);
  absl::StatusOr<wire::HostList> ListAllHosts(ListRequest request, size_t page_size = 500);
  absl::Status DeleteHost(std::string_view name, Raw* raw = nullptr);
  // POST /v1/hosts/NAME/{cordon,uncordon,drain}: the host as it stands after the call; a drain
  // goes on in the server (its progress: core::Host::draining, drain_current, drain_moved).
  absl::StatusOr<core::Host> HostAction(std::string_view name, std::string_view verb,
                                        Raw* raw = nullptr);

  // --- Host image catalogs ---
  // {"host": ..., "items": [image...]}, sorted by name.
  absl::StatusOr<core::Json> ListImages(std::string_view host, Raw* raw = nullptr);
  absl::StatusOr<core::Json> GetImage(std::string_view host, std::string_view name,
                                      Raw* raw = nullptr);
  // Copies the named files into the host's catalog (may take minutes); returns the image.
  absl::StatusOr<core::Json> ImportImage(std::string_view host, const wire::ImageImport& request,
                                         Raw* raw = nullptr);
  absl::Status RemoveImage(std::string_view host, std::string_view name, Raw* raw = nullptr);

  // --- Tenants and quotas ---
  // {"items": [{"name", "quota", "used"}...]}
  absl::StatusOr<core::Json> ListTenants(Raw* raw = nullptr);
  // `quota` as the user wrote it ({"cpu": "4", "memory": "8Gi", "gpu": 2}); returns the quota
  // as stored.
  absl::StatusOr<core::Json> SetQuota(std::string_view tenant, const core::Json& quota,
                                      Raw* raw = nullptr);
  absl::Status DeleteQuota(std::string_view tenant, Raw* raw = nullptr);

  // --- Cluster summary ---
  // GET /v1/summary: the cluster's totals over its ready hosts, workloads by state and GPU
  // fragmentation, as the server encodes them (api/routes_ui.cc).
  absl::StatusOr<core::Json> Summary(Raw* raw = nullptr);

  // --- Rebalance ---
  // The plan as the server encodes it (control::EncodeRebalanceReport): {"dry_run", "policy",
  // "max_moves", "gpu", "pending", "more", "items": [...]}.
  absl::StatusOr<core::Json> RebalancePlan(const RebalanceQuery& query = {}, Raw* raw = nullptr);

  // --- Events ---
  absl::StatusOr<wire::EventList> ListEvents(const EventQuery& query = {}, Raw* raw = nullptr);

  // --- Services (replicated workloads) ---
  absl::StatusOr<core::Service> CreateService(const core::ServiceSpec& spec, Raw* raw = nullptr);
  // A spec as the user wrote it: JSON, or YAML with content_type "application/yaml".
  absl::StatusOr<core::Service> CreateServiceFromText(
      std::string_view text, std::string_view content_type = "application/json",
      Raw* raw = nullptr);
  absl::StatusOr<core::Service> GetService(std::string_view name, Raw* raw = nullptr);
  absl::StatusOr<wire::ServiceList> ListServices(Raw* raw = nullptr);
  absl::StatusOr<core::Service> ScaleService(std::string_view name, int replicas,
                                             Raw* raw = nullptr);
  // Replaces service `name`'s spec (JSON, or YAML with content_type "application/yaml"); a
  // changed template starts a rollout.
  absl::StatusOr<core::Service> UpdateServiceFromText(
      std::string_view name, std::string_view text,
      std::string_view content_type = "application/json", Raw* raw = nullptr);
  // Rolls the template back to the previous revision.
  absl::StatusOr<core::Service> UndoServiceRollout(std::string_view name, Raw* raw = nullptr);
  // The service as it stands, and whether it is gone (false: its replicas go first).
  absl::StatusOr<wire::ServiceDeletion> DeleteService(std::string_view name, Raw* raw = nullptr);

  // --- Jobs (gang-scheduled training jobs) ---
  absl::StatusOr<core::Job> CreateJob(const core::JobSpec& spec, Raw* raw = nullptr);
  // A spec as the user wrote it: JSON, or YAML with content_type "application/yaml".
  absl::StatusOr<core::Job> CreateJobFromText(std::string_view text,
                                              std::string_view content_type = "application/json",
                                              Raw* raw = nullptr);
  absl::StatusOr<core::Job> GetJob(std::string_view name, Raw* raw = nullptr);
  absl::StatusOr<wire::JobList> ListJobs(Raw* raw = nullptr);
  // Cancels a running job (kept, deleted: false) or removes a finished one.
  absl::StatusOr<wire::JobDeletion> DeleteJob(std::string_view name, Raw* raw = nullptr);

  // --- Disks and pools (the control layer keeps them as JSON documents) ---
  absl::StatusOr<core::Json> CreateDisk(const wire::DiskCreate& request, Raw* raw = nullptr);
  absl::StatusOr<wire::JsonList> ListDisks(Raw* raw = nullptr);
  absl::StatusOr<core::Json> GetDisk(std::string_view name, Raw* raw = nullptr);
  absl::Status DeleteDisk(std::string_view name, Raw* raw = nullptr);
  absl::StatusOr<core::Json> ResizeDisk(std::string_view name, std::string_view size,
                                        Raw* raw = nullptr);
  absl::StatusOr<core::Json> SnapshotDisk(std::string_view name, std::string_view snapshot,
                                          Raw* raw = nullptr);
  absl::StatusOr<core::Json> RevertDisk(std::string_view name, std::string_view snapshot,
                                        Raw* raw = nullptr);
  // A new disk `target` from `name` (at `snapshot` when not empty).
  absl::StatusOr<core::Json> CloneDisk(std::string_view name, std::string_view snapshot,
                                       std::string_view target, Raw* raw = nullptr);
  absl::StatusOr<core::Json> AttachDisk(std::string_view name, std::string_view workload,
                                        Raw* raw = nullptr);
  absl::StatusOr<core::Json> DetachDisk(std::string_view name, Raw* raw = nullptr);
  // Copies the disk into `file` (under the server's backup directory); returns the backup.
  absl::StatusOr<core::Json> BackupDisk(std::string_view name, std::string_view file,
                                        const CopyProgress& progress = nullptr);
  // Makes disk `name` from backup `file`; returns the disk.
  // On a fleet, `host` names the host whose backup directory holds it (`pool` "shared": the
  // shared pool's).
  absl::StatusOr<core::Json> RestoreDisk(std::string_view file, std::string_view name,
                                         const CopyProgress& progress = nullptr,
                                         std::string_view host = "", std::string_view pool = "");
  // {"items": [pool...]}
  absl::StatusOr<core::Json> ListPools(Raw* raw = nullptr);

  // --- Networks ---
  absl::StatusOr<core::Json> CreateNetwork(const wire::NetworkCreate& request, Raw* raw = nullptr);
  absl::StatusOr<wire::JsonList> ListNetworks(Raw* raw = nullptr);
  absl::StatusOr<core::Json> GetNetwork(std::string_view name, Raw* raw = nullptr);
  absl::Status DeleteNetwork(std::string_view name, Raw* raw = nullptr);
  // An address on the network for `owner` (`address` empty: the next free one); returns it.
  absl::StatusOr<std::string> AllocateAddress(std::string_view network, std::string_view owner,
                                              std::string_view address = {}, Raw* raw = nullptr);
  absl::Status ReleaseAddress(std::string_view network, std::string_view owner, Raw* raw = nullptr);

  // --- Security groups ---
  absl::StatusOr<core::Json> CreateSecurityGroup(std::string_view name, Raw* raw = nullptr);
  absl::StatusOr<wire::JsonList> ListSecurityGroups(Raw* raw = nullptr);
  absl::StatusOr<core::Json> GetSecurityGroup(std::string_view name, Raw* raw = nullptr);
  absl::Status DeleteSecurityGroup(std::string_view name, Raw* raw = nullptr);
  // Returns the group with the rule added (each rule in spec.rules carries its "id").
  absl::StatusOr<core::Json> AddRule(std::string_view group, const wire::SecurityRule& rule,
                                     Raw* raw = nullptr);
  absl::StatusOr<core::Json> RemoveRule(std::string_view group, std::string_view rule_id,
                                        Raw* raw = nullptr);

  // --- Control plane ---
  // GET /v1/admin/snapshot: the server saves a consistent snapshot of its whole store and sends
  // it; `sink` gets its bytes in order (false stops). The reply's headers describe it; the
  // caller checks that `bytes` arrived.
  absl::StatusOr<SnapshotDownload> DownloadSnapshot(const ChunkSink& sink);

  // GET /v1/hosts/HOST/warm-states/KEY (a host credential): the warm state KEY as another host
  // keeps it, for a replica placed on HOST. `sink` gets its bytes in order (false stops);
  // returns the size the reply announced, which the caller checks arrived whole.
  absl::StatusOr<int64_t> DownloadWarmState(std::string_view host, std::string_view key,
                                            const ChunkSink& sink);

  // --- Port forwards ---
  absl::StatusOr<core::Json> AddPortForward(const wire::PortForwardCreate& request,
                                            Raw* raw = nullptr);
  absl::StatusOr<wire::JsonList> ListPortForwards(Raw* raw = nullptr);
  absl::Status RemovePortForward(std::string_view id, Raw* raw = nullptr);

 private:
  // Sends a request; a non-2xx answer becomes its Status. Fills `raw` when given.
  absl::StatusOr<core::Json> Send(std::string_view method, const std::string& path,
                                  std::string_view body, std::string_view content_type, Raw* raw);
  absl::StatusOr<core::Json> SendJson(std::string_view method, const std::string& path,
                                      const core::Json& body, Raw* raw);
  absl::StatusOr<std::string> Text(const std::string& path);
  absl::Status StreamText(const std::string& path, const ChunkSink& sink);
  absl::StatusOr<core::Json> Copy(const std::string& path, const core::Json& body,
                                  const CopyProgress& progress);

  // Sends through the current server, moving on to the next as the class comment says.
  absl::StatusOr<HttpResponse> Exchange(
      std::string_view method,
      const std::function<absl::StatusOr<HttpResponse>(HttpClient&)>& send);

  const ClientOptions options_;
  std::vector<std::unique_ptr<HttpClient>> servers_;  // never empty
  std::atomic<size_t> current_{0};
};

}  // namespace berth::api
