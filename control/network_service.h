// NetworkService: Berth networks, security groups and port forwards as stored objects
// (/networks/NAME, /secgroups/NAME, /portforwards/ID: spec, status, revision, times, events),
// with each network's address management (/ipam/NAME) held in the store under compare-and-set
// so an address is never handed out twice and survives restarts. The data path is made on a
// host through NetworkHost, which main implements over the host's NetworkDriver (dev mode: the
// local host, called directly).
//
// Every operation validates first (subnet overlaps, addresses outside their subnet, port
// ranges) and names the wrong field; when the host fails, the store is left unchanged.
// Ownership: borrows the store, clock and host, which must outlive it. Thread-safety: all
// methods are thread-safe; mutations are serialized by one mutex and written with
// compare-and-set.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "control/events.h"
#include "control/object_store.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/network.h"
#include "core/workload.h"
#include "state/store.h"

namespace berth::control {

struct HostNetwork {
  std::string name;
  std::string subnet;
  std::string gateway;
  bool nat = false;
};

struct HostRule {
  std::string protocol;  // tcp | udp | icmp | any
  int port_from = 0;
  int port_to = 0;
  std::string source_cidr;
  std::string source_group;
};

struct HostGroup {
  std::string name;
  std::vector<HostRule> rules;
};

struct HostForward {
  std::string id;
  std::string protocol;  // tcp | udp
  int host_port = 0;
  std::string network;
  std::string target_address;
  int target_port = 0;
};

// A workload's interface as the host makes it: a veth pair into the container's namespace
// `netns`, or a tap device for a VM (served by the network's DHCP with a static lease).
struct HostEndpointSpec {
  std::string network;
  std::string owner;  // the workload
  bool tap = false;
  std::string address;          // already allocated
  std::string netns;            // veth: a name under /run/netns or a path
  std::string ifname = "eth0";  // veth: the interface's name inside
  std::vector<std::string> groups;
};

struct HostEndpoint {
  std::string host_ifname;  // tap, or the host end of the veth pair
  std::string mac;
  std::string address;  // "10.0.0.5"
  int prefix_length = 0;
  std::string gateway;
};

// What a host keeps at Cleanup(); everything else this Berth instance made there is removed.
struct HostKeep {
  std::set<std::string> networks;
  std::set<std::pair<std::string, std::string>> endpoints;  // (network, owner)
  std::set<std::string> groups;
  std::set<std::string> forwards;
};

// The network operations of one host, in the service's terms.
class NetworkHost {
 public:
  virtual ~NetworkHost() = default;
  // Creates or confirms the network's bridge (and NAT); returns the bridge's name.
  virtual absl::StatusOr<std::string> EnsureNetwork(const HostNetwork& network) = 0;
  virtual absl::Status DeleteNetwork(std::string_view name) = 0;
  virtual absl::Status PutGroup(const HostGroup& group) = 0;
  virtual absl::Status DeleteGroup(std::string_view name) = 0;
  virtual absl::Status AddForward(const HostForward& forward) = 0;
  virtual absl::Status RemoveForward(std::string_view id) = 0;
  virtual absl::Status Cleanup(const HostKeep& keep) = 0;
  virtual absl::StatusOr<HostEndpoint> AttachEndpoint(const HostEndpointSpec& spec) = 0;
  // NotFound when the endpoint is not there.
  virtual absl::Status DetachEndpoint(std::string_view network, std::string_view owner) = 0;
  // FailedPrecondition naming what holds `port` when a socket of `protocol` ("tcp" listening,
  // "udp" bound) already has it on the host: a forward would take its traffic. A host that
  // cannot tell says OK.
  virtual absl::Status CheckPortFree(std::string_view protocol, int port) {
    return absl::OkStatus();
  }
  // May forward `forward` be made at `host` (core::PortForwardSpec::host)? One host has no other
  // host to name: InvalidArgument naming the field.
  virtual absl::Status CheckForwardHost(std::string_view forward, std::string_view host);
  // As runtime::net::NetworkDriver's: the host keeps its rules until ReleaseRules() puts the
  // whole re-declared set in at once (a server restart re-declaring what it held).
  virtual void HoldRules() {}
  virtual absl::Status ReleaseRules() { return absl::OkStatus(); }
};

// A workload joining a network (see core::NetworkAttachment).
struct WorkloadEndpointOptions {
  std::string network;
  std::string workload;
  bool tap = false;     // vm: tap; container: veth into `netns`
  std::string address;  // requested; empty = the next free one
  std::string netns;    // containers
  std::string ifname = "eth0";
  std::vector<std::string> security_groups;
};

struct NetworkCreateOptions {
  std::string name;
  std::string subnet;
  std::string gateway;
  bool nat = false;
};

struct RuleAddOptions {
  std::string protocol = "tcp";
  std::string ports;  // "80" or "80-90"; empty for icmp and any
  std::string from_cidr;
  std::string from_group;
};

struct PortForwardOptions {
  std::string protocol = "tcp";
  int host_port = 0;
  std::string workload;
  int port = 0;
  std::string host;  // see core::PortForwardSpec::host
};

class NetworkService {
 public:
  NetworkService(state::Store* store, core::Clock* clock, NetworkHost* host);

  // At server start: re-declares every stored network, group and forward on the host, then
  // removes whatever else Berth left there.
  absl::Status Start();

