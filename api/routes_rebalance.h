// GET /v1/rebalance/plan: dry-run defragmentation plans for the pending workloads
// (control/rebalance.h), with bounded query parameters (`workload`, `max_moves`, `limit`; a bad
// one is 400 naming it). A read: any server answers it from its own cluster model, which follows
// the shared store, so a follower does not forward it. ApiServer registers it on every server.
#pragma once

#include "api/http/router.h"
#include "control/control_plane.h"

namespace berth::api {

// `control` is not owned and must outlive the router.
void AddRebalanceRoutes(Router& router, control::ControlPlane* control);

}  // namespace berth::api
