#include "core/service.h"

#include <cmath>

#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::core {
namespace {

// A duration field such as "2s" or "1m30s", within [min, max].
absl::Status DurationField(const JsonContext& ctx, const Json& obj, std::string_view path,
                           const std::string& key, absl::Duration min, absl::Duration max,
                           absl::Duration* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  const std::string field = JoinPath(path, key);
  if (!it->is_string()) {
    return ctx.Error(field, Cat("must be a duration like \"2s\", got ", Preview(*it)));
  }
  absl::Duration d;
  if (!absl::ParseDuration(it->get<std::string>(), &d)) {
    return ctx.Error(field, Cat("must be a duration like \"2s\", got ", Preview(*it)));
  }
  if (d < min || d > max) {
    return ctx.Error(field, Cat("must be between ", absl::FormatDuration(min), " and ",
                                absl::FormatDuration(max), ", got ", absl::FormatDuration(d)));
  }
  *out = d;
  return absl::OkStatus();
}

absl::Status DecodeHealth(const JsonContext& ctx, const Json& j, HealthCheck* h) {
  BERTH_RETURN_IF_ERROR(
      CheckObject(ctx, j, "health",
                  {"http", "tcp", "interval", "timeout", "failure_threshold", "start_period"}));
  const bool http = j.contains("http") && !j["http"].is_null();
  const bool tcp = j.contains("tcp") && !j["tcp"].is_null() && j["tcp"] != false;
  if (http && tcp) return ctx.Error("health", "takes one of http or tcp, not both");
  if (!http && !tcp) return ctx.Error("health", "needs http: PATH or tcp: true");
  if (http) {
    if (!j["http"].is_string()) {
      return ctx.Error("health.http",
                       Cat("must be a path like \"/healthz\", got ", Preview(j["http"])));
    }
    h->http_path = j["http"].get<std::string>();
    if (h->http_path.empty() || h->http_path[0] != '/' || h->http_path.size() > 256) {
      return ctx.Error(
          "health.http",
          Cat("must be a path starting with / of at most 256 bytes, got ", Preview(j["http"])));
    }
    for (char c : h->http_path) {
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
        return ctx.Error("health.http", "must not hold spaces or control characters");
      }
    }
    h->type = HealthCheck::Type::kHttp;
  } else {
    if (!j["tcp"].is_boolean()) {
      return ctx.Error("health.tcp", Cat("must be true, got ", Preview(j["tcp"])));
    }
    h->type = HealthCheck::Type::kTcp;
  }
  BERTH_RETURN_IF_ERROR(DurationField(ctx, j, "health", "interval", absl::Milliseconds(100),
                                      absl::Hours(1), &h->interval));
  BERTH_RETURN_IF_ERROR(DurationField(ctx, j, "health", "timeout", absl::Milliseconds(10),
                                      absl::Minutes(1), &h->timeout));
  BERTH_RETURN_IF_ERROR(DurationField(ctx, j, "health", "start_period", absl::ZeroDuration(),
                                      absl::Hours(1), &h->start_period));
  int64_t threshold = h->failure_threshold;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "health", "failure_threshold", 1, 100, &threshold));
  h->failure_threshold = static_cast<int>(threshold);
  return absl::OkStatus();
}

absl::Status DecodeEndpoint(const JsonContext& ctx, const Json& j, EndpointSpec* e) {
  BERTH_RETURN_IF_ERROR(
      CheckObject(ctx, j, "endpoint", {"host_port", "drain_timeout", "wait_timeout"}));
  if (!j.contains("host_port") || j["host_port"].is_null()) {
    return ctx.Error("endpoint.host_port", "is required: the port clients connect to");
  }
  if (!j["host_port"].is_number_integer()) {
    return ctx.Error("endpoint.host_port",
                     Cat("must be a port number like 18080, got ", Preview(j["host_port"])));
  }
  int64_t port = j["host_port"].get<int64_t>();
  if (port > 0 && port < kMinEndpointPort) {
    return ctx.Error("endpoint.host_port", Cat("must be at least ", kMinEndpointPort,
                                               " (lower ports are privileged), got ", port));
  }
  BERTH_RETURN_IF_ERROR(
      OptionalInt(ctx, j, "endpoint", "host_port", kMinEndpointPort, 65535, &port));
  e->host_port = static_cast<int>(port);
  BERTH_RETURN_IF_ERROR(DurationField(ctx, j, "endpoint", "drain_timeout", absl::ZeroDuration(),
                                      absl::Hours(1), &e->drain_timeout));
  BERTH_RETURN_IF_ERROR(DurationField(ctx, j, "endpoint", "wait_timeout", absl::Seconds(1),
                                      absl::Minutes(10), &e->wait_timeout));
  return absl::OkStatus();
}

