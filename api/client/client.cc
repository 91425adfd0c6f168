#include "api/client/client.h"

#include <sstream>

#include "absl/strings/numbers.h"
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

Client::Client(std::string base_url, ClientOptions options)
    : http_(std::move(base_url), HttpClient::Options{.bearer_token = std::move(options.token),
                                                     .timeout = options.timeout,
                                                     .connect_timeout = options.connect_timeout}) {}

void Client::SetToken(std::string token) { http_.SetBearerToken(std::move(token)); }

absl::StatusOr<Json> Client::Send(std::string_view method, const std::string& path,
                                  std::string_view body, std::string_view content_type, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, http_.Request(method, path, body, content_type));
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
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, http_.Get(path));
  BERTH_RETURN_IF_ERROR(StatusFromResponse(r.status, r.body));
  return std::move(r.body);
}

absl::Status Client::StreamText(const std::string& path, const ChunkSink& sink) {
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, http_.Stream(path, sink));
  return StatusFromResponse(r.status, r.body);
}

absl::StatusOr<SnapshotDownload> Client::DownloadSnapshot(const ChunkSink& sink) {
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, http_.Stream("/v1/admin/snapshot", sink));
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

absl::Status Client::Health() { return Text("/healthz").status(); }

absl::StatusOr<std::string> Client::MetricsText() { return Text("/metrics"); }

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

absl::Status Client::Heartbeat(std::string_view host, Raw* raw) {
  return Send("PUT", Cat("/v1/hosts/", Seg(host), "/heartbeat"), "", "", raw).status();
}

absl::StatusOr<wire::WorkloadList> Client::Assignments(std::string_view host, const Watch& watch,
                                                       Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(
      Json j,
      Send("GET", Cat("/v1/hosts/", Seg(host), "/assignments", WatchQuery(watch)), "", "", raw));
  return Decoded("assignments", wire::DecodeWorkloadList(j));
}

absl::StatusOr<wire::HostDetail> Client::GetHost(std::string_view name, Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", Cat("/v1/hosts/", Seg(name)), "", "", raw));
  return Decoded("get host", wire::DecodeHostDetail(j));
}

absl::StatusOr<wire::HostList> Client::ListHosts(Raw* raw) {
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", "/v1/hosts", "", "", raw));
  return Decoded("list hosts", wire::DecodeHostList(j));
}

absl::Status Client::DeleteHost(std::string_view name, Raw* raw) {
  return Send("DELETE", Cat("/v1/hosts/", Seg(name)), "", "", raw).status();
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

absl::StatusOr<wire::EventList> Client::ListEvents(const EventQuery& query, Raw* raw) {
  std::string path = Cat("/v1/events?limit=", query.limit);
  if (query.index > 0) path = Cat(path, "&index=", query.index);
  if (query.wait) path = Cat(path, "&wait=", absl::ToInt64Milliseconds(*query.wait), "ms");
  BERTH_ASSIGN_OR_RETURN(Json j, Send("GET", path, "", "", raw));
  return Decoded("list events", wire::DecodeEventList(j));
}

// Disks and pools.

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
  BERTH_ASSIGN_OR_RETURN(HttpResponse r, http_.Post(path, body.dump()));
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
                                         const CopyProgress& progress) {
  return Copy("/v1/disks/restore", Json{{"file", file}, {"name", name}}, progress);
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
