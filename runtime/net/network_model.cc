#include "runtime/net/network_model.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>

#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::runtime::net {
namespace {

using core::Cat;

uint64_t Fnv1a(std::string_view a, std::string_view b = {}) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(a);
  mix(std::string_view("\0", 1));
  mix(b);
  return h;
}

std::string Hex(uint64_t h, size_t digits) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return std::string(buf, digits);
}

bool AllLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// 'b', the kind letter, the short instance id, then what is left of IFNAMSIZ for the owner.
std::string LinkName(char kind, std::string_view instance, uint64_t owner_hash) {
  std::string out = Cat("b", std::string(1, kind), ShortInstanceId(instance));
  return out + Hex(owner_hash, kLinkNameLength - out.size());
}

// nft identifiers: DNS labels never hold '_', so mapping '-' to '_' stays unique.
std::string NftIdent(std::string_view s) {
  std::string out(s);
  std::replace(out.begin(), out.end(), '-', '_');
  return out;
}

std::string EndpointChain(std::string_view network, std::string_view id) {
  return Cat("ep_", NftIdent(network), "__", NftIdent(id));
}

std::string GroupSet(std::string_view group) { return Cat("g_", NftIdent(group)); }

bool ValidMac(std::string_view mac) {
  if (mac.size() != 17) return false;
  for (size_t i = 0; i < mac.size(); ++i) {
    char c = mac[i];
    if (i % 3 == 2) {
      if (c != ':') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  // Unicast: the low bit of the first octet clear.
  int first = std::stoi(std::string(mac.substr(0, 2)), nullptr, 16);
  return (first & 1) == 0;
}

// What ip(8) accepts as an interface name, minus anything that would confuse a batch line.
bool ValidIfname(std::string_view name) {
  return !name.empty() && name.size() <= 15 &&
         name.find_first_of("/ \t\n:\"'\\") == std::string_view::npos;
}

absl::Status ValidPort(std::string_view kind, std::string_view name, std::string_view field,
                       int port) {
  if (port < 1 || port > 65535) {
    return core::FieldError(kind, name, field, Cat("must be between 1 and 65535, got ", port));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kUdp:
      return "udp";
    case Protocol::kIcmp:
      return "icmp";
    case Protocol::kAny:
      return "any";
  }
  return "any";
}

absl::StatusOr<Protocol> ParseProtocol(std::string_view text) {
  for (Protocol p : {Protocol::kTcp, Protocol::kUdp, Protocol::kIcmp, Protocol::kAny}) {
    if (text == ProtocolName(p)) return p;
  }
  return absl::InvalidArgumentError(
      Cat("protocol must be tcp, udp, icmp or any, got \"", text, "\""));
}

bool ValidInstanceId(std::string_view id) {
  return id.size() == kInstanceIdLength && AllLowerHex(id);
}

std::string InstanceIdOf(std::string_view text) { return Hex(Fnv1a(text), kInstanceIdLength); }

std::string_view ShortInstanceId(std::string_view instance) {
  return instance.substr(0, kShortInstanceIdLength);
}

std::string BridgeName(std::string_view instance, std::string_view network) {
  return LinkName('b', instance, Fnv1a(network));
}
std::string VethName(std::string_view instance, std::string_view network,
                     std::string_view endpoint) {
  return LinkName('v', instance, Fnv1a(network, endpoint));
}
std::string PeerName(std::string_view instance, std::string_view network,
                     std::string_view endpoint) {
  return LinkName('p', instance, Fnv1a(network, endpoint));
}
std::string TapName(std::string_view instance, std::string_view network,
                    std::string_view endpoint) {
  return LinkName('t', instance, Fnv1a(network, endpoint));
}
std::string VxlanName(std::string_view instance, std::string_view network) {
  return LinkName('x', instance, Fnv1a(network));
}
std::string LegName(std::string_view instance, std::string_view network) {
  return LinkName('h', instance, Fnv1a(network));
}
std::string LegPeerName(std::string_view instance, std::string_view network) {
  return LinkName('g', instance, Fnv1a(network));
}

bool IsInstanceLinkName(std::string_view instance, std::string_view name) {
  const std::string_view short_id = ShortInstanceId(instance);
  return name.size() == kLinkNameLength && name[0] == 'b' &&
         std::string_view("bvptxhg").find(name[1]) != std::string_view::npos &&
         name.substr(2, short_id.size()) == short_id && AllLowerHex(name.substr(2));
}

std::string NftTableName(std::string_view instance) { return Cat("berth_", instance); }

std::string DeriveMac(std::string_view network, std::string_view endpoint) {
  uint64_t h = Fnv1a(network, endpoint);
  char buf[18];
  std::snprintf(buf, sizeof buf, "52:54:00:%02x:%02x:%02x", static_cast<unsigned>((h >> 16) & 255),
                static_cast<unsigned>((h >> 8) & 255), static_cast<unsigned>(h & 255));
  return buf;
}

std::string GatewayMac(std::string_view network) {
  uint64_t h = Fnv1a(network, "gateway");
  char buf[18];
  std::snprintf(buf, sizeof buf, "02:b7:%02x:%02x:%02x:%02x",
                static_cast<unsigned>((h >> 24) & 255), static_cast<unsigned>((h >> 16) & 255),
                static_cast<unsigned>((h >> 8) & 255), static_cast<unsigned>(h & 255));
  return buf;
}

std::string LinkAlias(std::string_view instance, std::string_view kind, std::string_view network,
                      std::string_view endpoint) {
  std::string out = Cat("berth:", instance, ":", kind, ":", network);
  if (!endpoint.empty()) out += Cat("/", endpoint);
  return out;
}

bool ParseLinkAlias(std::string_view alias, ParsedLinkAlias* out) {
  if (!alias.starts_with("berth:")) return false;
  alias.remove_prefix(6);
  size_t colon = alias.find(':');
  if (colon == std::string_view::npos || !ValidInstanceId(alias.substr(0, colon))) return false;
  out->instance = std::string(alias.substr(0, colon));
  alias.remove_prefix(colon + 1);
  colon = alias.find(':');
  if (colon == std::string_view::npos) return false;
  out->kind = std::string(alias.substr(0, colon));
  std::string_view rest = alias.substr(colon + 1);
  size_t slash = rest.find('/');
  out->network = std::string(rest.substr(0, slash));
  out->endpoint = slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1));
  return !out->kind.empty() && !out->network.empty();
}

