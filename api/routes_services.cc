#include "api/routes_services.h"

#include "api/body_parser.h"
#include "api/list_query.h"
#include "api/route_util.h"
#include "api/wire/wire.h"
#include "core/service.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::api {

using core::Json;

void AddServiceRoutes(Router& router, control::ServiceController* services) {
  router.Handle("POST", "/v1/services", [services](const HttpRequest& req) {
    auto body = ParseBody(req.body, {"service", ""});
    if (!body.ok()) return Fail(body.status());
    auto spec = core::DecodeServiceSpec(*body);
    if (!spec.ok()) return Fail(spec.status());
    auto svc = services->Create(*spec);
    if (!svc.ok()) return Fail(svc.status());
    return JsonOk(201, core::EncodeService(*svc), svc->revision);
  });
  router.Handle("GET", "/v1/services", [services](const HttpRequest& req) {
    int64_t rev = 0;
    auto list = services->List(&rev);
    if (!list.ok()) return Fail(list.status());
    return PagedJsonReply(req, "services", wire::EncodeServiceList({*list, rev}));
  });
  router.Handle("GET", "/v1/services/{name}", [services](const HttpRequest& req) {
    auto svc = services->Get(req.Param("name"));
    if (!svc.ok()) return Fail(svc.status());
    return JsonOk(200, core::EncodeService(*svc), svc->revision);
  });
  router.Handle("POST", "/v1/services/{name}/scale", [services](const HttpRequest& req) {
    const std::string name = req.Param("name");
    auto body = StrictBody(req, "service", name, {"replicas"});
    if (!body.ok()) return Fail(body.status());
    auto scale = wire::DecodeServiceScale(name, *body);
    if (!scale.ok()) return Fail(scale.status());
    auto svc = services->Scale(name, scale->replicas);
    if (!svc.ok()) return Fail(svc.status());
    return JsonOk(200, core::EncodeService(*svc), svc->revision);
  });
  router.Handle("PUT", "/v1/services/{name}", [services](const HttpRequest& req) {
    const std::string name = req.Param("name");
    auto body = ParseBody(req.body, {"service", name});
    if (!body.ok()) return Fail(body.status());
    auto spec = core::DecodeServiceSpec(*body);
    if (!spec.ok()) return Fail(spec.status());
    if (spec->name != name) {
      return Fail(
          core::FieldError("service", name, "name",
                           core::Cat("must be the name in the path, got \"", spec->name, "\"")));
    }
    auto svc = services->Update(*spec);
    if (!svc.ok()) return Fail(svc.status());
    return JsonOk(200, core::EncodeService(*svc), svc->revision);
  });
  router.Handle("POST", "/v1/services/{name}/rollout/undo", [services](const HttpRequest& req) {
    auto svc = services->Undo(req.Param("name"));
    if (!svc.ok()) return Fail(svc.status());
    return JsonOk(200, core::EncodeService(*svc), svc->revision);
  });
  router.Handle("DELETE", "/v1/services/{name}", [services](const HttpRequest& req) {
    auto d = services->Delete(req.Param("name"));
    if (!d.ok()) return Fail(d.status());
    return JsonOk(d->deleted ? 200 : 202,
                  wire::EncodeServiceDeletion({.service = d->service, .deleted = d->deleted}));
  });
}

}  // namespace berth::api
