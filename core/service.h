// Services: a replicated workload (`kind: service`). The spec holds a workload template, the
// number of replicas, the port each replica serves on and how its health is checked; the status
// says which workloads the service owns as its replicas and which of them are ready. The service
// controller (control/service_controller.h) converges the replicas on the spec. Specs decode
// strictly, and errors name the service and the field (`service "web": health.interval ...`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/json.h"
#include "core/workload.h"

namespace berth::core {

// The labels the service controller puts on the workloads it owns: the owning service, and the
// host port given to a replica that shares its host's network.
inline constexpr std::string_view kServiceLabel = "berth.service";
inline constexpr std::string_view kPortLabel = "berth.port";
// The revision of the template a replica was made from.
inline constexpr std::string_view kRevisionLabel = "berth.revision";
// On a replica of a service with `warm_start: snapshot`: the key of the memory snapshot its host
// restores it from, when that host holds it (the agent boots it otherwise).
inline constexpr std::string_view kWarmStateLabel = "berth.warm-state";
// A warm state's key, SERVICE.rREVISION, taken apart.
struct WarmStateKey {
  std::string service;
  int64_t revision = 0;
  bool operator==(const WarmStateKey&) const = default;
};
// The parts of `key`; nullopt unless it is a valid service name, ".r" and a revision number of
// at most 18 digits. Such a key is safe as a file name.
std::optional<WarmStateKey> ParseWarmStateKey(std::string_view key);
// The most warm-state keys one host reports in a heartbeat.
inline constexpr size_t kMaxReportedWarmStates = 256;
// A replica's name is SERVICE-N, so a service name leaves room for the suffix.
inline constexpr size_t kMaxServiceNameLength = 50;
inline constexpr int kMaxReplicas = 100;

// How a replica's health is checked: an HTTP GET of `http_path` (a 2xx or 3xx answer is
// healthy) or a TCP connect, to the replica's port, every `interval`, each probe given
// `timeout`. A replica is ready after a probe succeeds; `failure_threshold` failures in a row
// take it out of the ready set and replace it. Failures in the first `start_period` after the
// replica started count only once it has been ready.
struct HealthCheck {
  enum class Type { kNone, kHttp, kTcp };
  Type type = Type::kNone;
  std::string http_path;  // kHttp: "/healthz"
  absl::Duration interval = absl::Seconds(2);
  absl::Duration timeout = absl::Seconds(1);
  int failure_threshold = 3;
  absl::Duration start_period = absl::Seconds(30);
  bool operator==(const HealthCheck&) const = default;
};

// The service's endpoint: one stable port on the server's host that forwards each connection to
// a ready replica. A replica leaving the service (scaled down, unhealthy, replaced by an update)
// first leaves the endpoint, then is stopped once its open connections ended or `drain_timeout`
// passed.
// While no replica is ready (none yet, all unhealthy, or scaled to zero) a new connection is held
// up to `wait_timeout` for one; an HTTP request still waiting then gets a 503.
struct EndpointSpec {
  int host_port = 0;  // 0 = no endpoint
  absl::Duration drain_timeout = absl::Seconds(30);
  absl::Duration wait_timeout = absl::Seconds(60);
  bool operator==(const EndpointSpec&) const = default;
};
// The lowest endpoint port: those below are privileged.
inline constexpr int kMinEndpointPort = 1024;

// How a changed template replaces the replicas: at most `max_surge` replicas above `replicas`
// run at once, and at most `max_unavailable` below it are not ready. A revision whose replicas
// are not all ready within `progress_deadline` is rolled back to the one before.
struct UpdateStrategy {
  int max_surge = 1;
  int max_unavailable = 0;
  absl::Duration progress_deadline = absl::Minutes(10);
  bool operator==(const UpdateStrategy&) const = default;
};

// How the number of replicas follows the load measured at the endpoint, as Knative's KPA does:
// the metric (open connections, or new connections per second, over all replicas) averaged over
// `stable_window` divided by `target` is the number of replicas wanted; when the average over
// `panic_window` reaches twice the target per ready replica the autoscaler panics and, until the
// load stayed below that for a stable window, only scales up. A scale-down waits until every
// decision of the last `scale_down_delay` allows it. With `min: 0`, `idle_to_zero` without a
// request stops the last replica; the endpoint then holds the next request while one starts.
// With autoscale, the service's `replicas` is the number it starts with.
//
// The metric may also be the replicas' utilization as their agents report it: `cpu` (CPU time
// per second over the CPU each replica requested) or `gpu` (the utilization of the GPUs each
// replica holds), summed over the running replicas, with `target` the utilization one replica
// should run at (0.01 to 1).
struct AutoscaleSpec {
  enum class Metric { kConcurrency, kRps, kCpu, kGpu };
  int min = 1;
  int max = 1;
  Metric metric = Metric::kConcurrency;
  double target = 1;  // per replica, in the metric's unit
  absl::Duration stable_window = absl::Seconds(60);
  absl::Duration panic_window = absl::Seconds(6);
  absl::Duration scale_down_delay = absl::ZeroDuration();
  absl::Duration idle_to_zero = absl::Seconds(60);  // only with min 0
  bool operator==(const AutoscaleSpec&) const = default;
};
std::string_view AutoscaleMetricName(AutoscaleSpec::Metric metric);

struct ServiceSpec {
  std::string name;
  WorkloadSpec workload_template;  // its name is the service's; replicas get their own
  int replicas = 1;
  int port = 0;  // the port each replica serves on; 0 = none (no health checks by port)
  HealthCheck health;
  EndpointSpec endpoint;
  UpdateStrategy update;
  std::optional<AutoscaleSpec> autoscale;
  // kSnapshot: once a replica of the current revision is ready, its VM's memory and device state
  // are saved on its host (the replica pauses while they are written), and later replicas placed
  // on that host resume from the snapshot instead of booting and loading their model again.
  enum class WarmStart { kNone, kSnapshot };
  WarmStart warm_start = WarmStart::kNone;
  bool operator==(const ServiceSpec&) const = default;
};

// Decodes and validates a service spec ({"name", "kind": "service", "template", "replicas",
// "port", "health", "endpoint", "update", "autoscale", "warm_start"}); errors name the service and
// the field, those of the template with a `template.` prefix.
absl::StatusOr<ServiceSpec> DecodeServiceSpec(const Json& json);
Json EncodeServiceSpec(const ServiceSpec& spec);

// One replica as the controller last saw it.
struct ReplicaStatus {
  std::string workload;
  std::string host;
  int port = 0;  // the host port it serves on; 0 when it has none
  std::string state;
  bool ready = false;
  int failures = 0;  // health probes failed in a row
  std::string reason;
  // Leaving: out of the endpoint, stopped once its connections ended.
  bool draining = false;
  int64_t revision = 0;  // of the template it was made from
  bool operator==(const ReplicaStatus&) const = default;
};

// Where the endpoint listens and whether it does.
struct EndpointStatus {
  std::string address;  // "127.0.0.1:18080"; empty without an endpoint
  bool serving = false;
  int backends = 0;     // ready replicas it forwards to
  std::string message;  // why it does not serve
  bool operator==(const EndpointStatus&) const = default;
};

// Where the service's template stands: the revision replicas are moved to, and the one before,
// kept for a rollback or an undo.
struct RolloutStatus {
  enum class State { kComplete, kProgressing, kRolledBack };
  int64_t revision = 1;  // the template's; replicas carry it in berth.revision
  State state = State::kComplete;
  std::string message;
  absl::Time started_at = absl::InfinitePast();
  int updated = 0;  // live replicas of `revision`
  int updated_ready = 0;
  int64_t previous_revision = 0;  // 0: none
  std::optional<WorkloadSpec> previous_template;
  int64_t next_revision = 2;  // revisions are never reused
  bool operator==(const RolloutStatus&) const = default;
};
std::string_view RolloutStateName(RolloutStatus::State state);

// What the autoscaler last measured and decided. The measured values are refreshed in the
// stored status every few seconds while they change, not every pass.
struct AutoscaleStatus {
  int desired = 0;          // the replicas the service keeps now
  double stable_value = 0;  // the metric averaged over the stable window
  double panic_value = 0;   // and over the panic window
  bool panic = false;
  int waiting = 0;       // requests the endpoint holds for lack of a ready replica
  std::string decision;  // why `desired`, in words
  absl::Time observed_at = absl::InfinitePast();
  absl::Time last_request_at = absl::InfinitePast();
  // A scale from zero in progress (since the request that asked for it), and how long the last
  // one took until a replica was ready.
  absl::Time activating_since = absl::InfinitePast();
  absl::Duration last_activation = absl::ZeroDuration();
  int64_t activations = 0;
  bool operator==(const AutoscaleStatus&) const = default;
};

// The memory snapshot later replicas resume from (warm_start: snapshot): which revision, where it
// was taken, and the last failure to take one.
struct WarmStateStatus {
  int64_t revision = 0;  // of the template; 0: none taken yet
  std::string key;       // the name the host keeps it under (SERVICE.rREVISION)
  std::string host;
  std::string replica;  // the replica it was taken from
  int64_t bytes = 0;
  absl::Duration took = absl::ZeroDuration();  // the time the replica was paused to take it
  absl::Time taken_at = absl::InfinitePast();
  int64_t restores = 0;  // replicas created to resume from it
  std::string error;     // why the last attempt failed
  absl::Time retry_at = absl::InfinitePast();
  bool operator==(const WarmStateStatus&) const = default;
};

struct ServiceStatus {
  int ready = 0;
  std::vector<ReplicaStatus> replicas;
  EndpointStatus endpoint;
  RolloutStatus rollout;
  std::optional<AutoscaleStatus> autoscale;  // with autoscale in the spec, once it ran
  std::optional<WarmStateStatus> warm;       // with warm_start, once a snapshot was tried
  bool deleting = false;
  int64_t next_index = 0;  // the suffix of the next replica's name
  std::string message;
  bool operator==(const ServiceStatus&) const = default;
};

struct Service {
  ServiceSpec spec;
  ServiceStatus status;
  int64_t revision = 0;
  absl::Time created_at = absl::InfinitePast();
  absl::Time updated_at = absl::InfinitePast();
};

Json EncodeServiceStatus(const ServiceStatus& status);
absl::StatusOr<ServiceStatus> DecodeServiceStatus(const Json& json);
Json EncodeService(const Service& service);
absl::StatusOr<Service> DecodeService(const Json& json);

}  // namespace berth::core
