#include "control/network_service.h"

#include "absl/strings/numbers.h"
#include "core/log.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/net/ipam.h"

namespace berth::control {

using core::Cat;
using core::Json;
using core::Network;
using core::PortForward;
using core::SecurityGroup;
using runtime::net::NetworkAddressing;

std::string NetworkKey(std::string_view name) { return Cat(kNetworkPrefix, name); }
std::string IpamKey(std::string_view name) { return Cat(kIpamPrefix, name); }
std::string SecGroupKey(std::string_view name) { return Cat(kSecGroupPrefix, name); }
std::string PortForwardKey(std::string_view id) { return Cat(kPortForwardPrefix, id); }

std::string HostAddressOwner(std::string_view host) { return Cat("host:", host); }

bool IsHostAddressOwner(std::string_view owner) { return owner.starts_with("host:"); }

absl::Status NetworkHost::CheckForwardHost(std::string_view forward, std::string_view host) {
  return core::FieldError("portforward", forward, "host",
                          "names a host of a fleet; this server is a single host (serve --dev) "
                          "and forwards at its own addresses: leave it out");
}

absl::Status ValidateAddressOwner(std::string_view network, std::string_view owner) {
  if (owner.empty()) return core::FieldError("network", network, "owner", "is required");
  if (!core::ValidateName("workload", owner).ok()) {
    return core::FieldError("network", network, "owner",
                            "must be a workload name: 1-63 lower-case letters, digits and '-', "
                            "starting and ending with a letter or digit");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::pair<int, int>> ParsePortRange(std::string_view group, std::string_view text) {
  auto bad = [&](std::string_view why) {
    return core::FieldError("secgroup", group, "ports", Cat(why, ", got \"", text, "\""));
  };
  std::string s(text);
  std::string lo = s, hi = s;
  if (auto dash = s.find('-'); dash != std::string::npos) {
    lo = s.substr(0, dash);
    hi = s.substr(dash + 1);
  }
  int from = 0, to = 0;
  if (!absl::SimpleAtoi(lo, &from) || !absl::SimpleAtoi(hi, &to)) {
    return bad("must be a port or a range like 80-90");
  }
  if (from < 1 || from > 65535 || to < 1 || to > 65535) {
    return bad("must lie in 1..65535");
  }
  if (from > to) return bad("must be a range whose start is <= its end");
  return std::make_pair(from, to);
}

namespace {

constexpr std::string_view kWhere = "net";

HostGroup ToHostGroup(const SecurityGroup& g) {
  HostGroup h;
  h.name = g.name;
  for (const core::SecurityRule& r : g.spec.rules) {
    h.rules.push_back(HostRule{.protocol = r.protocol,
                               .port_from = r.port_from,
                               .port_to = r.port_to,
                               .source_cidr = r.from,
                               .source_group = r.from_group});
  }
  return h;
}

HostForward ToHostForward(const PortForward& f) {
  return HostForward{.id = f.id,
                     .protocol = f.spec.protocol,
                     .host_port = f.spec.host_port,
                     .network = f.spec.network,
                     .target_address = f.spec.target_address,
                     .target_port = f.spec.port};
}

HostNetwork ToHostNetwork(const Network& n) {
  return HostNetwork{n.name, n.spec.subnet, n.spec.gateway, n.spec.nat};
}

// A VXLAN id no network in `taken` has: a hash of the name, then the next free one.
int64_t FreeVni(std::string_view name, const std::set<int64_t>& taken) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  int64_t vni = 1 + static_cast<int64_t>(h % static_cast<uint32_t>(core::kMaxVni));
  while (taken.contains(vni)) vni = vni % core::kMaxVni + 1;
  return vni;
}

}  // namespace

NetworkService::NetworkService(state::Store* store, core::Clock* clock, NetworkHost* host)
    : store_(store),
      clock_(clock),
      host_(host),
      events_(store, clock),
      networks_(store, "network", std::string(kNetworkPrefix)),
      ipams_(store, "network addressing", std::string(kIpamPrefix)),
      groups_(store, "secgroup", std::string(kSecGroupPrefix)),
      forwards_(store, "portforward", std::string(kPortForwardPrefix)) {}

template <typename Repo>
absl::StatusOr<typename Repo::Item> NetworkService::ReadOrNotFound(const Repo& repo,
                                                                   std::string_view kind,
                                                                   std::string_view name) const {
  BERTH_ASSIGN_OR_RETURN(std::optional<typename Repo::Item> item, repo.Find(name));
  if (!item) return absl::NotFoundError(Cat(kind, " \"", name, "\" not found"));
  return std::move(*item);
}

template <typename Repo>
absl::StatusOr<typename Repo::ListResult> NetworkService::ListAll(const Repo& repo) const {
  std::vector<absl::Status> undecodable;
  BERTH_ASSIGN_OR_RETURN(typename Repo::ListResult list, repo.List(&undecodable));
  for (const absl::Status& s : undecodable) core::ReportError(kWhere, "stored object skipped", s);
  return list;
}

absl::Status NetworkService::Start() {
  absl::MutexLock lock(&mu_);
  HostKeep keep;
  absl::Status first = absl::OkStatus();
  auto note = [&](const absl::Status& s) {
    if (!s.ok() && first.ok()) first = s;
  };
  BERTH_ASSIGN_OR_RETURN(auto networks, ListAll(networks_));
  // Networks stored before they had tunnel ids get theirs.
  std::set<int64_t> vnis;
  for (const auto& n : networks.items) vnis.insert(n.value.status.vni);
  for (auto& n : networks.items) {
    if (n.value.status.vni != 0) continue;
    n.value.status.vni = FreeVni(n.name, vnis);
    vnis.insert(n.value.status.vni);
    state::TxnRequest txn;
    note(networks_.AddUpdate(&txn, n.name, n.value, n.mod_revision));
    note(CommitChange(store_, txn, "network", n.name).status());
  }
  for (const auto& n : networks.items) {
    auto bridge = host_->EnsureNetwork(ToHostNetwork(n.value));
    note(bridge.status());
    if (bridge.ok()) keep.networks.insert(n.name);
  }
  BERTH_ASSIGN_OR_RETURN(auto ipams, ListAll(ipams_));
  for (const auto& i : ipams.items) {
    for (const auto& [addr, owner] : i.value.allocations) {
      keep.endpoints.insert({i.value.network, owner});
    }
  }
  BERTH_ASSIGN_OR_RETURN(auto groups, ListAll(groups_));
  // Groups may name each other in rules: declare them bare first, then with their rules.
  for (const auto& g : groups.items) note(host_->PutGroup(HostGroup{g.name, {}}));
  for (const auto& g : groups.items) {
    note(host_->PutGroup(ToHostGroup(g.value)));
    keep.groups.insert(g.name);
  }
  BERTH_ASSIGN_OR_RETURN(auto forwards, ListAll(forwards_));
  for (const auto& f : forwards.items) {
    absl::Status s = host_->AddForward(ToHostForward(f.value));
    // Ids are "PROTO-PORT": one that exists already is this very forward, kept from before.
    if (absl::IsAlreadyExists(s)) s = absl::OkStatus();
    note(s);
    if (s.ok()) keep.forwards.insert(f.name);
  }
  note(host_->Cleanup(keep));
  return first;
}

absl::StatusOr<Json> NetworkService::CreateNetwork(const NetworkCreateOptions& o) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("network", o.name));
  if (o.subnet.empty()) {
    return core::FieldError("network", o.name, "subnet", "is required (e.g. 10.88.0.0/24)");
  }
  // Checks the subnet's shape and the gateway's place in it; errors name the field.
  BERTH_ASSIGN_OR_RETURN(NetworkAddressing addressing,
                         runtime::net::NewNetworkAddressing(o.name, o.subnet, o.gateway));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto existing, store_->Get(NetworkKey(o.name)));
  if (existing.kv) {
    return absl::AlreadyExistsError(Cat("network \"", o.name, "\": name is already taken"));
  }
  BERTH_ASSIGN_OR_RETURN(auto ipams, ListAll(ipams_));
  std::vector<NetworkAddressing> others;
  for (auto& i : ipams.items) others.push_back(std::move(i.value));
  BERTH_RETURN_IF_ERROR(runtime::net::CheckNoOverlap(o.name, addressing.subnet, others));
  Network n;
  n.name = o.name;
  n.spec = {.subnet = addressing.subnet.ToString(),
            .gateway = runtime::net::FormatIpv4(addressing.gateway),
            .nat = o.nat};
  {
    BERTH_ASSIGN_OR_RETURN(auto networks, ListAll(networks_));
    std::set<int64_t> vnis;
    for (const auto& other : networks.items) vnis.insert(other.value.status.vni);
    n.status.vni = FreeVni(o.name, vnis);
  }
  BERTH_ASSIGN_OR_RETURN(n.status.bridge, host_->EnsureNetwork(ToHostNetwork(n)));
  Touch(&n, clock_, true);
  auto commit = [&]() -> absl::StatusOr<int64_t> {
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(networks_.AddCreate(&txn, o.name, n));
    BERTH_RETURN_IF_ERROR(ipams_.AddCreate(&txn, o.name, addressing));
    events_.Add(&txn.then_ops, "network", o.name, "created",
                Cat("network ", n.spec.subnet, " (gateway ", n.spec.gateway, ") on bridge ",
                    n.status.bridge));
    return CommitChange(store_, txn, "network", o.name);
  };
  auto rev = commit();
  if (!rev.ok()) {
    core::OkOrReport(kWhere, Cat("network ", o.name, ": remove the bridge the store refused"),
                     host_->DeleteNetwork(o.name));
    return rev.status();
  }
  n.revision = *rev;
  return core::EncodeNetwork(n);
}