absl::Status DecodeAutoscale(const JsonContext& ctx, const Json& j, AutoscaleSpec* a) {
  BERTH_RETURN_IF_ERROR(CheckObject(ctx, j, "autoscale",
                                    {"min", "max", "metric", "target", "stable_window",
                                     "panic_window", "scale_down_delay", "idle_to_zero"}));
  int64_t min = a->min, max = 0;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "autoscale", "min", 0, kMaxReplicas, &min));
  if (!j.contains("max") || j["max"].is_null()) {
    return ctx.Error("autoscale.max", "is required: the most replicas the autoscaler may run");
  }
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "autoscale", "max", 1, kMaxReplicas, &max));
  if (max < min) {
    return ctx.Error("autoscale.max", Cat("must be at least autoscale.min (", min, "), got ", max));
  }
  a->min = static_cast<int>(min);
  a->max = static_cast<int>(max);
  std::string metric = "concurrency";
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "autoscale", "metric", &metric));
  if (metric == "concurrency") {
    a->metric = AutoscaleSpec::Metric::kConcurrency;
  } else if (metric == "rps") {
    a->metric = AutoscaleSpec::Metric::kRps;
  } else if (metric == "cpu") {
    a->metric = AutoscaleSpec::Metric::kCpu;
  } else if (metric == "gpu") {
    a->metric = AutoscaleSpec::Metric::kGpu;
  } else {
    return ctx.Error("autoscale.metric",
                     Cat("must be concurrency, rps, cpu or gpu, got ", Preview(j["metric"])));
  }
  if (!j.contains("target") || j["target"].is_null()) {
    return ctx.Error("autoscale.target",
                     "is required: the concurrency (or requests per second) one replica should "
                     "take, like 4");
  }
  if (!j["target"].is_number()) {
    return ctx.Error("autoscale.target",
                     Cat("must be a number like 4, got ", Preview(j["target"])));
  }
  const double target = j["target"].get<double>();
  if (!std::isfinite(target) || target < 0.01 || target > 1e6) {
    return ctx.Error("autoscale.target",
                     Cat("must be between 0.01 and 1000000, got ", Preview(j["target"])));
  }
  const bool utilization =
      a->metric == AutoscaleSpec::Metric::kCpu || a->metric == AutoscaleSpec::Metric::kGpu;
  if (utilization && target > 1) {
    return ctx.Error("autoscale.target",
                     Cat("for metric ", metric,
                         " is the utilization one replica should run at, between 0.01 and 1 "
                         "(0.7: 70 %), got ",
                         Preview(j["target"])));
  }
  a->target = target;
  BERTH_RETURN_IF_ERROR(DurationField(ctx, j, "autoscale", "stable_window", absl::Seconds(6),
                                      absl::Hours(1), &a->stable_window));
  BERTH_RETURN_IF_ERROR(DurationField(ctx, j, "autoscale", "panic_window", absl::Seconds(1),
                                      absl::Hours(1), &a->panic_window));
  if (a->panic_window > a->stable_window) {
    return ctx.Error(
        "autoscale.panic_window",
        Cat("must not exceed autoscale.stable_window (", absl::FormatDuration(a->stable_window),
            "), got ", absl::FormatDuration(a->panic_window)));
  }
  BERTH_RETURN_IF_ERROR(DurationField(ctx, j, "autoscale", "scale_down_delay", absl::ZeroDuration(),
                                      absl::Hours(1), &a->scale_down_delay));
  if (j.contains("idle_to_zero") && !j["idle_to_zero"].is_null() && a->min > 0) {
    return ctx.Error("autoscale.idle_to_zero",
                     Cat("applies only with autoscale.min 0 (a service that may stop its last "
                         "replica), got min ",
                         a->min));
  }
  return DurationField(ctx, j, "autoscale", "idle_to_zero", absl::Seconds(1), absl::Hours(24),
                       &a->idle_to_zero);
}

