#include "api/api_server.h"

#include <climits>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "api/body_parser.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/secret.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

HttpResponse JsonOk(int status, const Json& body, int64_t index = -1) {
  HttpResponse r =
      HttpResponse::Json(status, body.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (index >= 0) r.headers.Set("X-Berth-Index", std::to_string(index));
  return r;
}

HttpResponse Fail(const absl::Status& s) { return HttpResponse::FromStatus(s); }

using core::ConstantTimeEquals;

bool EndsWith(std::string_view path, std::string_view suffix) {
  return path.size() >= suffix.size() && path.substr(path.size() - suffix.size()) == suffix;
}

// A host's credential may only re-register, heartbeat and watch that host, and report the
// status of the workloads placed on it. The route shapes are checked here, before routing; the
// handlers check that the names are the host's own.
bool HostMayCall(std::string_view method, std::string_view path) {
  if (method == "POST" && path == "/v1/hosts") return true;
  if (path.rfind("/v1/hosts/", 0) == 0) {
    if (method == "PUT" && EndsWith(path, "/heartbeat")) return true;
    if (method == "GET" && EndsWith(path, "/assignments")) return true;
  }
  return method == "PUT" && path.rfind("/v1/workloads/", 0) == 0 && EndsWith(path, "/status");
}

// The host a request speaks for when it came with a host credential; empty otherwise.
std::string CallingHost(const HttpRequest& req) {
  auto it = req.attributes.find("host");
  return it == req.attributes.end() ? std::string() : it->second;
}

// 403 when a host credential asks about another host than its own.
std::optional<HttpResponse> OnlyItself(const HttpRequest& req, std::string_view host) {
  std::string caller = CallingHost(req);
  if (caller.empty() || caller == host) return std::nullopt;
  return HttpResponse::Error(
      403, "permission_denied",
      Cat("host \"", caller, "\": its credential speaks only for itself, not for host \"", host,
          "\""));
}

// Streams a growing log file to a client until the client leaves, or the workload is gone or
// finished and its output drained. Each step reschedules itself on the server's timers, so a
// follower holds no thread.
class LogFollower : public std::enable_shared_from_this<LogFollower> {
 public:
  LogFollower(std::string path, std::string name, ResponseStream out, HttpServer* server,
              control::ControlPlane* control)
      : path_(std::move(path)),
        name_(std::move(name)),
        out_(std::move(out)),
        server_(server),
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
    server_->RunAfter(absl::Milliseconds(200), [self = shared_from_this()] { self->Step(); });
  }

 private:
  const std::string path_;
  const std::string name_;
  ResponseStream out_;
  HttpServer* server_;
  control::ControlPlane* control_;
  std::streamoff offset_ = 0;
  int idle_steps_ = 0;
};

Json WorkloadList(const std::vector<core::Workload>& list) {
  Json items = Json::array();
  for (const auto& w : list) items.push_back(core::EncodeWorkload(w));
  return items;
}

}  // namespace

ApiServer::ApiServer(ApiServerOptions options, control::ControlPlane* control, LocalHost* local)
    : options_(std::move(options)), control_(control), logs_(local) {
  Routes();
  HttpServer::Options http;
  http.host = options_.host;
  http.port = options_.port;
  http.threads = options_.threads;
  http.max_body_bytes = options_.max_body_bytes;
  http.metrics = &metrics_;
  server_ = std::make_unique<HttpServer>(http, router_.AsHandler());
}

ApiServer::~ApiServer() { Stop(); }

