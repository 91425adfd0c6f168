// Tenant routes: the tenants in use and their quotas.
#include "api/api_server.h"
#include "api/body_parser.h"
#include "api/list_query.h"
#include "api/route_util.h"

namespace berth::api {

void ApiServer::TenantRoutes() {
  // Tenants and quotas.
  router_.Handle("GET", "/v1/tenants", [this](const HttpRequest& req) {
    auto tenants = control_->Tenants();
    if (!tenants.ok()) return Fail(tenants.status());
    return PagedJsonReply(req, "tenants", {{"items", *tenants}});
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
}

}  // namespace berth::api
