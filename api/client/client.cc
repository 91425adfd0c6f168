#include "api/client/client.h"

#include <algorithm>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

// One path segment, escaped: names never change the route they are sent on.
std::string Seg(std::string_view name) { return PercentEncode(name); }

std::string WatchQuery(const Watch& watch) {
  if (watch.index <= 0) return "";
  return Cat("?index=", watch.index, "&wait=", absl::ToInt64Milliseconds(watch.wait), "ms");
}

// "?limit=..&continue=..&state=.." for the fields of `request` that are set, then the blocking
// query's index and wait.
std::string ListQueryString(const ListRequest& request, const Watch& watch = {}) {
  std::string q;
  auto add = [&](std::string_view key, std::string_view value) {
    if (value.empty()) return;
    q += Cat(q.empty() ? "?" : "&", key, "=", PercentEncode(value));
  };
  if (request.limit > 0) add("limit", Cat(request.limit));
  add("continue", request.continue_token);
  add("state", request.state);
  add("host", request.host);
  add("kind", request.kind);
  add("tenant", request.tenant);
  add("selector", request.selector);
  if (watch.index > 0) {
    add("index", Cat(watch.index));
    add("wait", Cat(absl::ToInt64Milliseconds(watch.wait), "ms"));
  }
  return q;
}

// Fetches every page of a list with `page`, joining their items.
template <typename T>
absl::StatusOr<wire::List<T>> AllPages(
    ListRequest request, size_t page_size,
    const std::function<absl::StatusOr<wire::List<T>>(const ListRequest&)>& page) {
  request.limit = page_size;
  wire::List<T> all;
  bool first = true;
  while (true) {
    BERTH_ASSIGN_OR_RETURN(wire::List<T> one, page(request));
    if (first) all.revision = one.revision;
    first = false;
    for (T& item : one.items) all.items.push_back(std::move(item));
    if (one.continue_token.empty()) return all;
    request.continue_token = std::move(one.continue_token);
  }
}

// A reply that does not decode is the server's fault (or a version skew), not the caller's.
absl::Status BadReply(std::string_view what, const absl::Status& status) {
  return absl::InternalError(Cat("malformed reply to ", what, ": ", std::string(status.message())));
}

template <typename T>
absl::StatusOr<T> Decoded(std::string_view what, absl::StatusOr<T> value) {
  if (!value.ok()) return BadReply(what, value.status());
  return value;
}

absl::StatusOr<core::Workload> DecodeWorkloadReply(std::string_view what, const Json& j) {
  return Decoded(what, core::DecodeWorkload(j));
}

}  // namespace

Client::Client(std::string base_url, ClientOptions options) : options_(std::move(options)) {
  for (absl::string_view part : absl::StrSplit(base_url, ',', absl::SkipWhitespace())) {
    std::string url(absl::StripAsciiWhitespace(part));
    if (url.find("://") == std::string::npos) url = "http://" + url;
    servers_.push_back(std::make_unique<HttpClient>(
        url, HttpClient::Options{.bearer_token = options_.token,
                                 .timeout = options_.timeout,
                                 .connect_timeout = options_.connect_timeout}));
  }
  // An empty address still makes a client whose every request fails, naming the address.
  if (servers_.empty()) {
    servers_.push_back(std::make_unique<HttpClient>(
        base_url, HttpClient::Options{.bearer_token = options_.token,
                                      .timeout = options_.timeout,
                                      .connect_timeout = options_.connect_timeout}));
  }
}

void Client::SetToken(std::string token) {
  for (auto& server : servers_) server->SetBearerToken(token);
}

const std::string& Client::base_url() const { return servers_[current_.load()]->base_url(); }

