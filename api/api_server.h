// ApiServer: Berth's REST API under /v1, served by the asynchronous HTTP transport. It parses
// and validates requests, checks bearer tokens, maps errors to HTTP codes, and delegates every
// decision to the ControlPlane. Lists and gets accept blocking queries (`?index=N&wait=30s`):
// the answer is parked, without a thread, until something under the resource changes past
// revision N or the wait ends.
//
// Handlers run on a pool of worker threads sized to the machine, never on the I/O threads; a
// parked blocking query holds no worker while it waits. When every worker is busy and the queue
// is full, a request is answered 503 with Retry-After at once.
//
// Thread-safety: the server runs on its own I/O and worker threads; Start/Stop from one thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/local_host.h"
#include "api/http/metrics.h"
#include "api/http/router.h"
#include "api/http/server.h"
#include "api/http/work_pool.h"
#include "api/task_api.h"
#include "api/task_proxy.h"
#include "control/control_plane.h"

namespace berth::api {

// The API reaches the tasks of this process's own host (dev mode: the local agent) through the
// agent's LocalHost interface.
using agent::LocalHost;

struct ApiServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int threads = 2;  // I/O threads: they read and write sockets, and run no handler
  // Handler threads (WorkPool): 0 sizes the pool to the machine, at least 4. Negative runs
  // handlers on the I/O threads, as servers did before the pool (bench/api's baseline).
  int workers = 0;
  // Requests waiting for a handler thread before more are answered 503 with Retry-After.
  size_t max_queued = 1024;
  std::string admin_token;  // full access
  // Join tokens: they may only register a host (POST /v1/hosts). A registration returns a
  // credential for that host alone, which its agent uses for everything after.
  std::vector<std::string> agent_tokens;
  // Read-only tokens: GET requests only (a Prometheus scraper, a dashboard that only watches),
  // and not logs or consoles, which may carry secrets.
  std::vector<std::string> read_tokens;
  size_t max_body_bytes = 1 << 20;
  absl::Duration max_wait = absl::Minutes(5);  // cap on ?wait=
  // How long one GET /v1/summary answer serves every caller (it reads every host and workload).
  absl::Duration summary_max_age = absl::Seconds(1);
};

class ApiServer {
 public:
  // `local` (not owned, may be null) serves logs, consoles, exec and stats of the tasks of this
  // server's own host (dev mode); those of workloads on other hosts are relayed to their
  // agents' task APIs.
  ApiServer(ApiServerOptions options, control::ControlPlane* control, LocalHost* local);
  ~ApiServer();
  absl::StatusOr<uint16_t> Start();
  void Stop();
  uint16_t port() const;
  MetricsRegistry& metrics() { return metrics_; }
  // The routes, for registering more resources before Start().
  Router& router() { return router_; }
  // Execs and relayed follows running now (each on its own thread).
  int blocking_calls() { return calls_.running(); }
  // Saves the warm state of a running VM workload under `key` on its host: through the local
  // host for this server's own, else through the task API of the host it runs on. Blocks while
  // the state is written; returns the bytes written.
  absl::StatusOr<int64_t> SaveWarmState(const std::string& workload, const std::string& key);

 private:
  // Authentication, then every route file's routes.
  void Routes();
  // One per route file: api/routes_system.cc (health, metrics), routes_workloads.cc,
  // routes_hosts.cc (registration, heartbeats, assignments, status reports), routes_tenants.cc,
  // routes_events.cc, routes_ui.cc (the dashboard's static files).
  void SystemRoutes();
  void WorkloadRoutes();
  void HostRoutes();
  void TenantRoutes();
  void EventRoutes();
  void UiRoutes();
  // What a blocking query on a filtered list needs to tell the changes that concern it.
  struct ListWatch {
    // The store keys the answer lists now; sets the revision it read them at.
    std::function<absl::StatusOr<std::set<std::string>>(int64_t* revision)> shown;
    // Whether an object stored as `kv` passes the list's filter.
    std::function<bool(const state::KeyValue& kv)> matches;
  };
  // Answers now, or parks the request until `prefix` changes past ?index= or ?wait= ends. With
  // `filter` set, only a change that concerns the filtered list ends the wait (see the body).
  void Blocking(const HttpRequest& request, Responder responder, std::string prefix,
                std::function<HttpResponse()> answer, ListWatch filter = {});
  HttpResponse Metrics();
  // The per-host series of /metrics (capacity, allocated, used, per GPU device), labelled by
  // host, resource and GPU index only: bounded by the fleet, never by the workloads.
  std::string HostSeries();
  // Per placed workload: allocated and (where its host's agent measured it) used.
  std::string WorkloadSeries(const std::vector<core::Workload>& workloads);
  // Adds "allocated" (core::HostAllocation) and "used" (the agent's last core::HostUsage, or
  // null) to each encoded host of `hosts`.
  void AddAllocationAndUsage(core::Json& hosts);
  // Where the workload's task is reached from this server: none for the server's own host (dev
  // mode: `logs_`), else the task API of the host it runs on; an error answer (404 no such
  // workload, 409 not placed yet, 503 host down or no task API known) when neither.
  absl::StatusOr<std::optional<TaskApiTarget>> TaskHost(const std::string& name);
  // How a log or console of this server's own host is followed: until the workload ends.
  TaskFileFollow Follow(const std::string& name);

  ApiServerOptions options_;
  control::ControlPlane* control_;
  LocalHost* logs_;
  // Execs and relayed streams run on their own threads; Stop waits for them.
  BlockingCalls calls_;
  // GET /v1/summary reads every host and workload: one reply serves every caller for
  // options_.summary_max_age, and one caller at a time computes it (the others wait for it).
  absl::Mutex summary_compute_mu_;
  absl::Mutex summary_mu_;
  std::optional<core::Json> summary_ ABSL_GUARDED_BY(summary_mu_);
  absl::Time summary_at_ ABSL_GUARDED_BY(summary_mu_) = absl::InfinitePast();
  MetricsRegistry metrics_;
  Router router_;
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace berth::api
