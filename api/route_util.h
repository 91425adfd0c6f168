// What the resource routes (disks, networks, security groups, port forwards) share: JSON
// responses, strict request bodies and list bodies.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/http/router.h"
#include "core/json.h"

namespace berth::api {

HttpResponse JsonResponse(int status, const core::Json& body);

// The request's body (JSON or YAML; empty = {}) as an object whose keys all lie in `allowed`.
// Errors are InvalidArgument and name the object (`kind "name"`) and the field.
absl::StatusOr<core::Json> StrictBody(const HttpRequest& req, std::string_view kind,
                                      std::string_view name,
                                      std::initializer_list<std::string_view> allowed);

// {"items": [...], "revision": N}
core::Json ListBody(const std::vector<core::Json>& items, int64_t revision);

}  // namespace berth::api
