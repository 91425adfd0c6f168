#include <initializer_list>
#include <memory>
#include <thread>

#include "api/body_parser.h"
#include "api/list_query.h"
#include "api/route_util.h"
#include "api/storenet_routes.h"
#include "core/guard.h"
#include "core/json.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

namespace {

// The request body as a JSON object whose keys all lie in `allowed`, each a string.
absl::StatusOr<Json> Body(const HttpRequest& req, std::string_view name,
                          std::initializer_list<std::string_view> allowed) {
  auto body = StrictBody(req, "disk", name, allowed);
  if (!body.ok()) return body.status();
  core::JsonContext ctx{"disk", std::string(name)};
  for (auto it = body->begin(); it != body->end(); ++it) {
    if (!it->is_string()) return ctx.Error(it.key(), "must be a string");
  }
  return body;
}

// Runs a long disk copy on its own thread and streams newline-separated JSON to the client:
// {"progress": permille} lines, then {"result": {...}} or {"error": {"code", "message"}}. The
// stream starts with the first progress report: a copy refused before it began (a bad name, a
// file outside the backup directory, a backup that exists) is answered as a plain error with
// its own status code, 400 for the client's mistakes, having changed nothing.
void StreamCopy(Responder responder,
                std::function<absl::StatusOr<Json>(const control::Progress&)> copy) {
  // Lines are written with invalid UTF-8 replaced: results and messages quote paths.
  auto line = [](const Json& j) {
    return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  };
  std::thread([responder = std::move(responder), line, copy = std::move(copy)] {
    ResponseStream out;
    bool started = false;
    auto start = [&] {
      if (started) return;
      started = true;
      HttpHeaders headers;
      headers.Set("Content-Type", "application/x-ndjson");
      out = responder.StartStream(200, headers);
    };
    absl::StatusOr<Json> result;
    absl::Status guarded = core::RunGuarded("disk copy", [&] {
      int last = -1;
      result = copy([&](int permille) {
        start();
        if (permille == last) return;
        last = permille;
        out.Write(line(Json{{"progress", permille}}));
      });
    });
    if (!guarded.ok()) result = guarded;
    if (!result.ok() && !started) {
      responder.Send(HttpResponse::FromStatus(result.status()));
      return;
    }
    start();
    if (result.ok()) {
      out.Write(line(Json{{"result", *result}}));
    } else {
      HttpResponse r = HttpResponse::FromStatus(result.status());
      Json err = Json::parse(r.body, nullptr, false);
      if (!err.is_object() || !err.contains("error")) {
        err = Json{
            {"error", {{"code", "internal"}, {"message", std::string(result.status().message())}}}};
      }
      err["status"] = r.status;
      out.Write(line(err));
    }
    out.Finish();
  }).detach();
}

}  // namespace

