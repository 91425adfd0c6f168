// The network driver interface: per host, the data path of Berth networks. Each network is a
// Linux bridge holding its gateway address (optionally NATed to the outside, optionally serving
// DHCP through dnsmasq, optionally joined to other hosts over VXLAN); containers attach through
// a veth pair into their network namespace, VMs through a tap device; port forwards and
// security groups are nftables rules in the instance's own table `inet berth_<instance>`.
//
// Ownership: the caller (the agent, from the store) owns the desired state: it allocates
// addresses with IPAM (ipam.h) and declares networks, endpoints, groups and forwards here. The
// driver owns the kernel objects it makes, all named with its instance id (network_model.h):
// links whose alias starts with "berth:<instance>:", the nftables table, dnsmasq processes under
// its state directory. After an agent restart the caller re-declares what it keeps, then calls
// Cleanup() to remove everything else of its own; other instances' objects are never touched.
//
// Every mutating call validates first, names the wrong field in its error and changes nothing
// when it fails. Thread-safety: all methods may be called from any thread; the driver
// serializes mutations.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::runtime::net {

// Joins a network's bridge to the same network's bridges on other hosts (data path only).
struct VxlanSpec {
  uint32_t vni = 0;                // 1..16777215
  std::string local_address;       // this host's underlay address
  std::vector<std::string> peers;  // other hosts' underlay addresses
  uint16_t port = 4789;
  std::string underlay_device;  // optional: the NIC the tunnel uses
  bool operator==(const VxlanSpec&) const = default;
};

struct NetworkSpec {
  std::string name;     // DNS label
  std::string subnet;   // "10.0.0.0/24", /8 to /30
  std::string gateway;  // empty = the first host address; lives on the bridge
  bool nat = false;     // masquerade traffic from the subnet to anywhere outside it
  bool dhcp = false;    // serve DHCP (static leases for tap endpoints) with dnsmasq
  std::optional<VxlanSpec> vxlan;
  // The MTU of the bridge, the tunnel and every endpoint (a container's interface, a VM's tap,
  // and DHCP's MTU option); 0 = the kernel's default. Set below the underlay's by the tunnel's
  // 50 bytes, so encapsulated frames fit.
  int mtu = 0;
  bool operator==(const NetworkSpec&) const = default;
};

struct NetworkInfo {
  std::string name;
  std::string bridge;  // interface name on the host
  std::string subnet;
  std::string gateway;
  int endpoint_count = 0;
};

enum class EndpointKind { kVeth, kTap };

// A workload's port on a network. Containers (kVeth) get the address statically inside their
// namespace; VMs (kTap) get it by DHCP (a static lease for `mac`) or configure it themselves.
struct EndpointSpec {
  std::string network;
  std::string id;  // unique within the network, e.g. the workload name
  EndpointKind kind = EndpointKind::kVeth;
  std::string address;  // allocated by the caller's IPAM; must lie in the network's subnet
  std::string mac;      // empty = derived from network and id
  // kVeth only: the container's network namespace, a name under /run/netns or a path such as
  // /proc/PID/ns/net, and the interface name inside it.
  std::string netns;
  std::string ifname = "eth0";
  std::vector<std::string> security_groups;  // non-empty = deny ingress the groups don't allow
};

struct EndpointInfo {
  std::string network;
  std::string id;
  EndpointKind kind = EndpointKind::kVeth;
  std::string host_ifname;  // veth host side, or the tap (QEMU: -netdev tap,ifname=...,script=no)
  std::string address;
  std::string mac;
};

enum class Protocol { kTcp, kUdp, kIcmp, kAny };
std::string_view ProtocolName(Protocol p);
absl::StatusOr<Protocol> ParseProtocol(std::string_view text);

// Allows ingress matching protocol, destination port range and source. Ports are 0 for icmp and
// any; source is a CIDR, or the members of another group, or (both empty) anywhere.
struct SecurityRule {
  Protocol protocol = Protocol::kTcp;
  int port_from = 0;
  int port_to = 0;  // 0 = same as port_from
  std::string source_cidr;
  std::string source_group;
  bool operator==(const SecurityRule&) const = default;
};

