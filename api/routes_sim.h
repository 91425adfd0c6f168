// The simulator's routes (api/routes_sim.cc), for the dashboard's Simulator view and scripts:
// fill comparisons (`berth sim fill`) run by the server in the background, on a generated or
// uploaded cluster and trace, or on the live cluster's hosts.
//
//   GET  /v1/sim/profiles        the generator's profiles: [{"name", "doc"}]
//   POST /v1/sim/fill            start a comparison (body below); 202 {"id", ...}; 409 while
//                                another runs
//   GET  /v1/sim/fill            the kept comparisons, newest first
//   GET  /v1/sim/fill/{id}       one comparison: progress, then its summary and curves
//
// The body of POST /v1/sim/fill:
//   {"cluster": {"profile": NAME} | {"live": true} | {"text": TEXT, "format": FORMAT},
//    "trace":   {"profile": NAME, "requests": N} | {"text": TEXT, "format": FORMAT},
//    "policies": ["default", "fgd-ref"], "seeds": "42..46", "target_pct": 130}
// TEXT is a cluster or trace file's contents in any format `berth sim` reads. Bounds: 20,000
// hosts, 100,000 requests, 8 policies, 20 seeds, and the server's limit on a request body
// (1 MiB by default; larger files go through `berth sim fill` on the command line). A comparison
// writes nothing to the store (a follower runs it itself) and needs the admin token, as every POST
// does.
#pragma once

#include "api/http/router.h"
#include "control/control_plane.h"
#include "sim/fill_runs.h"

namespace berth::api {

// `runs` and `control` (not owned) must outlive the server; `control` serves the live cluster.
void AddSimRoutes(Router& router, sim::FillRuns* runs, control::ControlPlane* control);

}  // namespace berth::api
