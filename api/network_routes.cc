#include "api/body_parser.h"
#include "api/cluster_routes.h"
#include "api/list_query.h"
#include "api/route_util.h"
#include "api/storenet_routes.h"
#include "api/wire/host_network.h"
#include "core/json.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

// A string field, or an error naming it when it holds something else.
absl::StatusOr<std::string> Str(const Json& body, std::string_view kind, std::string_view name,
                                const std::string& field) {
  if (!body.contains(field) || body[field].is_null()) return std::string();
  if (!body[field].is_string()) {
    return core::JsonContext{std::string(kind), std::string(name)}.Error(field, "must be a string");
  }
  return body[field].get<std::string>();
}

// A port field: an integer in 1..65535 (checked here, before narrowing, so 2^32+22 is not 22).
absl::StatusOr<int> Port(const Json& body, std::string_view name, const std::string& field) {
  if (!body.contains(field)) return 0;
  const Json& v = body[field];
  core::JsonContext ctx{"portforward", std::string(name)};
  if (!v.is_number_integer()) return ctx.Error(field, "must be an integer port");
  const bool in_range = v.is_number_unsigned()
                            ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= 65535
                            : v.get<int64_t>() >= 1 && v.get<int64_t>() <= 65535;
  if (!in_range) return ctx.Error(field, Cat("must lie in 1..65535, got ", v.dump()));
  return static_cast<int>(v.get<int64_t>());
}

#define BERTH_ROUTE_ASSIGN(lhs, expr)                                          \
  auto BERTH_CONCAT_(value_, __LINE__) = (expr);                               \
  if (!BERTH_CONCAT_(value_, __LINE__).ok())                                   \
    return HttpResponse::FromStatus(BERTH_CONCAT_(value_, __LINE__).status()); \
  lhs = std::move(*BERTH_CONCAT_(value_, __LINE__))

}  // namespace

