// AgentNetworks: a `berth agent`'s part of the fleet's Berth networks. The server decides and
// records (control/fleet_network.h); this makes the host's data path from the plan the server
// answers (api/wire/host_network.h):
//
// * before a workload's task starts, it asks the server to give the workload its addresses
//   (POST /v1/hosts/NAME/network-attach), makes the plan, then gives the task its interfaces: a
//   veth into the container's namespace berth-INSTANCE-NAME, or a VM's tap;
// * per network, a bridge joined by a VXLAN tunnel (the network's id, this host's underlay
//   address, the other hosts' addresses as its flood list) with an MTU 50 bytes below the
//   underlay interface's, so encapsulated frames fit; every host's bridge answers for the gateway
//   with the same MAC;
// * security groups with their rules and their members on other hosts;
// * the port forwards to its workloads, at this host's addresses (a port a socket here holds is
//   left alone and said once);
// * every few seconds, while the host has networks (and once at start, to adopt the interfaces of
//   tasks that outlived an agent restart), it reads the plan again (GET /v1/hosts/NAME/networks)
//   so peers and members follow workloads on other hosts, and removes networks it no longer needs;
// * once a task is gone, its interfaces and namespace go; its addresses stay with the workload
//   (the server releases them when it is deleted).
//
// Ownership: borrows the driver, which must outlive this object. Thread-safety: thread-safe; one
// mutex serializes plan changes (the agent's start path and the refresh thread).
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent.h"
#include "api/wire/host_network.h"
#include "core/workload.h"
#include "runtime/compute_driver.h"
#include "runtime/net/network_driver.h"

namespace berth {

struct AgentNetworksOptions {
  std::string host;      // this host's name (error messages)
  std::string instance;  // the network driver's instance id (containers' namespace names)
  // Asks the server: `workload` empty = GET the host's plan, else POST network-attach for it.
  std::function<absl::StatusOr<api::wire::HostNetworkPlan>(std::string_view workload)> fetch;
  // The MTU of the host's interface that holds `address`; unset or an error = 1500.
  std::function<absl::StatusOr<int>(std::string_view address)> underlay_mtu;
  absl::Duration refresh = absl::Seconds(2);
  // Where a container's namespace is made and found ("/run/netns"); tests point it elsewhere.
  std::function<absl::Status(const std::string& netns)> make_netns;
  std::function<bool(const std::string& netns)> netns_exists;
  std::function<void(const std::string& netns)> delete_netns;
  // OK when no socket of `protocol` holds `port` on this host; unset = not checked.
  std::function<absl::Status(std::string_view protocol, int port)> port_free;
  // Whether a link of that name exists here (a VM's tap that outlived an agent restart).
  std::function<bool(const std::string& link)> link_exists;
};

class AgentNetworks {
 public:
  AgentNetworks(AgentNetworksOptions options, runtime::net::NetworkDriver* driver);
  // Stops the refresh thread.
  ~AgentNetworks();
  AgentNetworks(const AgentNetworks&) = delete;
  AgentNetworks& operator=(const AgentNetworks&) = delete;

  // Sets the agent's attach and detach hooks.
  void Wire(agent::AgentOptions& options);
  // Starts the refresh thread (its first round adopts what survived a restart).
  void Start();
  void Stop();

  // The hooks, public for tests.
  absl::Status Attach(const core::WorkloadSpec& spec, runtime::TaskConfig* config);
  void Detach(std::string_view workload);
  // One refresh: reads the host's plan and makes it (OK when the host has no networks); the
  // first that succeeds also removes what an earlier run left and no plan names.
  absl::Status Refresh();

 private:
  // Makes networks and groups of `plan`, adopts interfaces of `plan.nics` that exist already
  // (all but `skip`'s), and removes networks the plan no longer names.
  absl::Status Apply(const api::wire::HostNetworkPlan& plan, std::string_view skip)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  runtime::net::EndpointSpec EndpointOf(const api::wire::PlannedNic& nic) const;
  void RefreshLoop();

  const AgentNetworksOptions options_;
  runtime::net::NetworkDriver* const driver_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> declared_groups_ ABSL_GUARDED_BY(mu_);  // put on the driver before
  bool swept_ ABSL_GUARDED_BY(mu_) = false;  // leftovers of an earlier run removed
  std::set<std::string> refused_forwards_ ABSL_GUARDED_BY(mu_);  // said once, tried again
  // What was last made, so a look that finds nothing changed runs no command: networks and
  // groups as declared, and each interface's groups by (network, workload).
  std::map<std::string, runtime::net::NetworkSpec> applied_networks_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, runtime::net::SecurityGroup> applied_groups_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> endpoint_groups_
      ABSL_GUARDED_BY(mu_);
  std::thread refresher_;
};

// A call to the server as host `host`, with the credential its registration saved in
// `agent_dir` (read at each call): method, path, optional JSON body; the answer's JSON.
using HostCall = std::function<absl::StatusOr<core::Json>(
    std::string_view method, const std::string& path, const core::Json* body)>;
HostCall HostCaller(const std::string& server_url, const std::string& agent_dir,
                    const std::string& host);

// The options of a `berth agent` for host `host` with data directory `agent_dir`: it asks
// `server_url` with the credential its registration saved there, makes namespaces under
// /run/netns and reads the underlay's MTU with UnderlayMtu.
AgentNetworksOptions AgentNetworksFor(const std::string& server_url, const std::string& agent_dir,
                                      const std::string& host, const std::string& instance);

// The MTU of the interface in this network namespace that holds `address` (`ip -j addr`).
absl::StatusOr<int> UnderlayMtu(std::string_view address);

}  // namespace berth