absl::StatusOr<HttpResponse> Client::Exchange(
    std::string_view method, const std::function<absl::StatusOr<HttpResponse>(HttpClient&)>& send) {
  const bool idempotent = method == "GET" || method == "HEAD";
  const size_t n = servers_.size();
  const absl::Time give_up = absl::Now() + options_.failover_wait;
  absl::Duration backoff = absl::Milliseconds(100);
  absl::StatusOr<HttpResponse> last = absl::UnavailableError("no server was tried");
  bool waiting_for_leader = false;  // some server in this round said "retry, nothing applied"
  for (size_t tried = 1;; ++tried) {
    const size_t i = current_.load();
    last = send(*servers_[i]);
    if (last.ok()) {
      // A server that could not reach a leader applied nothing and says so: safe to send again.
      if (last->status != 503 || !last->Header(kUnappliedHeader)) return last;
      waiting_for_leader = true;
    } else {
      // A request that never left can go elsewhere; a read whose answer was lost can be asked
      // again. A write whose answer was lost may have been applied: it is not sent twice.
      const bool retry = RequestNotSent(last.status()) ||
                         (idempotent && (absl::IsUnavailable(last.status()) ||
                                         absl::IsDeadlineExceeded(last.status())));
      if (!retry) {
        if (absl::IsUnavailable(last.status()) || absl::IsDeadlineExceeded(last.status())) {
          return absl::Status(
              last.status().code(),
              Cat(last.status().message(),
                  " (the request was sent and may have been applied: check before retrying)"));
        }
        return last;
      }
      if (n == 1 && !waiting_for_leader) return last;
    }
    size_t expected = i;  // another thread may have moved on already
    current_.compare_exchange_strong(expected, (i + 1) % n);
    if (tried % n == 0) {
      // Every server was tried once: wait for a leader only while some server is waiting too.
      if (!waiting_for_leader || absl::Now() + backoff > give_up) break;
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
      waiting_for_leader = false;
    }
  }
  return last;
}

absl::StatusOr<Json> Client::Send(std::string_view method, const std::string& path,
                                  std::string_view body, std::string_view content_type, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, Exchange(method, [&](HttpClient& http) {
                           return http.Request(method, path, body, content_type);
                         }));
  BERTH_RETURN_IF_ERROR(StatusFromResponse(r.status, r.body));
  if (r.status >= 300) {
    return absl::InternalError(Cat(method, " ", path, ": unexpected HTTP status ", r.status));
  }
  Json j = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) j = nullptr;
  if (raw != nullptr) {
    raw->status = r.status;
    raw->body = j;
    raw->index = -1;
    if (auto index = r.Header("X-Berth-Index")) {
      int64_t i = 0;
      if (absl::SimpleAtoi(*index, &i)) raw->index = i;
    }
  }
  return j;
}

absl::StatusOr<Json> Client::SendJson(std::string_view method, const std::string& path,
                                      const Json& body, Raw* raw) {
  return Send(method, path, body.dump(-1, ' ', false, Json::error_handler_t::replace),
              "application/json", raw);
}

absl::StatusOr<Json> Client::Call(std::string_view method, std::string_view path_with_query,
                                  const Json* body, Raw* raw) {
  std::string path(path_with_query);
  if (body == nullptr) return Send(method, path, "", "application/json", raw);
  return SendJson(method, path, *body, raw);
}

absl::StatusOr<std::string> Client::Text(const std::string& path) {
  BERTH_ASSIGN_OR_RETURN(HttpResponse r,
                         Exchange("GET", [&](HttpClient& http) { return http.Get(path); }));
  BERTH_RETURN_IF_ERROR(StatusFromResponse(r.status, r.body));
  return std::move(r.body);
}

absl::Status Client::StreamText(const std::string& path, const ChunkSink& sink) {
  // A stream that broke after its first piece is not started again: "POST" keeps Exchange to
  // requests that never left.
  BERTH_ASSIGN_OR_RETURN(
      HttpResponse r, Exchange("POST", [&](HttpClient& http) { return http.Stream(path, sink); }));
  return StatusFromResponse(r.status, r.body);
}

