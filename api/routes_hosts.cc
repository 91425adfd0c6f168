// Routes agents and operators call about hosts: registration (which issues the host's
// credential), list, get, remove, heartbeats, the long-poll for assignments, and the status
// reports of the workloads placed on a host.
#include <climits>

#include "api/api_server.h"
#include "api/body_parser.h"
#include "api/route_util.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

void ApiServer::HostRoutes() {
  // Hosts.
  router_.Handle("POST", "/v1/hosts", [this](const HttpRequest& req) {
    auto body = ParseBody(req.body, {"host", ""});
    if (!body.ok()) return Fail(body.status());
    const Json& j = *body;
    core::JsonContext ctx{"host", ""};
    if (j.is_object()) {
      absl::Status name = core::OptionalString(ctx, j, "", "name", &ctx.name);
      if (!name.ok()) return Fail(name);
    }
    absl::Status shape = core::CheckObject(ctx, j, "", {"name", "inventory"});
    if (!shape.ok()) return Fail(shape);
    if (!j.contains("inventory")) return Fail(ctx.Error("inventory", "is required"));
    auto inv = core::DecodeHostInventory(ctx.name, j["inventory"]);
    if (!inv.ok()) return Fail(inv.status());
    control::RegisterHostOptions options;
    if (std::string caller = CallingHost(req); !caller.empty()) {
      if (auto denied = OnlyItself(req, ctx.name)) return *denied;
      options.credential = std::string(req.Header("Authorization")->substr(7));
    }
    auto reg = control_->RegisterHost(ctx.name, *inv, options);
    if (!reg.ok()) return Fail(reg.status());
    Json reply = core::EncodeHost(reg->host);
    // Shown once: the server keeps only its digest.
    if (!reg->credential.empty()) reply["credential"] = reg->credential;
    return JsonOk(200, reply, reg->host.revision);
  });
  router_.Handle("GET", "/v1/hosts", [this](const HttpRequest&) {
    int64_t rev = 0;
    auto hosts = control_->ListHosts(&rev);
    if (!hosts.ok()) return Fail(hosts.status());
    Json items = Json::array();
    for (const auto& h : *hosts) items.push_back(core::EncodeHost(h));
    return JsonOk(200, {{"items", items}, {"revision", rev}}, rev);
  });
  router_.Handle("GET", "/v1/hosts/{name}", [this](const HttpRequest& req) {
    auto h = control_->GetHost(req.Param("name"));
    if (!h.ok()) return Fail(h.status());
    auto assigned = control_->Assignments(h->name);
    Json body = core::EncodeHost(*h);
    if (assigned.ok()) {
      Json names = Json::array();
      for (const auto& w : *assigned) names.push_back(w.spec.name);
      body["workloads"] = names;
    }
    return JsonOk(200, body, h->revision);
  });
  router_.Handle("DELETE", "/v1/hosts/{name}", [this](const HttpRequest& req) {
    absl::Status s = control_->RemoveHost(req.Param("name"));
    if (!s.ok()) return Fail(s);
    return JsonOk(200, {{"name", req.Param("name")}, {"deleted", true}});
  });
  router_.Handle("PUT", "/v1/hosts/{name}/heartbeat", [this](const HttpRequest& req) {
    if (auto denied = OnlyItself(req, req.Param("name"))) return *denied;
    absl::Status s = control_->Heartbeat(req.Param("name"));
    if (!s.ok()) return Fail(s);
    return JsonOk(200, {{"name", req.Param("name")}, {"status", "ok"}});
  });
  router_.HandleAsync(
      "GET", "/v1/hosts/{name}/assignments", [this](const HttpRequest& req, Responder r) {
        std::string name = req.Param("name");
        if (auto denied = OnlyItself(req, name)) {
          r.Send(*denied);
          return;
        }
        Blocking(req, std::move(r), std::string(control::kWorkloadPrefix), [this, name] {
          int64_t rev = 0;
          auto list = control_->Assignments(name, &rev);
          if (!list.ok()) return Fail(list.status());
          return JsonOk(200, {{"items", WorkloadList(*list)}, {"revision", rev}}, rev);
        });
      });

  // Status reports of the workloads placed on a host.
  router_.Handle("PUT", "/v1/workloads/{name}/status", [this](const HttpRequest& req) {
    std::string name = req.Param("name");
    core::JsonContext ctx{"workload status", name};
    auto body = ParseBody(req.body, ctx);
    if (!body.ok()) return Fail(body.status());
    const Json& j = *body;
    absl::Status shape = core::CheckObject(
        ctx, j, "", {"host", "generation", "state", "reason", "exit_code", "oom_killed"});
    if (!shape.ok()) return Fail(shape);
    control::StatusReport report;
    std::string host, state_name;
    int64_t exit_code = 0;
    bool has_exit_code = j.contains("exit_code") && !j["exit_code"].is_null();
    for (absl::Status s : {
             core::OptionalString(ctx, j, "", "host", &host),
             core::OptionalInt(ctx, j, "", "generation", 0, INT64_MAX, &report.generation),
             core::OptionalString(ctx, j, "", "state", &state_name),
             core::OptionalString(ctx, j, "", "reason", &report.reason),
             core::OptionalInt(ctx, j, "", "exit_code", INT32_MIN, INT32_MAX, &exit_code),
             core::OptionalBool(ctx, j, "", "oom_killed", &report.oom_killed),
         }) {
      if (!s.ok()) return Fail(s);
    }
    auto state = core::ParseWorkloadState(state_name);
    if (!state) {
      return Fail(ctx.Error("state", Cat("is not a workload state, got \"", state_name, "\"")));
    }
    report.state = *state;
    if (has_exit_code) report.exit_code = static_cast<int>(exit_code);
    if (std::string caller = CallingHost(req); !caller.empty()) {
      if (auto denied = OnlyItself(req, host.empty() ? caller : host)) return *denied;
      auto current = control_->GetWorkload(name);
      if (!current.ok()) return Fail(current.status());
      if (current->status.host != caller) {
        return HttpResponse::Error(
            403, "permission_denied",
            Cat("host \"", caller, "\": workload \"", name, "\" is not placed on it"));
      }
      host = caller;
    }
    auto w = control_->ReportStatus(host, name, report);
    if (!w.ok()) return Fail(w.status());
    return JsonOk(200, core::EncodeWorkload(*w), w->revision);
  });
}

}  // namespace berth::api
