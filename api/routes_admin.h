// The control plane's administration routes (api/routes_admin.cc), registered by main/ when the
// server's store can take snapshots: GET /v1/admin/snapshot saves a consistent snapshot of the
// whole store and streams it to the caller. Admin token only.
#pragma once

#include <string>

#include "api/http/router.h"
#include "state/snapshot.h"

namespace berth::api {

// `snapshots` (not owned, may be null: the route then answers 501) must outlive the server;
// snapshots are staged in `scratch_dir` (the server's data directory) while they are sent.
void AddAdminRoutes(Router& router, state::Snapshotter* snapshots, std::string scratch_dir);

}  // namespace berth::api