struct SecurityGroup {
  std::string name;
  std::vector<SecurityRule> rules;
  // Addresses of the group's members that are not endpoints of this host (workloads on other
  // hosts of a network that spans hosts): rules naming the group as their source admit them too.
  std::vector<std::string> remote_members;
  bool operator==(const SecurityGroup&) const = default;
};

struct PortForward {
  std::string id;
  Protocol protocol = Protocol::kTcp;  // tcp or udp
  int host_port = 0;
  std::string network;
  std::string target_address;
  int target_port = 0;
  // Set when the target runs on another host of the network: this host's own address on the
  // network. The driver gives the host a leg on the network's bridge holding it (a veth pair;
  // every host's bridge answers for the gateway with one MAC, so the leg has its own), routes
  // the target through the leg and rewrites the connections' source to it, so the target's
  // answers come back to this host. Every forward on one network names the same address.
  std::string source_address;
  bool operator==(const PortForward&) const = default;
};

// What Cleanup() keeps: everything else this instance made is removed.
struct KeepSet {
  std::set<std::string> networks;
  std::set<std::pair<std::string, std::string>> endpoints;  // (network, endpoint id)
  std::set<std::string> security_groups;
  std::set<std::string> port_forwards;
};

struct NetworkOptions {};

class NetworkDriver {
 public:
  virtual ~NetworkDriver() = default;

  // Creates or confirms a network. Refused when its subnet overlaps another network's, or when
  // an existing network's subnet or gateway would change.
  virtual absl::StatusOr<NetworkInfo> EnsureNetwork(const NetworkSpec& spec,
                                                    const NetworkOptions& options = {}) = 0;
  // Removes the network with everything on it: endpoints, forwards to it, dnsmasq, VXLAN,
  // bridge. NotFound when unknown.
  virtual absl::Status DeleteNetwork(std::string_view name, const NetworkOptions& options = {}) = 0;
  virtual std::vector<NetworkInfo> ListNetworks() = 0;

  // Attaches a container (veth) or creates a VM's tap. AlreadyExists when the id is taken.
  virtual absl::StatusOr<EndpointInfo> AttachEndpoint(const EndpointSpec& spec,
                                                      const NetworkOptions& options = {}) = 0;
  virtual absl::Status DetachEndpoint(std::string_view network, std::string_view id,
                                      const NetworkOptions& options = {}) = 0;
  virtual std::vector<EndpointInfo> ListEndpoints(std::string_view network) = 0;
  // Replaces the groups of an attached endpoint.
  virtual absl::Status SetEndpointGroups(std::string_view network, std::string_view id,
                                         const std::vector<std::string>& groups,
                                         const NetworkOptions& options = {}) = 0;

  // Creates or replaces a security group; members enforcing it see the change at once.
  virtual absl::Status PutSecurityGroup(const SecurityGroup& group,
                                        const NetworkOptions& options = {}) = 0;
  // Refused (FailedPrecondition) while an endpoint or another group's rule uses it.
  virtual absl::Status DeleteSecurityGroup(std::string_view name,
                                           const NetworkOptions& options = {}) = 0;

  virtual absl::Status AddPortForward(const PortForward& forward,
                                      const NetworkOptions& options = {}) = 0;
  virtual absl::Status RemovePortForward(std::string_view id,
                                         const NetworkOptions& options = {}) = 0;
  virtual std::vector<PortForward> ListPortForwards() = 0;

  // Removes every Berth-made object not in `keep` (called at agent start, after the caller has
  // re-declared what it keeps).
  virtual absl::Status Cleanup(const KeepSet& keep) = 0;

  // Between HoldRules() and ReleaseRules(), changes update what the driver knows but the host
  // keeps the rules it has; ReleaseRules() puts the whole new set in at once. A caller that
  // re-declares what survived a restart so leaves no moment without its security groups (the
  // first declarations alone would name no endpoint yet). Drivers without rules do nothing.
  virtual void HoldRules() {}
  virtual absl::Status ReleaseRules() { return absl::OkStatus(); }
};

}  // namespace berth::runtime::net