absl::StatusOr<SnapshotDownload> Client::DownloadSnapshot(const ChunkSink& sink) {
  // Like StreamText: a download that broke after its first piece is not started again.
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, Exchange("POST", [&](HttpClient& http) {
                           return http.Stream("/v1/admin/snapshot", sink);
                         }));
  BERTH_RETURN_IF_ERROR(StatusFromResponse(r.status, r.body));
  SnapshotDownload out;
  out.format = r.Header("X-Berth-Snapshot-Format").value_or("");
  auto number = [&r](std::string_view name) -> int64_t {
    int64_t value = -1;
    std::optional<std::string> text = r.Header(name);
    if (!text || !absl::SimpleAtoi(*text, &value)) return -1;
    return value;
  };
  out.bytes = number("X-Berth-Snapshot-Bytes");
  out.revision = number("X-Berth-Snapshot-Revision");
  out.keys = number("X-Berth-Snapshot-Keys");
  if (out.format.empty() || out.bytes < 0) {
    return absl::DataLossError(
        "download snapshot: the reply does not describe the snapshot (X-Berth-Snapshot-*)");
  }
  return out;
}

absl::StatusOr<int64_t> Client::DownloadWarmState(std::string_view host, std::string_view key,
                                                  const ChunkSink& sink) {
  const std::string path =
      Cat("/v1/hosts/", PercentEncode(host), "/warm-states/", PercentEncode(key));
  // A copy that stalls for a minute is given up (the replica then boots).
  HttpClient::StreamOptions options;
  options.idle_timeout = absl::Seconds(60);
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, Exchange("GET", [&](HttpClient& http) {
                           return http.Stream(path, sink, options);
                         }));
  BERTH_RETURN_IF_ERROR(StatusFromResponse(r.status, r.body));
  int64_t bytes = -1;
  std::optional<std::string> text = r.Header(wire::kWarmStateSizeHeader);
  if (!text || !absl::SimpleAtoi(*text, &bytes) || bytes < 0) {
    return absl::DataLossError(Cat("warm state ", key, ": the reply does not say its size (",
                                   wire::kWarmStateSizeHeader, ")"));
  }
  return bytes;
}

absl::Status Client::Health() { return Text("/healthz").status(); }

absl::StatusOr<std::string> Client::MetricsText() { return Text("/metrics"); }

absl::StatusOr<Json> Client::ClusterStatus(Raw* raw) {
  return Send("GET", "/v1/status", "", "application/json", raw);
}

// Workloads.

absl::StatusOr<core::Workload> Client::CreateWorkload(const core::WorkloadSpec& spec, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j,
                         SendJson("POST", "/v1/workloads", core::EncodeWorkloadSpec(spec), raw));
  return DecodeWorkloadReply("create workload", j);
}

absl::StatusOr<core::Workload> Client::CreateWorkloadFromText(std::string_view text,
                                                              std::string_view content_type,
                                                              Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("POST", "/v1/workloads", text, content_type, raw));
  return DecodeWorkloadReply("create workload", j);
}

absl::StatusOr<core::Workload> Client::GetWorkload(std::string_view name, const Watch& watch,
                                                   Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(
      Json j, Send("GET", Cat("/v1/workloads/", Seg(name), WatchQuery(watch)), "", "", raw));
  return DecodeWorkloadReply("get workload", j);
}

absl::StatusOr<wire::WorkloadList> Client::ListWorkloads(const Watch& watch, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", Cat("/v1/workloads", WatchQuery(watch)), "", "", raw));
  return Decoded("list workloads", wire::DecodeWorkloadList(j));
}

absl::StatusOr<wire::WorkloadList> Client::ListWorkloads(const ListRequest& request,
                                                         const Watch& watch, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(
      Json j, Send("GET", Cat("/v1/workloads", ListQueryString(request, watch)), "", "", raw));
  return Decoded("list workloads", wire::DecodeWorkloadList(j));
}

absl::StatusOr<wire::WorkloadList> Client::ListAllWorkloads(ListRequest request, size_t page_size) {
  return AllPages<core::Workload>(std::move(request), page_size,
                                  [this](const ListRequest& r) { return ListWorkloads(r); });
}

absl::StatusOr<WorkloadDeletion> Client::DeleteWorkload(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("DELETE", Cat("/v1/workloads/", Seg(name)), "", "", raw));
  WorkloadDeletion d;
  d.deleted = j.is_object() && j.value("deleted", false);
  BERTH_ASSIGN_OR_RETURN(d.workload, DecodeWorkloadReply("delete workload", j));
  return d;
}