absl::StatusOr<Json> NetworkService::GetNetwork(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto item, ReadOrNotFound(networks_, "network", name));
  Json body = core::EncodeNetwork(WithRevision(std::move(item)));
  // The addresses are shown with the network but stored apart, under /ipam/.
  BERTH_ASSIGN_OR_RETURN(auto ipam, ipams_.Find(name));
  if (ipam) {
    Json addresses = Json::object();
    for (const auto& [addr, owner] : ipam->value.allocations) {
      addresses[owner] = runtime::net::FormatIpv4(addr);
    }
    body["status"]["addresses"] = addresses;
    body["status"]["free_addresses"] = ipam->value.FreeCount();
  }
  return body;
}

absl::StatusOr<std::vector<Json>> NetworkService::ListNetworks(int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(auto list, ListAll(networks_));
  std::vector<Json> out;
  for (auto& item : list.items) out.push_back(core::EncodeNetwork(WithRevision(std::move(item))));
  if (revision) *revision = list.revision;
  return out;
}

absl::Status NetworkService::DeleteNetwork(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto item, ReadOrNotFound(networks_, "network", name));
  BERTH_ASSIGN_OR_RETURN(auto forwards, ListAll(forwards_));
  for (const auto& f : forwards.items) {
    if (f.value.spec.network == name) {
      return absl::FailedPreconditionError(Cat("network \"", name, "\": port forward ", f.name,
                                               " uses it; remove it first (berth portfwd rm)"));
    }
  }
  BERTH_ASSIGN_OR_RETURN(auto ipam, ipams_.Find(name));
  if (ipam && !ipam->value.allocations.empty()) {
    return absl::FailedPreconditionError(
        Cat("network \"", name, "\": ", ipam->value.allocations.size(), " address(es) in use (",
            ipam->value.allocations.begin()->second, "); detach its workloads first"));
  }
  absl::Status s = host_->DeleteNetwork(name);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  state::TxnRequest txn;
  networks_.AddDelete(&txn, name, item.mod_revision);
  if (ipam) ipams_.AddDelete(&txn, name, ipam->mod_revision);
  events_.Add(&txn.then_ops, "network", name, "deleted", "network deleted; bridge removed");
  return CommitChange(store_, txn, "network", name).status();
}