// A measured value as stored: two decimals, so that noise below them changes nothing.
double Round2(double v) { return std::round(v * 100) / 100; }

absl::Status DecodeUpdate(const JsonContext& ctx, const Json& j, UpdateStrategy* u) {
  BERTH_RETURN_IF_ERROR(
      CheckObject(ctx, j, "update", {"max_surge", "max_unavailable", "progress_deadline"}));
  int64_t surge = u->max_surge, unavailable = u->max_unavailable;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "update", "max_surge", 0, kMaxReplicas, &surge));
  BERTH_RETURN_IF_ERROR(
      OptionalInt(ctx, j, "update", "max_unavailable", 0, kMaxReplicas, &unavailable));
  if (surge == 0 && unavailable == 0) {
    return ctx.Error("update",
                     "max_surge and max_unavailable cannot both be 0 (no replica could "
                     "be replaced)");
  }
  u->max_surge = static_cast<int>(surge);
  u->max_unavailable = static_cast<int>(unavailable);
  return DurationField(ctx, j, "update", "progress_deadline", absl::Seconds(1), absl::Hours(24),
                       &u->progress_deadline);
}

// The template's own errors read `workload "svc": FIELD ...`; they are said as the service's.
absl::Status TemplateError(const JsonContext& ctx, const absl::Status& s) {
  std::string message(s.message());
  const std::string prefix = Cat("workload \"", ctx.name, "\": ");
  if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
  return absl::InvalidArgumentError(Cat("service \"", ctx.name, "\": template.", message));
}