absl::StatusOr<core::Workload> Client::Act(std::string_view name, std::string_view action,
                                           Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(
      Json j,
      Send("POST", Cat("/v1/workloads/", Seg(name), "/actions/", Seg(action)), "", "", raw));
  return DecodeWorkloadReply(Cat(action, " workload"), j);
}

absl::StatusOr<std::string> Client::Explain(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j,
                         Send("GET", Cat("/v1/workloads/", Seg(name), "/explain"), "", "", raw));
  if (!j.is_object() || !j.contains("explanation") || !j["explanation"].is_string()) {
    return BadReply("explain", absl::InvalidArgumentError("explanation must be a string"));
  }
  return j["explanation"].get<std::string>();
}

absl::StatusOr<core::Workload> Client::ReportStatus(std::string_view name,
                                                    const wire::StatusReport& report, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, SendJson("PUT", Cat("/v1/workloads/", Seg(name), "/status"),
                                          wire::EncodeStatusReport(report), raw));
  return DecodeWorkloadReply("status report", j);
}

absl::StatusOr<std::string> Client::Logs(std::string_view name, std::string_view stream) {
  return Text(Cat("/v1/workloads/", Seg(name), "/logs?stream=", Seg(stream)));
}

absl::Status Client::StreamLogs(std::string_view name, std::string_view stream, bool follow,
                                const ChunkSink& sink) {
  return StreamText(
      Cat("/v1/workloads/", Seg(name), "/logs?stream=", Seg(stream), follow ? "&follow=true" : ""),
      sink);
}

absl::StatusOr<std::string> Client::Console(std::string_view name) {
  return Text(Cat("/v1/workloads/", Seg(name), "/console"));
}

absl::Status Client::StreamConsole(std::string_view name, bool follow, const ChunkSink& sink) {
  return StreamText(Cat("/v1/workloads/", Seg(name), "/console", follow ? "?follow=true" : ""),
                    sink);
}

absl::StatusOr<Json> Client::Stats(std::string_view name, Raw* raw) {
  return Send("GET", Cat("/v1/workloads/", Seg(name), "/stats"), "", "", raw);
}

absl::StatusOr<wire::ExecReply> Client::Exec(std::string_view name,
                                             const wire::ExecRequest& request, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, SendJson("POST", Cat("/v1/workloads/", Seg(name), "/exec"),
                                          wire::EncodeExecRequest(request), raw));
  return Decoded("exec", wire::DecodeExecReply(name, j));
}

// Hosts.

absl::StatusOr<wire::RegistrationReply> Client::RegisterHost(
    const wire::HostRegistration& registration, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(
      Json j, SendJson("POST", "/v1/hosts", wire::EncodeHostRegistration(registration), raw));
  return Decoded("host registration", wire::DecodeRegistrationReply(j));
}

absl::StatusOr<wire::HeartbeatReply> Client::Heartbeat(std::string_view host,
                                                       const wire::HeartbeatReport& report,
                                                       Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, SendJson("PUT", Cat("/v1/hosts/", Seg(host), "/heartbeat"),
                                          wire::EncodeHeartbeatReport(report), raw));
  return Decoded("heartbeat", wire::DecodeHeartbeatReply(host, j));
}

absl::Status Client::Heartbeat(std::string_view host, const std::optional<core::HostUsage>& usage,
                               const std::optional<wire::TaskApiReport>& task_api, Raw* raw) {
  std::string path = Cat("/v1/hosts/", Seg(host), "/heartbeat");
  if (!usage && !task_api) return Send("PUT", path, "", "", raw).status();
  return Heartbeat(host, wire::HeartbeatReport{.usage = usage, .task_api = task_api}, raw).status();
}

absl::StatusOr<wire::WorkloadList> Client::Assignments(std::string_view host, const Watch& watch,
                                                       Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(
      Json j,
      Send("GET", Cat("/v1/hosts/", Seg(host), "/assignments", WatchQuery(watch)), "", "", raw));
  return Decoded("assignments", wire::DecodeWorkloadList(j));
}