absl::StatusOr<std::string> NetworkService::AllocateAddress(std::string_view network,
                                                            std::string_view owner,
                                                            std::string_view requested) {
  BERTH_RETURN_IF_ERROR(ValidateAddressOwner(network, owner));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto ipam, ReadOrNotFound(ipams_, "network", network));
  NetworkAddressing& a = ipam.value;
  BERTH_ASSIGN_OR_RETURN(runtime::net::Ipv4 addr, a.AllocateText(owner, requested));
  std::string text = runtime::net::FormatIpv4(addr);
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(ipams_.AddUpdate(&txn, network, a, ipam.mod_revision));
  events_.Add(&txn.then_ops, "network", network, "address", Cat(text, " given to ", owner));
  BERTH_RETURN_IF_ERROR(CommitChange(store_, txn, "network", network).status());
  return text;
}

absl::Status NetworkService::ReleaseAddress(std::string_view network, std::string_view owner) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto ipam, ReadOrNotFound(ipams_, "network", network));
  if (ipam.value.Release(owner) == 0) return absl::OkStatus();
  state::TxnRequest txn;
  BERTH_RETURN_IF_ERROR(ipams_.AddUpdate(&txn, network, ipam.value, ipam.mod_revision));
  events_.Add(&txn.then_ops, "network", network, "address", Cat("address of ", owner, " released"));
  return CommitChange(store_, txn, "network", network).status();
}

