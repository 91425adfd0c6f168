// The desired state a NetworkDriver enforces, as pure logic shared by the real driver and the
// fake: validation of every input (with the field named in each error), deterministic kernel
// object names, and rendering of the nftables ruleset and dnsmasq host list from the state.
// Each mutation is Prepare (validate, return the record; no change) then Commit, so a driver
// can do its kernel work between the two and change nothing when that fails.
//
// Thread-safety: a plain value; the owning driver synchronizes access.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/net/ipam.h"
#include "runtime/net/network_driver.h"

namespace berth::runtime::net {

// Host-global names carry the id of the Berth instance that made them, so that several
// instances (different data directories) can share one network namespace and each adopts and
// removes only its own objects. An instance id is 16 lowercase hex digits (InstanceIdForDir()
// in linux_network_driver.h derives it from the data directory, so a restart finds its own
// names again); names with room for it (nftables table, alias, namespaces) carry all of it.
inline constexpr size_t kInstanceIdLength = 16;
inline constexpr size_t kShortInstanceIdLength = 4;
bool ValidInstanceId(std::string_view id);
// The instance id of a text (a data directory's canonical path): 16 hex digits of its hash.
std::string InstanceIdOf(std::string_view text);
// The first four hex digits: all an interface name has room for.
std::string_view ShortInstanceId(std::string_view instance);

// Interface names: 'b', a kind letter, the short instance id and 9 hex digits of a hash of the
// owner: 15 characters, exactly what IFNAMSIZ allows, e.g. "bb1a2b3c4d5e6f7a". Kinds: "bb"
// bridge, "bv" veth host side, "bp" veth peer before it is renamed in the container, "bt" tap,
// "bx" VXLAN, "bh" and "bg" the host's own leg on a network (the host end, holding its
// address, and the end in the bridge). Two instances whose short ids collide are told apart by
// the link alias.
inline constexpr size_t kLinkNameLength = 15;
std::string BridgeName(std::string_view instance, std::string_view network);
std::string VethName(std::string_view instance, std::string_view network,
                     std::string_view endpoint);
std::string PeerName(std::string_view instance, std::string_view network,
                     std::string_view endpoint);
std::string TapName(std::string_view instance, std::string_view network, std::string_view endpoint);
std::string VxlanName(std::string_view instance, std::string_view network);
std::string LegName(std::string_view instance, std::string_view network);
std::string LegPeerName(std::string_view instance, std::string_view network);
// True for a name of the form above carrying `instance`'s short id.
bool IsInstanceLinkName(std::string_view instance, std::string_view name);
// A locally administered unicast MAC (52:54:00:xx:xx:xx, QEMU's range) derived from the owner.
std::string DeriveMac(std::string_view network, std::string_view endpoint);
// The MAC of a network's gateway on the bridge of every host the network spans (a locally
// administered 02:b7:xx:xx:xx:xx derived from the name): a workload resolves its gateway to the
// same MAC whichever host answers, so its traffic leaves through its own host.
std::string GatewayMac(std::string_view network);
// The alias the driver sets on every link it creates, "berth:<instance>:<kind>:<network>[/<id>]",
// and its parse: kind is "net", "ep", "vx" or "leg"; returns false for links Berth did not make.
std::string LinkAlias(std::string_view instance, std::string_view kind, std::string_view network,
                      std::string_view endpoint);
struct ParsedLinkAlias {
  std::string instance;
  std::string kind;
  std::string network;
  std::string endpoint;
};
bool ParseLinkAlias(std::string_view alias, ParsedLinkAlias* out);
// The instance's nftables table (family inet): "berth_<instance>".
std::string NftTableName(std::string_view instance);

struct NetworkRecord {
  NetworkSpec spec;
  NetworkAddressing addressing;  // the endpoints' addresses
  std::string bridge;
};

struct EndpointRecord {
  EndpointSpec spec;
  Ipv4 address;
  std::string mac;
  std::string host_ifname;
};

class NetworkModel {
 public:
  // `instance` (ValidInstanceId) goes into every kernel object name the model hands out.
  explicit NetworkModel(std::string instance) : instance_(std::move(instance)) {}
  const std::string& instance() const { return instance_; }

  absl::StatusOr<NetworkRecord> PrepareNetwork(const NetworkSpec& spec) const;
  void CommitNetwork(NetworkRecord record);
  // Removes the network, its endpoints and the forwards that target it.
  void RemoveNetwork(std::string_view name);

  absl::StatusOr<EndpointRecord> PrepareEndpoint(const EndpointSpec& spec) const;
  void CommitEndpoint(EndpointRecord record);
  void RemoveEndpoint(std::string_view network, std::string_view id);
  absl::Status CheckGroupsExist(std::string_view endpoint,
                                const std::vector<std::string>& groups) const;
  absl::Status SetEndpointGroups(std::string_view network, std::string_view id,
                                 const std::vector<std::string>& groups);

  absl::Status PrepareGroup(const SecurityGroup& group) const;
  void CommitGroup(SecurityGroup group);
  absl::Status CheckGroupUnused(std::string_view name) const;
  void RemoveGroup(std::string_view name);

  absl::Status PrepareForward(const PortForward& forward) const;
  void CommitForward(PortForward forward);
  void RemoveForward(std::string_view id);

  const NetworkRecord* FindNetwork(std::string_view name) const;
  const EndpointRecord* FindEndpoint(std::string_view network, std::string_view id) const;

  const std::map<std::string, NetworkRecord, std::less<>>& networks() const { return networks_; }
  const std::map<std::pair<std::string, std::string>, EndpointRecord>& endpoints() const {
    return endpoints_;
  }
  const std::map<std::string, SecurityGroup, std::less<>>& groups() const { return groups_; }
  const std::map<std::string, PortForward, std::less<>>& forwards() const { return forwards_; }

 private:
  std::string instance_;
  std::map<std::string, NetworkRecord, std::less<>> networks_;
  std::map<std::pair<std::string, std::string>, EndpointRecord> endpoints_;
  std::map<std::string, SecurityGroup, std::less<>> groups_;
  std::map<std::string, PortForward, std::less<>> forwards_;
};

// The whole table `inet berth_<instance>` as one nft script that atomically replaces the table (or
// deletes it when the model needs no rules): DNAT for port forwards, masquerade for NAT networks,
// and a chain per group-protected endpoint that accepts established traffic and what its groups
// allow and drops the rest.
std::string RenderNftRuleset(const NetworkModel& model);
// The host's own leg on a network (see PortForward::source_address): its link, its address
// and the forwards' targets routed through it.
struct Leg {
  std::string link;
  std::string address;
  std::set<std::string> targets;
  bool operator==(const Leg&) const = default;
};
// The legs the forwards need, by network.
std::map<std::string, Leg> Legs(const NetworkModel& model);
// The links the host's connections to 127.0.0.1 may leave through, forwarded
// (net.ipv4.conf.LINK.route_localnet=1): the bridges of networks that port forwards target, with
// a masquerade that gives those connections the bridge's address, and the legs, whose forwards
// leave from the leg's address; a guard keeps the workloads off the host's loopback.
std::vector<std::string> LocalnetBridges(const NetworkModel& model);
// dnsmasq --dhcp-hostsfile content for one network: "mac,address,id" per tap endpoint.
std::string RenderDhcpHosts(const NetworkModel& model, std::string_view network);

}  // namespace berth::runtime::net
