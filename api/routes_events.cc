// Event routes: the cluster's event log, as a blocking list.
#include "absl/strings/numbers.h"
#include "api/api_server.h"
#include "api/route_util.h"
#include "api/wire/wire.h"
#include "core/strings.h"

namespace berth::api {

using core::Json;

void ApiServer::EventRoutes() {
  // Events.
  router_.HandleAsync("GET", "/v1/events", [this](const HttpRequest& req, Responder r) {
    // `index` is checked by Blocking, which answers 400 for one that is not a revision.
    int64_t after = 0;
    if (auto text = req.Query("index"); text && !absl::SimpleAtoi(*text, &after)) after = 0;
    size_t limit = 1000;
    if (auto text = req.Query("limit"); text && (!absl::SimpleAtoi(*text, &limit) || limit == 0)) {
      r.Send(Fail(
          absl::InvalidArgumentError(core::Cat("query: limit must be a positive number, got \"",
                                               std::string(*text).substr(0, 32), "\""))));
      return;
    }
    Blocking(req, std::move(r), std::string(control::kEventPrefix), [this, after, limit] {
      int64_t rev = 0;
      auto events = control_->ListEvents(after, limit, &rev);
      if (!events.ok()) return Fail(events.status());
      return JsonOk(200, wire::EncodeEventList({*events, rev}), rev);
    });
  });
}

}  // namespace berth::api