void AddNetworkRoutes(Router& router, control::NetworkService* net) {
  // Networks.
  router.Handle("POST", "/v1/networks", [net](const HttpRequest& req) {
    BERTH_ROUTE_ASSIGN(Json body,
                       StrictBody(req, "network", "", {"name", "subnet", "gateway", "nat"}));
    control::NetworkCreateOptions o;
    BERTH_ROUTE_ASSIGN(o.name, Str(body, "network", "", "name"));
    BERTH_ROUTE_ASSIGN(o.subnet, Str(body, "network", o.name, "subnet"));
    BERTH_ROUTE_ASSIGN(o.gateway, Str(body, "network", o.name, "gateway"));
    if (body.contains("nat")) {
      if (!body["nat"].is_boolean()) {
        return HttpResponse::FromStatus(
            core::JsonContext{"network", o.name}.Error("nat", "must be true or false"));
      }
      o.nat = body["nat"].get<bool>();
    }
    BERTH_ROUTE_ASSIGN(Json n, net->CreateNetwork(o));
    return JsonResponse(201, n);
  });
  router.Handle("GET", "/v1/networks", [net](const HttpRequest& req) {
    int64_t rev = 0;
    BERTH_ROUTE_ASSIGN(auto list, net->ListNetworks(&rev));
    return PagedJsonReply(req, "networks", ListBody(list, rev));
  });
  router.Handle("GET", "/v1/networks/{name}", [net](const HttpRequest& req) {
    BERTH_ROUTE_ASSIGN(Json n, net->GetNetwork(req.Param("name")));
    return JsonResponse(200, n);
  });
  router.Handle("DELETE", "/v1/networks/{name}", [net](const HttpRequest& req) {
    absl::Status s = net->DeleteNetwork(req.Param("name"));
    if (!s.ok()) return HttpResponse::FromStatus(s);
    return JsonResponse(200, Json{{"name", req.Param("name")}, {"deleted", true}});
  });
  // Addresses on a network, for endpoints that join it.
  router.Handle("POST", "/v1/networks/{name}/addresses", [net](const HttpRequest& req) {
    std::string name = req.Param("name");
    BERTH_ROUTE_ASSIGN(Json body, StrictBody(req, "network", name, {"owner", "address"}));
    BERTH_ROUTE_ASSIGN(std::string owner, Str(body, "network", name, "owner"));
    BERTH_ROUTE_ASSIGN(std::string address, Str(body, "network", name, "address"));
    BERTH_ROUTE_ASSIGN(std::string got, net->AllocateAddress(name, owner, address));
    return JsonResponse(201, Json{{"network", name}, {"owner", owner}, {"address", got}});
  });
  router.Handle("DELETE", "/v1/networks/{name}/addresses/{owner}", [net](const HttpRequest& req) {
    absl::Status s = net->ReleaseAddress(req.Param("name"), req.Param("owner"));
    if (!s.ok()) return HttpResponse::FromStatus(s);
    return JsonResponse(200, Json{{"network", req.Param("name")}, {"owner", req.Param("owner")}});
  });

  // Security groups.
  router.Handle("POST", "/v1/secgroups", [net](const HttpRequest& req) {
    BERTH_ROUTE_ASSIGN(Json body, StrictBody(req, "secgroup", "", {"name"}));
    BERTH_ROUTE_ASSIGN(std::string name, Str(body, "secgroup", "", "name"));
    BERTH_ROUTE_ASSIGN(Json g, net->CreateGroup(name));
    return JsonResponse(201, g);
  });
  router.Handle("GET", "/v1/secgroups", [net](const HttpRequest& req) {
    int64_t rev = 0;
    BERTH_ROUTE_ASSIGN(auto list, net->ListGroups(&rev));
    return PagedJsonReply(req, "secgroups", ListBody(list, rev));
  });
  router.Handle("GET", "/v1/secgroups/{name}", [net](const HttpRequest& req) {
    BERTH_ROUTE_ASSIGN(Json g, net->GetGroup(req.Param("name")));
    return JsonResponse(200, g);
  });
  router.Handle("DELETE", "/v1/secgroups/{name}", [net](const HttpRequest& req) {
    absl::Status s = net->DeleteGroup(req.Param("name"));
    if (!s.ok()) return HttpResponse::FromStatus(s);
    return JsonResponse(200, Json{{"name", req.Param("name")}, {"deleted", true}});
  });
  router.Handle("POST", "/v1/secgroups/{name}/rules", [net](const HttpRequest& req) {
    std::string name = req.Param("name");
    BERTH_ROUTE_ASSIGN(Json body,
                       StrictBody(req, "secgroup", name, {"proto", "ports", "from", "from_group"}));
    control::RuleAddOptions o;
    BERTH_ROUTE_ASSIGN(o.protocol, Str(body, "secgroup", name, "proto"));
    BERTH_ROUTE_ASSIGN(o.ports, Str(body, "secgroup", name, "ports"));
    BERTH_ROUTE_ASSIGN(o.from_cidr, Str(body, "secgroup", name, "from"));
    BERTH_ROUTE_ASSIGN(o.from_group, Str(body, "secgroup", name, "from_group"));
    BERTH_ROUTE_ASSIGN(Json g, net->AddRule(name, o));
    return JsonResponse(201, g);
  });
  router.Handle("DELETE", "/v1/secgroups/{name}/rules/{rule}", [net](const HttpRequest& req) {
    BERTH_ROUTE_ASSIGN(Json g, net->RemoveRule(req.Param("name"), req.Param("rule")));
    return JsonResponse(200, g);
  });

  // Port forwards.
  router.Handle("POST", "/v1/portforwards", [net](const HttpRequest& req) {
    BERTH_ROUTE_ASSIGN(Json body, StrictBody(req, "portforward", "",
                                             {"proto", "host_port", "workload", "port", "host"}));
    control::PortForwardOptions o;
    BERTH_ROUTE_ASSIGN(o.protocol, Str(body, "portforward", "", "proto"));
    BERTH_ROUTE_ASSIGN(o.workload, Str(body, "portforward", "", "workload"));
    BERTH_ROUTE_ASSIGN(o.host, Str(body, "portforward", "", "host"));
    BERTH_ROUTE_ASSIGN(o.host_port, Port(body, "", "host_port"));
    BERTH_ROUTE_ASSIGN(o.port, Port(body, "", "port"));
    BERTH_ROUTE_ASSIGN(Json f, net->AddPortForward(o));
    return JsonResponse(201, f);
  });
  router.Handle("GET", "/v1/portforwards", [net](const HttpRequest& req) {
    int64_t rev = 0;
    BERTH_ROUTE_ASSIGN(auto list, net->ListPortForwards(&rev));
    return PagedJsonReply(req, "portforwards", ListBody(list, rev), "id");
  });
  router.Handle("DELETE", "/v1/portforwards/{id}", [net](const HttpRequest& req) {
    absl::Status s = net->RemovePortForward(req.Param("id"));
    if (!s.ok()) return HttpResponse::FromStatus(s);
    return JsonResponse(200, Json{{"id", req.Param("id")}, {"deleted", true}});
  });
}

void AddFleetNetworkRoutes(Router& router, control::FleetNetworks* fleet) {
  // Where the call came from stands in for the host's underlay address until a heartbeat of its
  // own gives one; a call another server relayed came from that server, so it says nothing.
  auto caller = [](const HttpRequest& req) {
    return req.Header(kForwardedHeader) ? std::string() : req.remote_address;
  };
  router.Handle("GET", "/v1/hosts/{name}/networks", [fleet, caller](const HttpRequest& req) {
    const std::string host = req.Param("name");
    if (auto denied = OnlyItself(req, host)) return *denied;
    BERTH_ROUTE_ASSIGN(auto plan, fleet->PlanFor(host, caller(req)));
    return JsonOk(200, wire::EncodeHostNetworkPlan(plan));
  });
  router.Handle("POST", "/v1/hosts/{name}/network-attach", [fleet, caller](const HttpRequest& req) {
    const std::string host = req.Param("name");
    if (auto denied = OnlyItself(req, host)) return *denied;
    BERTH_ROUTE_ASSIGN(Json body, StrictBody(req, "host", host, {"workload"}));
    BERTH_ROUTE_ASSIGN(std::string workload, Str(body, "host", host, "workload"));
    if (workload.empty()) {
      return HttpResponse::FromStatus(
          core::JsonContext{"host", host}.Error("workload", "is required"));
    }
    if (absl::Status valid = core::ValidateName("workload", workload); !valid.ok()) {
      return HttpResponse::FromStatus(valid);
    }
    BERTH_ROUTE_ASSIGN(auto plan, fleet->Attach(host, workload, caller(req)));
    return JsonOk(200, wire::EncodeHostNetworkPlan(plan));
  });
}

}  // namespace berth::api
