// What a host's agent makes of Berth networks that span hosts, as the server tells it:
// GET /v1/hosts/{name}/networks (the host's whole part) and POST /v1/hosts/{name}/network-attach
// {"workload"} (gives a workload placed on the host its addresses, then answers the same).
//
// The server decides and records (addresses, tunnel ids, who is where); the agent only makes the
// data path: a bridge per network joined to the other hosts' bridges by a VXLAN tunnel, the
// security groups with their members on other hosts, and its workloads' interfaces.
//
// Decode* checks the shape strictly and names the field; plain values, copyable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/json.h"
#include "core/network.h"

namespace berth::api::wire {

// One network the host has workloads on.
struct PlannedNetwork {
  std::string name;
  std::string subnet;   // "10.88.0.0/24"
  std::string gateway;  // "10.88.0.1"
  bool nat = false;
  int64_t vni = 0;  // 1..core::kMaxVni
  // The underlay addresses of the other hosts with workloads on the network, sorted, each once.
  std::vector<std::string> peers;
  bool operator==(const PlannedNetwork&) const = default;
};

// A security group the host's interfaces enforce (or that their groups' rules name).
struct PlannedGroup {
  std::string name;
  std::vector<core::SecurityRule> rules;
  // Addresses of the group's members on other hosts, sorted, each once.
  std::vector<std::string> remote_members;
  bool operator==(const PlannedGroup&) const = default;
};

// An interface of a workload placed on the host.
struct PlannedNic {
  std::string workload;
  std::string network;
  std::string address;  // "10.88.0.5"
  int prefix_length = 0;
  bool tap = false;    // a VM's tap; else a container's veth
  std::string ifname;  // the interface's name inside: eth0, eth1, ... in spec order
  std::vector<std::string> groups;
  bool operator==(const PlannedNic&) const = default;
};

// A port forward to a workload placed on the host: made there, at the host's addresses.
struct PlannedForward {
  std::string id;        // "tcp-8080"
  std::string protocol;  // tcp | udp
  int host_port = 0;
  std::string network;
  std::string target_address;  // the workload's address on `network`
  int target_port = 0;
  // The host's own address on `network` when the workload runs on another host (the forward
  // names this host): connections go on from it, so their answers come back here. Empty when
  // the workload runs here.
  std::string source_address;
  bool operator==(const PlannedForward&) const = default;
};

struct HostNetworkPlan {
  // The host's own underlay address, as the server sees its calls come from.
  std::string local_address;
  std::vector<PlannedNetwork> networks;
  std::vector<PlannedGroup> groups;
  std::vector<PlannedNic> nics;
  std::vector<PlannedForward> forwards;
  bool operator==(const HostNetworkPlan&) const = default;
};

core::Json EncodeHostNetworkPlan(const HostNetworkPlan& plan);
// `host` names the object in errors: `host network plan "h1": networks[0].vni must be ...`.
absl::StatusOr<HostNetworkPlan> DecodeHostNetworkPlan(std::string_view host, const core::Json& j);

}  // namespace berth::api::wire
