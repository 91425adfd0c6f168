// Routes requests by method and path pattern to handlers, for HttpServer. Patterns are literal
// segments and `{param}` segments, e.g. "/v1/workloads/{name}/actions/{action}"; a literal segment
// beats a parameter where both match. Unknown paths get 404, known paths with another method
// get 405 with Allow; both with the JSON error body. Middleware runs before routing (it may answer
// instead, e.g. 401 for a missing bearer token) and after each exchange completes (metrics, logs).
//
// Configure (Handle*, Before, After, RunOn) before the server starts; afterwards the Router is
// read-only and safe to call from every I/O thread at once. With RunOn, only the route lookup
// happens on the I/O thread: the middleware and the handler run on the pool's workers.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/http/message.h"
#include "api/http/server.h"
#include "api/http/work_pool.h"

namespace berth::api {

class Router {
 public:
  // Answers synchronously (on the I/O thread, or on a worker with RunOn).
  using SyncHandler = std::function<HttpResponse(const HttpRequest& request)>;
  // Answers through the Responder, now or later from any thread (long-polls, streams).
  using AsyncHandler = std::function<void(const HttpRequest& request, Responder responder)>;
  // Runs before routing; returning a response answers the request without routing it.
  using BeforeHook = std::function<std::optional<HttpResponse>(HttpRequest& request)>;
  // Runs once the exchange ends. `status` is the status written (499: the client went away);
  // `request.route` is the matched pattern ("" when none matched).
  using AfterHook =
      std::function<void(const HttpRequest& request, int status, absl::Duration latency)>;

  Router() = default;

  // Registers a handler for `method` ("GET", "POST", ...) on `pattern`. Crashes on a malformed
  // pattern or a duplicate method+pattern: both are programming errors.
  void Handle(std::string method, std::string pattern, SyncHandler handler);
  void HandleAsync(std::string method, std::string pattern, AsyncHandler handler);
  void Before(BeforeHook hook);
  void After(AfterHook hook);
  // Runs the before hooks and handlers on `pool` (not owned; must outlive the server's use of
  // the router). A request the pool refuses (its queue is full) is answered 503 with
  // Retry-After at once; the after hooks still see it.
  void RunOn(WorkPool* pool) { pool_ = pool; }

  // Dispatches one request: the HttpHandler the server calls.
  void Dispatch(HttpRequest& request, Responder responder) const;
  // An HttpHandler bound to this router (which must outlive the server).
  HttpHandler AsHandler() const;

 private:
  struct Segment {
    std::string text;  // the literal, or the parameter name
    bool is_param = false;
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    AsyncHandler handler;
  };

  // The route for the request, its parameters filled; null when none matches, with the methods
  // the path allows in `allowed` (empty: 404) or a malformed path in `error`.
  const Route* Resolve(HttpRequest& request, std::set<std::string>* allowed,
                       std::optional<std::string>* error) const;
  // Middleware, then the resolved route's handler (or the 400/404/405 for no route).
  void Run(HttpRequest& request, const Responder& responder, const Route* route,
           const std::set<std::string>& allowed, const std::optional<std::string>& error,
           std::chrono::steady_clock::time_point start) const;
  void AttachAfterHooks(const HttpRequest& request, const Responder& responder,
                        std::chrono::steady_clock::time_point start) const;
  static std::vector<Segment> ParsePattern(std::string_view pattern);
  // True when `route` matches the decoded `segments`; fills `params` when it does.
  static bool Match(const Route& route, const std::vector<std::string>& segments,
                    std::map<std::string, std::string>* params);

  std::vector<Route> routes_;
  std::vector<BeforeHook> before_;
  std::vector<AfterHook> after_;
  WorkPool* pool_ = nullptr;
};

// Splits a raw path into percent-decoded segments: "/v1/a%2Fb/" -> {"v1", "a/b"}.
absl::StatusOr<std::vector<std::string>> SplitPath(std::string_view raw_path);

}  // namespace berth::api
