// Workload routes: create, list, get, delete, actions, explain, and what the API serves of
// workloads' tasks (logs, console, stats, exec): from the server's own host, or relayed to the
// task API of the host a workload runs on. The status an agent reports is in routes_hosts.cc.
#include <functional>
#include <optional>
#include <set>

#include "api/api_server.h"
#include "api/body_parser.h"
#include "api/list_query.h"
#include "api/route_util.h"
#include "api/task_api.h"
#include "api/task_proxy.h"
#include "api/wire/wire.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

absl::StatusOr<std::optional<TaskApiTarget>> ApiServer::TaskHost(const std::string& name) {
  BERTH_ASSIGN_OR_RETURN(core::Workload w, control_->GetWorkload(name));
  const std::string& host = w.status.host;
  // This server's own host (dev mode); an unplaced workload is asked of it too, which answers
  // that there is no task yet.
  if (logs_ != nullptr && (host.empty() || host == logs_->HostName())) return std::nullopt;
  if (host.empty()) {
    return absl::FailedPreconditionError(Cat(
        "workload \"", name, "\": not placed on a host yet (",
        core::WorkloadStateName(w.status.state),
        "); its logs, console and task exist once it runs (berth workload explain ", name, ")"));
  }
  auto h = control_->GetHost(host);
  if (!h.ok()) {
    return absl::UnavailableError(Cat("workload \"", name, "\": its host \"", host,
                                      "\" is not registered any more: ", h.status().message()));
  }
  if (h->state == core::HostState::kDown) {
    return absl::UnavailableError(
        Cat("workload \"", name, "\": its host \"", host,
            "\" is down (no heartbeat within the host TTL); its logs, console and task can be "
            "reached again once its agent heartbeats"));
  }
  std::optional<control::TaskApiEndpoint> api = control_->TaskApi(host);
  if (!api) {
    return absl::UnavailableError(
        Cat("workload \"", name, "\": host \"", host,
            "\" has not reported a task API to this server, so its logs, console, stats and exec "
            "cannot be reached from here: its agent is older than this server (upgrade it), runs "
            "with --task-api-listen none, or its heartbeats reach this server through another one "
            "(with several servers, ask the leader, `berth status`, and list the leader first in "
            "the agent's --server; docs/cluster.md)"));
  }
  return TaskApiTarget{
      .host = host, .url = TaskApiUrl(api->address, api->port), .token = api->token};
}

absl::StatusOr<int64_t> ApiServer::SaveWarmState(const std::string& workload,
                                                 const std::string& key) {
  BERTH_ASSIGN_OR_RETURN(std::optional<TaskApiTarget> target, TaskHost(workload));
  if (target) return SaveWarmStateAt(*target, workload, key);
  return logs_->SaveWarmState(workload, key);
}

