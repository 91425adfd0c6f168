#include "api/routes_images.h"

#include <thread>
#include <utility>

#include "api/list_query.h"
#include "api/route_util.h"
#include "core/guard.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

// NotFound for a host the server does not know; OK for a known one, whose catalog HostImages
// may still not reach (409).
absl::Status KnownHost(control::ControlPlane* control, std::string_view host) {
  auto h = control->GetHost(host);
  return h.ok() ? absl::OkStatus() : h.status();
}

absl::Status NoCatalog(std::string_view host) {
  return absl::FailedPreconditionError(
      Cat("host \"", host,
          "\": its image catalog is not reachable from this server (a server reaches only its "
          "own host's catalog, in dev mode); run `berth image` against the server on that host"));
}

// The import request in the body: {"name", "kernel"|"disk"|"rootfs", "initrd", "cmdline",
// "replace"}, every field but `replace` a string.
absl::StatusOr<ImageImportRequest> ParseImport(const HttpRequest& req) {
  auto body = StrictBody(req, "image", "",
                         {"name", "kernel", "initrd", "cmdline", "disk", "rootfs", "replace"});
  if (!body.ok()) return body.status();
  const Json& j = *body;
  core::JsonContext ctx{"image", ""};
  ImageImportRequest r;
  if (absl::Status s = core::OptionalString(ctx, j, "", "name", &r.name); !s.ok()) return s;
  ctx.name = r.name;
  if (r.name.empty()) return ctx.Error("name", "is required");
  for (absl::Status s : {
           core::OptionalString(ctx, j, "", "kernel", &r.kernel),
           core::OptionalString(ctx, j, "", "initrd", &r.initrd),
           core::OptionalString(ctx, j, "", "cmdline", &r.cmdline),
           core::OptionalString(ctx, j, "", "disk", &r.disk),
           core::OptionalString(ctx, j, "", "rootfs", &r.rootfs),
           core::OptionalBool(ctx, j, "", "replace", &r.replace),
       }) {
    if (!s.ok()) return s;
  }
  return r;
}

}  // namespace

void AddImageRoutes(Router& router, control::ControlPlane* control, HostImages* images) {
  router.Handle("GET", "/v1/hosts/{host}/images", [control, images](const HttpRequest& req) {
    const std::string host = req.Param("host");
    if (absl::Status s = KnownHost(control, host); !s.ok()) return Fail(s);
    if (images == nullptr) return Fail(NoCatalog(host));
    auto list = images->List(host);
    if (!list.ok()) return Fail(list.status());
    Json items = Json::array();
    for (const Json& e : *list) items.push_back(e);
    return PagedJsonReply(req, "images", {{"host", host}, {"items", items}});
  });
  router.Handle("GET", "/v1/hosts/{host}/images/{name}", [control, images](const HttpRequest& req) {
    const std::string host = req.Param("host");
    if (absl::Status s = KnownHost(control, host); !s.ok()) return Fail(s);
    if (images == nullptr) return Fail(NoCatalog(host));
    auto entry = images->Get(host, req.Param("name"));
    if (!entry.ok()) return Fail(entry.status());
    return JsonOk(200, *entry);
  });
  router.Handle(
      "DELETE", "/v1/hosts/{host}/images/{name}", [control, images](const HttpRequest& req) {
        const std::string host = req.Param("host");
        if (absl::Status s = KnownHost(control, host); !s.ok()) return Fail(s);
        if (images == nullptr) return Fail(NoCatalog(host));
        if (absl::Status s = images->Remove(host, req.Param("name")); !s.ok()) return Fail(s);
        return JsonOk(200, {{"host", host}, {"name", req.Param("name")}, {"removed", true}});
      });
  router.HandleAsync("POST", "/v1/hosts/{host}/images",
                     [control, images](const HttpRequest& req, Responder responder) {
                       const std::string host = req.Param("host");
                       auto request = ParseImport(req);
                       if (!request.ok()) {
                         responder.Send(Fail(request.status()));
                         return;
                       }
                       if (absl::Status s = KnownHost(control, host); !s.ok()) {
                         responder.Send(Fail(s));
                         return;
                       }
                       if (images == nullptr) {
                         responder.Send(Fail(NoCatalog(host)));
                         return;
                       }
                       // Copying a disk image may take minutes: keep it off the I/O threads.
                       std::thread([images, host, request = std::move(*request),
                                    responder = std::move(responder)] {
                         absl::Status guarded = core::RunGuarded("image import", [&] {
                           auto entry = images->Import(host, request);
                           responder.Send(entry.ok() ? JsonOk(201, *entry) : Fail(entry.status()));
                         });
                         if (!guarded.ok())
                           responder.Send(Fail(guarded));  // no-op when already answered
                       }).detach();
                     });
}

}  // namespace berth::api
