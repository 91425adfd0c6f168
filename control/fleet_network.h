// FleetNetworks: Berth networks on a fleet (`berth serve` without --dev). The server decides and
// records: networks, security groups, each network's addresses (NetworkService over the store)
// and its tunnel id. It makes no data path of its own (it runs no `ip` or `nft`): every host's
// agent asks for its part (PlanFor) and makes it: a bridge per network with workloads there,
// joined to the same network's bridges on the other hosts by a VXLAN tunnel whose peers are
// those hosts' underlay addresses, the security groups with their members on other hosts, and
// its workloads' interfaces. An agent asks again every few seconds, so peers and members follow
// workloads as they come, go and move.
//
// A port forward is made by the agent of the host its workload runs on (at that host's
// addresses), and moves with the workload; one that names a host (`berth portfwd add --host H`)
// is made by H's agent wherever the workload runs. When the workload is elsewhere, H joins the
// workload's network and sends the connections on from its own address there, so the answers
// come back through H. Removing host H (`berth host rm`) removes the forwards at H.
// A workload keeps its addresses and forwards while it exists, also when it moves to another host;
// deleting it releases them (a watch of the workloads, plus a sweep at Start for deletions the
// server missed).
//
// Ownership: borrows the store, clock and control plane, which must outlive it. Thread-safety:
// all methods are thread-safe.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "api/wire/host_network.h"
#include "control/control_plane.h"
#include "control/network_service.h"
#include "core/clock.h"
#include "runtime/net/ipam.h"
#include "state/store.h"

namespace berth::control {

// A NetworkHost that makes nothing: the server's stand-in while agents make the data path.
// EnsureNetwork answers an empty bridge name, AttachEndpoint the endpoint's MAC; a forward may
// name any host `control` knows (none when it is null); everything else succeeds.
std::unique_ptr<NetworkHost> NewFleetNetworkHost(ControlPlane* control = nullptr);

class FleetNetworks {
 public:
  FleetNetworks(state::Store* store, core::Clock* clock, ControlPlane* control);
  // Stops the watches and the release thread.
  ~FleetNetworks();
  FleetNetworks(const FleetNetworks&) = delete;
  FleetNetworks& operator=(const FleetNetworks&) = delete;

  // Starts the service (tunnel ids for networks stored without), releases the addresses of
  // workloads that no longer exist, then follows deletions.
  absl::Status Start();
  NetworkService& service() { return network_; }
  // Part of ControlPlane::SetReferenceCheck on a fleet: networks and groups must exist (as in
  // dev mode).
  absl::Status CheckReferences(const core::WorkloadSpec& spec);
  // Also called with each deleted workload whose addresses are released (the fleet's disks go
  // the same way). Set before Start(), from one thread.
  void SetAlsoRelease(std::function<void(const std::string& workload)> release) {
    also_release_ = std::move(release);
  }

  // The part of `host`: the networks its workloads (placed there, not terminal) or the
  // forwards it makes are on, with their peers; the groups their interfaces enforce or whose
  // rules those name, with members on other hosts; the interfaces; the port forwards it makes
  // (to its workloads, and those that name it, with its own address on the network when the
  // workload runs elsewhere). A host's underlay address is
  // where its latest heartbeat to this server came from; `caller_address` (where this call came
  // from) stands in for the host's own.
  absl::StatusOr<api::wire::HostNetworkPlan> PlanFor(std::string_view host,
                                                     std::string_view caller_address);
  // Gives `workload`, which must be placed on `host`, its address on each of its networks (kept
  // when it holds one), then answers PlanFor(host). Errors name the workload's field; an address
  // it did not hold before is given back when a later network fails.
  absl::StatusOr<api::wire::HostNetworkPlan> Attach(std::string_view host,
                                                    std::string_view workload,
                                                    std::string_view caller_address);

 private:
  // What every plan reads, decoded once per store revision: hosts asking at the same revision
  // (a fleet's agents look every few seconds) share it.
  struct FleetState {
    int64_t revision = 0;
    std::vector<core::Network> networks;
    std::vector<runtime::net::NetworkAddressing> addressings;
    std::vector<core::SecurityGroup> groups;
    std::vector<core::PortForward> forwards;
    std::map<std::string, core::Workload> owners;  // every address's owner, by name
  };
  absl::StatusOr<std::shared_ptr<const FleetState>> State();
  // Releases every address `workload` holds, when it is gone (not found, or being deleted);
  // for HostAddressOwner(H), ForgetHost(H).
  void ReleaseIfGone(const std::string& workload);
  // Removes the port forwards at `host` (and so its addresses) when it is no longer registered.
  void ForgetHost(const std::string& host);
  void ReleaseLoop();

  state::Store* const store_;
  ControlPlane* const control_;
  std::unique_ptr<NetworkHost> host_;
  NetworkService network_;
  std::unique_ptr<state::WatchHandle> watch_;
  std::unique_ptr<state::WatchHandle> host_watch_;
  absl::Mutex mu_;
  std::deque<std::string> to_release_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread releaser_;
  std::function<void(const std::string&)> also_release_;
  absl::Mutex state_mu_;
  std::shared_ptr<const FleetState> state_ ABSL_GUARDED_BY(state_mu_);
};

}  // namespace berth::control
