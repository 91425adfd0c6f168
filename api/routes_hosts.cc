// Routes agents and operators call about hosts: registration (which issues the host's
// credential), list, get, remove, heartbeats, the long-poll for assignments, the warm states a
// host's replicas copy from other hosts, and the status reports of the workloads placed on a
// host.
#include <algorithm>
#include <climits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "api/api_server.h"
#include "api/body_parser.h"
#include "api/cluster_routes.h"
#include "api/list_query.h"
#include "api/route_util.h"
#include "api/task_proxy.h"
#include "api/wire/wire.h"
#include "core/log.h"
#include "core/service.h"
#include "core/strings.h"
#include "core/workload.h"

namespace berth::api {

using core::Cat;
using core::Json;

void ApiServer::AddAllocationAndUsage(Json& hosts) {
  auto allocations = control_->HostAllocations();
  core::OkOrReport("api.hosts", "host allocations", allocations.status());
  std::map<std::string, core::HostUsage> usage = control_->HostUsages();
  for (Json& h : hosts) {
    const std::string name = h.value("name", "");
    if (allocations.ok()) {
      auto a = allocations->find(name);
      h["allocated"] =
          core::EncodeHostAllocation(a != allocations->end() ? a->second : core::HostAllocation{});
    }
    auto u = usage.find(name);
    h["used"] = u != usage.end() ? core::EncodeHostUsage(u->second) : Json(nullptr);
  }
}

void ApiServer::HostRoutes() {
  // Hosts.
  router_.Handle("POST", "/v1/hosts", [this](const HttpRequest& req) {
    auto body = ParseBody(req.body, {"host", ""});
    if (!body.ok()) return Fail(body.status());
    auto registration = wire::DecodeHostRegistration(*body);
    if (!registration.ok()) return Fail(registration.status());
    const std::string& name = registration->name;
    control::RegisterHostOptions options;
    if (std::string caller = CallingHost(req); !caller.empty()) {
      if (auto denied = OnlyItself(req, name)) return *denied;
      options.credential = std::string(req.Header("Authorization")->substr(7));
    }
    auto reg = control_->RegisterHost(name, registration->inventory, options);
    if (!reg.ok()) return Fail(reg.status());
    // The credential is shown once: the server keeps only its digest.
    return JsonOk(
        200,
        wire::EncodeRegistrationReply({.host = reg->host,
                                       .credential = reg->credential,
                                       .host_ttl = control_->options().host_ttl,
                                       .failover_grace = control_->options().failover_grace}),
        reg->host.revision);
  });
  // Cordon, uncordon, drain: the host as it stands after the call (a drain goes on in the
  // control loop; its progress is the host's "drain").
  for (std::string_view verb : {"cordon", "uncordon", "drain"}) {
    router_.Handle("POST", Cat("/v1/hosts/{name}/", verb), [this, verb](const HttpRequest& req) {
      const std::string name = req.Param("name");
      auto h = verb == "drain" ? control_->DrainHost(name)
                               : control_->CordonHost(name, verb == "cordon");
      if (!h.ok()) return Fail(h.status());
      return JsonOk(200, core::EncodeHost(*h), h->revision);
    });
  }
  router_.Handle("GET", "/v1/hosts", [this](const HttpRequest& req) {
    absl::StatusOr<ListQuery> query = ParseListQuery(req, "hosts", {"state", "selector", "prefix"});
    if (!query.ok()) return Fail(query.status());
    const control::ListOptions& options = query->options;
    control::ListPage page;
    // From the control plane's cluster model: a page costs what it holds, whatever the fleet.
    auto hosts = control_->ListHostDetails(options, &page);
    if (!hosts.ok()) return Fail(hosts.status());
    Json items = Json::array();
    for (const control::HostListing& l : *hosts) {
      Json h = core::EncodeHost(l.host);
      h["allocated"] = core::EncodeHostAllocation(l.allocated);
      h["used"] = l.used ? core::EncodeHostUsage(*l.used) : Json(nullptr);
      items.push_back(std::move(h));
    }
    Json body = wire::EncodeHostList({{}, page.revision});
    body["items"] = std::move(items);
    AddContinue(body, *query, "hosts", page.next);
    return JsonOk(200, body, page.revision);
  });
  router_.Handle("GET", "/v1/hosts/{name}", [this](const HttpRequest& req) {
    auto h = control_->GetHost(req.Param("name"));
    if (!h.ok()) return Fail(h.status());
    auto assigned = control_->Assignments(h->name);
    Json body = core::EncodeHost(*h);
    {
      Json one = Json::array({body});
      AddAllocationAndUsage(one);
      body = std::move(one[0]);
    }
    if (assigned.ok()) {
      Json names = Json::array();
      for (const auto& w : *assigned) names.push_back(w.spec.name);
      body["workloads"] = names;
    }
    return JsonOk(200, body, h->revision);
  });
  router_.Handle("GET", "/v1/hosts/{name}/usage", [this](const HttpRequest& req) {
    auto history = control_->UsageHistory(req.Param("name"));
    if (!history.ok()) return Fail(history.status());
    Json samples = Json::array();
    for (const control::UsageSample& s : *history) {
      Json one = core::EncodeHostUsage(s.usage);
      one["time"] = core::EncodeTime(s.time);
      samples.push_back(std::move(one));
    }
    return JsonOk(200, {{"host", req.Param("name")}, {"samples", samples}});
  });
  router_.Handle("DELETE", "/v1/hosts/{name}", [this](const HttpRequest& req) {
    absl::Status s = control_->RemoveHost(req.Param("name"));
    if (!s.ok()) return Fail(s);
    return JsonOk(200, {{"name", req.Param("name")}, {"deleted", true}});
  });
  router_.Handle("PUT", "/v1/hosts/{name}/heartbeat", [this](const HttpRequest& req) {
    if (auto denied = OnlyItself(req, req.Param("name"))) return *denied;
    // An agent sends what it measured on its host, where it serves its task API and the warm
    // states it keeps with the heartbeat; the body may be empty.
    auto body = StrictBody(req, "host", req.Param("name"), {"usage", "task_api", "warm_states"});
    if (!body.ok()) return Fail(body.status());
    std::optional<core::HostUsage> usage;
    if (auto it = body->find("usage"); it != body->end()) {
      auto decoded = core::DecodeHostUsage(req.Param("name"), *it);
      if (!decoded.ok()) return Fail(decoded.status());
      usage = std::move(*decoded);
    }
    std::optional<control::TaskApiEndpoint> task_api;
    if (auto it = body->find("task_api"); it != body->end()) {
      auto decoded = wire::DecodeTaskApiReport(req.Param("name"), *it);
      if (!decoded.ok()) return Fail(decoded.status());
      // The address is the heartbeat's own peer, so a host credential cannot send this server
      // elsewhere. A heartbeat another server forwarded comes from that server, not from the
      // host: its task API stays unknown here.
      if (!req.Header(kForwardedHeader)) {
        task_api = control::TaskApiEndpoint{
            .address = req.remote_address, .port = decoded->port, .token = decoded->token};
      }
    }
    std::vector<std::string> warm_states;
    if (auto it = body->find("warm_states"); it != body->end()) {
      auto decoded = wire::DecodeWarmStates(req.Param("name"), "warm_states", *it);
      if (!decoded.ok()) return Fail(decoded.status());
      warm_states = std::move(*decoded);
    }
    absl::Status s = control_->Heartbeat(req.Param("name"), usage, task_api);
    if (!s.ok()) return Fail(s);
    wire::HeartbeatReply reply{
        .drop_warm_states = control_->ReportWarmStates(req.Param("name"), std::move(warm_states))};
    return JsonOk(200, wire::EncodeHeartbeatReply(req.Param("name"), reply));
  });
  router_.HandleAsync(
      "GET", "/v1/hosts/{name}/assignments", [this](const HttpRequest& req, Responder r) {
        std::string name = req.Param("name");
        if (auto denied = OnlyItself(req, name)) {
          r.Send(*denied);
          return;
        }
        // ?since=REV: only what changed after the revision of the caller's last answer.
        int64_t since = 0;
        if (auto text = req.Query("since")) {
          if (!absl::SimpleAtoi(*text, &since) || since < 0) {
            r.Send(HttpResponse::Error(
                400, "invalid_argument",
                Cat("query: since must be a revision number, got \"", text->substr(0, 32), "\"")));
            return;
          }
        }
        // Woken only by changes to this host's work: the workloads it has now, and any
        // workload placed on it after. A fleet of agents long-polling does not wake whole for
        // every placement elsewhere.
        ListWatch watch;
        watch.shown = [this, name](int64_t* revision) -> absl::StatusOr<std::set<std::string>> {
          BERTH_ASSIGN_OR_RETURN(std::vector<core::Workload> list,
                                 control_->Assignments(name, revision));
          std::set<std::string> keys;
          for (const core::Workload& w : list) keys.insert(control::WorkloadKey(w.spec.name));
          return keys;
        };
        watch.matches = [name](const state::KeyValue& kv) {
          // A workload placed here names the host in its value: most changes end at this
          // search, without a decode.
          if (kv.value.find(name) == std::string::npos) return false;
          Json j = Json::parse(kv.value, nullptr, /*allow_exceptions=*/false);
          if (j.is_discarded()) return false;
          absl::StatusOr<core::Workload> w = core::DecodeWorkload(j);
          return w.ok() && w->status.host == name;
        };
        Blocking(
            req, std::move(r), std::string(control::kWorkloadPrefix),
            [this, name, since] {
              if (since > 0) {
                auto changes = control_->AssignmentsSince(name, since);
                if (!changes.ok()) return Fail(changes.status());
                wire::Assignments a{.items = std::move(changes->items),
                                    .revision = changes->revision,
                                    .since = changes->full ? 0 : since,
                                    .removed = std::move(changes->removed)};
                return JsonOk(200, wire::EncodeAssignments(a), a.revision);
              }
              int64_t rev = 0;
              auto list = control_->Assignments(name, &rev);
              if (!list.ok()) return Fail(list.status());
              return JsonOk(200, wire::EncodeWorkloadList({*list, rev}), rev);
            },
            std::move(watch));
      });

  // A warm state another host keeps, for a replica placed on this host to resume from: an
  // agent copies it before it starts such a replica (agent::Agent). Relayed from the task API
  // of a host that reported it; only for a warm state a replica placed here names.
  router_.HandleAsync(
      "GET", "/v1/hosts/{name}/warm-states/{key}", [this](const HttpRequest& req, Responder r) {
        const std::string name = req.Param("name");
        const std::string key = req.Param("key");
        if (auto denied = OnlyItself(req, name)) {
          r.Send(*denied);
          return;
        }
        if (!core::ParseWarmStateKey(key)) {
          r.Send(
              HttpResponse::Error(400, "invalid_argument",
                                  Cat("warm state: key must be SERVICE.rREVISION (web.r3), got \"",
                                      key.substr(0, 64), "\"")));
          return;
        }
        absl::StatusOr<std::vector<core::Workload>> placed = control_->Assignments(name);
        if (!placed.ok()) {
          r.Send(Fail(placed.status()));
          return;
        }
        const bool wanted = std::any_of(placed->begin(), placed->end(), [&](const auto& w) {
          auto it = w.spec.labels.find(std::string(core::kWarmStateLabel));
          return it != w.spec.labels.end() && it->second == key;
        });
        if (!wanted) {
          r.Send(Fail(absl::PermissionDeniedError(
              Cat("host \"", name, "\": no workload placed here resumes from warm state ", key,
                  "; a host copies only the warm states of its own replicas"))));
          return;
        }
        for (const auto& [host, keys] : control_->WarmStates()) {
          if (host == name || !keys.contains(key)) continue;
          absl::StatusOr<core::Host> h = control_->GetHost(host);
          if (!h.ok() || h->state == core::HostState::kDown) continue;
          std::optional<control::TaskApiEndpoint> api = control_->TaskApi(host);
          if (!api) continue;
          RelayTaskGet(
              TaskApiTarget{
                  .host = host, .url = TaskApiUrl(api->address, api->port), .token = api->token},
              Cat("/v1/warm-states/", key), /*follow=*/true, std::move(r), &calls_);
          return;
        }
        r.Send(Fail(absl::NotFoundError(
            Cat("warm state ", key, ": no other host that keeps it can be reached now"))));
      });

  // Status reports of the workloads placed on a host.
  router_.Handle("PUT", "/v1/workloads/{name}/status", [this](const HttpRequest& req) {
    std::string name = req.Param("name");
    auto body = ParseBody(req.body, {"workload status", name});
    if (!body.ok()) return Fail(body.status());
    auto decoded = wire::DecodeStatusReport(name, *body);
    if (!decoded.ok()) return Fail(decoded.status());
    std::string host = decoded->host;
    control::StatusReport report{.generation = decoded->generation,
                                 .state = decoded->state,
                                 .reason = decoded->reason,
                                 .exit_code = decoded->exit_code,
                                 .oom_killed = decoded->oom_killed};
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
