#include "api/api_server.h"

#include <set>

#include "absl/strings/match.h"
#include "api/list_query.h"
#include "api/route_util.h"
#include "api/routes_rebalance.h"
#include "core/secret.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;

namespace {

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
    // Its part of the fleet's networks (api/storenet_routes.h).
    if (method == "GET" && EndsWith(path, "/networks")) return true;
    if (method == "POST" && EndsWith(path, "/network-attach")) return true;
    // Its workloads' disks (api/host_storage.h).
    if (method == "POST" && EndsWith(path, "/disk-attach")) return true;
    // The warm states its replicas resume from (api/routes_hosts.cc).
    if (method == "GET" && path.find("/warm-states/") != std::string_view::npos) return true;
  }
  return method == "PUT" && path.rfind("/v1/workloads/", 0) == 0 && EndsWith(path, "/status");
}

// A read-only token may GET anything but the streams that may carry secrets.
bool ReaderMayCall(std::string_view method, std::string_view path) {
  if (method != "GET") return false;
  return !(path.rfind("/v1/workloads/", 0) == 0 &&
           (EndsWith(path, "/logs") || EndsWith(path, "/console")));
}

// The dashboard's static files need no token: they hold no data, and the page asks for a token
// before it calls the API.
bool IsUiPath(std::string_view path) {
  return path == "/" || path == "/ui" || path.rfind("/ui/", 0) == 0;
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
  if (options_.workers >= 0) {
    pool_ = std::make_unique<WorkPool>(
        WorkPool::Options{.threads = options_.workers, .max_queued = options_.max_queued});
    router_.RunOn(pool_.get());
  }
  server_ = std::make_unique<HttpServer>(http, router_.AsHandler());
}

ApiServer::~ApiServer() { Stop(); }

absl::StatusOr<uint16_t> ApiServer::Start() { return server_->Start(); }
void ApiServer::Stop() {
  server_->Stop();
  // After the server: nothing dispatches to the pool any more, and what it still holds is
  // answered (into closed connections) before the control plane may go away.
  if (pool_) pool_->Stop();
  calls_.Wait();
}
uint16_t ApiServer::port() const { return server_->port(); }

void ApiServer::Blocking(const HttpRequest& request, Responder responder, std::string prefix,
                         std::function<HttpResponse()> answer, ListWatch filter) {
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
  if (index > 0) {
    // An index beyond the store's revision comes from another history: the store was restored
    // from a snapshot or moved to another store. Answering at once hands the caller this
    // store's revision to wait on, instead of a wait for a revision that may never come.
    absl::StatusOr<int64_t> current = control_->store()->Revision();
    if (current.ok() && index > *current) index = 0;
  }
  if (index <= 0) {
    responder.Send(answer());
    return;
  }
  // A filtered list wakes only for changes to what it shows or would show: the keys it lists
  // now, and any object stored after that which passes the filter. Changes between `index` and
  // this listing wake it at once, since what they replaced is no longer known.
  std::set<std::string> shown;
  int64_t shown_at = 0;
  if (filter.shown) {
    absl::StatusOr<std::set<std::string>> keys = filter.shown(&shown_at);
    if (!keys.ok()) {
      responder.Send(Fail(keys.status()));
      return;
    }
    shown = std::move(*keys);
  }
  struct Park {
    std::atomic<bool> done{false};
    absl::Mutex mu;
    std::unique_ptr<state::WatchHandle> watch ABSL_GUARDED_BY(mu);
    TimerHandle timer ABSL_GUARDED_BY(mu);
  };
  auto park = std::make_shared<Park>();
  HttpServer* server = server_.get();
  WorkPool* pool = pool_.get();
  // Ends the wait once: drops the watch and the timer, then answers unless the client left.
  // It runs on a worker: the answer may read and encode a large list.
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
  // The request was admitted when it arrived, so its resumption is not refused for a full queue.
  auto resume = [pool, server, finish](bool send) {
    if (pool == nullptr) {
      server->Post([finish, send] { finish(send); });
    } else if (!pool->Submit([finish, send] { finish(send); })) {
      finish(false);
    }
  };
  responder.OnCancel([resume] { resume(false); });
  std::optional<ListChangeFilter> changes;
  if (filter.shown) changes.emplace(std::move(shown), shown_at, filter.matches);
  auto concerns = [park, changes = std::move(changes)](const state::Event& e) {
    if (park->done.load()) return false;
    return !changes || changes->Concerns(e);
  };
  auto watch = control_->store()->Watch(
      prefix, index + 1, [resume, concerns = std::move(concerns)](const state::Event& e) {
        if (concerns(e)) resume(true);
      });
  if (!watch.ok()) {  // history compacted past index: answer at once with the current state
    resume(true);
    return;
  }
  absl::MutexLock lock(&park->mu);
  if (park->done) return;
  park->watch = std::move(*watch);
  park->timer = server->RunAfter(wait, [resume] { resume(true); });
}

void ApiServer::Routes() {
  router_.Before([this](HttpRequest& req) -> std::optional<HttpResponse> {
    if (req.path == "/healthz" || (req.method == "GET" && IsUiPath(req.path))) {
      return std::nullopt;
    }
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
    for (const auto& t : options_.read_tokens) {
      if (!token.empty() && ConstantTimeEquals(token, t)) {
        if (!ReaderMayCall(req.method, req.path)) {
          return HttpResponse::Error(403, "permission_denied",
                                     "a read-only token may only read (GET), and not logs or "
                                     "consoles; use the admin token");
        }
        req.attributes["role"] = "reader";
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
                  "\": a host credential may only register, heartbeat and watch its own host, "
                  "read and attach its part of the networks and its disks, copy its replicas' "
                  "warm states, and report its workloads' status; "
                  "use the admin token"));
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

  // One call per route file (api/routes_<resource>.cc).
  SystemRoutes();
  WorkloadRoutes();
  HostRoutes();
  TenantRoutes();
  EventRoutes();
  AddRebalanceRoutes(router_, control_);
  UiRoutes();
}

}  // namespace berth::api