// A memory snapshot holds the whole guest, so what a restored replica is must not depend on
// anything that differs between replicas or that a snapshot cannot carry.
absl::Status CheckWarmStart(const JsonContext& ctx, const ServiceSpec& spec) {
  const WorkloadSpec& t = spec.workload_template;
  if (t.kind != WorkloadKind::kVm) {
    return ctx.Error("warm_start", Cat("snapshot needs a vm template (template.kind: vm), got ",
                                       WorkloadKindName(t.kind)));
  }
  if (spec.health.type == HealthCheck::Type::kNone) {
    return ctx.Error("warm_start",
                     "snapshot needs a health check (health: {http: /healthz}): the snapshot is "
                     "taken once a replica is ready, after it loaded its model");
  }
  if (!t.disks.empty()) {
    return ctx.Error("warm_start",
                     "snapshot cannot be used with template.disks: a restored replica would see "
                     "another replica's disk state; keep the model in the image or the guest's "
                     "memory");
  }
  if (!t.networks.empty()) {
    return ctx.Error("warm_start",
                     "snapshot cannot be used with template.networks: every restored replica "
                     "would resume with the same guest address");
  }
  if (t.gpu.kind != GpuRequest::Kind::kNone) {
    return ctx.Error("warm_start",
                     "snapshot cannot be used with template.resources.gpu: passed-through "
                     "devices cannot be saved with the VM's memory");
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<WarmStateKey> ParseWarmStateKey(std::string_view key) {
  const size_t dot = key.rfind(".r");
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  const std::string_view digits = key.substr(dot + 2);
  if (digits.empty() || digits.size() > 18) return std::nullopt;
  int64_t revision = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    revision = revision * 10 + (c - '0');
  }
  const std::string_view service = key.substr(0, dot);
  if (!ValidateName("service", service).ok()) return std::nullopt;
  return WarmStateKey{.service = std::string(service), .revision = revision};
}

absl::StatusOr<ServiceSpec> DecodeServiceSpec(const Json& json) {
  JsonContext ctx{"service", ""};
  if (!json.is_object()) return ctx.Error("body", "must be a JSON object");
  if (auto it = json.find("name"); it != json.end() && it->is_string()) {
    ctx.name = it->get<std::string>();
  }
  BERTH_RETURN_IF_ERROR(CheckObject(ctx, json, "",
                                    {"name", "kind", "template", "replicas", "port", "health",
                                     "endpoint", "update", "autoscale", "warm_start"}));
  if (!json.contains("name")) return ctx.Error("name", "is required");
  if (!json["name"].is_string()) return ctx.Error("name", "must be a string");
  ServiceSpec spec;
  spec.name = ctx.name;
  BERTH_RETURN_IF_ERROR(ValidateName("service", spec.name));
  if (spec.name.size() > kMaxServiceNameLength) {
    return ctx.Error("name",
                     Cat("must be at most ", kMaxServiceNameLength,
                         " characters (replicas are named NAME-N), got ", spec.name.size()));
  }
  if (auto it = json.find("kind"); it != json.end() && !it->is_null()) {
    if (*it != "service") {
      return ctx.Error("kind", Cat("must be \"service\" (or left out), got ", Preview(*it)));
    }
  }
  if (!json.contains("template") || !json["template"].is_object()) {
    return ctx.Error("template",
                     "is required: the workload spec of each replica (kind, command or image, "
                     "resources)");
  }
  Json tmpl = json["template"];
  if (tmpl.contains("name")) {
    return ctx.Error("template.name",
                     "is set by the service (replicas are named NAME-N); leave it out");
  }
  tmpl["name"] = spec.name;
  absl::StatusOr<WorkloadSpec> w = DecodeWorkloadSpec(tmpl);
  if (!w.ok()) return TemplateError(ctx, w.status());
  for (std::string_view reserved : {kServiceLabel, kPortLabel, kRevisionLabel, kWarmStateLabel}) {
    if (w->labels.contains(std::string(reserved))) {
      return ctx.Error(Cat("template.labels.", reserved), "is set by the service; leave it out");
    }
  }
  for (std::string_view reserved : {"PORT", "BERTH_PORT"}) {
    if (w->env.contains(std::string(reserved))) {
      return ctx.Error(Cat("template.env.", reserved),
                       "is set by the service (the replica's port); leave it out");
    }
  }
  spec.workload_template = *std::move(w);
  int64_t replicas = spec.replicas;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, json, "", "replicas", 0, kMaxReplicas, &replicas));
  spec.replicas = static_cast<int>(replicas);
  int64_t port = 0;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, json, "", "port", 1, 65535, &port));
  spec.port = static_cast<int>(port);
  if (auto it = json.find("health"); it != json.end() && !it->is_null()) {
    BERTH_RETURN_IF_ERROR(DecodeHealth(ctx, *it, &spec.health));
    if (spec.port == 0) return ctx.Error("health", "needs the service's port (port: 8080)");
    if (spec.health.timeout > spec.health.interval) {
      return ctx.Error("health.timeout", Cat("must not exceed health.interval (",
                                             absl::FormatDuration(spec.health.interval), ")"));
    }
    if (!spec.workload_template.networks.empty()) {
      return ctx.Error("health",
                       "is not available yet for replicas on Berth networks (template.networks); "
                       "leave it out, and replicas count as ready while they run");
    }
  }
  if (auto it = json.find("update"); it != json.end() && !it->is_null()) {
    BERTH_RETURN_IF_ERROR(DecodeUpdate(ctx, *it, &spec.update));
  }
  if (auto it = json.find("endpoint"); it != json.end() && !it->is_null()) {
    BERTH_RETURN_IF_ERROR(DecodeEndpoint(ctx, *it, &spec.endpoint));
    if (spec.port == 0) {
      return ctx.Error("endpoint", "needs the service's port (port: 8080), where replicas serve");
    }
    if (!spec.workload_template.networks.empty()) {
      return ctx.Error("endpoint",
                       "is not available yet for replicas on Berth networks (template.networks)");
    }
  }
  if (auto it = json.find("autoscale"); it != json.end() && !it->is_null()) {
    AutoscaleSpec a;
    BERTH_RETURN_IF_ERROR(DecodeAutoscale(ctx, *it, &a));
    if (spec.endpoint.host_port == 0) {
      return ctx.Error("autoscale",
                       "needs an endpoint (endpoint: {host_port: 18080}): the load it follows is "
                       "measured there");
    }
    // `replicas` is where the service starts; left out, at min (at least one replica).
    if (!json.contains("replicas") || json["replicas"].is_null()) {
      spec.replicas = std::min(a.max, std::max(a.min, 1));
    } else if (spec.replicas < a.min || spec.replicas > a.max) {
      return ctx.Error("replicas",
                       Cat("with autoscale is the number to start with, between "
                           "autoscale.min (",
                           a.min, ") and autoscale.max (", a.max, "), got ", spec.replicas));
    }
    if (a.metric == AutoscaleSpec::Metric::kGpu &&
        spec.workload_template.gpu.kind == GpuRequest::Kind::kNone) {
      return ctx.Error("autoscale.metric",
                       "gpu needs replicas that hold a GPU (template.resources.gpu)");
    }
    spec.autoscale = a;
  }
  if (auto it = json.find("warm_start"); it != json.end() && !it->is_null()) {
    if (*it == "snapshot") {
      spec.warm_start = ServiceSpec::WarmStart::kSnapshot;
    } else if (*it != "none") {
      return ctx.Error("warm_start", Cat("must be \"snapshot\" or \"none\", got ", Preview(*it)));
    }
  }
  if (spec.warm_start == ServiceSpec::WarmStart::kSnapshot) {
    BERTH_RETURN_IF_ERROR(CheckWarmStart(ctx, spec));
  }
  return spec;
}