absl::StatusOr<HostEndpoint> NetworkService::AttachWorkload(const WorkloadEndpointOptions& o) {
  absl::MutexLock lock(&mu_);
  auto field_error = [&](std::string_view field, const absl::Status& s) {
    return absl::Status(s.code(), Cat("workload \"", o.workload, "\": networks[", o.network, "].",
                                      field, ": ", s.message()));
  };
  auto ipam = ReadOrNotFound(ipams_, "network", o.network);
  if (!ipam.ok()) {
    if (!absl::IsNotFound(ipam.status())) return ipam.status();
    return field_error("network", absl::NotFoundError(Cat("network \"", o.network,
                                                          "\" does not exist; create it with "
                                                          "`berth net create`")));
  }
  for (const auto& g : o.security_groups) {
    BERTH_ASSIGN_OR_RETURN(auto group, store_->Get(SecGroupKey(g)));
    if (!group.kv) {
      return field_error("security_groups",
                         absl::NotFoundError(Cat("security group \"", g, "\" does not exist")));
    }
  }
  NetworkAddressing& a = ipam->value;
  const bool held = a.AddressOf(o.workload).has_value();
  auto addr = a.AllocateText(o.workload, o.address);
  if (!addr.ok()) return field_error("address", addr.status());
  std::string text = runtime::net::FormatIpv4(*addr);
  if (!held) {
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(ipams_.AddUpdate(&txn, o.network, a, ipam->mod_revision));
    events_.Add(&txn.then_ops, "network", o.network, "address",
                Cat(text, " given to ", o.workload));
    BERTH_RETURN_IF_ERROR(CommitChange(store_, txn, "network", o.network).status());
  }
  HostEndpointSpec spec{.network = o.network,
                        .owner = o.workload,
                        .tap = o.tap,
                        .address = text,
                        .netns = o.netns,
                        .ifname = o.ifname,
                        .groups = o.security_groups};
  auto endpoint = host_->AttachEndpoint(spec);
  // Give the address back so a failed start leaves nothing behind.
  if (!endpoint.ok() && !held) GiveBackAddress(o.network, o.workload);
  if (!endpoint.ok()) return field_error("network", endpoint.status());
  endpoint->address = text;
  endpoint->prefix_length = a.subnet.length;
  endpoint->gateway = runtime::net::FormatIpv4(a.gateway);
  return endpoint;
}

void NetworkService::GiveBackAddress(std::string_view network, std::string_view workload) {
  const std::string what = Cat("network ", network, ": give back the address of ", workload);
  auto release = [&]() -> absl::Status {
    BERTH_ASSIGN_OR_RETURN(auto ipam, ipams_.Find(network));
    if (!ipam || ipam->value.Release(workload) == 0) return absl::OkStatus();
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(ipams_.AddUpdate(&txn, network, ipam->value, ipam->mod_revision));
    events_.Add(&txn.then_ops, "network", network, "address",
                Cat("address of ", workload, " released"));
    return CommitChange(store_, txn, "network", network).status();
  };
  core::OkOrReport(kWhere, what, release());
}

