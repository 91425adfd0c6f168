// ServiceController: keeps each service's replicas (core/service.h). A service owns workloads, as
// a Nomad job owns allocations: they carry the label berth.service=NAME and are named NAME-N.
// Each pass, for every service, the controller
//   * removes replicas that ended (stopped or failed) and replicas that failed their health
//     check failure_threshold times in a row, and creates new ones until `replicas` live again
//     (the scheduler spreads a service's replicas across hosts);
//   * gives a replica that shares its host's network (a process; a vm or container without
//     Berth networks) a free host port from its range, passed as PORT and BERTH_PORT, and for vm
//     and container kinds forwarded to the service's port;
//   * probes running replicas by HTTP or TCP at their host's address, every health.interval of
//     the injected clock, and records which are ready in the service's status;
//   * keeps the service's endpoint (when it has one) open, forwarding to the ready replicas; a
//     replica leaving the service (scaled down, unhealthy) leaves the endpoint first and is
//     deleted once its connections through it ended or endpoint.drain_timeout passed;
//   * rolls a changed template out: replicas carry the revision of the template they were made
//     from (label berth.revision); those of an older revision are replaced within the service's
//     update.max_surge and update.max_unavailable, and a revision not all ready within
//     update.progress_deadline is rolled back to the one before;
//   * with warm_start: snapshot, saves the state of the first ready replica of each revision on
//     its host and has later replicas resume from it there (core/service.h);
//   * with autoscale, sets the number of replicas from the load its endpoint measures
//     (control/service_autoscaler.h), down to zero when it is idle; a request held at the
//     endpoint of a service at zero starts a pass at once, and its first replica is probed every
//     pass until ready;
//   * once the service is being deleted, deletes its replicas and then the service.
// Every service change is one compare-and-set write with its event; replicas are created and
// deleted through the ControlPlane, like any workload.
//
// Ownership: borrows the ControlPlane, the prober and the endpoints, which must outlive it.
// Thread-safety: public methods are thread-safe. Passes run on one thread at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/control_plane.h"
#include "control/endpoint_proxy.h"
#include "control/events.h"
#include "control/pass_loop.h"
#include "control/service_autoscaler.h"
#include "core/clock.h"
#include "core/service.h"
#include "state/repository.h"

namespace berth::control {

inline constexpr std::string_view kServicePrefix = "/services/";

// Of the warm-state keys a host holds (SERVICE.rREVISION), those no service wants any longer, for
// its agent to delete. A service wants the key its status.warm names and the one of its current
// revision (whose save may have ended before the status says so); a key whose service is gone
// is wanted by none. Reads each service named once from `store`; a service that does not decode
// keeps its keys. An error when the store cannot be read: then no key may be called unwanted.
absl::StatusOr<std::vector<std::string>> UnwantedWarmStates(state::Store* store,
                                                            const std::vector<std::string>& keys);

// Checks one replica's health. Probe blocks for at most check.timeout and returns OK when the
// replica answered as the check asks, else why not. Thread-safe: probes run concurrently.
class HealthProber {
 public:
  virtual ~HealthProber() = default;
  virtual absl::Status Probe(const std::string& address, int port,
                             const core::HealthCheck& check) = 0;
};

// Probes over real sockets: TCP connect, or an HTTP/1.1 GET whose status must be 2xx or 3xx.
std::unique_ptr<HealthProber> NewSocketProber();

struct ServiceControllerOptions {
  core::Clock* clock = nullptr;    // defaults to the control plane's
  HealthProber* prober = nullptr;  // required when a service has a health check
  Endpoints* endpoints = nullptr;  // required when a service has an endpoint
  int port_min = 20000;            // the host ports given to replicas
  int port_max = 32767;
  // Where in the range the search for a free port starts; -1 = at random, so that servers
  // sharing hosts rarely pick the same ports.
  int first_port_offset = -1;
  absl::Duration period = absl::Milliseconds(250);  // how often the loop runs a pass
  // Whether this server should act now (the leader, with several servers); null = always.
  std::function<bool()> active;
  // Saves the state of running VM replica `workload` on its host under `key` (warm_start:
  // snapshot) and returns the bytes written; blocks while the replica pauses. Null: services
  // with warm_start boot every replica, and their status says why.
  std::function<absl::StatusOr<int64_t>(const std::string& workload, const std::string& key)>
      save_warm_state;
};

// DELETE's answer: the service as it stands, and whether it is gone already (false: its
// replicas are being deleted first).
struct ServiceDeletion {
  core::Service service;
  bool deleted = false;
};

class ServiceController {
 public:
  ServiceController(ControlPlane* control, ServiceControllerOptions options);
  ~ServiceController();
  ServiceController(const ServiceController&) = delete;
  ServiceController& operator=(const ServiceController&) = delete;