Json EncodeServiceSpec(const ServiceSpec& spec) {
  Json tmpl = EncodeWorkloadSpec(spec.workload_template);
  tmpl.erase("name");
  Json j = {
      {"name", spec.name}, {"kind", "service"}, {"template", tmpl}, {"replicas", spec.replicas}};
  if (spec.port != 0) j["port"] = spec.port;
  if (spec.health.type != HealthCheck::Type::kNone) {
    Json h = Json::object();
    if (spec.health.type == HealthCheck::Type::kHttp) {
      h["http"] = spec.health.http_path;
    } else {
      h["tcp"] = true;
    }
    h["interval"] = absl::FormatDuration(spec.health.interval);
    h["timeout"] = absl::FormatDuration(spec.health.timeout);
    h["failure_threshold"] = spec.health.failure_threshold;
    h["start_period"] = absl::FormatDuration(spec.health.start_period);
    j["health"] = h;
  }
  j["update"] = {{"max_surge", spec.update.max_surge},
                 {"max_unavailable", spec.update.max_unavailable},
                 {"progress_deadline", absl::FormatDuration(spec.update.progress_deadline)}};
  if (spec.endpoint.host_port != 0) {
    j["endpoint"] = {{"host_port", spec.endpoint.host_port},
                     {"drain_timeout", absl::FormatDuration(spec.endpoint.drain_timeout)},
                     {"wait_timeout", absl::FormatDuration(spec.endpoint.wait_timeout)}};
  }
  if (spec.autoscale) {
    const AutoscaleSpec& a = *spec.autoscale;
    j["autoscale"] = {{"min", a.min},
                      {"max", a.max},
                      {"metric", AutoscaleMetricName(a.metric)},
                      {"target", a.target},
                      {"stable_window", absl::FormatDuration(a.stable_window)},
                      {"panic_window", absl::FormatDuration(a.panic_window)},
                      {"scale_down_delay", absl::FormatDuration(a.scale_down_delay)}};
    if (a.min == 0) j["autoscale"]["idle_to_zero"] = absl::FormatDuration(a.idle_to_zero);
  }
  if (spec.warm_start == ServiceSpec::WarmStart::kSnapshot) {
    j["warm_start"] = "snapshot";
  }
  return j;
}