absl::StatusOr<uint16_t> ApiServer::Start() { return server_->Start(); }
void ApiServer::Stop() {
  server_->Stop();
  absl::MutexLock lock(&exec_mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(exec_mu_) { return execs_running_ == 0; };
  exec_mu_.Await(absl::Condition(&idle));
}
uint16_t ApiServer::port() const { return server_->port(); }

void ApiServer::Blocking(const HttpRequest& request, Responder responder, std::string prefix,
                         std::function<HttpResponse()> answer) {
  int64_t index = 0;
  if (auto text = request.Query("index")) {
    if (!absl::SimpleAtoi(*text, &index) || index < 0) {
      responder.Send(
          HttpResponse::Error(400, "invalid_argument",
                              Cat("query: index must be a revision number, got \"", *text, "\"")));
      return;
    }
  }
  absl::Duration wait = absl::Seconds(30);
  if (auto text = request.Query("wait")) {
    if (!absl::ParseDuration(*text, &wait) || wait < absl::ZeroDuration()) {
      responder.Send(
          HttpResponse::Error(400, "invalid_argument",
                              Cat("query: wait must be a duration like 30s, got \"", *text, "\"")));
      return;
    }
  }
  wait = std::min(wait, options_.max_wait);
  if (index <= 0) {
    responder.Send(answer());
    return;
  }
  struct Park {
    std::atomic<bool> done{false};
    absl::Mutex mu;
    std::unique_ptr<state::WatchHandle> watch ABSL_GUARDED_BY(mu);
    TimerHandle timer ABSL_GUARDED_BY(mu);
  };
  auto park = std::make_shared<Park>();
  HttpServer* server = server_.get();
  // Ends the wait once: drops the watch and the timer, then answers unless the client left.
  auto finish = [park, responder, answer](bool send) {
    if (park->done.exchange(true)) return;
    std::unique_ptr<state::WatchHandle> watch;
    {
      absl::MutexLock lock(&park->mu);
      park->timer.Cancel();
      watch = std::move(park->watch);
    }
    watch.reset();
    if (send && !responder.Cancelled()) responder.Send(answer());
  };
  responder.OnCancel([server, finish] { server->Post([finish] { finish(false); }); });
  auto watch = control_->store()->Watch(prefix, index + 1, [server, finish](const state::Event&) {
    server->Post([finish] { finish(true); });
  });
  if (!watch.ok()) {  // history compacted past index: answer at once with the current state
    finish(true);
    return;
  }
  absl::MutexLock lock(&park->mu);
  if (park->done) return;
  park->watch = std::move(*watch);
  park->timer = server->RunAfter(wait, [finish] { finish(true); });
}

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
                                                server_.get(), control_);
  follower->Step();
}