absl::StatusOr<std::vector<std::string>> NetworkService::NetworksOf(std::string_view workload) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto ipams, ListAll(ipams_));
  std::vector<std::string> out;
  for (const auto& i : ipams.items) {
    if (i.value.AddressOf(workload)) out.push_back(i.value.network);
  }
  return out;
}

absl::Status NetworkService::UnplugWorkload(std::string_view network, std::string_view workload) {
  absl::Status host = host_->DetachEndpoint(network, workload);
  return absl::IsNotFound(host) ? absl::OkStatus() : host;
}

absl::Status NetworkService::DetachWorkload(std::string_view network, std::string_view workload) {
  BERTH_RETURN_IF_ERROR(UnplugWorkload(network, workload));
  absl::Status released = ReleaseAddress(network, workload);
  return absl::IsNotFound(released) ? absl::OkStatus() : released;
}

absl::StatusOr<Json> NetworkService::PutGroup(SecurityGroup group, int64_t mod_revision,
                                              std::string_view type, std::string_view message) {
  BERTH_RETURN_IF_ERROR(host_->PutGroup(ToHostGroup(group)));
  const bool created = mod_revision == 0;
  Touch(&group, clock_, created);
  state::TxnRequest txn;
  if (created) {
    BERTH_RETURN_IF_ERROR(groups_.AddCreate(&txn, group.name, group));
  } else {
    BERTH_RETURN_IF_ERROR(groups_.AddUpdate(&txn, group.name, group, mod_revision));
  }
  events_.Add(&txn.then_ops, "secgroup", group.name, type, message);
  BERTH_ASSIGN_OR_RETURN(group.revision, CommitChange(store_, txn, "secgroup", group.name));
  return core::EncodeSecurityGroup(group);
}

