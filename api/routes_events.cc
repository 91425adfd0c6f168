// Event routes: the cluster's event log, as a blocking list.
#include "absl/strings/numbers.h"
#include "api/api_server.h"
#include "api/route_util.h"

namespace berth::api {

using core::Json;

void ApiServer::EventRoutes() {
  // Events.
  router_.HandleAsync("GET", "/v1/events", [this](const HttpRequest& req, Responder r) {
    int64_t after = 0;
    if (auto text = req.Query("index")) (void)absl::SimpleAtoi(*text, &after);
    size_t limit = 1000;
    if (auto text = req.Query("limit")) (void)absl::SimpleAtoi(*text, &limit);
    Blocking(req, std::move(r), std::string(control::kEventPrefix), [this, after, limit] {
      int64_t rev = 0;
      auto events = control_->ListEvents(after, limit, &rev);
      if (!events.ok()) return Fail(events.status());
      Json items = Json::array();
      for (const auto& e : *events) items.push_back(core::EncodeEvent(e));
      return JsonOk(200, {{"items", items}, {"revision", rev}}, rev);
    });
  });
}

}  // namespace berth::api