Json EncodeServiceStatus(const ServiceStatus& s) {
  Json replicas = Json::array();
  for (const ReplicaStatus& r : s.replicas) {
    replicas.push_back({{"workload", r.workload},
                        {"host", r.host},
                        {"port", r.port},
                        {"state", r.state},
                        {"ready", r.ready},
                        {"failures", r.failures},
                        {"reason", r.reason},
                        {"draining", r.draining},
                        {"revision", r.revision}});
  }
  Json rollout = {{"revision", s.rollout.revision},
                  {"state", RolloutStateName(s.rollout.state)},
                  {"message", s.rollout.message},
                  {"started_at", EncodeTime(s.rollout.started_at)},
                  {"updated", s.rollout.updated},
                  {"updated_ready", s.rollout.updated_ready},
                  {"previous_revision", s.rollout.previous_revision},
                  {"next_revision", s.rollout.next_revision}};
  if (s.rollout.previous_template) {
    Json tmpl = EncodeWorkloadSpec(*s.rollout.previous_template);
    tmpl.erase("name");
    rollout["previous_template"] = std::move(tmpl);
  }
  Json j = {{"ready", s.ready},
            {"replicas", replicas},
            {"rollout", rollout},
            {"endpoint",
             {{"address", s.endpoint.address},
              {"serving", s.endpoint.serving},
              {"backends", s.endpoint.backends},
              {"message", s.endpoint.message}}},
            {"deleting", s.deleting},
            {"message", s.message},
            {"next_index", s.next_index}};
  if (s.autoscale) {
    const AutoscaleStatus& a = *s.autoscale;
    j["autoscale"] = {{"desired", a.desired},
                      {"stable_value", Round2(a.stable_value)},
                      {"panic_value", Round2(a.panic_value)},
                      {"panic", a.panic},
                      {"waiting", a.waiting},
                      {"decision", a.decision},
                      {"observed_at", EncodeTime(a.observed_at)},
                      {"last_request_at", EncodeTime(a.last_request_at)},
                      {"activating_since", EncodeTime(a.activating_since)},
                      {"last_activation", absl::FormatDuration(a.last_activation)},
                      {"activations", a.activations}};
  }
  if (s.warm) {
    const WarmStateStatus& w = *s.warm;
    j["warm"] = {{"revision", w.revision},
                 {"key", w.key},
                 {"host", w.host},
                 {"replica", w.replica},
                 {"bytes", w.bytes},
                 {"took", absl::FormatDuration(w.took)},
                 {"taken_at", EncodeTime(w.taken_at)},
                 {"restores", w.restores},
                 {"error", w.error},
                 {"retry_at", EncodeTime(w.retry_at)}};
  }
  return j;
}

