#include "api/route_util.h"

#include <string>

#include "api/body_parser.h"
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

HttpResponse Fail(const absl::Status& s) { return HttpResponse::FromStatus(s); }

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

Json WorkloadList(const std::vector<core::Workload>& list) {
  Json items = Json::array();
  for (const auto& w : list) items.push_back(core::EncodeWorkload(w));
  return items;
}

Json ListBody(const std::vector<Json>& items, int64_t revision) {
  Json list = Json::array();
  for (const auto& j : items) list.push_back(j);
  return Json{{"items", list}, {"revision", revision}};
}

}  // namespace berth::api