absl::Status NetworkService::CheckReferences(const core::WorkloadSpec& spec) {
  auto refuse = [&](const std::string& field, std::string_view message) {
    return core::FieldError("workload", spec.name, field, message);
  };
  for (size_t i = 0; i < spec.networks.size(); ++i) {
    const core::NetworkAttachment& n = spec.networks[i];
    const std::string at = Cat("networks[", static_cast<int>(i), "]");
    auto net = GetNetwork(n.network);
    if (!net.ok()) {
      if (!absl::IsNotFound(net.status())) return net.status();
      return refuse(at + ".network", Cat("names network \"", n.network,
                                         "\", which does not exist; create it with `berth net "
                                         "create`"));
    }
    if (!n.address.empty()) {
      auto subnet = runtime::net::ParseCidr((*net)["spec"].value("subnet", ""));
      auto address = runtime::net::ParseIpv4(n.address);
      if (subnet.ok() && address && !subnet->Contains(*address)) {
        return refuse(at + ".address", Cat("is ", n.address, ", outside network \"", n.network,
                                           "\"'s subnet ", subnet->ToString()));
      }
    }
    for (size_t g = 0; g < n.security_groups.size(); ++g) {
      auto group = GetGroup(n.security_groups[g]);
      if (!group.ok()) {
        if (!absl::IsNotFound(group.status())) return group.status();
        return refuse(Cat(at, ".security_groups[", static_cast<int>(g), "]"),
                      Cat("names security group \"", n.security_groups[g],
                          "\", which does not exist; create it with `berth secgroup create`"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Network>> NetworkService::Networks() const {
  BERTH_ASSIGN_OR_RETURN(auto list, ListAll(networks_));
  std::vector<Network> out;
  for (auto& item : list.items) out.push_back(std::move(item.value));
  return out;
}

absl::StatusOr<std::vector<NetworkAddressing>> NetworkService::Addressings() const {
  BERTH_ASSIGN_OR_RETURN(auto list, ListAll(ipams_));
  std::vector<NetworkAddressing> out;
  for (auto& item : list.items) out.push_back(std::move(item.value));
  return out;
}

absl::StatusOr<std::vector<SecurityGroup>> NetworkService::Groups() const {
  BERTH_ASSIGN_OR_RETURN(auto list, ListAll(groups_));
  std::vector<SecurityGroup> out;
  for (auto& item : list.items) out.push_back(std::move(item.value));
  return out;
}

absl::StatusOr<std::vector<PortForward>> NetworkService::Forwards() const {
  BERTH_ASSIGN_OR_RETURN(auto list, ListAll(forwards_));
  std::vector<PortForward> out;
  for (auto& item : list.items) out.push_back(std::move(item.value));
  return out;
}

absl::StatusOr<Json> NetworkService::CreateGroup(std::string_view name) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("secgroup", name));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto existing, store_->Get(SecGroupKey(name)));
  if (existing.kv) {
    return absl::AlreadyExistsError(Cat("secgroup \"", name, "\": name is already taken"));
  }
  SecurityGroup group;
  group.name = std::string(name);
  auto put = PutGroup(std::move(group), 0, "created", "security group created");
  if (!put.ok() && absl::IsAborted(put.status())) {
    // Another request took the name between the check and the write: undo the host's copy.
    core::OkOrReport(kWhere, Cat("secgroup ", name, ": remove the group the store refused"),
                     host_->DeleteGroup(name));
  }
  return put;
}

absl::StatusOr<Json> NetworkService::GetGroup(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto item, ReadOrNotFound(groups_, "secgroup", name));
  return core::EncodeSecurityGroup(WithRevision(std::move(item)));
}

absl::StatusOr<std::vector<Json>> NetworkService::ListGroups(int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(auto list, ListAll(groups_));
  std::vector<Json> out;
  for (auto& item : list.items) {
    out.push_back(core::EncodeSecurityGroup(WithRevision(std::move(item))));
  }
  if (revision) *revision = list.revision;
  return out;
}

absl::StatusOr<Json> NetworkService::AddRule(std::string_view group, const RuleAddOptions& o) {
  std::string proto = o.protocol.empty() ? "tcp" : o.protocol;
  if (proto != "tcp" && proto != "udp" && proto != "icmp" && proto != "any") {
    return core::FieldError("secgroup", group, "proto",
                            Cat("must be tcp, udp, icmp or any, got \"", o.protocol, "\""));
  }
  int from = 0, to = 0;
  if (proto == "tcp" || proto == "udp") {
    if (o.ports.empty()) return core::FieldError("secgroup", group, "ports", "is required");
    BERTH_ASSIGN_OR_RETURN(auto range, ParsePortRange(group, o.ports));
    from = range.first;
    to = range.second;
  } else if (!o.ports.empty()) {
    return core::FieldError("secgroup", group, "ports", Cat("must be empty for ", proto));
  }
  if (!o.from_cidr.empty() && !o.from_group.empty()) {
    return core::FieldError("secgroup", group, "from",
                            "give either a CIDR (--from) or a group (--from-group), not both");
  }
  if (!o.from_cidr.empty()) {
    std::string cidr = o.from_cidr;
    if (cidr.find('/') == std::string::npos) cidr += "/32";
    auto parsed = runtime::net::ParseCidr(cidr);
    if (!parsed.ok()) {
      return core::FieldError("secgroup", group, "from",
                              Cat("must be a CIDR like 10.0.0.0/24, got \"", o.from_cidr, "\""));
    }
  }
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto item, ReadOrNotFound(groups_, "secgroup", group));
  if (!o.from_group.empty()) {
    BERTH_ASSIGN_OR_RETURN(auto other, store_->Get(SecGroupKey(o.from_group)));
    if (!other.kv) {
      return core::FieldError("secgroup", group, "from_group",
                              Cat("names no security group: \"", o.from_group, "\" not found"));
    }
  }
  SecurityGroup g = std::move(item.value);
  std::string id = Cat("r", g.status.next_rule);
  ++g.status.next_rule;
  g.spec.rules.push_back(core::SecurityRule{.id = id,
                                            .protocol = proto,
                                            .ports = o.ports,
                                            .port_from = from,
                                            .port_to = to,
                                            .from = o.from_cidr,
                                            .from_group = o.from_group});
  return PutGroup(std::move(g), item.mod_revision, "rule-added",
                  Cat("rule ", id, " allows ", proto, o.ports.empty() ? "" : " ", o.ports));
}

absl::StatusOr<Json> NetworkService::RemoveRule(std::string_view group, std::string_view rule_id) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto item, ReadOrNotFound(groups_, "secgroup", group));
  SecurityGroup g = std::move(item.value);
  auto& rules = g.spec.rules;
  size_t before = rules.size();
  std::erase_if(rules, [&](const core::SecurityRule& r) { return r.id == rule_id; });
  if (rules.size() == before) {
    return absl::NotFoundError(Cat("secgroup \"", group, "\": rule \"", rule_id, "\" not found"));
  }
  return PutGroup(std::move(g), item.mod_revision, "rule-removed",
                  Cat("rule ", rule_id, " removed"));
}

