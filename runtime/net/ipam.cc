#include "runtime/net/ipam.h"

#include <algorithm>
#include <charconv>

#include "core/strings.h"

namespace berth::runtime::net {
namespace {

using core::Cat;

absl::Status NetError(std::string_view network, std::string_view message) {
  return absl::InvalidArgumentError(Cat("network \"", network, "\": ", message));
}

}  // namespace

std::optional<Ipv4> ParseIpv4(std::string_view text) {
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (text.empty() || text[0] != '.') return std::nullopt;
      text.remove_prefix(1);
    }
    unsigned octet = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), octet);
    size_t used = static_cast<size_t>(ptr - text.data());
    if (ec != std::errc() || used == 0 || used > 3 || octet > 255) return std::nullopt;
    if (used > 1 && text[0] == '0') return std::nullopt;  // no octal-looking octets
    value = (value << 8) | octet;
    text.remove_prefix(used);
  }
  if (!text.empty()) return std::nullopt;
  return Ipv4{value};
}

std::string FormatIpv4(Ipv4 a) {
  return Cat(static_cast<int>(a.value >> 24), ".", static_cast<int>((a.value >> 16) & 255), ".",
             static_cast<int>((a.value >> 8) & 255), ".", static_cast<int>(a.value & 255));
}

std::string Ipv4Prefix::ToString() const { return Cat(FormatIpv4(network), "/", length); }
std::string Ipv4Prefix::MaskString() const { return FormatIpv4(Ipv4{Mask()}); }

absl::StatusOr<Ipv4Prefix> ParseCidr(std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        Cat("must be a CIDR subnet like 10.0.0.0/24, got \"", text, "\""));
  };
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return bad();
  auto addr = ParseIpv4(text.substr(0, slash));
  std::string_view len_text = text.substr(slash + 1);
  int length = -1;
  auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
  if (!addr || ec != std::errc() || ptr != len_text.data() + len_text.size() || length < 0 ||
      length > 32) {
    return bad();
  }
  Ipv4Prefix p{*addr, length};
  if ((addr->value & p.Mask()) != addr->value) {
    return absl::InvalidArgumentError(
        Cat("must have no host bits set, got \"", text, "\" (did you mean ",
            FormatIpv4(Ipv4{addr->value & p.Mask()}), "/", length, "?)"));
  }
  return p;
}

absl::StatusOr<NetworkAddressing> NewNetworkAddressing(std::string_view network,
                                                       std::string_view subnet,
                                                       std::string_view gateway) {
  auto prefix = ParseCidr(subnet);
  if (!prefix.ok()) return NetError(network, Cat("subnet ", prefix.status().message()));
  if (prefix->length < 8 || prefix->length > 30) {
    return NetError(network,
                    Cat("subnet prefix length must be between /8 and /30, got /", prefix->length));
  }
  NetworkAddressing a;
  a.network = std::string(network);
  a.subnet = *prefix;
  if (gateway.empty()) {
    a.gateway = Ipv4{prefix->network.value + 1};
    return a;
  }
  auto gw = ParseIpv4(gateway);
  if (!gw) return NetError(network, Cat("gateway must be an IPv4 address, got \"", gateway, "\""));
  if (!prefix->Contains(*gw)) {
    return NetError(network, Cat("gateway ", gateway, " is outside subnet ", prefix->ToString()));
  }
  if (*gw == prefix->network || *gw == prefix->Broadcast()) {
    return NetError(network, Cat("gateway ", gateway, " must be a host address of subnet ",
                                 prefix->ToString()));
  }
  a.gateway = *gw;
  return a;
}

absl::Status CheckNoOverlap(std::string_view network, const Ipv4Prefix& subnet,
                            const std::vector<NetworkAddressing>& existing) {
  for (const auto& other : existing) {
    if (other.network == network) continue;
    if (subnet.Overlaps(other.subnet)) {
      return NetError(network, Cat("subnet ", subnet.ToString(), " overlaps network \"",
                                   other.network, "\" (", other.subnet.ToString(), ")"));
    }
  }
  return absl::OkStatus();
}

