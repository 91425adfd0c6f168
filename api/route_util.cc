#include "api/route_util.h"

#include <string>

#include "api/body_parser.h"
#include "control/leader.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;
using core::Json;

HttpResponse JsonResponse(int status, const Json& body) {
  return HttpResponse::Json(status, body.dump(-1, ' ', false, Json::error_handler_t::replace));
}

absl::StatusOr<Json> StrictBody(const HttpRequest& req, std::string_view kind,
                                std::string_view name,
                                std::initializer_list<std::string_view> allowed) {
  core::JsonContext ctx{std::string(kind), std::string(name)};
  Json body = Json::object();
  if (!req.body.empty()) {
    auto parsed = ParseBody(req.body, ctx);
    if (!parsed.ok()) return parsed.status();
    body = std::move(*parsed);
  }
  if (absl::Status s = core::CheckObject(ctx, body, "", allowed); !s.ok()) return s;
  return body;
}

HttpResponse JsonOk(int status, const Json& body, int64_t index) {
  HttpResponse r =
      HttpResponse::Json(status, body.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (index >= 0) r.headers.Set("X-Berth-Index", std::to_string(index));
  return r;
}

HttpResponse Fail(const absl::Status& s) {
  HttpResponse r = HttpResponse::FromStatus(s);
  // A write a server refused because it no longer leads was applied nowhere: say so, so that
  // clients send it again (to the leader).
  if (s.GetPayload(control::kUnappliedPayload)) {
    r.headers.Set(std::string(kUnappliedHeader), "true");
  }
  return r;
}

std::string CallingHost(const HttpRequest& req) {
  auto it = req.attributes.find("host");
  return it == req.attributes.end() ? std::string() : it->second;
}

std::optional<HttpResponse> OnlyItself(const HttpRequest& req, std::string_view host) {
  std::string caller = CallingHost(req);
  if (caller.empty() || caller == host) return std::nullopt;
  return HttpResponse::Error(
      403, "permission_denied",
      Cat("host \"", caller, "\": its credential speaks only for itself, not for host \"", host,
          "\""));
}

Json ListBody(const std::vector<Json>& items, int64_t revision) {
  Json list = Json::array();
  for (const auto& j : items) list.push_back(j);
  return Json{{"items", list}, {"revision", revision}};
}

}  // namespace berth::api