absl::Status NetworkService::DeleteGroup(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto item, ReadOrNotFound(groups_, "secgroup", name));
  BERTH_ASSIGN_OR_RETURN(auto groups, ListAll(groups_));
  for (const auto& g : groups.items) {
    if (g.name == name) continue;
    for (const auto& r : g.value.spec.rules) {
      if (r.from_group == name) {
        return absl::FailedPreconditionError(Cat("secgroup \"", name, "\": rule ", r.id,
                                                 " of secgroup \"", g.name,
                                                 "\" names it; remove that rule first"));
      }
    }
  }
  absl::Status s = host_->DeleteGroup(name);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  state::TxnRequest txn;
  groups_.AddDelete(&txn, name, item.mod_revision);
  events_.Add(&txn.then_ops, "secgroup", name, "deleted", "security group deleted");
  return CommitChange(store_, txn, "secgroup", name).status();
}

void NetworkService::ReserveHostPort(int port, std::string holder) {
  absl::MutexLock lock(&mu_);
  reserved_ports_[port] = std::move(holder);
}

absl::StatusOr<Json> NetworkService::AddPortForward(const PortForwardOptions& o) {
  std::string proto = o.protocol.empty() ? "tcp" : o.protocol;
  std::string what = Cat(o.host_port);
  if (proto != "tcp" && proto != "udp") {
    return core::FieldError("portforward", what, "proto",
                            Cat("must be tcp or udp, got \"", o.protocol, "\""));
  }
  if (o.host_port < 1 || o.host_port > 65535) {
    return core::FieldError("portforward", what, "host_port",
                            Cat("must lie in 1..65535, got ", o.host_port));
  }
  if (o.port < 1 || o.port > 65535) {
    return core::FieldError("portforward", what, "port", Cat("must lie in 1..65535, got ", o.port));
  }
  if (o.workload.empty()) return core::FieldError("portforward", what, "workload", "is required");
  absl::MutexLock lock(&mu_);
  if (auto held = reserved_ports_.find(o.host_port);
      proto == "tcp" && held != reserved_ports_.end()) {
    return absl::FailedPreconditionError(
        Cat("portforward \"", what, "\": host_port ", o.host_port, " is taken by ", held->second,
            "; forwarding it would cut off its clients, pick another"));
  }
  std::string id = Cat(proto, "-", o.host_port);
  BERTH_ASSIGN_OR_RETURN(auto existing, store_->Get(PortForwardKey(id)));
  if (existing.kv) {
    return absl::AlreadyExistsError(Cat("portforward \"", id, "\": host_port ", o.host_port, "/",
                                        proto, " is already forwarded"));
  }
  if (absl::Status free = host_->CheckPortFree(proto, o.host_port); !free.ok()) {
    return absl::Status(
        free.code(), Cat("portforward \"", what, "\": host_port ", o.host_port, "/", proto, " ",
                         free.message(), "; forwarding it would take its traffic, pick another"));
  }
  if (!o.host.empty()) BERTH_RETURN_IF_ERROR(host_->CheckForwardHost(id, o.host));
  // The workload's address: the first network that gave it one.
  BERTH_ASSIGN_OR_RETURN(auto ipams, ListAll(ipams_));
  std::string network, address;
  const IpamRepository::Item* ipam = nullptr;
  for (const auto& i : ipams.items) {
    if (auto addr = i.value.AddressOf(o.workload)) {
      network = i.value.network;
      address = runtime::net::FormatIpv4(*addr);
      ipam = &i;
      break;
    }
  }
  if (address.empty()) {
    return absl::FailedPreconditionError(
        Cat("portforward \"", id, "\": workload \"", o.workload,
            "\" has no address on any network; put it on a network first"));
  }
  // A forward at a named host leaves that host from its own address on the network.
  std::optional<NetworkAddressing> with_host;
  if (!o.host.empty()) {
    with_host = ipam->value;
    auto given = with_host->Allocate(HostAddressOwner(o.host));
    if (!given.ok()) {
      return absl::Status(given.status().code(),
                          Cat("portforward \"", id, "\": host \"", o.host,
                              "\" needs an address on ", network, ": ", given.status().message()));
    }
  }
  PortForward f;
  f.id = id;
  f.spec = {.protocol = proto,
            .host_port = o.host_port,
            .workload = o.workload,
            .port = o.port,
            .network = network,
            .target_address = address,
            .host = o.host};
  BERTH_RETURN_IF_ERROR(host_->AddForward(ToHostForward(f)));
  Touch(&f, clock_, true);
  auto commit = [&]() -> absl::StatusOr<int64_t> {
    state::TxnRequest txn;
    BERTH_RETURN_IF_ERROR(forwards_.AddCreate(&txn, id, f));
    if (with_host) {
      BERTH_RETURN_IF_ERROR(ipams_.AddUpdate(&txn, network, *with_host, ipam->mod_revision));
    }
    events_.Add(
        &txn.then_ops, "portforward", id, "created",
        Cat("host port ", o.host_port, "/", proto, o.host.empty() ? "" : Cat(" at host ", o.host),
            " -> ", o.workload, " (", address, ":", o.port, ")"));
    return CommitChange(store_, txn, "portforward", id);
  };
  auto rev = commit();
  if (!rev.ok()) {
    core::OkOrReport(kWhere, Cat("portforward ", id, ": remove the forward the store refused"),
                     host_->RemoveForward(id));
    return rev.status();
  }
  f.revision = *rev;
  return core::EncodePortForward(f);
}

