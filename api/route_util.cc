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

Json ListBody(const std::vector<Json>& items, int64_t revision) {
  Json list = Json::array();
  for (const auto& j : items) list.push_back(j);
  return Json{{"items", list}, {"revision", revision}};
}

}  // namespace berth::api