absl::StatusOr<ServiceStatus> DecodeServiceStatus(const Json& j) {
  JsonContext ctx{"service status", ""};
  if (!j.is_object()) return ctx.Error("status", "must be an object");
  ServiceStatus s;
  int64_t ready = 0;
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "", "ready", 0, kMaxReplicas * 10, &ready));
  s.ready = static_cast<int>(ready);
  BERTH_RETURN_IF_ERROR(OptionalBool(ctx, j, "", "deleting", &s.deleting));
  BERTH_RETURN_IF_ERROR(OptionalString(ctx, j, "", "message", &s.message));
  BERTH_RETURN_IF_ERROR(OptionalInt(ctx, j, "", "next_index", 0, INT64_MAX, &s.next_index));
  if (auto it = j.find("rollout"); it != j.end() && it->is_object()) {
    const Json& r = *it;
    RolloutStatus& out = s.rollout;
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, r, "rollout", "revision", 1, INT64_MAX, &out.revision));
    std::string state = "complete";
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, r, "rollout", "state", &state));
    if (state == "progressing") {
      out.state = RolloutStatus::State::kProgressing;
    } else if (state == "rolled-back") {
      out.state = RolloutStatus::State::kRolledBack;
    } else if (state != "complete") {
      return ctx.Error("rollout.state", Cat("is not a rollout state: ", Preview(r["state"])));
    }
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, r, "rollout", "message", &out.message));
    if (r.contains("started_at")) out.started_at = DecodeTime(r["started_at"]);
    int64_t updated = 0, updated_ready = 0;
    BERTH_RETURN_IF_ERROR(
        OptionalInt(ctx, r, "rollout", "updated", 0, kMaxReplicas * 10, &updated));
    BERTH_RETURN_IF_ERROR(
        OptionalInt(ctx, r, "rollout", "updated_ready", 0, kMaxReplicas * 10, &updated_ready));
    out.updated = static_cast<int>(updated);
    out.updated_ready = static_cast<int>(updated_ready);
    BERTH_RETURN_IF_ERROR(
        OptionalInt(ctx, r, "rollout", "previous_revision", 0, INT64_MAX, &out.previous_revision));
    BERTH_RETURN_IF_ERROR(
        OptionalInt(ctx, r, "rollout", "next_revision", 1, INT64_MAX, &out.next_revision));
    // previous_template is decoded by DecodeService, which knows the service's name.
  }
  if (auto it = j.find("endpoint"); it != j.end() && it->is_object()) {
    int64_t backends = 0;
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "endpoint", "address", &s.endpoint.address));
    BERTH_RETURN_IF_ERROR(OptionalBool(ctx, *it, "endpoint", "serving", &s.endpoint.serving));
    BERTH_RETURN_IF_ERROR(
        OptionalInt(ctx, *it, "endpoint", "backends", 0, kMaxReplicas * 10, &backends));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, *it, "endpoint", "message", &s.endpoint.message));
    s.endpoint.backends = static_cast<int>(backends);
  }
  if (auto it = j.find("autoscale"); it != j.end() && it->is_object()) {
    const Json& aj = *it;
    AutoscaleStatus a;
    int64_t desired = 0, waiting = 0;
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, aj, "autoscale", "desired", 0, kMaxReplicas, &desired));
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, aj, "autoscale", "waiting", 0, INT32_MAX, &waiting));
    a.desired = static_cast<int>(desired);
    a.waiting = static_cast<int>(waiting);
    for (auto [key, out] :
         {std::pair{"stable_value", &a.stable_value}, std::pair{"panic_value", &a.panic_value}}) {
      if (auto v = aj.find(key); v != aj.end() && v->is_number()) *out = v->get<double>();
    }
    BERTH_RETURN_IF_ERROR(OptionalBool(ctx, aj, "autoscale", "panic", &a.panic));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, aj, "autoscale", "decision", &a.decision));
    if (aj.contains("observed_at")) a.observed_at = DecodeTime(aj["observed_at"]);
    if (aj.contains("last_request_at")) a.last_request_at = DecodeTime(aj["last_request_at"]);
    if (aj.contains("activating_since")) a.activating_since = DecodeTime(aj["activating_since"]);
    if (auto v = aj.find("last_activation"); v != aj.end() && v->is_string()) {
      if (!absl::ParseDuration(v->get<std::string>(), &a.last_activation)) {
        return ctx.Error("autoscale.last_activation", Cat("is not a duration: ", Preview(*v)));
      }
    }
    BERTH_RETURN_IF_ERROR(
        OptionalInt(ctx, aj, "autoscale", "activations", 0, INT64_MAX, &a.activations));
    s.autoscale = std::move(a);
  }
  if (auto it = j.find("warm"); it != j.end() && it->is_object()) {
    const Json& wj = *it;
    WarmStateStatus w;
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, wj, "warm", "revision", 0, INT64_MAX, &w.revision));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, wj, "warm", "key", &w.key));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, wj, "warm", "host", &w.host));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, wj, "warm", "replica", &w.replica));
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, wj, "warm", "bytes", 0, INT64_MAX, &w.bytes));
    if (auto v = wj.find("took"); v != wj.end() && v->is_string()) {
      if (!absl::ParseDuration(v->get<std::string>(), &w.took)) {
        return ctx.Error("warm.took", Cat("is not a duration: ", Preview(*v)));
      }
    }
    if (wj.contains("taken_at")) w.taken_at = DecodeTime(wj["taken_at"]);
    BERTH_RETURN_IF_ERROR(OptionalInt(ctx, wj, "warm", "restores", 0, INT64_MAX, &w.restores));
    BERTH_RETURN_IF_ERROR(OptionalString(ctx, wj, "warm", "error", &w.error));
    if (wj.contains("retry_at")) w.retry_at = DecodeTime(wj["retry_at"]);
    s.warm = std::move(w);
  }
  if (auto it = j.find("replicas"); it != j.end() && it->is_array()) {
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& rj = (*it)[i];
      const std::string path = Cat("replicas[", i, "]");
      if (!rj.is_object()) return ctx.Error(path, "must be an object");
      ReplicaStatus r;
      int64_t port = 0, failures = 0;
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, rj, path, "workload", &r.workload));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, rj, path, "host", &r.host));
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, rj, path, "port", 0, 65535, &port));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, rj, path, "state", &r.state));
      BERTH_RETURN_IF_ERROR(OptionalBool(ctx, rj, path, "ready", &r.ready));
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, rj, path, "failures", 0, INT32_MAX, &failures));
      BERTH_RETURN_IF_ERROR(OptionalString(ctx, rj, path, "reason", &r.reason));
      BERTH_RETURN_IF_ERROR(OptionalBool(ctx, rj, path, "draining", &r.draining));
      BERTH_RETURN_IF_ERROR(OptionalInt(ctx, rj, path, "revision", 0, INT64_MAX, &r.revision));
      r.port = static_cast<int>(port);
      r.failures = static_cast<int>(failures);
      s.replicas.push_back(std::move(r));
    }
  }
  return s;
}