absl::StatusOr<wire::Assignments> Client::AssignmentsSince(std::string_view host, int64_t since,
                                                           const Watch& watch, Raw* raw) {
  std::string query = WatchQuery(watch);
  query += Cat(query.empty() ? "?" : "&", "since=", since);
  BERTH_ASSIGN_OR_RETURN(
      Json j, Send("GET", Cat("/v1/hosts/", Seg(host), "/assignments", query), "", "", raw));
  return Decoded("assignments", wire::DecodeAssignments(host, j));
}

absl::StatusOr<wire::HostDetail> Client::GetHost(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", Cat("/v1/hosts/", Seg(name)), "", "", raw));
  return Decoded("get host", wire::DecodeHostDetail(j));
}

absl::StatusOr<wire::HostList> Client::ListHosts(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/hosts", "", "", raw));
  return Decoded("list hosts", wire::DecodeHostList(j));
}

absl::StatusOr<wire::HostList> Client::ListHosts(const ListRequest& request, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j,
                         Send("GET", Cat("/v1/hosts", ListQueryString(request)), "", "", raw));
  return Decoded("list hosts", wire::DecodeHostList(j));
}

absl::StatusOr<wire::HostList> Client::ListAllHosts(ListRequest request, size_t page_size) {
  return AllPages<core::Host>(std::move(request), page_size,
                              [this](const ListRequest& r) { return ListHosts(r); });
}

absl::Status Client::DeleteHost(std::string_view name, Raw* raw) {
  return Send("DELETE", Cat("/v1/hosts/", Seg(name)), "", "", raw).status();
}

absl::StatusOr<core::Host> Client::HostAction(std::string_view name, std::string_view verb,
                                              Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j,
                         Send("POST", Cat("/v1/hosts/", Seg(name), "/", Seg(verb)), "", "", raw));
  return Decoded(Cat(verb, " host"), core::DecodeHost(j));
}

// Host image catalogs.

absl::StatusOr<Json> Client::ListImages(std::string_view host, Raw* raw) {
  return Send("GET", Cat("/v1/hosts/", Seg(host), "/images"), "", "", raw);
}

absl::StatusOr<Json> Client::GetImage(std::string_view host, std::string_view name, Raw* raw) {
  return Send("GET", Cat("/v1/hosts/", Seg(host), "/images/", Seg(name)), "", "", raw);
}

absl::StatusOr<Json> Client::ImportImage(std::string_view host, const wire::ImageImport& request,
                                         Raw* raw) {
  return SendJson("POST", Cat("/v1/hosts/", Seg(host), "/images"), wire::EncodeImageImport(request),
                  raw);
}

absl::Status Client::RemoveImage(std::string_view host, std::string_view name, Raw* raw) {
  return Send("DELETE", Cat("/v1/hosts/", Seg(host), "/images/", Seg(name)), "", "", raw).status();
}

// Tenants and quotas.

absl::StatusOr<Json> Client::ListTenants(Raw* raw) {
  return Send("GET", "/v1/tenants", "", "", raw);
}

absl::StatusOr<Json> Client::SetQuota(std::string_view tenant, const Json& quota, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j,
                         SendJson("PUT", Cat("/v1/tenants/", Seg(tenant), "/quota"), quota, raw));
  if (!j.is_object() || !j.contains("quota")) {
    return BadReply("set quota", absl::InvalidArgumentError("quota is missing"));
  }
  return j["quota"];
}

absl::Status Client::DeleteQuota(std::string_view tenant, Raw* raw) {
  return Send("DELETE", Cat("/v1/tenants/", Seg(tenant), "/quota"), "", "", raw).status();
}

// Events.

absl::StatusOr<Json> Client::Summary(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/summary", "", "", raw));
  if (!j.is_object() || !j.contains("workloads") || !j["workloads"].is_object() ||
      !j.contains("hosts") || !j["hosts"].is_object()) {
    return BadReply("summary", absl::InvalidArgumentError("hosts and workloads must be objects"));
  }
  return j;
}

