// REST routes for training jobs (/v1/jobs): create from a spec (JSON or YAML, `kind: job`), list,
// get, and delete (a running job is cancelled and kept; a finished one is removed with its
// tasks). They parse and validate strictly and delegate to the JobController; errors map to HTTP
// codes through absl::Status. Register them on the ApiServer's router before it starts; the
// server's authentication applies to them.
//
// Ownership: the controller is borrowed and must outlive the server. Thread-safety: handlers run
// on the server's threads; the controller is thread-safe.
#pragma once

#include "api/http/router.h"
#include "control/job_controller.h"

namespace berth::api {

void AddJobRoutes(Router& router, control::JobController* jobs);

}  // namespace berth::api