  // Errors: InvalidArgument (naming the field), AlreadyExists, NotFound, FailedPrecondition
  // (a service being deleted cannot be scaled).
  absl::StatusOr<core::Service> Create(const core::ServiceSpec& spec);
  absl::StatusOr<core::Service> Get(std::string_view name);
  absl::StatusOr<std::vector<core::Service>> List(int64_t* revision = nullptr);
  absl::StatusOr<core::Service> Scale(std::string_view name, int replicas);
  // Replaces the spec of an existing service; a changed template starts a rollout to a new
  // revision. Errors as Create's, and FailedPrecondition while it is being deleted.
  absl::StatusOr<core::Service> Update(const core::ServiceSpec& spec);
  // Rolls the template back to the previous revision (and the one undone becomes the previous).
  // FailedPrecondition when there is none.
  absl::StatusOr<core::Service> Undo(std::string_view name);
  absl::StatusOr<ServiceDeletion> Delete(std::string_view name);

  // One pass over every service; returns how many replicas it created or deleted.
  absl::StatusOr<int> ReconcileOnce();
  // Has the loop run a pass now rather than at the end of its period.
  void Poke();

  // Runs a pass every options.period on a background thread until Stop().
  void Start();
  void Stop();
  int64_t loop_failures() const { return loop_.failures(); }

 private:
  using ServiceRepository = state::Repository<
      core::Service, state::FunctionCodec<core::Service, core::EncodeService, core::DecodeService>>;
  // What the controller knows of one replica's health, kept in memory: after a restart every
  // replica is probed again before it counts as ready.
  struct ReplicaHealth {
    int failures = 0;
    bool ready = false;
    bool ever_ready = false;
    absl::Time next_probe = absl::InfinitePast();
    std::string last_error;
  };
  // A replica leaving the service through its endpoint: deleted once no connection to it is
  // open or at the deadline.
  struct Drain {
    absl::Time deadline;
    EndpointBackend backend;
  };
  // An autoscaled service's autoscaler and the endpoint's counters at the last pass.
  struct AutoscaleMemory {
    explicit AutoscaleMemory(absl::Time start) : kpa(start) {}
    ServiceAutoscaler kpa;
    EndpointStats last;
    absl::Time last_at = absl::InfinitePast();
    absl::Time last_request = absl::InfinitePast();  // the last pass that saw a connection
  };
  struct PassState;                                   // service_controller.cc
  using Event = std::pair<std::string, std::string>;  // type, message
  // Edits a service read from the store; returns the event that says what changed, or nullopt
  // when nothing did (then nothing is written).
  using Change = std::function<absl::StatusOr<std::optional<Event>>(core::Service&)>;

  // Reads service `name`, lets `change` edit it and writes it with compare-and-set and the
  // event, reading again after a lost race. A service being deleted cannot be changed:
  // FailedPrecondition saying it cannot be `doing` ("scaled").
  absl::StatusOr<core::Service> Modify(std::string_view name, std::string_view doing,
                                       const Change& change);

  absl::StatusOr<int> ReconcileService(const ServiceRepository::Item& item, PassState& pass)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  // Creates one replica of `svc`'s template, of `revision`, named from *next_index on, to resume
  // from the warm state `warm_key` where its host holds it (empty: none). Returns its name.
  absl::StatusOr<std::string> CreateReplica(const core::Service& svc, int64_t revision,
                                            const std::string& warm_key, int64_t* next_index,
                                            PassState& pass)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  // Measures the service's endpoint, lets its autoscaler decide and records the decision in
  // `status`; returns the replicas to keep.
  int Autoscale(const core::Service& svc, const std::vector<const core::Workload*>& replicas,
                absl::Time now, core::ServiceStatus& status, std::vector<Event>& events,
                PassState& pass) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  // The running replicas' utilization (metric cpu or gpu) by their hosts' latest usage reports,
  // summed.
  static double Utilization(core::AutoscaleSpec::Metric metric,
                            const std::vector<const core::Workload*>& replicas,
                            const std::map<std::string, core::HostUsage>& usages);
  // A host port no live replica holds, or 0 when the range is used up.
  int AllocatePort(PassState& pass) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pass_mu_);
  // Refuses an endpoint port another service holds, one in the replicas' range, or one that
  // cannot be listened on; opens it. InvalidArgument naming endpoint.host_port.
  absl::Status OpenEndpoint(const core::ServiceSpec& spec, bool exists = false);
  // Closes every open endpoint whose service is not in `keep`.
  void CloseEndpoints(const std::set<std::string>& keep);
  // Writes the service as the pass leaves it with its events (if it changed or there are
  // events); a lost race is left to the next pass.
  absl::Status WriteService(const ServiceRepository::Item& item, core::Service next,
                            const std::vector<std::pair<std::string, std::string>>& events);

  ControlPlane* const control_;
  ServiceControllerOptions options_;
  core::Clock* const clock_;
  const EventLog events_;
  ServiceRepository services_;

  absl::Mutex pass_mu_;  // one pass at a time
  std::map<std::string, ReplicaHealth> health_ ABSL_GUARDED_BY(pass_mu_);
  std::map<std::string, Drain> draining_ ABSL_GUARDED_BY(pass_mu_);  // by replica
  int port_cursor_ ABSL_GUARDED_BY(pass_mu_) = 0;
  std::map<std::string, AutoscaleMemory> autoscalers_ ABSL_GUARDED_BY(pass_mu_);  // by service

  PassLoop loop_;  // last: stopped before the members its passes use go
};

std::string ServiceKey(std::string_view name);

}  // namespace berth::control