absl::StatusOr<Json> Client::RebalancePlan(const RebalanceQuery& query, Raw* raw) {
  std::string q;
  auto add = [&](std::string_view key, std::string_view value) {
    q += Cat(q.empty() ? "?" : "&", key, "=", PercentEncode(value));
  };
  if (!query.workload.empty()) add("workload", query.workload);
  if (query.max_moves != 0) add("max_moves", Cat(query.max_moves));
  if (query.limit != 0) add("limit", Cat(query.limit));
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", Cat("/v1/rebalance/plan", q), "", "", raw));
  if (!j.is_object() || !j.contains("items") || !j["items"].is_array()) {
    return BadReply("rebalance plan", absl::InvalidArgumentError("items must be an array"));
  }
  return j;
}

absl::StatusOr<wire::EventList> Client::ListEvents(const EventQuery& query, Raw* raw) {
  std::string path = Cat("/v1/events?limit=", query.limit);
  if (query.index > 0) path = Cat(path, "&index=", query.index);
  if (query.wait) path = Cat(path, "&wait=", absl::ToInt64Milliseconds(*query.wait), "ms");
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", path, "", "", raw));
  return Decoded("list events", wire::DecodeEventList(j));
}

// Disks and pools.

absl::StatusOr<core::Service> Client::CreateService(const core::ServiceSpec& spec, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j,
                         SendJson("POST", "/v1/services", core::EncodeServiceSpec(spec), raw));
  return Decoded("create service", core::DecodeService(j));
}

absl::StatusOr<core::Service> Client::CreateServiceFromText(std::string_view text,
                                                            std::string_view content_type,
                                                            Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("POST", "/v1/services", text, content_type, raw));
  return Decoded("create service", core::DecodeService(j));
}

absl::StatusOr<core::Service> Client::GetService(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", Cat("/v1/services/", Seg(name)), "", "", raw));
  return Decoded("get service", core::DecodeService(j));
}

absl::StatusOr<wire::ServiceList> Client::ListServices(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/services", "", "", raw));
  return Decoded("list services", wire::DecodeServiceList(j));
}

absl::StatusOr<core::Service> Client::ScaleService(std::string_view name, int replicas, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, SendJson("POST", Cat("/v1/services/", Seg(name), "/scale"),
                                          wire::EncodeServiceScale({.replicas = replicas}), raw));
  return Decoded("scale service", core::DecodeService(j));
}

absl::StatusOr<core::Service> Client::UpdateServiceFromText(std::string_view name,
                                                            std::string_view text,
                                                            std::string_view content_type,
                                                            Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j,
                         Send("PUT", Cat("/v1/services/", Seg(name)), text, content_type, raw));
  return Decoded("update service", core::DecodeService(j));
}

absl::StatusOr<core::Service> Client::UndoServiceRollout(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(
      Json j, Send("POST", Cat("/v1/services/", Seg(name), "/rollout/undo"), "", "", raw));
  return Decoded("undo service rollout", core::DecodeService(j));
}

absl::StatusOr<wire::ServiceDeletion> Client::DeleteService(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("DELETE", Cat("/v1/services/", Seg(name)), "", "", raw));
  return Decoded("delete service", wire::DecodeServiceDeletion(j));
}

absl::StatusOr<core::Job> Client::CreateJob(const core::JobSpec& spec, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, SendJson("POST", "/v1/jobs", core::EncodeJobSpec(spec), raw));
  return Decoded("create job", core::DecodeJob(j));
}

absl::StatusOr<core::Job> Client::CreateJobFromText(std::string_view text,
                                                    std::string_view content_type, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("POST", "/v1/jobs", text, content_type, raw));
  return Decoded("create job", core::DecodeJob(j));
}

absl::StatusOr<core::Job> Client::GetJob(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", Cat("/v1/jobs/", Seg(name)), "", "", raw));
  return Decoded("get job", core::DecodeJob(j));
}

absl::StatusOr<wire::JobList> Client::ListJobs(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/jobs", "", "", raw));
  return Decoded("list jobs", wire::DecodeJobList(j));
}

