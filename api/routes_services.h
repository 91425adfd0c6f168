// REST routes for services (/v1/services): create from a spec (JSON or YAML, `kind: service`),
// list, get, scale, update (PUT: a changed template rolls out), undo a rollout and delete. They
// parse and validate strictly and delegate to the ServiceController; errors map to HTTP codes
// through absl::Status. Register them on the ApiServer's router before it starts; the server's
// authentication applies to them.
//
// Ownership: the controller is borrowed and must outlive the server. Thread-safety: handlers run
// on the server's threads; the controller is thread-safe.
#pragma once

#include "api/http/router.h"
#include "control/service_controller.h"

namespace berth::api {

void AddServiceRoutes(Router& router, control::ServiceController* services);

}  // namespace berth::api
