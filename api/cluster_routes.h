// The routes of a server that shares its store with others: writes that reach a follower go on
// to the leader, and GET /v1/status says who leads, which servers run and what store they share.
// main/ registers them on every server (one server on SQLite leads alone).
//
// A follower forwards each write (every method but GET and HEAD under /v1/) to the leader, with
// the caller's token, and answers with the leader's answer. The follower applies no write itself,
// so only the leader's control plane writes (under its fence), heartbeats reach the server that
// judges host liveness, and the scheduler learns every create. Reads and blocking queries are
// answered by the server that got them, from the shared store. When no leader is known or the
// leader cannot be reached, the follower answers 503 with X-Berth-Unapplied (nothing was applied;
// clients send it again); when the leader got the request but its answer was lost, 503 without
// it (the request may have been applied).
//
// Thread-safety: the routes run on the server's I/O threads; the election is thread-safe.
#pragma once

#include <string>
#include <vector>

#include "api/http/router.h"
#include "control/leader.h"

namespace berth::api {

// The store every server shares, as GET /v1/status reports it.
struct StoreDescription {
  std::string kind;                    // "sqlite" or "etcd"
  std::vector<std::string> endpoints;  // the database file, or the etcd members
};

struct ClusterRoutesOptions {
  absl::Duration forward_timeout = absl::Seconds(60);
  absl::Duration forward_connect_timeout = absl::Seconds(2);
};

// Registers the forwarding (a before-routing hook: register it after authentication) and
// GET /v1/status. `election` is not owned and must outlive the router.
void AddClusterRoutes(Router& router, control::LeaderElection* election, StoreDescription store,
                      ClusterRoutesOptions options = {});

// Marks a request a follower forwarded, naming the follower; a server that gets one while not
// leading does not forward it again.
inline constexpr std::string_view kForwardedHeader = "X-Berth-Forwarded-By";

}  // namespace berth::api
