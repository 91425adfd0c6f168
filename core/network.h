// Networks, security groups and port forwards as the server stores them (/networks/NAME,
// /secgroups/NAME, /portforwards/ID) and the API shows them. Specs hold what was asked for,
// statuses what Berth made of it. The codecs are shared by the server, which stores and serves
// these objects, and by whatever later realizes them on other hosts. A network's address
// management (/ipam/NAME) is stored apart, by runtime/net's NetworkAddressing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/json.h"

namespace berth::core {

struct NetworkSpec {
  std::string subnet;   // "10.88.0.0/24"
  std::string gateway;  // "10.88.0.1"
  bool nat = false;     // masquerade traffic leaving the host
  bool operator==(const NetworkSpec&) const = default;
};

enum class NetworkState { kReady };
std::string_view NetworkStateName(NetworkState state);
std::optional<NetworkState> ParseNetworkState(std::string_view text);

struct NetworkStatus {
  NetworkState state = NetworkState::kReady;
  std::string bridge;  // the bridge device on the host
  // The VXLAN id that joins the network's bridges on the hosts it spans: 1..16777215, unique
  // among networks, given at creation (0 on a network stored before ids were given).
  int64_t vni = 0;
  bool operator==(const NetworkStatus&) const = default;
};

// The largest VXLAN id (24 bits).
inline constexpr int64_t kMaxVni = 16777215;

// `revision` is the store's mod revision; it is shown, never stored.
struct Network {
  std::string name;
  NetworkSpec spec;
  NetworkStatus status;
  int64_t revision = 0;
  absl::Time created_at = absl::InfinitePast();
  absl::Time updated_at = absl::InfinitePast();
  bool operator==(const Network&) const = default;
};

// One ingress rule: traffic of `protocol` to ports [port_from, port_to] from a CIDR or from
// the members of another group (neither: from anywhere).
struct SecurityRule {
  std::string id;        // "r1", unique in its group, never reused
  std::string protocol;  // tcp | udp | icmp | any
  std::string ports;     // as asked: "80", "80-90"; empty for icmp and any
  int port_from = 0;     // 0 for icmp and any
  int port_to = 0;
  std::string from;        // a CIDR
  std::string from_group;  // a security group's name
  bool operator==(const SecurityRule&) const = default;
};

struct SecurityGroupSpec {
  std::vector<SecurityRule> rules;
  bool operator==(const SecurityGroupSpec&) const = default;
};

struct SecurityGroupStatus {
  int64_t next_rule = 1;  // the number of the next rule's id
  bool operator==(const SecurityGroupStatus&) const = default;
};

struct SecurityGroup {
  std::string name;
  SecurityGroupSpec spec;
  SecurityGroupStatus status;
  int64_t revision = 0;
  absl::Time created_at = absl::InfinitePast();
  absl::Time updated_at = absl::InfinitePast();
  bool operator==(const SecurityGroup&) const = default;
};

struct PortForwardSpec {
  std::string protocol = "tcp";  // tcp | udp
  int host_port = 0;
  std::string workload;
  int port = 0;  // the workload's port
  // Where the workload was when the forward was made: its first network and address there.
  std::string network;
  std::string target_address;
  // A fleet's host whose addresses take the connections, wherever the workload runs (its
  // address on the network, held as HostAddressOwner(host), is the source the workload sees);
  // empty: the host the workload runs on, and the forward moves with it.
  std::string host;
  bool operator==(const PortForwardSpec&) const = default;
};

// A port forward has no status: it exists on the host exactly while it is stored.
struct PortForward {
  std::string id;  // "PROTO-PORT", e.g. "tcp-8080": one forward per host port and protocol
  PortForwardSpec spec;
  int64_t revision = 0;
  absl::Time created_at = absl::InfinitePast();
  absl::Time updated_at = absl::InfinitePast();
  bool operator==(const PortForward&) const = default;
};

// {kind: "network", name, spec, status, revision, created_at, updated_at}.
Json EncodeNetwork(const Network& network);
// {kind: "secgroup", name, spec: {rules}, status: {next_rule}, revision, times}.
Json EncodeSecurityGroup(const SecurityGroup& group);
// {kind: "portforward", id, spec, revision, times}.
Json EncodePortForward(const PortForward& forward);

// Decode what the encoders wrote (and what earlier servers stored); absent fields keep their
// defaults. InvalidArgument naming the object and the dotted field (`spec.rules[2].port_to`)
// for a wrong type, an unknown field or a value out of range.
absl::StatusOr<Network> DecodeNetwork(const Json& json);
absl::StatusOr<SecurityGroup> DecodeSecurityGroup(const Json& json);
absl::StatusOr<PortForward> DecodePortForward(const Json& json);

}  // namespace berth::core