void ApiServer::Routes() {
  router_.Before([this](HttpRequest& req) -> std::optional<HttpResponse> {
    if (req.path == "/healthz") return std::nullopt;
    int authorizations = 0;
    for (const auto& [field, value] : req.headers.entries()) {
      if (absl::EqualsIgnoreCase(field, "Authorization")) ++authorizations;
    }
    if (authorizations > 1) {
      return HttpResponse::Error(
          400, "invalid_argument",
          "header Authorization: sent more than once; send one bearer token");
    }
    std::string token;
    if (auto auth = req.Header("Authorization"); auth && auth->rfind("Bearer ", 0) == 0) {
      token = auth->substr(7);
    }
    if (!token.empty() && !options_.admin_token.empty() &&
        ConstantTimeEquals(token, options_.admin_token)) {
      req.attributes["role"] = "admin";
      return std::nullopt;
    }
    for (const auto& t : options_.agent_tokens) {
      if (!token.empty() && ConstantTimeEquals(token, t)) {
        if (req.method != "POST" || req.path != "/v1/hosts") {
          return HttpResponse::Error(
              403, "permission_denied",
              "a join token may only register a host (POST /v1/hosts); the agent uses the "
              "credential its registration returned for everything else");
        }
        req.attributes["role"] = "join";
        return std::nullopt;
      }
    }
    if (!token.empty() && token.find(':') != std::string::npos) {
      auto host = control_->AuthenticateHost(token);
      if (host.ok()) {
        if (!HostMayCall(req.method, req.path)) {
          return HttpResponse::Error(
              403, "permission_denied",
              Cat("host \"", *host,
                  "\": a host credential may only register, heartbeat and watch its own host "
                  "and report its workloads' status; use the admin token"));
        }
        req.attributes["role"] = "host";
        req.attributes["host"] = *host;
        return std::nullopt;
      }
      if (!absl::IsUnauthenticated(host.status())) return Fail(host.status());
    }
    return HttpResponse::Error(
        401, "unauthenticated",
        token.empty() ? "missing bearer token: pass --token or set BERTH_TOKEN (the admin token "
                        "is in the server's data directory, admin.token)"
                      : "invalid bearer token: check --token or BERTH_TOKEN");
  });

  router_.Handle("GET", "/healthz", [](const HttpRequest&) {
    return JsonOk(200, {{"status", "ok"}});
  });
  router_.Handle("GET", "/metrics", [this](const HttpRequest&) { return Metrics(); });

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
    Blocking(req, std::move(r), std::string(control::kWorkloadPrefix), [this] {
      int64_t rev = 0;
      auto list = control_->ListWorkloads(&rev);
      if (!list.ok()) return Fail(list.status());
      return JsonOk(200, {{"items", WorkloadList(*list)}, {"revision", rev}}, rev);
    });
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
    return JsonOk(200, {{"name", req.Param("name")}, {"explanation", *why}});
  });
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
        core::JsonContext ctx{"workload exec", name};
        auto body = ParseBody(req.body, ctx);
        if (!body.ok()) {
          responder.Send(Fail(body.status()));
          return;
        }
        const Json& j = *body;
        absl::Status shape = core::CheckObject(ctx, j, "", {"argv", "env", "timeout"});
        if (!shape.ok()) {
          responder.Send(Fail(shape));
          return;
        }
        ExecRequest exec;
        if (!j.contains("argv") || !j["argv"].is_array() || j["argv"].empty()) {
          responder.Send(Fail(ctx.Error("argv", "must be a non-empty list of strings")));
          return;
        }
        for (const Json& a : j["argv"]) {
          if (!a.is_string()) {
            responder.Send(Fail(ctx.Error("argv", "must be a non-empty list of strings")));
            return;
          }
          exec.argv.push_back(a.get<std::string>());
        }
        if (j.contains("env")) {
          if (!j["env"].is_object()) {
            responder.Send(Fail(ctx.Error("env", "must be a map of strings")));
            return;
          }
          for (const auto& [k, v] : j["env"].items()) {
            if (!v.is_string()) {
              responder.Send(Fail(ctx.Error(Cat("env.", k), "must be a string")));
              return;
            }
            exec.env[k] = v.get<std::string>();
          }
        }
        if (j.contains("timeout")) {
          absl::Duration d;
          if (!j["timeout"].is_string() ||
              !absl::ParseDuration(j["timeout"].get<std::string>(), &d) ||
              d <= absl::ZeroDuration()) {
            responder.Send(Fail(ctx.Error("timeout", "must be a duration like 30s")));
            return;
          }
          exec.timeout = std::min(d, options_.max_wait);
        }
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
        std::thread([this, name, exec = std::move(exec), responder = std::move(responder)] {
          absl::Status guarded = core::RunGuarded("workload exec", [&] {
            auto r = logs_->Exec(name, exec);
            if (r.ok()) {
              responder.Send(JsonOk(200, {{"exit_code", r->exit_code},
                                          {"stdout", r->stdout_data},
                                          {"stderr", r->stderr_data}}));
            } else {
              responder.Send(Fail(r.status()));
            }
          });
          if (!guarded.ok()) responder.Send(Fail(guarded));  // no-op when already answered
          absl::MutexLock lock(&exec_mu_);
          --execs_running_;
        }).detach();
      });

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

  // Tenants and quotas.
  router_.Handle("GET", "/v1/tenants", [this](const HttpRequest&) {
    auto tenants = control_->Tenants();
    if (!tenants.ok()) return Fail(tenants.status());
    return JsonOk(200, {{"items", *tenants}});
  });
  router_.Handle("PUT", "/v1/tenants/{name}/quota", [this](const HttpRequest& req) {
    auto body = ParseBody(req.body, {"quota", req.Param("name")});
    if (!body.ok()) return Fail(body.status());
    auto quota = control_->SetQuota(req.Param("name"), *body);
    if (!quota.ok()) return Fail(quota.status());
    return JsonOk(200, {{"name", req.Param("name")}, {"quota", *quota}});
  });
  router_.Handle("DELETE", "/v1/tenants/{name}/quota", [this](const HttpRequest& req) {
    absl::Status s = control_->DeleteQuota(req.Param("name"));
    if (!s.ok()) return Fail(s);
    return JsonOk(200, {{"name", req.Param("name")}, {"quota", nullptr}});
  });

  // Events.
  router_.HandleAsync("GET", "/v1/events", [this](const HttpRequest& req, Responder r) {
    int64_t after = 0;
    if (auto text = req.Query("index")) (void)absl::SimpleAtoi(*text, &after);
    size_t limit = 1000;
    if (auto text = req.Query("limit")) (void)absl::SimpleAtoi(*text, &limit);
    Blocking(req, std::move(r), std::string(control::kEventPrefix), [this, after, limit] {
      int64_t rev = 0;
      auto events = control_->ListEvents(after, limit, &rev);
      if (!events.ok()) return Fail(events.status());
      Json items = Json::array();
      for (const auto& e : *events) items.push_back(core::EncodeEvent(e));
      return JsonOk(200, {{"items", items}, {"revision", rev}}, rev);
    });
  });
}