absl::StatusOr<std::vector<Json>> NetworkService::ListPortForwards(int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(auto list, ListAll(forwards_));
  std::vector<Json> out;
  for (auto& item : list.items) {
    out.push_back(core::EncodePortForward(WithRevision(std::move(item))));
  }
  if (revision) *revision = list.revision;
  return out;
}

absl::Status NetworkService::RemovePortForward(std::string_view id) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto item, ReadOrNotFound(forwards_, "portforward", id));
  absl::Status s = host_->RemoveForward(id);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  state::TxnRequest txn;
  forwards_.AddDelete(&txn, id, item.mod_revision);
  // The host's address on the network goes with its last forward there.
  if (const core::PortForwardSpec& spec = item.value.spec; !spec.host.empty()) {
    BERTH_ASSIGN_OR_RETURN(auto forwards, ListAll(forwards_));
    const bool more = std::any_of(forwards.items.begin(), forwards.items.end(), [&](const auto& o) {
      return o.name != id && o.value.spec.host == spec.host && o.value.spec.network == spec.network;
    });
    BERTH_ASSIGN_OR_RETURN(auto ipam, ipams_.Find(spec.network));
    if (!more && ipam && ipam->value.Release(HostAddressOwner(spec.host)) > 0) {
      BERTH_RETURN_IF_ERROR(ipams_.AddUpdate(&txn, spec.network, ipam->value, ipam->mod_revision));
    }
  }
  events_.Add(&txn.then_ops, "portforward", id, "deleted", "port forward removed");
  return CommitChange(store_, txn, "portforward", id).status();
}

}  // namespace berth::control