void ApiServer::WorkloadRoutes() {
  // Workloads.
  router_.Handle("POST", "/v1/workloads", [this](const HttpRequest& req) {
    auto body = ParseBody(req.body, {"workload", ""});
    if (!body.ok()) return Fail(body.status());
    auto spec = core::DecodeWorkloadSpec(*body);
    if (!spec.ok()) return Fail(spec.status());
    auto w = control_->CreateWorkload(*spec);
    if (!w.ok()) return Fail(w.status());
    return JsonOk(201, core::EncodeWorkload(*w), w->revision);
  });
  router_.HandleAsync("GET", "/v1/workloads", [this](const HttpRequest& req, Responder r) {
    absl::StatusOr<ListQuery> query =
        ParseListQuery(req, "workloads", {"state", "host", "kind", "tenant", "selector", "prefix"});
    if (!query.ok()) {
      r.Send(Fail(query.status()));
      return;
    }
    const control::ListOptions options = query->options;
    const bool whole = options.filter.Empty() && options.limit == 0 && options.after.empty();
    ListWatch watch;
    if (!whole) {
      watch.shown = [this, options](int64_t* revision) -> absl::StatusOr<std::set<std::string>> {
        control::ListPage page;
        BERTH_ASSIGN_OR_RETURN(std::vector<core::Workload> list,
                               control_->ListWorkloads(options, &page));
        *revision = page.revision;
        std::set<std::string> keys;
        for (const core::Workload& w : list) keys.insert(control::WorkloadKey(w.spec.name));
        return keys;
      };
      watch.matches = [filter = options.filter](const state::KeyValue& kv) {
        Json j = Json::parse(kv.value, nullptr, /*allow_exceptions=*/false);
        if (j.is_discarded()) return false;
        absl::StatusOr<core::Workload> w = core::DecodeWorkload(j);
        return w.ok() && control::MatchesWorkload(filter, *w);
      };
    }
    Blocking(
        req, std::move(r), std::string(control::kWorkloadPrefix),
        [this, query = *query, whole] {
          control::ListPage page;
          // The whole list keeps its own path (the control plane may serve it from memory).
          auto list = whole ? control_->ListWorkloads(&page.revision)
                            : control_->ListWorkloads(query.options, &page);
          if (!list.ok()) return Fail(list.status());
          Json body = wire::EncodeWorkloadList({*list, page.revision});
          AddContinue(body, query, "workloads", page.next);
          return JsonOk(200, body, page.revision);
        },
        std::move(watch));
  });
  router_.HandleAsync("GET", "/v1/workloads/{name}", [this](const HttpRequest& req, Responder r) {
    std::string name = req.Param("name");
    Blocking(req, std::move(r), control::WorkloadKey(name), [this, name] {
      auto rev = control_->store()->Revision();
      auto w = control_->GetWorkload(name);
      if (!w.ok()) return Fail(w.status());
      return JsonOk(200, core::EncodeWorkload(*w), rev.ok() ? *rev : 0);
    });
  });
  router_.Handle("DELETE", "/v1/workloads/{name}", [this](const HttpRequest& req) {
    bool deleted = false;
    auto w = control_->DeleteWorkload(req.Param("name"), &deleted);
    if (!w.ok()) return Fail(w.status());
    Json body = core::EncodeWorkload(*w);
    body["deleted"] = deleted;
    return JsonOk(deleted ? 200 : 202, body);
  });
  router_.Handle("POST", "/v1/workloads/{name}/actions/{action}", [this](const HttpRequest& req) {
    auto action = control::ParseAction(req.Param("action"));
    if (!action) {
      return Fail(absl::InvalidArgumentError(Cat(
          "workload \"", req.Param("name"),
          "\": action must be start, stop, pause or resume, got \"", req.Param("action"), "\"")));
    }
    auto w = control_->Act(req.Param("name"), *action);
    if (!w.ok()) return Fail(w.status());
    return JsonOk(200, core::EncodeWorkload(*w), w->revision);
  });
  router_.Handle("GET", "/v1/workloads/{name}/explain", [this](const HttpRequest& req) {
    auto why = control_->Explain(req.Param("name"));
    if (!why.ok()) return Fail(why.status());
    return JsonOk(200, *why);
  });
  // What the API serves of a workload's task: from this server's own host (dev mode), or
  // relayed to the task API of the host it runs on (`upstream`, under /v1/tasks/NAME).
  auto task_get = [this](Responder responder, const std::string& name, std::string_view upstream,
                         bool follow, const std::function<void(Responder)>& here) {
    auto target = TaskHost(name);
    if (!target.ok()) {
      responder.Send(Fail(target.status()));
    } else if (*target) {
      RelayTaskGet(**target, Cat("/v1/tasks/", PercentEncode(name), upstream), follow,
                   std::move(responder), &calls_);
    } else {
      here(std::move(responder));
    }
  };
  router_.HandleAsync("GET", "/v1/workloads/{name}/logs",
                      [this, task_get](const HttpRequest& req, Responder responder) {
                        std::string name = req.Param("name");
                        absl::StatusOr<std::string> stream = LogStreamParam(req);
                        if (!stream.ok()) {
                          responder.Send(Fail(stream.status()));
                          return;
                        }
                        const bool follow = FollowParam(req);
                        task_get(std::move(responder), name,
                                 Cat("/logs?stream=", *stream, follow ? "&follow=true" : ""),
                                 follow, [&](Responder here) {
                                   ServeTaskFile(req, std::move(here),
                                                 logs_->LogPath(name, *stream), Follow(name));
                                 });
                      });
  router_.HandleAsync(
      "GET", "/v1/workloads/{name}/console",
      [this, task_get](const HttpRequest& req, Responder responder) {
        std::string name = req.Param("name");
        const bool follow = FollowParam(req);
        task_get(std::move(responder), name, follow ? "/console?follow=true" : "/console", follow,
                 [&](Responder here) {
                   ServeTaskFile(req, std::move(here), logs_->ConsolePath(name), Follow(name));
                 });
      });
  router_.HandleAsync(
      "GET", "/v1/workloads/{name}/stats",
      [this, task_get](const HttpRequest& req, Responder responder) {
        std::string name = req.Param("name");
        task_get(std::move(responder), name, "/stats", /*follow=*/false, [&](Responder here) {
          auto stats = logs_->Stats(name);
          here.Send(stats.ok() ? JsonOk(200, *stats) : Fail(stats.status()));
        });
      });
  router_.HandleAsync("POST", "/v1/workloads/{name}/exec",
                      [this](const HttpRequest& req, Responder responder) {
                        std::string name = req.Param("name");
                        auto exec = ExecParam(req, name, options_.max_wait);
                        if (!exec.ok()) {
                          responder.Send(Fail(exec.status()));
                          return;
                        }
                        auto target = TaskHost(name);
                        if (!target.ok()) {
                          responder.Send(Fail(target.status()));
                          return;
                        }
                        // The command may run for a while: either way it keeps off the I/O and
                        // handler threads.
                        if (*target) {
                          RelayTaskExec(**target, name, *exec, std::move(responder), &calls_);
                        } else {
                          RunExec(&calls_, logs_, name, *std::move(exec), std::move(responder));
                        }
                      });
}

TaskFileFollow ApiServer::Follow(const std::string& name) {
  return TaskFileFollow{
      .server = server_.get(), .pool = pool_.get(), .over = [control = control_, name] {
        auto w = control->GetWorkload(name);
        return !w.ok() || core::IsTerminal(w->status.state);
      }};
}

}  // namespace berth::api