absl::StatusOr<NetworkRecord> NetworkModel::PrepareNetwork(const NetworkSpec& spec) const {
  BERTH_RETURN_IF_ERROR(core::ValidateName("network", spec.name));
  BERTH_ASSIGN_OR_RETURN(NetworkAddressing addressing,
                         NewNetworkAddressing(spec.name, spec.subnet, spec.gateway));
  std::vector<NetworkAddressing> others;
  for (const auto& [name, rec] : networks_) others.push_back(rec.addressing);
  BERTH_RETURN_IF_ERROR(CheckNoOverlap(spec.name, addressing.subnet, others));
  if (spec.vxlan) {
    const VxlanSpec& vx = *spec.vxlan;
    if (vx.vni < 1 || vx.vni > 16777215) {
      return core::FieldError("network", spec.name, "vxlan.vni",
                              Cat("must be between 1 and 16777215, got ", vx.vni));
    }
    if (!ParseIpv4(vx.local_address)) {
      return core::FieldError("network", spec.name, "vxlan.local_address",
                              Cat("must be an IPv4 address, got \"", vx.local_address, "\""));
    }
    for (size_t i = 0; i < vx.peers.size(); ++i) {
      if (!ParseIpv4(vx.peers[i])) {
        return core::FieldError("network", spec.name, Cat("vxlan.peers[", i, "]"),
                                Cat("must be an IPv4 address, got \"", vx.peers[i], "\""));
      }
    }
    if (vx.port == 0) {
      return core::FieldError("network", spec.name, "vxlan.port", "must be between 1 and 65535");
    }
    if (!vx.underlay_device.empty() && !ValidIfname(vx.underlay_device)) {
      return core::FieldError("network", spec.name, "vxlan.underlay_device",
                              Cat("must be an interface name, got \"", vx.underlay_device, "\""));
    }
  }
  if (spec.mtu != 0 && (spec.mtu < 576 || spec.mtu > 9000)) {
    return core::FieldError("network", spec.name, "mtu",
                            Cat("must be 0 (the default) or between 576 and 9000, got ", spec.mtu));
  }
  if (const NetworkRecord* old = FindNetwork(spec.name)) {
    if (!(old->addressing.subnet == addressing.subnet) ||
        old->addressing.gateway != addressing.gateway) {
      return absl::FailedPreconditionError(
          Cat("network \"", spec.name, "\": subnet and gateway cannot change (",
              old->addressing.subnet.ToString(), " via ", FormatIpv4(old->addressing.gateway),
              "); delete and recreate the network"));
    }
    addressing.allocations = old->addressing.allocations;
  }
  NetworkRecord r;
  r.spec = spec;
  r.spec.gateway = FormatIpv4(addressing.gateway);
  r.addressing = std::move(addressing);
  r.bridge = BridgeName(instance_, spec.name);
  return r;
}

