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
    // `kind` ("workload", "host", "disk", ...) and `object` keep the events of those objects;
    // the newest `limit` of what passes are returned.
    std::string kind = req.Query("kind").value_or("");
    std::string object = req.Query("object").value_or("");
    for (const auto& [param, value] : {std::pair{"kind", &kind}, std::pair{"object", &object}}) {
      if (req.Query(param) && value->empty()) {
        r.Send(Fail(absl::InvalidArgumentError(core::Cat("query: ", param, " must not be empty"))));
        return;
      }
    }
    Blocking(
        req, std::move(r), std::string(control::kEventPrefix), [this, after, limit, kind, object] {
          int64_t rev = 0;
          const bool filtered = !kind.empty() || !object.empty();
          auto events = control_->ListEvents(after, filtered ? 0 : limit, &rev);
          if (!events.ok()) return Fail(events.status());
          if (filtered) {
            std::erase_if(*events, [&](const core::Event& e) {
              return (!kind.empty() && e.kind != kind) || (!object.empty() && e.object != object);
            });
            if (events->size() > limit) {
              events->erase(events->begin(), events->end() - static_cast<ptrdiff_t>(limit));
            }
          }
          return JsonOk(200, wire::EncodeEventList({*events, rev}), rev);
        });
  });
}

}  // namespace berth::api