std::string_view AutoscaleMetricName(AutoscaleSpec::Metric metric) {
  switch (metric) {
    case AutoscaleSpec::Metric::kConcurrency:
      return "concurrency";
    case AutoscaleSpec::Metric::kRps:
      return "rps";
    case AutoscaleSpec::Metric::kCpu:
      return "cpu";
    case AutoscaleSpec::Metric::kGpu:
      return "gpu";
  }
  return "concurrency";
}

std::string_view RolloutStateName(RolloutStatus::State state) {
  switch (state) {
    case RolloutStatus::State::kComplete:
      return "complete";
    case RolloutStatus::State::kProgressing:
      return "progressing";
    case RolloutStatus::State::kRolledBack:
      return "rolled-back";
  }
  return "complete";
}

Json EncodeService(const Service& svc) {
  return {{"name", svc.spec.name},
          {"kind", "service"},
          {"spec", EncodeServiceSpec(svc.spec)},
          {"status", EncodeServiceStatus(svc.status)},
          {"revision", svc.revision},
          {"created_at", EncodeTime(svc.created_at)},
          {"updated_at", EncodeTime(svc.updated_at)}};
}

absl::StatusOr<Service> DecodeService(const Json& j) {
  if (!j.is_object() || !j.contains("spec")) {
    return absl::InvalidArgumentError("service: stored object lacks spec");
  }
  Service svc;
  BERTH_ASSIGN_OR_RETURN(svc.spec, DecodeServiceSpec(j["spec"]));
  if (j.contains("status")) {
    BERTH_ASSIGN_OR_RETURN(svc.status, DecodeServiceStatus(j["status"]));
    const Json& status = j["status"];
    if (status.is_object() && status.contains("rollout") && status["rollout"].is_object() &&
        status["rollout"].contains("previous_template")) {
      Json tmpl = status["rollout"]["previous_template"];
      if (tmpl.is_object()) tmpl["name"] = svc.spec.name;
      absl::StatusOr<WorkloadSpec> previous = DecodeWorkloadSpec(tmpl);
      if (!previous.ok()) {
        return absl::InvalidArgumentError(
            Cat("service \"", svc.spec.name,
                "\": status.rollout.previous_template: ", previous.status().message()));
      }
      svc.status.rollout.previous_template = *std::move(previous);
    }
  }
  svc.revision = j.value("revision", int64_t{0});
  if (j.contains("created_at")) svc.created_at = DecodeTime(j["created_at"]);
  if (j.contains("updated_at")) svc.updated_at = DecodeTime(j["updated_at"]);
  return svc;
}

}  // namespace berth::core