HttpResponse ApiServer::Metrics() {
  static constexpr std::string_view kStates[] = {"pending", "scheduled", "starting", "running",
                                                 "paused",  "stopping",  "stopped",  "failed"};
  auto& workloads = metrics_.AddGauge("berth_workloads", "Workloads by state.");
  auto& hosts = metrics_.AddGauge("berth_hosts", "Hosts by state.");
  auto& capacity = metrics_.AddGauge("berth_capacity", "Capacity of ready hosts by resource.");
  auto& allocated =
      metrics_.AddGauge("berth_allocated", "Resources allocated to placed workloads.");
  std::map<std::string, int> by_state;
  for (auto s : kStates) by_state[std::string(s)] = 0;
  auto list = control_->ListWorkloads();
  double cpu = 0, mem = 0, disk = 0, gpu = 0;
  core::OkOrReport("api.metrics", "list workloads", list.status());
  if (list.ok()) {
    for (const auto& w : *list) {
      by_state[std::string(core::WorkloadStateName(w.status.state))]++;
      if (!w.status.host.empty() && !core::IsTerminal(w.status.state)) {
        cpu += w.spec.resources.cpu.value() / 1000.0;
        mem += w.spec.resources.memory.value() * 1048576.0;
        disk += w.spec.resources.disk.value() * 1048576.0;
        gpu += w.spec.gpu.TotalMilli() / 1000.0;
      }
    }
  }
  for (const auto& [state, n] : by_state) workloads.WithLabels({{"state", state}}).Set(n);
  int ready = 0, down = 0;
  double cap_cpu = 0, cap_mem = 0, cap_disk = 0, cap_gpu = 0;
  auto hs = control_->ListHosts();
  core::OkOrReport("api.metrics", "list hosts", hs.status());
  if (hs.ok()) {
    for (const auto& h : *hs) {
      if (h.state != core::HostState::kReady) {
        ++down;
        continue;
      }
      ++ready;
      cap_cpu += h.inventory.capacity.cpu.value() / 1000.0;
      cap_mem += h.inventory.capacity.memory.value() * 1048576.0;
      cap_disk += h.inventory.capacity.disk.value() * 1048576.0;
      cap_gpu += h.inventory.gpus.size();
    }
  }
  hosts.WithLabels({{"state", "ready"}}).Set(ready);
  hosts.WithLabels({{"state", "down"}}).Set(down);
  capacity.WithLabels({{"resource", "cpu"}}).Set(cap_cpu);
  capacity.WithLabels({{"resource", "memory_bytes"}}).Set(cap_mem);
  capacity.WithLabels({{"resource", "disk_bytes"}}).Set(cap_disk);
  capacity.WithLabels({{"resource", "gpu"}}).Set(cap_gpu);
  allocated.WithLabels({{"resource", "cpu"}}).Set(cpu);
  allocated.WithLabels({{"resource", "memory_bytes"}}).Set(mem);
  allocated.WithLabels({{"resource", "disk_bytes"}}).Set(disk);
  allocated.WithLabels({{"resource", "gpu"}}).Set(gpu);
  // Errors this process logged and counted instead of returning (core::ReportError).
  auto& errors = metrics_.AddCounter(
      "berth_errors_total",
      "Errors logged and counted where they could not be returned, by component.");
  for (const auto& [where, count] : core::ErrorCounts()) {
    Counter& c = errors.WithLabels({{"where", where}});
    c.Increment(static_cast<double>(count) - c.Value());
  }
  HttpResponse r = HttpResponse::Text(200, metrics_.Render());
  r.headers.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  return r;
}

}  // namespace berth::api
