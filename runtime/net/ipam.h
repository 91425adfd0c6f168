// IP address management for Berth networks, as pure logic: parsing IPv4 addresses and CIDR
// subnets, checking that networks' subnets do not overlap, and handing out addresses of one
// subnet without duplicates. No I/O: NetworkAddressing is a value the caller persists in the
// store (ToJson/FromJson) and passes back in; a failed call leaves it unchanged.
//
// Thread-safety: plain values and pure functions; callers synchronize shared instances.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace berth::runtime::net {

// An IPv4 address in host byte order.
struct Ipv4 {
  uint32_t value = 0;
  auto operator<=>(const Ipv4&) const = default;
};

std::optional<Ipv4> ParseIpv4(std::string_view text);
std::string FormatIpv4(Ipv4 address);

struct Ipv4Prefix {
  Ipv4 network;    // host bits zero
  int length = 0;  // 0..32

  uint32_t Mask() const { return length == 0 ? 0 : ~uint32_t{0} << (32 - length); }
  Ipv4 Broadcast() const { return Ipv4{network.value | ~Mask()}; }
  bool Contains(Ipv4 a) const { return (a.value & Mask()) == network.value; }
  bool Overlaps(const Ipv4Prefix& o) const { return Contains(o.network) || o.Contains(network); }
  std::string ToString() const;    // "10.0.0.0/24"
  std::string MaskString() const;  // "255.255.255.0"
  bool operator==(const Ipv4Prefix&) const = default;
};

// Parses "10.0.0.0/24". Host bits must be zero. Messages follow a field name
// ("must be ..., got ...").
absl::StatusOr<Ipv4Prefix> ParseCidr(std::string_view text);

// A network's subnet, gateway and the addresses given to its endpoints.
struct NetworkAddressing {
  std::string network;  // the network's name, used in every message
  Ipv4Prefix subnet;
  Ipv4 gateway;
  std::map<Ipv4, std::string> allocations;  // address -> owner (endpoint id)

  // Allocates an address for `owner`: `requested` when given (checked against the subnet, the
  // gateway and the in-use set), else the lowest free host address. Idempotent: an owner that
  // already holds an address gets it back (and a different `requested` is refused).
  absl::StatusOr<Ipv4> Allocate(std::string_view owner, std::optional<Ipv4> requested = {});
  // Same, with the requested address as text ("" = any), for API input.
  absl::StatusOr<Ipv4> AllocateText(std::string_view owner, std::string_view requested);
  // Releases every address `owner` holds; returns how many. Releasing nothing is not an error.
  int Release(std::string_view owner);
  std::optional<Ipv4> AddressOf(std::string_view owner) const;
  // Host addresses still free.
  int64_t FreeCount() const;

  nlohmann::json ToJson() const;
  static absl::StatusOr<NetworkAddressing> FromJson(const nlohmann::json& j);
};

// Builds the addressing of a new network. `gateway` empty = the subnet's first host address.
// Prefix lengths /8 to /30 are accepted.
absl::StatusOr<NetworkAddressing> NewNetworkAddressing(std::string_view network,
                                                       std::string_view subnet,
                                                       std::string_view gateway = "");

// InvalidArgument `network "n1": subnet 10.0.0.0/24 overlaps network "n0" (10.0.0.0/16)` when
// `subnet` overlaps any of `existing` other than the network itself.
absl::Status CheckNoOverlap(std::string_view network, const Ipv4Prefix& subnet,
                            const std::vector<NetworkAddressing>& existing);

}  // namespace berth::runtime::net