void AddStorageRoutes(Router& router, control::StorageService* storage) {
  router.Handle("POST", "/v1/disks", [storage](const HttpRequest& req) {
    auto body =
        Body(req, "", {"name", "size", "format", "filesystem", "from_image", "host", "pool"});
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    control::DiskCreateOptions o;
    o.name = body->value("name", "");
    o.size = body->value("size", "");
    o.format = body->value("format", "qcow2");
    o.filesystem = body->value("filesystem", "");
    o.from_image = body->value("from_image", "");
    o.place = {.host = body->value("host", ""), .pool = body->value("pool", "")};
    auto disk = storage->Create(o);
    if (!disk.ok()) return HttpResponse::FromStatus(disk.status());
    return JsonResponse(201, *disk);
  });
  router.Handle("GET", "/v1/disks", [storage](const HttpRequest& req) {
    int64_t rev = 0;
    auto list = storage->List(&rev);
    if (!list.ok()) return HttpResponse::FromStatus(list.status());
    return PagedJsonReply(req, "disks", ListBody(*list, rev));
  });
  router.Handle("GET", "/v1/pools", [storage](const HttpRequest&) {
    auto pools = storage->Pools();
    if (!pools.ok()) return HttpResponse::FromStatus(pools.status());
    return JsonResponse(200, Json{{"items", *pools}});
  });
  router.Handle("GET", "/v1/disks/{name}", [storage](const HttpRequest& req) {
    auto disk = storage->Get(req.Param("name"));
    if (!disk.ok()) return HttpResponse::FromStatus(disk.status());
    return JsonResponse(200, *disk);
  });
  router.Handle("DELETE", "/v1/disks/{name}", [storage](const HttpRequest& req) {
    absl::Status s = storage->Delete(req.Param("name"));
    if (!s.ok()) return HttpResponse::FromStatus(s);
    return JsonResponse(200, Json{{"name", req.Param("name")}, {"deleted", true}});
  });
  router.Handle("POST", "/v1/disks/{name}/resize", [storage](const HttpRequest& req) {
    std::string name = req.Param("name");
    auto body = Body(req, name, {"size"});
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    auto disk = storage->Resize(name, body->value("size", ""));
    if (!disk.ok()) return HttpResponse::FromStatus(disk.status());
    return JsonResponse(200, *disk);
  });
  router.Handle("POST", "/v1/disks/{name}/snapshots", [storage](const HttpRequest& req) {
    std::string name = req.Param("name");
    auto body = Body(req, name, {"name"});
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    auto disk = storage->Snapshot(name, body->value("name", ""));
    if (!disk.ok()) return HttpResponse::FromStatus(disk.status());
    return JsonResponse(201, *disk);
  });
  router.Handle("POST", "/v1/disks/{name}/revert", [storage](const HttpRequest& req) {
    std::string name = req.Param("name");
    auto body = Body(req, name, {"snapshot"});
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    auto disk = storage->Revert(name, body->value("snapshot", ""));
    if (!disk.ok()) return HttpResponse::FromStatus(disk.status());
    return JsonResponse(200, *disk);
  });
  router.Handle("POST", "/v1/disks/{name}/clone", [storage](const HttpRequest& req) {
    std::string name = req.Param("name");
    auto body = Body(req, name, {"name", "snapshot"});
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    auto disk = storage->Clone(name, body->value("snapshot", ""), body->value("name", ""));
    if (!disk.ok()) return HttpResponse::FromStatus(disk.status());
    return JsonResponse(201, *disk);
  });
  router.Handle("POST", "/v1/disks/{name}/attach", [storage](const HttpRequest& req) {
    std::string name = req.Param("name");
    auto body = Body(req, name, {"workload"});
    if (!body.ok()) return HttpResponse::FromStatus(body.status());
    auto disk = storage->Attach(name, body->value("workload", ""));
    if (!disk.ok()) return HttpResponse::FromStatus(disk.status());
    return JsonResponse(200, *disk);
  });
  router.Handle("POST", "/v1/disks/{name}/detach", [storage](const HttpRequest& req) {
    auto disk = storage->Detach(req.Param("name"));
    if (!disk.ok()) return HttpResponse::FromStatus(disk.status());
    return JsonResponse(200, *disk);
  });
  router.HandleAsync("POST", "/v1/disks/{name}/backup",
                     [storage](const HttpRequest& req, Responder r) {
                       std::string name = req.Param("name");
                       auto body = Body(req, name, {"file"});
                       if (!body.ok()) {
                         r.Send(HttpResponse::FromStatus(body.status()));
                         return;
                       }
                       std::string file = body->value("file", "");
                       StreamCopy(std::move(r), [storage, name, file](const control::Progress& p) {
                         return storage->Backup(name, file, p);
                       });
                     });
  router.HandleAsync("POST", "/v1/disks/restore", [storage](const HttpRequest& req, Responder r) {
    auto body = Body(req, "", {"name", "file", "host", "pool"});
    if (!body.ok()) {
      r.Send(HttpResponse::FromStatus(body.status()));
      return;
    }
    std::string name = body->value("name", ""), file = body->value("file", "");
    control::DiskPlace place{.host = body->value("host", ""), .pool = body->value("pool", "")};
    StreamCopy(std::move(r), [storage, name, file, place](const control::Progress& p) {
      return storage->Restore(file, name, place, p);
    });
  });
}

}  // namespace berth::api