absl::StatusOr<wire::JobDeletion> Client::DeleteJob(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("DELETE", Cat("/v1/jobs/", Seg(name)), "", "", raw));
  return Decoded("delete job", wire::DecodeJobDeletion(j));
}

absl::StatusOr<Json> Client::CreateDisk(const wire::DiskCreate& request, Raw* raw) {
  return SendJson("POST", "/v1/disks", wire::EncodeDiskCreate(request), raw);
}

absl::StatusOr<wire::JsonList> Client::ListDisks(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/disks", "", "", raw));
  return Decoded("list disks", wire::DecodeJsonList("disk", j));
}

absl::StatusOr<Json> Client::GetDisk(std::string_view name, Raw* raw) {
  return Send("GET", Cat("/v1/disks/", Seg(name)), "", "", raw);
}

absl::Status Client::DeleteDisk(std::string_view name, Raw* raw) {
  return Send("DELETE", Cat("/v1/disks/", Seg(name)), "", "", raw).status();
}

absl::StatusOr<Json> Client::ResizeDisk(std::string_view name, std::string_view size, Raw* raw) {
  return SendJson("POST", Cat("/v1/disks/", Seg(name), "/resize"), Json{{"size", size}}, raw);
}

absl::StatusOr<Json> Client::SnapshotDisk(std::string_view name, std::string_view snapshot,
                                          Raw* raw) {
  return SendJson("POST", Cat("/v1/disks/", Seg(name), "/snapshots"), Json{{"name", snapshot}},
                  raw);
}

absl::StatusOr<Json> Client::RevertDisk(std::string_view name, std::string_view snapshot,
                                        Raw* raw) {
  return SendJson("POST", Cat("/v1/disks/", Seg(name), "/revert"), Json{{"snapshot", snapshot}},
                  raw);
}

absl::StatusOr<Json> Client::CloneDisk(std::string_view name, std::string_view snapshot,
                                       std::string_view target, Raw* raw) {
  Json body = {{"name", target}};
  if (!snapshot.empty()) body["snapshot"] = snapshot;
  return SendJson("POST", Cat("/v1/disks/", Seg(name), "/clone"), body, raw);
}

absl::StatusOr<Json> Client::AttachDisk(std::string_view name, std::string_view workload,
                                        Raw* raw) {
  return SendJson("POST", Cat("/v1/disks/", Seg(name), "/attach"), Json{{"workload", workload}},
                  raw);
}

absl::StatusOr<Json> Client::DetachDisk(std::string_view name, Raw* raw) {
  return Send("POST", Cat("/v1/disks/", Seg(name), "/detach"), "", "application/json", raw);
}

absl::StatusOr<Json> Client::Copy(const std::string& path, const Json& body,
                                  const CopyProgress& progress) {
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, Exchange("POST", [&](HttpClient& http) {
                           return http.Post(path, body.dump());
                         }));
  BERTH_RETURN_IF_ERROR(StatusFromResponse(r.status, r.body));
  // Newline-separated JSON: {"progress": permille}..., then {"result": ...} or {"error": ...}.
  std::istringstream lines(r.body);
  std::string line;
  while (std::getline(lines, line)) {
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;
    if (j.contains("progress") && j["progress"].is_number_integer()) {
      if (progress) progress(j["progress"].get<int>());
    } else if (j.contains("error")) {
      int status = j.value("status", 500);
      j.erase("status");
      return StatusFromResponse(status, j.dump());
    } else if (j.contains("result")) {
      return j["result"];
    }
  }
  return absl::UnavailableError(Cat(path, ": the server ended the copy without a result"));
}

absl::StatusOr<Json> Client::BackupDisk(std::string_view name, std::string_view file,
                                        const CopyProgress& progress) {
  return Copy(Cat("/v1/disks/", Seg(name), "/backup"), Json{{"file", file}}, progress);
}

