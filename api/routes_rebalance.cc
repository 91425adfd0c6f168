#include "api/routes_rebalance.h"

#include <string>

#include "absl/strings/numbers.h"
#include "api/route_util.h"
#include "control/rebalance.h"
#include "core/names.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;

namespace {

absl::Status BadQuery(std::string_view param, std::string_view why) {
  return absl::InvalidArgumentError(Cat("query: ", param, " ", why));
}

std::string Shown(std::string_view text) {
  return Cat("\"", text.substr(0, 64), text.size() > 64 ? "..." : "", "\"");
}

// ?workload=NAME&max_moves=N&limit=N, each at most once.
absl::StatusOr<control::RebalanceOptions> ParseRebalanceQuery(const HttpRequest& req) {
  control::RebalanceOptions options;
  bool seen_workload = false, seen_moves = false, seen_limit = false;
  auto once = [](bool* seen, std::string_view key) -> absl::Status {
    if (*seen) return BadQuery(key, "is given twice");
    *seen = true;
    return absl::OkStatus();
  };
  for (const auto& [key, value] : req.query) {
    if (key == "workload") {
      if (absl::Status s = once(&seen_workload, key); !s.ok()) return s;
      if (absl::Status s = core::ValidateName("workload", value); !s.ok()) {
        return BadQuery("workload", Cat("must name a workload: ", s.message()));
      }
      options.workload = value;
    } else if (key == "max_moves") {
      if (absl::Status s = once(&seen_moves, key); !s.ok()) return s;
      int n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < 1 || n > control::kMaxRebalanceMoves) {
        return BadQuery("max_moves", Cat("must be a number from 1 to ", control::kMaxRebalanceMoves,
                                         ", got ", Shown(value)));
      }
      options.max_moves = n;
    } else if (key == "limit") {
      if (absl::Status s = once(&seen_limit, key); !s.ok()) return s;
      size_t n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < 1 || n > control::kMaxRebalanceLimit) {
        return BadQuery("limit", Cat("must be a number from 1 to ", control::kMaxRebalanceLimit,
                                     ", got ", Shown(value)));
      }
      options.limit = n;
    } else {
      return BadQuery(Shown(key),
                      "is not a parameter of the rebalance plan; it takes workload, "
                      "max_moves, limit");
    }
  }
  return options;
}

}  // namespace

void AddRebalanceRoutes(Router& router, control::ControlPlane* control) {
  router.Handle("GET", "/v1/rebalance/plan", [control](const HttpRequest& req) {
    auto options = ParseRebalanceQuery(req);
    if (!options.ok()) return Fail(options.status());
    auto report = control::PlanRebalance(control, *options);
    if (!report.ok()) return Fail(report.status());
    return JsonOk(200, control::EncodeRebalanceReport(*report));
  });
}

}  // namespace berth::api
