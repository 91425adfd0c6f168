#include "api/http/router.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "core/guard.h"
#include "core/strings.h"

namespace berth::api {
namespace {

// Route table mistakes are programming errors: crash with the reason.
void Require(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "berth router: %s\n", what.c_str());
  std::abort();
}

// Every field of `request` but its body.
HttpRequest WithoutBody(const HttpRequest& request) {
  HttpRequest copy;
  copy.method = request.method;
  copy.target = request.target;
  copy.path = request.path;
  copy.query = request.query;
  copy.headers = request.headers;
  copy.remote_address = request.remote_address;
  copy.remote_port = request.remote_port;
  copy.version = request.version;
  copy.route = request.route;
  copy.params = request.params;
  copy.attributes = request.attributes;
  return copy;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitPath(std::string_view raw_path) {
  std::vector<std::string> segments;
  size_t start = 0;
  while (start < raw_path.size()) {
    size_t slash = raw_path.find('/', start);
    std::string_view piece = raw_path.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (!piece.empty()) {
      absl::StatusOr<std::string> decoded = PercentDecode(piece, /*plus_is_space=*/false);
      if (!decoded.ok()) {
        return absl::InvalidArgumentError(core::Cat("path: ", decoded.status().message()));
      }
      segments.push_back(std::move(*decoded));
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return segments;
}

std::vector<Router::Segment> Router::ParsePattern(std::string_view pattern) {
  Require(!pattern.empty() && pattern[0] == '/',
          core::Cat("pattern \"", pattern, "\" must start with '/'"));
  std::vector<Segment> out;
  std::set<std::string> names;
  absl::StatusOr<std::vector<std::string>> pieces = SplitPath(pattern);
  Require(pieces.ok(), core::Cat("pattern \"", pattern, "\" is not a valid path"));
  for (const std::string& piece : *pieces) {
    if (piece.front() == '{') {
      Require(piece.size() > 2 && piece.back() == '}',
              core::Cat("pattern \"", pattern, "\": bad parameter segment \"", piece, "\""));
      std::string name = piece.substr(1, piece.size() - 2);
      Require(names.insert(name).second,
              core::Cat("pattern \"", pattern, "\": parameter \"", name, "\" repeats"));
      out.push_back(Segment{std::move(name), true});
    } else {
      Require(piece.find_first_of("{}") == std::string::npos,
              core::Cat("pattern \"", pattern, "\": bad segment \"", piece, "\""));
      out.push_back(Segment{piece, false});
    }
  }
  return out;
}

void Router::Handle(std::string method, std::string pattern, SyncHandler handler) {
  HandleAsync(std::move(method), std::move(pattern),
              [handler = std::move(handler)](const HttpRequest& request, Responder responder) {
                responder.Send(handler(request));
              });
}

void Router::HandleAsync(std::string method, std::string pattern, AsyncHandler handler) {
  std::vector<Segment> segments = ParsePattern(pattern);
  for (const Route& r : routes_) {
    bool same_shape = r.segments.size() == segments.size();
    for (size_t i = 0; same_shape && i < segments.size(); ++i) {
      same_shape = r.segments[i].is_param == segments[i].is_param &&
                   (segments[i].is_param || r.segments[i].text == segments[i].text);
    }
    Require(!(same_shape && r.method == method),
            core::Cat("route ", method, " ", pattern, " is registered twice"));
  }
  routes_.push_back(
      Route{std::move(method), std::move(pattern), std::move(segments), std::move(handler)});
}

HttpHandler Router::AsHandler() const {
  return [this](HttpRequest& request, Responder responder) {
    Dispatch(request, std::move(responder));
  };
}

void Router::Before(BeforeHook hook) { before_.push_back(std::move(hook)); }
void Router::After(AfterHook hook) { after_.push_back(std::move(hook)); }

void Router::AttachAfterHooks(const HttpRequest& request, const Responder& responder,
                              std::chrono::steady_clock::time_point start) const {
  if (after_.empty()) return;
  // The exchange may end after the handler's request is gone, so the hooks get a copy (without
  // the body, which they have no use for and which may be large).
  auto copy = std::make_shared<HttpRequest>(WithoutBody(request));
  responder.OnComplete([this, copy, start](int status) {
    absl::Duration latency = absl::FromChrono(std::chrono::steady_clock::now() - start);
    for (const AfterHook& hook : after_) hook(*copy, status, latency);
  });
}

bool Router::Match(const Route& route, const std::vector<std::string>& segments,
                   std::map<std::string, std::string>* params) {
  if (route.segments.size() != segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    if (!route.segments[i].is_param && route.segments[i].text != segments[i]) return false;
  }
  params->clear();
  for (size_t i = 0; i < segments.size(); ++i) {
    if (route.segments[i].is_param) (*params)[route.segments[i].text] = segments[i];
  }
  return true;
}

const Router::Route* Router::Resolve(HttpRequest& request, std::set<std::string>* allowed,
                                     std::optional<std::string>* error) const {
  absl::StatusOr<std::vector<std::string>> segments = SplitPath(request.path);
  if (!segments.ok()) {
    *error = std::string(segments.status().message());
    return nullptr;
  }
  // Among the routes whose shape matches, the one with literals earliest wins, so
  // "/v1/workloads/_count" beats "/v1/workloads/{name}" whatever order they were added in.
  const Route* best = nullptr;
  std::vector<bool> best_mask;
  std::map<std::string, std::string> params;
  for (const Route& route : routes_) {
    if (!Match(route, *segments, &params)) continue;
    std::vector<bool> mask;
    for (const Segment& s : route.segments) mask.push_back(!s.is_param);
    if (route.method != request.method) {
      // HEAD is served by GET handlers; the server drops the body.
      if (!(request.method == "HEAD" && route.method == "GET")) {
        allowed->insert(route.method);
        continue;
      }
    }
    if (best == nullptr || mask > best_mask) {
      best = &route;
      best_mask = std::move(mask);
    }
  }
  if (best != nullptr) {
    Match(*best, *segments, &request.params);
    request.route = best->pattern;
  }
  return best;
}

void Router::Run(HttpRequest& request, const Responder& responder, const Route* route,
                 const std::set<std::string>& allowed, const std::optional<std::string>& error,
                 std::chrono::steady_clock::time_point start) const {
  AttachAfterHooks(request, responder, start);
  for (const BeforeHook& hook : before_) {
    std::optional<HttpResponse> early = hook(request);
    if (early) {
      responder.Send(std::move(*early));
      return;
    }
  }
  if (error) {
    responder.Send(HttpResponse::Error(400, "bad_request", *error));
    return;
  }
  if (route == nullptr) {
    if (allowed.empty()) {
      responder.Send(HttpResponse::Error(
          404, "not_found", core::Cat("no route for ", request.method, " ", request.path)));
      return;
    }
    std::string allow;
    for (const std::string& m : allowed) {
      if (!allow.empty()) allow += ", ";
      allow += m;
    }
    if (allowed.count("GET") && !allowed.count("HEAD")) allow += ", HEAD";
    HttpResponse response =
        HttpResponse::Error(405, "method_not_allowed",
                            core::Cat("method ", request.method, " is not allowed on ",
                                      request.path, "; allowed: ", allow));
    response.headers.Set("Allow", allow);
    responder.Send(std::move(response));
    return;
  }
  route->handler(request, responder);
}

void Router::Dispatch(HttpRequest& request, Responder responder) const {
  const auto start = std::chrono::steady_clock::now();
  // The route is found here, on the I/O thread, so the server labels the exchange with it.
  std::set<std::string> allowed;
  std::optional<std::string> error;
  const Route* route = Resolve(request, &allowed, &error);
  if (pool_ == nullptr) {
    Run(request, responder, route, allowed, error, start);
    return;
  }
  // The worker gets its own copy of the request (the body moved, not copied), so it owns what
  // it reads whoever owns `request`.
  auto owned = std::make_shared<HttpRequest>(WithoutBody(request));
  owned->body = std::move(request.body);
  bool queued = pool_->TrySubmit([this, owned, responder, route, allowed, error, start] {
    absl::Status guarded = core::RunGuarded(
        core::Cat(owned->method, " ", owned->route.empty() ? "(unrouted)" : owned->route),
        [&] { Run(*owned, responder, route, allowed, error, start); });
    // A no-op when the handler answered before it threw.
    if (!guarded.ok()) {
      responder.Send(HttpResponse::Error(500, "internal", std::string(guarded.message())));
    }
  });
  if (queued) return;
  AttachAfterHooks(request, responder, start);
  HttpResponse busy = HttpResponse::Error(
      503, "unavailable",
      core::Cat("the server is busy (", pool_->max_queued(),
                " requests wait for a worker); retry after the Retry-After seconds"));
  busy.headers.Set("Retry-After", "1");
  responder.Send(std::move(busy));
}

}  // namespace berth::api