void NetworkModel::CommitNetwork(NetworkRecord record) {
  std::string name = record.spec.name;
  networks_[name] = std::move(record);
}

void NetworkModel::RemoveNetwork(std::string_view name) {
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    it = it->first.first == name ? endpoints_.erase(it) : std::next(it);
  }
  for (auto it = forwards_.begin(); it != forwards_.end();) {
    it = it->second.network == name ? forwards_.erase(it) : std::next(it);
  }
  auto it = networks_.find(name);
  if (it != networks_.end()) networks_.erase(it);
}

const NetworkRecord* NetworkModel::FindNetwork(std::string_view name) const {
  auto it = networks_.find(name);
  return it == networks_.end() ? nullptr : &it->second;
}

const EndpointRecord* NetworkModel::FindEndpoint(std::string_view network,
                                                 std::string_view id) const {
  auto it = endpoints_.find({std::string(network), std::string(id)});
  return it == endpoints_.end() ? nullptr : &it->second;
}

absl::Status NetworkModel::CheckGroupsExist(std::string_view endpoint,
                                            const std::vector<std::string>& groups) const {
  for (size_t i = 0; i < groups.size(); ++i) {
    if (!groups_.contains(groups[i])) {
      return core::FieldError("endpoint", endpoint, Cat("security_groups[", i, "]"),
                              Cat("names unknown group \"", groups[i], "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<EndpointRecord> NetworkModel::PrepareEndpoint(const EndpointSpec& spec) const {
  BERTH_RETURN_IF_ERROR(core::ValidateName("endpoint", spec.id));
  const NetworkRecord* net = FindNetwork(spec.network);
  if (net == nullptr) {
    return absl::NotFoundError(
        Cat("endpoint \"", spec.id, "\": network \"", spec.network, "\" not found"));
  }
  if (FindEndpoint(spec.network, spec.id) != nullptr) {
    return absl::AlreadyExistsError(
        Cat("endpoint \"", spec.id, "\": already attached to network \"", spec.network, "\""));
  }
  if (spec.address.empty()) {
    return core::FieldError("endpoint", spec.id, "address",
                            "must be set (allocate one with the network's IPAM)");
  }
  NetworkAddressing scratch = net->addressing;
  auto address = scratch.AllocateText(spec.id, spec.address);
  if (!address.ok()) {
    return absl::Status(address.status().code(),
                        Cat("endpoint \"", spec.id, "\": ", address.status().message()));
  }
  if (!spec.mac.empty() && !ValidMac(spec.mac)) {
    return core::FieldError(
        "endpoint", spec.id, "mac",
        Cat("must be a unicast MAC like 52:54:00:12:34:56, got \"", spec.mac, "\""));
  }
  if (spec.kind == EndpointKind::kVeth) {
    if (spec.netns.empty()) {
      return core::FieldError("endpoint", spec.id, "netns", "must be set for a container (veth)");
    }
    if (spec.netns.find_first_of(" \t\n\"'\\") != std::string::npos) {
      return core::FieldError(
          "endpoint", spec.id, "netns",
          Cat("must be a namespace name or path without spaces or quotes, got \"", spec.netns,
              "\""));
    }
    if (!ValidIfname(spec.ifname)) {
      return core::FieldError(
          "endpoint", spec.id, "ifname",
          Cat("must be 1-15 characters without '/', ':' or spaces, got \"", spec.ifname, "\""));
    }
  }
  BERTH_RETURN_IF_ERROR(CheckGroupsExist(spec.id, spec.security_groups));
  EndpointRecord r;
  r.spec = spec;
  r.address = *address;
  r.spec.address = FormatIpv4(*address);
  r.mac = spec.mac.empty() ? DeriveMac(spec.network, spec.id) : spec.mac;
  r.spec.mac = r.mac;
  r.host_ifname = spec.kind == EndpointKind::kTap ? TapName(instance_, spec.network, spec.id)
                                                  : VethName(instance_, spec.network, spec.id);
  return r;
}

void NetworkModel::CommitEndpoint(EndpointRecord record) {
  auto& net = networks_.at(record.spec.network);
  // PrepareEndpoint reserved this address on a copy of the same model; a refusal here means the
  // two disagree, which the endpoint's later detach would show as a leak.
  if (absl::StatusOr<Ipv4> ip = net.addressing.Allocate(record.spec.id, record.address); !ip.ok()) {
    core::ReportError("net", core::Cat("endpoint ", record.spec.id, ": record its address"),
                      ip.status());
  }
  auto key = std::make_pair(record.spec.network, record.spec.id);
  endpoints_[key] = std::move(record);
}

void NetworkModel::RemoveEndpoint(std::string_view network, std::string_view id) {
  endpoints_.erase({std::string(network), std::string(id)});
  auto it = networks_.find(network);
  if (it != networks_.end()) it->second.addressing.Release(id);
}

absl::Status NetworkModel::SetEndpointGroups(std::string_view network, std::string_view id,
                                             const std::vector<std::string>& groups) {
  auto it = endpoints_.find({std::string(network), std::string(id)});
  if (it == endpoints_.end()) {
    return absl::NotFoundError(Cat("endpoint \"", id, "\" not found on network \"", network, "\""));
  }
  BERTH_RETURN_IF_ERROR(CheckGroupsExist(id, groups));
  it->second.spec.security_groups = groups;
  return absl::OkStatus();
}

absl::Status NetworkModel::PrepareGroup(const SecurityGroup& group) const {
  BERTH_RETURN_IF_ERROR(core::ValidateName("security group", group.name));
  for (size_t i = 0; i < group.rules.size(); ++i) {
    const SecurityRule& r = group.rules[i];
    auto field = [&](std::string_view f) { return Cat("rules[", i, "].", f); };
    if (r.protocol == Protocol::kTcp || r.protocol == Protocol::kUdp) {
      if (r.port_from < 1 || r.port_from > 65535) {
        return core::FieldError("security group", group.name, field("port_from"),
                                Cat("must be between 1 and 65535, got ", r.port_from));
      }
      if (r.port_to != 0 && (r.port_to < r.port_from || r.port_to > 65535)) {
        return core::FieldError(
            "security group", group.name, field("port_to"),
            Cat("must be between port_from (", r.port_from, ") and 65535, got ", r.port_to));
      }
    } else if (r.port_from != 0 || r.port_to != 0) {
      return core::FieldError(
          "security group", group.name, field("port_from"),
          Cat("must be 0 for protocol ", ProtocolName(r.protocol), ", got ", r.port_from));
    }
    if (!r.source_cidr.empty() && !r.source_group.empty()) {
      return core::FieldError("security group", group.name, field("source_group"),
                              "must be empty when source_cidr is set");
    }
    if (!r.source_cidr.empty()) {
      auto p = ParseCidr(r.source_cidr);
      if (!p.ok()) {
        return core::FieldError("security group", group.name, field("source_cidr"),
                                std::string(p.status().message()));
      }
    }
    if (!r.source_group.empty() && r.source_group != group.name &&
        !groups_.contains(r.source_group)) {
      return core::FieldError("security group", group.name, field("source_group"),
                              Cat("names unknown group \"", r.source_group, "\""));
    }
  }
  for (size_t i = 0; i < group.remote_members.size(); ++i) {
    if (!ParseIpv4(group.remote_members[i])) {
      return core::FieldError(
          "security group", group.name, Cat("remote_members[", i, "]"),
          Cat("must be an IPv4 address, got \"", group.remote_members[i].substr(0, 64), "\""));
    }
  }
  return absl::OkStatus();
}

void NetworkModel::CommitGroup(SecurityGroup group) {
  std::string name = group.name;
  groups_[name] = std::move(group);
}

absl::Status NetworkModel::CheckGroupUnused(std::string_view name) const {
  if (!groups_.contains(name)) {
    return absl::NotFoundError(Cat("security group \"", name, "\" not found"));
  }
  for (const auto& [key, ep] : endpoints_) {
    const auto& g = ep.spec.security_groups;
    if (std::find(g.begin(), g.end(), name) != g.end()) {
      return absl::FailedPreconditionError(Cat("security group \"", name,
                                               "\": still attached to endpoint \"", key.second,
                                               "\" on network \"", key.first, "\""));
    }
  }
  for (const auto& [other, group] : groups_) {
    if (other == name) continue;
    for (const auto& r : group.rules) {
      if (r.source_group == name) {
        return absl::FailedPreconditionError(Cat(
            "security group \"", name, "\": still the source_group of a rule of \"", other, "\""));
      }
    }
  }
  return absl::OkStatus();
}

void NetworkModel::RemoveGroup(std::string_view name) {
  auto it = groups_.find(name);
  if (it != groups_.end()) groups_.erase(it);
}

absl::Status NetworkModel::PrepareForward(const PortForward& f) const {
  BERTH_RETURN_IF_ERROR(core::ValidateName("port forward", f.id));
  if (f.protocol != Protocol::kTcp && f.protocol != Protocol::kUdp) {
    return core::FieldError("port forward", f.id, "protocol",
                            Cat("must be tcp or udp, got ", ProtocolName(f.protocol)));
  }
  BERTH_RETURN_IF_ERROR(ValidPort("port forward", f.id, "host_port", f.host_port));
  BERTH_RETURN_IF_ERROR(ValidPort("port forward", f.id, "target_port", f.target_port));
  const NetworkRecord* net = FindNetwork(f.network);
  if (net == nullptr) {
    return absl::NotFoundError(
        Cat("port forward \"", f.id, "\": network \"", f.network, "\" not found"));
  }
  auto target = ParseIpv4(f.target_address);
  if (!target) {
    return core::FieldError("port forward", f.id, "target_address",
                            Cat("must be an IPv4 address, got \"", f.target_address, "\""));
  }
  if (!net->addressing.subnet.Contains(*target)) {
    return core::FieldError(
        "port forward", f.id, "target_address",
        Cat(f.target_address, " is outside subnet ", net->addressing.subnet.ToString(),
            " of network \"", f.network, "\""));
  }
  if (!f.source_address.empty()) {
    auto source = ParseIpv4(f.source_address);
    if (!source || !net->addressing.subnet.Contains(*source) ||
        *source == net->addressing.gateway || *source == *target) {
      return core::FieldError(
          "port forward", f.id, "source_address",
          Cat("must be an address of subnet ", net->addressing.subnet.ToString(),
              " other than its gateway and the target, got \"", f.source_address, "\""));
    }
  }
  for (const auto& [id, other] : forwards_) {
    if (other.network == f.network && !other.source_address.empty() && !f.source_address.empty() &&
        other.source_address != f.source_address && id != f.id) {
      return core::FieldError(
          "port forward", f.id, "source_address",
          Cat(f.source_address, " differs from ", other.source_address,
              ", the host's address on \"", f.network, "\" that \"", id, "\" leaves from"));
    }
    if (id == f.id) {
      return absl::AlreadyExistsError(Cat("port forward \"", f.id, "\": already exists"));
    }
    if (other.protocol == f.protocol && other.host_port == f.host_port) {
      return absl::AlreadyExistsError(Cat("port forward \"", f.id, "\": host_port ", f.host_port,
                                          "/", ProtocolName(f.protocol),
                                          " is already forwarded by \"", id, "\""));
    }
  }
  return absl::OkStatus();
}

void NetworkModel::CommitForward(PortForward forward) {
  std::string id = forward.id;
  forwards_[id] = std::move(forward);
}

void NetworkModel::RemoveForward(std::string_view id) {
  auto it = forwards_.find(id);
  if (it != forwards_.end()) forwards_.erase(it);
}

std::map<std::string, Leg> Legs(const NetworkModel& model) {
  std::map<std::string, Leg> out;
  for (const auto& [_, f] : model.forwards()) {
    if (f.source_address.empty()) continue;
    Leg& leg = out[f.network];
    leg.link = LegName(model.instance(), f.network);
    leg.address = f.source_address;
    leg.targets.insert(f.target_address);
  }
  return out;
}

std::vector<std::string> LocalnetBridges(const NetworkModel& model) {
  std::vector<std::string> out;
  for (const auto& [name, n] : model.networks()) {
    for (const auto& [_, f] : model.forwards()) {
      if (f.network == name) {
        out.push_back(n.bridge);
        break;
      }
    }
  }
  for (const auto& [_, leg] : Legs(model)) out.push_back(leg.link);
  return out;
}

std::string RenderNftRuleset(const NetworkModel& model) {
  // Creating then deleting the table makes the delete succeed whether or not it existed; the
  // whole script is one transaction, so the old rules stay until the new ones are in.
  const std::string table = Cat("inet ", NftTableName(model.instance()));
  std::string out = Cat("table ", table, "\ndelete table ", table, "\n");
  bool any_nat = false;
  for (const auto& [_, n] : model.networks()) any_nat |= n.spec.nat;
  bool any_protected = false;
  for (const auto& [_, e] : model.endpoints()) any_protected |= !e.spec.security_groups.empty();
  if (!any_nat && !any_protected && model.forwards().empty()) return out;

  out += Cat("table ", table, " {\n");
  for (const auto& [name, group] : model.groups()) {
    out += Cat("  set ", GroupSet(name), " {\n    type ipv4_addr\n");
    std::set<std::string> members(group.remote_members.begin(), group.remote_members.end());
    for (const auto& [_, e] : model.endpoints()) {
      const auto& g = e.spec.security_groups;
      if (std::find(g.begin(), g.end(), name) != g.end()) members.insert(FormatIpv4(e.address));
    }
    if (!members.empty()) {
      out += "    elements = { ";
      bool first = true;
      for (const std::string& m : members) {
        out += Cat(first ? "" : ", ", m);
        first = false;
      }
      out += " }\n";
    }
    out += "  }\n";
  }

  std::string dnat;
  for (const auto& [_, f] : model.forwards()) {
    dnat += Cat("    fib daddr type local ", ProtocolName(f.protocol), " dport ", f.host_port,
                " dnat ip to ", f.target_address, ":", f.target_port, "\n");
  }
  out += "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n" +
         dnat + "  }\n";
  out += "  chain output_nat {\n    type nat hook output priority -100; policy accept;\n" + dnat +
         "  }\n";
  out += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
  for (const auto& [_, n] : model.networks()) {
    if (!n.spec.nat) continue;
    std::string subnet = n.addressing.subnet.ToString();
    out += Cat("    ip saddr ", subnet, " ip daddr != ", subnet, " masquerade\n");
  }
  // A forward to a workload on another host leaves through the leg from the host's own address
  // on the network, so the answers come back to this host.
  const std::map<std::string, Leg> legs = Legs(model);
  for (const auto& [_, leg] : legs) {
    out += Cat("    oifname \"", leg.link, "\" snat ip to ", leg.address, "\n");
  }
  // A forward reached at 127.0.0.1 leaves with a loopback source, which the workload could not
  // answer: it gets the bridge's address instead (the bridge routes it: route_localnet).
  std::string guard;
  for (const std::string& bridge : LocalnetBridges(model)) {
    const bool leg = std::any_of(legs.begin(), legs.end(),
                                 [&](const auto& l) { return l.second.link == bridge; });
    if (!leg) out += Cat("    oifname \"", bridge, "\" ip saddr 127.0.0.0/8 masquerade\n");
    guard += Cat("    iifname \"", bridge, "\" ip daddr 127.0.0.0/8 drop\n", "    iifname \"",
                 bridge, "\" ip saddr 127.0.0.0/8 drop\n");
  }
  out += "  }\n";
  if (!guard.empty()) {
    // route_localnet lets loopback addresses through the bridge; only the host's own forwarded
    // connections may use them: a workload never reaches the host's loopback services. Runs
    // before conntrack, so replies (addressed to the bridge until un-NATed) pass.
    out +=
        "  chain localnet_guard {\n    type filter hook prerouting priority raw; policy "
        "accept;\n" +
        guard + "  }\n";
  }

  // Ingress to a protected endpoint arrives bridged or routed (forward hook) or from the host
  // itself (output hook).
  std::string dispatch;
  std::string chains;
  for (const auto& [key, e] : model.endpoints()) {
    if (e.spec.security_groups.empty()) continue;
    std::string chain = EndpointChain(key.first, key.second);
    dispatch += Cat("    ip daddr ", FormatIpv4(e.address), " jump ", chain, "\n");
    chains += Cat("  chain ", chain, " {\n    ct state established,related accept\n");
    for (const auto& gname : e.spec.security_groups) {
      const SecurityGroup& g = model.groups().at(gname);
      for (const auto& r : g.rules) {
        std::string source;
        if (!r.source_cidr.empty()) source = Cat("ip saddr ", r.source_cidr, " ");
        if (!r.source_group.empty()) source = Cat("ip saddr @", GroupSet(r.source_group), " ");
        std::string match;
        switch (r.protocol) {
          case Protocol::kTcp:
          case Protocol::kUdp: {
            int to = r.port_to == 0 ? r.port_from : r.port_to;
            match = Cat(ProtocolName(r.protocol), " dport ",
                        to == r.port_from ? Cat(r.port_from) : Cat(r.port_from, "-", to), " ");
            break;
          }
          case Protocol::kIcmp:
            match = "meta l4proto icmp ";
            break;
          case Protocol::kAny:
            break;
        }
        chains += Cat("    ", source, match, "accept\n");
      }
    }
    chains += "    drop\n  }\n";
  }
  out += "  chain forward {\n    type filter hook forward priority filter; policy accept;\n" +
         dispatch + "  }\n";
  out += "  chain output_filter {\n    type filter hook output priority filter; policy accept;\n" +
         dispatch + "  }\n";
  out += chains;
  out += "}\n";
  return out;
}

std::string RenderDhcpHosts(const NetworkModel& model, std::string_view network) {
  std::string out;
  for (const auto& [key, e] : model.endpoints()) {
    if (key.first != network || e.spec.kind != EndpointKind::kTap) continue;
    out += Cat(e.mac, ",", FormatIpv4(e.address), ",", key.second, "\n");
  }
  return out;
}

}  // namespace berth::runtime::net
