// Workload routes: create, list, get, delete, actions, explain, and what the API serves from
// local tasks (logs, console, stats, exec). The status an agent reports is in routes_hosts.cc.
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "api/api_server.h"
#include "api/body_parser.h"
#include "api/list_query.h"
#include "api/route_util.h"
#include "api/wire/wire.h"
#include "core/guard.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

// Streams a growing log file to a client until the client leaves, or the workload is gone or
// finished and its output drained. Each step reschedules itself on the server's timers, so a
// follower holds no thread; the step itself (a file read and a store read) runs on a handler
// thread when there is a pool, never on an I/O thread.
class LogFollower : public std::enable_shared_from_this<LogFollower> {
 public:
  LogFollower(std::string path, std::string name, ResponseStream out, HttpServer* server,
              WorkPool* pool, control::ControlPlane* control)
      : path_(std::move(path)),
        name_(std::move(name)),
        out_(std::move(out)),
        server_(server),
        pool_(pool),
        control_(control) {}

  void Step() {
    if (out_.Cancelled()) return;
    std::ifstream in(path_, std::ios::binary);
    if (in) {
      in.seekg(offset_);
      std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (!chunk.empty()) {
        offset_ += static_cast<std::streamoff>(chunk.size());
        out_.Write(chunk);
      }
    }
    auto w = control_->GetWorkload(name_);
    bool over = !w.ok() || core::IsTerminal(w->status.state);
    if (over && ++idle_steps_ > 2) {
      out_.Finish();
      return;
    }
    server_->RunAfter(absl::Milliseconds(200), [self = shared_from_this()] {
      // A stopped pool refuses the step, which ends the stream: the server is going away.
      if (self->pool_ == nullptr) {
        self->Step();
      } else if (!self->pool_->Submit([self] { self->Step(); })) {
        self->out_.Finish();
      }
    });
  }

 private:
  const std::string path_;
  const std::string name_;
  ResponseStream out_;
  HttpServer* server_;
  WorkPool* pool_;  // null: steps run on the I/O thread
  control::ControlPlane* control_;
  std::streamoff offset_ = 0;
  int idle_steps_ = 0;
};

}  // namespace

absl::StatusOr<core::Workload> ApiServer::LocalWorkload(const std::string& name) {
  BERTH_ASSIGN_OR_RETURN(core::Workload w, control_->GetWorkload(name));
  if (logs_ == nullptr) {
    return absl::UnimplementedError(Cat("workload \"", name,
                                        "\": its logs, console and tasks are on host ",
                                        w.status.host.empty() ? "(none yet)" : w.status.host,
                                        "; run the command against the server on that host"));
  }
  return w;
}

void ApiServer::ServeFile(const HttpRequest& req, Responder responder, const std::string& name,
                          const absl::StatusOr<std::string>& path) {
  if (!path.ok()) {
    responder.Send(Fail(path.status()));
    return;
  }
  bool follow = req.Query("follow").value_or("") == "true" || req.Query("follow") == "1";
  if (!follow) {
    std::ifstream in(*path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    responder.Send(HttpResponse::Text(200, ss.str()));
    return;
  }
  HttpHeaders headers;
  headers.Set("Content-Type", "text/plain; charset=utf-8");
  auto follower = std::make_shared<LogFollower>(*path, name, responder.StartStream(200, headers),
                                                server_.get(), pool_.get(), control_);
  follower->Step();
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
  router_.HandleAsync(
      "GET", "/v1/workloads/{name}/logs", [this](const HttpRequest& req, Responder responder) {
        std::string name = req.Param("name");
        std::string stream = req.Query("stream").value_or("stdout");
        if (stream != "stdout" && stream != "stderr") {
          responder.Send(Fail(absl::InvalidArgumentError(
              Cat("query: stream must be stdout or stderr, got \"", stream, "\""))));
          return;
        }
        auto w = LocalWorkload(name);
        if (!w.ok()) {
          responder.Send(Fail(w.status()));
          return;
        }
        ServeFile(req, std::move(responder), name, logs_->LogPath(name, stream));
      });
  router_.HandleAsync("GET", "/v1/workloads/{name}/console",
                      [this](const HttpRequest& req, Responder responder) {
                        std::string name = req.Param("name");
                        auto w = LocalWorkload(name);
                        if (!w.ok()) {
                          responder.Send(Fail(w.status()));
                          return;
                        }
                        ServeFile(req, std::move(responder), name, logs_->ConsolePath(name));
                      });
  router_.Handle("GET", "/v1/workloads/{name}/stats", [this](const HttpRequest& req) {
    std::string name = req.Param("name");
    auto w = LocalWorkload(name);
    if (!w.ok()) return Fail(w.status());
    auto stats = logs_->Stats(name);
    if (!stats.ok()) return Fail(stats.status());
    return JsonOk(200, *stats);
  });
  router_.HandleAsync(
      "POST", "/v1/workloads/{name}/exec", [this](const HttpRequest& req, Responder responder) {
        std::string name = req.Param("name");
        auto body = ParseBody(req.body, {"workload exec", name});
        if (!body.ok()) {
          responder.Send(Fail(body.status()));
          return;
        }
        auto exec = wire::DecodeExecRequest(name, *body);
        if (!exec.ok()) {
          responder.Send(Fail(exec.status()));
          return;
        }
        exec->timeout = std::min(exec->timeout, options_.max_wait);
        auto w = LocalWorkload(name);
        if (!w.ok()) {
          responder.Send(Fail(w.status()));
          return;
        }
        // The command may run for a while: keep it off the I/O threads.
        {
          absl::MutexLock lock(&exec_mu_);
          ++execs_running_;
        }
        std::thread([this, name, exec = *std::move(exec), responder = std::move(responder)] {
          absl::Status guarded = core::RunGuarded("workload exec", [&] {
            auto r = logs_->Exec(name, exec);
            if (r.ok()) {
              responder.Send(JsonOk(200, wire::EncodeExecReply(*r)));
            } else {
              responder.Send(Fail(r.status()));
            }
          });
          if (!guarded.ok()) responder.Send(Fail(guarded));  // no-op when already answered
          absl::MutexLock lock(&exec_mu_);
          --execs_running_;
        }).detach();
      });
}

}  // namespace berth::api