  absl::StatusOr<core::Json> CreateNetwork(const NetworkCreateOptions& options);
  absl::StatusOr<core::Json> GetNetwork(std::string_view name);
  absl::StatusOr<std::vector<core::Json>> ListNetworks(int64_t* revision = nullptr);
  // Refused while port forwards or endpoints use the network.
  absl::Status DeleteNetwork(std::string_view name);

  // Hands `owner` an address on `network` (`requested` when given), held in the store.
  absl::StatusOr<std::string> AllocateAddress(std::string_view network, std::string_view owner,
                                              std::string_view requested);
  absl::Status ReleaseAddress(std::string_view network, std::string_view owner);

  // Puts a workload on a network: its address (kept if it already holds one), then its
  // interface on the host. Errors name the workload's field (networks[].network,
  // networks[].address, networks[].security_groups); on failure nothing is left behind.
  absl::StatusOr<HostEndpoint> AttachWorkload(const WorkloadEndpointOptions& options);
  // Removes the workload's interface and releases its address; a no-op when it has neither.
  absl::Status DetachWorkload(std::string_view network, std::string_view workload);
  // Removes the workload's interface only: a stopped workload keeps its address (and the
  // forwards to it) for its next start.
  absl::Status UnplugWorkload(std::string_view network, std::string_view workload);
  // The networks on which `workload` holds an address.
  absl::StatusOr<std::vector<std::string>> NetworksOf(std::string_view workload);

  // Refuses a workload whose networks or security groups do not exist, or whose static address
  // lies outside its network's subnet, naming the field (networks[0].security_groups[1]).
  absl::Status CheckReferences(const core::WorkloadSpec& spec);

  // Typed views of what is stored (the fleet's per-host plans read them): every network, every
  // network's address management, every security group.
  absl::StatusOr<std::vector<core::Network>> Networks() const;
  absl::StatusOr<std::vector<runtime::net::NetworkAddressing>> Addressings() const;
  absl::StatusOr<std::vector<core::SecurityGroup>> Groups() const;
  absl::StatusOr<std::vector<core::PortForward>> Forwards() const;

  absl::StatusOr<core::Json> CreateGroup(std::string_view name);
  absl::StatusOr<core::Json> GetGroup(std::string_view name);
  absl::StatusOr<std::vector<core::Json>> ListGroups(int64_t* revision = nullptr);
  absl::StatusOr<core::Json> AddRule(std::string_view group, const RuleAddOptions& options);
  absl::StatusOr<core::Json> RemoveRule(std::string_view group, std::string_view rule_id);
  absl::Status DeleteGroup(std::string_view name);

  // Forwards a host port to a workload's address on its network. A reserved TCP port, or one a
  // socket on the host already holds, is refused (FailedPrecondition naming host_port). A
  // forward at a named host gives that host an address on the network (owner
  // HostAddressOwner(host)), in the same transaction; removing the host's last forward on the
  // network gives it back.
  absl::StatusOr<core::Json> AddPortForward(const PortForwardOptions& options);
  // Keeps TCP `port` of the host from any forward: `holder` says what listens there (Berth's
  // own API, so a forward cannot cut its clients off).
  void ReserveHostPort(int port, std::string holder);
  absl::StatusOr<std::vector<core::Json>> ListPortForwards(int64_t* revision = nullptr);
  absl::Status RemovePortForward(std::string_view id);

 private:
  // The item, or NotFound as `kind "name" not found`.
  template <typename Repo>
  absl::StatusOr<typename Repo::Item> ReadOrNotFound(const Repo& repo, std::string_view kind,
                                                     std::string_view name) const;
  // Every stored object of `repo`; those that do not decode are reported and left out.
  template <typename Repo>
  absl::StatusOr<typename Repo::ListResult> ListAll(const Repo& repo) const;
  // Declares the group on the host, then stores it (created when mod_revision is 0) with an
  // event.
  absl::StatusOr<core::Json> PutGroup(core::SecurityGroup group, int64_t mod_revision,
                                      std::string_view type, std::string_view message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives back `workload`'s address on `network` after a failed attach (best effort).
  void GiveBackAddress(std::string_view network, std::string_view workload)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  state::Store* const store_;
  core::Clock* const clock_;
  NetworkHost* const host_;
  const EventLog events_;
  NetworkRepository networks_;
  IpamRepository ipams_;
  SecurityGroupRepository groups_;
  PortForwardRepository forwards_;
  absl::Mutex mu_;
  std::map<int, std::string> reserved_ports_ ABSL_GUARDED_BY(mu_);  // TCP port -> holder
};

std::string NetworkKey(std::string_view name);
std::string IpamKey(std::string_view name);
std::string SecGroupKey(std::string_view name);
std::string PortForwardKey(std::string_view id);

// The owner of a host's own address on a network (a forward at that host to a workload on
// another host leaves from it): "host:NAME", which no workload name can be.
std::string HostAddressOwner(std::string_view host);
// True for what HostAddressOwner() returns.
bool IsHostAddressOwner(std::string_view owner);

// A network's address owner (a workload's name): OK, or InvalidArgument naming `owner`.
absl::Status ValidateAddressOwner(std::string_view network, std::string_view owner);

// Parses a security rule's port range ("80", "80-90") into [from, to]; errors name `ports`.
absl::StatusOr<std::pair<int, int>> ParsePortRange(std::string_view group, std::string_view text);

}  // namespace berth::control
