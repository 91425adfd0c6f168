// What the route files (api/routes_*.cc, storage_routes.cc, network_routes.cc) share: JSON
// responses, errors from a Status, strict request bodies, list bodies, and the checks on what a
// host credential may speak for.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/http/router.h"
#include "core/json.h"
#include "core/workload.h"

namespace berth::api {

HttpResponse JsonResponse(int status, const core::Json& body);

// A JSON response; with `index` >= 0 it carries the store revision in X-Berth-Index, which a
// client passes back as ?index= for a blocking query.
HttpResponse JsonOk(int status, const core::Json& body, int64_t index = -1);

// The error response for a Status: its canonical code mapped to the HTTP status.
HttpResponse Fail(const absl::Status& s);

// The host a request speaks for when it came with a host credential; empty otherwise.
std::string CallingHost(const HttpRequest& req);

// 403 when a host credential asks about another host than its own.
std::optional<HttpResponse> OnlyItself(const HttpRequest& req, std::string_view host);

// The workloads, encoded, as a JSON array.
core::Json WorkloadList(const std::vector<core::Workload>& list);

// The request's body (JSON or YAML; empty = {}) as an object whose keys all lie in `allowed`.
// Errors are InvalidArgument and name the object (`kind "name"`) and the field.
absl::StatusOr<core::Json> StrictBody(const HttpRequest& req, std::string_view kind,
                                      std::string_view name,
                                      std::initializer_list<std::string_view> allowed);

// {"items": [...], "revision": N}
core::Json ListBody(const std::vector<core::Json>& items, int64_t revision);

}  // namespace berth::api
