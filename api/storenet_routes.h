// REST routes for disks (/v1/disks), networks (/v1/networks), security groups (/v1/secgroups)
// and port forwards (/v1/portforwards). They parse and validate requests strictly (unknown
// fields are refused) and delegate to the control layer's services; errors map to HTTP codes
// through absl::Status. Register them on the ApiServer's router before it starts; the server's
// authentication applies to them like to every route.
//
// Ownership: the services are borrowed and must outlive the server. Thread-safety: handlers run
// on the server's threads; the services are thread-safe.
#pragma once

#include "api/http/router.h"
#include "control/fleet_network.h"
#include "control/network_service.h"
#include "control/storage_service.h"

namespace berth::api {

void AddStorageRoutes(Router& router, control::StorageService* storage);
void AddNetworkRoutes(Router& router, control::NetworkService* network);
// A host's part of the fleet's networks, for its own credential (or the admin's):
// GET /v1/hosts/{name}/networks and POST /v1/hosts/{name}/network-attach {"workload"}, both
// answering the host's plan (api/wire/host_network.h).
void AddFleetNetworkRoutes(Router& router, control::FleetNetworks* fleet);

}  // namespace berth::api