std::optional<Ipv4> NetworkAddressing::AddressOf(std::string_view owner) const {
  for (const auto& [addr, who] : allocations) {
    if (who == owner) return addr;
  }
  return std::nullopt;
}

absl::StatusOr<Ipv4> NetworkAddressing::Allocate(std::string_view owner,
                                                 std::optional<Ipv4> requested) {
  if (owner.empty()) return NetError(network, "address owner must not be empty");
  std::optional<Ipv4> held = AddressOf(owner);
  if (held) {
    if (requested && *requested != *held) {
      return NetError(network, Cat("address ", FormatIpv4(*requested), " requested for \"", owner,
                                   "\", which already holds ", FormatIpv4(*held)));
    }
    return *held;
  }
  if (requested) {
    std::string text = FormatIpv4(*requested);
    if (!subnet.Contains(*requested)) {
      return NetError(network, Cat("address ", text, " is outside subnet ", subnet.ToString()));
    }
    if (*requested == subnet.network || *requested == subnet.Broadcast()) {
      return NetError(
          network, Cat("address ", text, " is not a host address of subnet ", subnet.ToString()));
    }
    if (*requested == gateway) {
      return NetError(network, Cat("address ", text, " is the network's gateway"));
    }
    auto it = allocations.find(*requested);
    if (it != allocations.end()) {
      return absl::AlreadyExistsError(Cat("network \"", network, "\": address ", text,
                                          " is already in use by \"", it->second, "\""));
    }
    allocations.emplace(*requested, std::string(owner));
    return *requested;
  }
  for (uint32_t v = subnet.network.value + 1; v < subnet.Broadcast().value; ++v) {
    Ipv4 a{v};
    if (a == gateway || allocations.contains(a)) continue;
    allocations.emplace(a, std::string(owner));
    return a;
  }
  return absl::ResourceExhaustedError(
      Cat("network \"", network, "\": subnet ", subnet.ToString(), " has no free address"));
}

absl::StatusOr<Ipv4> NetworkAddressing::AllocateText(std::string_view owner,
                                                     std::string_view requested) {
  if (requested.empty()) return Allocate(owner);
  auto a = ParseIpv4(requested);
  if (!a) {
    return NetError(network, Cat("address must be an IPv4 address, got \"", requested, "\""));
  }
  return Allocate(owner, *a);
}

int NetworkAddressing::Release(std::string_view owner) {
  int n = 0;
  for (auto it = allocations.begin(); it != allocations.end();) {
    if (it->second == owner) {
      it = allocations.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  return n;
}

int64_t NetworkAddressing::FreeCount() const {
  int64_t hosts = static_cast<int64_t>(subnet.Broadcast().value) - subnet.network.value - 1;
  int64_t used = static_cast<int64_t>(allocations.size());
  if (subnet.Contains(gateway) && !allocations.contains(gateway)) ++used;
  return std::max<int64_t>(0, hosts - used);
}

nlohmann::json NetworkAddressing::ToJson() const {
  nlohmann::json alloc = nlohmann::json::object();
  for (const auto& [addr, owner] : allocations) alloc[FormatIpv4(addr)] = owner;
  return {{"network", network},
          {"subnet", subnet.ToString()},
          {"gateway", FormatIpv4(gateway)},
          {"allocations", alloc}};
}

absl::StatusOr<NetworkAddressing> NetworkAddressing::FromJson(const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("network") || !j["network"].is_string() ||
      !j.contains("subnet") || !j["subnet"].is_string() || !j.contains("gateway") ||
      !j["gateway"].is_string()) {
    return absl::InvalidArgumentError("network addressing: network, subnet and gateway required");
  }
  auto a = NewNetworkAddressing(j["network"].get<std::string>(), j["subnet"].get<std::string>(),
                                j["gateway"].get<std::string>());
  if (!a.ok()) return a.status();
  if (j.contains("allocations") && j["allocations"].is_object()) {
    for (const auto& [addr, owner] : j["allocations"].items()) {
      if (!owner.is_string()) continue;
      auto r = a->AllocateText(owner.get<std::string>(), addr);
      if (!r.ok()) return r.status();
    }
  }
  return a;
}

}  // namespace berth::runtime::net
