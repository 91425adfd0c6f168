#include "api/cluster_routes.h"

#include <optional>
#include <string_view>
#include <utility>

#include "api/http/client.h"
#include "api/route_util.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

std::string TimeText(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

// 503 for a request that was applied nowhere; the client may send it again.
HttpResponse Unapplied(std::string_view message) {
  HttpResponse r = HttpResponse::Error(503, "unavailable", message);
  r.headers.Set(std::string(kUnappliedHeader), "true");
  r.headers.Set("Retry-After", "1");
  return r;
}

// A request that may change the store. The simulator's routes write nothing there: a follower
// runs a comparison itself and keeps its results, so they are asked of the same server.
bool IsWrite(const HttpRequest& req) {
  return req.method != "GET" && req.method != "HEAD" && req.path.rfind("/v1/", 0) == 0 &&
         req.path.rfind("/v1/sim/", 0) != 0;
}

std::optional<HttpResponse> Forward(const HttpRequest& req, control::LeaderElection* election,
                                    const ClusterRoutesOptions& options) {
  if (!IsWrite(req) || election->IsLeader()) return std::nullopt;
  const std::string& self = election->self().id;
  if (auto by = req.Header(kForwardedHeader)) {
    return Unapplied(Cat("server ", self, " got a write forwarded by server ", by->substr(0, 64),
                         " but does not lead (the lead is moving); retry"));
  }
  std::optional<control::ServerInfo> leader = election->leader();
  if (!leader || leader->address.empty() || leader->id == self) {
    return Unapplied(Cat("server ", self,
                         " follows and knows no leader yet (an election takes up to the "
                         "lease's ttl); retry"));
  }
  std::string token;
  if (auto auth = req.Header("Authorization"); auth && auth->rfind("Bearer ", 0) == 0) {
    token = auth->substr(7);
  }
  HttpClient http(leader->address,
                  HttpClient::Options{.bearer_token = token,
                                      .timeout = options.forward_timeout,
                                      .connect_timeout = options.forward_connect_timeout});
  HttpHeaders extra;
  extra.Set(std::string(kForwardedHeader), self);
  std::string content_type = req.Header("Content-Type").value_or("application/json");
  absl::StatusOr<HttpResponse> answer =
      http.Request(req.method, req.target, req.body, content_type, extra);
  if (!answer.ok()) {
    if (RequestNotSent(answer.status())) {
      return Unapplied(Cat("server ", self, " cannot reach the leader ", leader->id, " at ",
                           leader->address, " (", answer.status().message(),
                           "); nothing was applied; retry"));
    }
    return HttpResponse::Error(
        503, "unavailable",
        Cat("server ", self, " forwarded the request to the leader ", leader->id, " at ",
            leader->address, " but got no answer (", answer.status().message(),
            "); it may have been applied: check before retrying"));
  }
  HttpResponse out;
  out.status = answer->status;
  out.body = std::move(answer->body);
  for (std::string_view name : {std::string_view("Content-Type"), std::string_view("X-Berth-Index"),
                                kUnappliedHeader, std::string_view("Retry-After")}) {
    if (auto v = answer->Header(name)) out.headers.Set(std::string(name), *v);
  }
  return out;
}

Json ServerJson(const control::ServerInfo& s, std::string_view time_field) {
  Json j = {{"id", s.id}, {"address", s.address}};
  if (s.since != absl::InfinitePast() && s.since != absl::UnixEpoch()) {
    j[std::string(time_field)] = TimeText(s.since);
  }
  return j;
}

}  // namespace

void AddClusterRoutes(Router& router, control::LeaderElection* election, StoreDescription store,
                      ClusterRoutesOptions options) {
  router.Before([election, options](HttpRequest& req) { return Forward(req, election, options); });
  router.Handle("GET", "/v1/status", [election, store](const HttpRequest&) {
    auto leader = election->ReadLeader();
    if (!leader.ok()) return Fail(leader.status());
    auto members = election->ReadMembers();
    if (!members.ok()) return Fail(members.status());
    Json body;
    Json server = ServerJson(election->self(), "started_at");
    server["leader"] = election->IsLeader();
    body["server"] = server;
    if (*leader) {
      Json l = ServerJson(**leader, "since");
      l["term"] = (*leader)->term;
      body["leader"] = l;
    } else {
      body["leader"] = nullptr;
    }
    Json list = Json::array();
    for (const auto& m : *members) list.push_back(ServerJson(m, "started_at"));
    body["members"] = list;
    body["store"] = {{"kind", store.kind}, {"endpoints", store.endpoints}};
    return JsonOk(200, body);
  });
}

}  // namespace berth::api