absl::StatusOr<Json> Client::RestoreDisk(std::string_view file, std::string_view name,
                                         const CopyProgress& progress, std::string_view host,
                                         std::string_view pool) {
  Json body{{"file", file}, {"name", name}};
  if (!host.empty()) body["host"] = host;
  if (!pool.empty()) body["pool"] = pool;
  return Copy("/v1/disks/restore", body, progress);
}

absl::StatusOr<Json> Client::ListPools(Raw* raw) { return Send("GET", "/v1/pools", "", "", raw); }

// Networks.

absl::StatusOr<Json> Client::CreateNetwork(const wire::NetworkCreate& request, Raw* raw) {
  return SendJson("POST", "/v1/networks", wire::EncodeNetworkCreate(request), raw);
}

absl::StatusOr<wire::JsonList> Client::ListNetworks(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/networks", "", "", raw));
  return Decoded("list networks", wire::DecodeJsonList("network", j));
}

absl::StatusOr<Json> Client::GetNetwork(std::string_view name, Raw* raw) {
  return Send("GET", Cat("/v1/networks/", Seg(name)), "", "", raw);
}

absl::Status Client::DeleteNetwork(std::string_view name, Raw* raw) {
  return Send("DELETE", Cat("/v1/networks/", Seg(name)), "", "", raw).status();
}

absl::StatusOr<std::string> Client::AllocateAddress(std::string_view network,
                                                    std::string_view owner,
                                                    std::string_view address, Raw* raw) {
  Json body = {{"owner", owner}};
  if (!address.empty()) body["address"] = address;
  BERTH_ASSIGN_OR_RETURN(
      Json j, SendJson("POST", Cat("/v1/networks/", Seg(network), "/addresses"), body, raw));
  if (!j.is_object() || !j.contains("address") || !j["address"].is_string()) {
    return BadReply("allocate address", absl::InvalidArgumentError("address must be a string"));
  }
  return j["address"].get<std::string>();
}

absl::Status Client::ReleaseAddress(std::string_view network, std::string_view owner, Raw* raw) {
  return Send("DELETE", Cat("/v1/networks/", Seg(network), "/addresses/", Seg(owner)), "", "", raw)
      .status();
}

// Security groups.

absl::StatusOr<Json> Client::CreateSecurityGroup(std::string_view name, Raw* raw) {
  return SendJson("POST", "/v1/secgroups", Json{{"name", name}}, raw);
}

absl::StatusOr<wire::JsonList> Client::ListSecurityGroups(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/secgroups", "", "", raw));
  return Decoded("list security groups", wire::DecodeJsonList("secgroup", j));
}

absl::StatusOr<Json> Client::GetSecurityGroup(std::string_view name, Raw* raw) {
  return Send("GET", Cat("/v1/secgroups/", Seg(name)), "", "", raw);
}

absl::Status Client::DeleteSecurityGroup(std::string_view name, Raw* raw) {
  return Send("DELETE", Cat("/v1/secgroups/", Seg(name)), "", "", raw).status();
}

absl::StatusOr<Json> Client::AddRule(std::string_view group, const wire::SecurityRule& rule,
                                     Raw* raw) {
  return SendJson("POST", Cat("/v1/secgroups/", Seg(group), "/rules"),
                  wire::EncodeSecurityRule(rule), raw);
}

absl::StatusOr<Json> Client::RemoveRule(std::string_view group, std::string_view rule_id,
                                        Raw* raw) {
  return Send("DELETE", Cat("/v1/secgroups/", Seg(group), "/rules/", Seg(rule_id)), "", "", raw);
}

// Port forwards.

absl::StatusOr<Json> Client::AddPortForward(const wire::PortForwardCreate& request, Raw* raw) {
  return SendJson("POST", "/v1/portforwards", wire::EncodePortForwardCreate(request), raw);
}

absl::StatusOr<wire::JsonList> Client::ListPortForwards(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/portforwards", "", "", raw));
  return Decoded("list port forwards", wire::DecodeJsonList("portforward", j));
}

absl::Status Client::RemovePortForward(std::string_view id, Raw* raw) {
  return Send("DELETE", Cat("/v1/portforwards/", Seg(id)), "", "", raw).status();
}

}  // namespace berth::api
