#include "control/network_service.h"

#include "absl/strings/numbers.h"
#include "core/names.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/net/ipam.h"

namespace berth::control {

using core::Cat;
using core::Json;
using runtime::net::NetworkAddressing;

std::string NetworkKey(std::string_view name) { return Cat(kNetworkPrefix, name); }
std::string IpamKey(std::string_view name) { return Cat(kIpamPrefix, name); }
std::string SecGroupKey(std::string_view name) { return Cat(kSecGroupPrefix, name); }
std::string PortForwardKey(std::string_view id) { return Cat(kPortForwardPrefix, id); }

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

HostGroup GroupFromJson(const Json& obj) {
  HostGroup g;
  g.name = obj.value("name", "");
  if (obj.contains("spec") && obj["spec"].contains("rules")) {
    for (const auto& r : obj["spec"]["rules"]) {
      HostRule h;
      h.protocol = r.value("protocol", "tcp");
      h.port_from = r.value("port_from", 0);
      h.port_to = r.value("port_to", 0);
      h.source_cidr = r.value("from", "");
      h.source_group = r.value("from_group", "");
      g.rules.push_back(std::move(h));
    }
  }
  return g;
}

HostForward ForwardFromJson(const Json& obj) {
  const Json& spec = obj["spec"];
  HostForward f;
  f.id = obj.value("id", "");
  f.protocol = spec.value("protocol", "tcp");
  f.host_port = spec.value("host_port", 0);
  f.network = spec.value("network", "");
  f.target_address = spec.value("target_address", "");
  f.target_port = spec.value("port", 0);
  return f;
}

HostNetwork NetworkFromJson(const Json& obj) {
  const Json& spec = obj["spec"];
  return HostNetwork{obj.value("name", ""), spec.value("subnet", ""), spec.value("gateway", ""),
                     spec.value("nat", false)};
}

}  // namespace

NetworkService::NetworkService(state::Store* store, core::Clock* clock, NetworkHost* host)
    : store_(store), clock_(clock), host_(host) {}

absl::StatusOr<StoredObject> NetworkService::ReadOrNotFound(std::string_view kind, std::string key,
                                                            std::string_view name) {
  BERTH_ASSIGN_OR_RETURN(auto obj, ReadObject(store_, key));
  if (!obj) return absl::NotFoundError(Cat(kind, " \"", name, "\" not found"));
  return std::move(*obj);
}

absl::Status NetworkService::Start() {
  absl::MutexLock lock(&mu_);
  HostKeep keep;
  absl::Status first = absl::OkStatus();
  auto note = [&](const absl::Status& s) {
    if (!s.ok() && first.ok()) first = s;
  };
  BERTH_ASSIGN_OR_RETURN(auto networks, ListObjects(store_, kNetworkPrefix));
  for (const auto& n : networks) {
    auto bridge = host_->EnsureNetwork(NetworkFromJson(n.body));
    note(bridge.status());
    if (bridge.ok()) keep.networks.insert(n.body.value("name", ""));
  }
  BERTH_ASSIGN_OR_RETURN(auto ipams, ListObjects(store_, kIpamPrefix));
  for (const auto& i : ipams) {
    auto a = NetworkAddressing::FromJson(i.body);
    if (!a.ok()) continue;
    for (const auto& [addr, owner] : a->allocations) keep.endpoints.insert({a->network, owner});
  }
  BERTH_ASSIGN_OR_RETURN(auto groups, ListObjects(store_, kSecGroupPrefix));
  // Groups may name each other in rules: declare them bare first, then with their rules.
  for (const auto& g : groups) note(host_->PutGroup(HostGroup{g.body.value("name", ""), {}}));
  for (const auto& g : groups) {
    absl::Status s = host_->PutGroup(GroupFromJson(g.body));
    note(s);
    keep.groups.insert(g.body.value("name", ""));
  }
  BERTH_ASSIGN_OR_RETURN(auto forwards, ListObjects(store_, kPortForwardPrefix));
  for (const auto& f : forwards) {
    absl::Status s = host_->AddForward(ForwardFromJson(f.body));
    // Ids are "PROTO-PORT": one that exists already is this very forward, kept from before.
    if (absl::IsAlreadyExists(s)) s = absl::OkStatus();
    note(s);
    if (s.ok()) keep.forwards.insert(f.body.value("id", ""));
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
  BERTH_ASSIGN_OR_RETURN(auto existing, ReadObject(store_, NetworkKey(o.name)));
  if (existing) {
    return absl::AlreadyExistsError(Cat("network \"", o.name, "\": name is already taken"));
  }
  BERTH_ASSIGN_OR_RETURN(auto ipams, ListObjects(store_, kIpamPrefix));
  std::vector<NetworkAddressing> others;
  for (const auto& i : ipams) {
    auto a = NetworkAddressing::FromJson(i.body);
    if (a.ok()) others.push_back(std::move(*a));
  }
  BERTH_RETURN_IF_ERROR(runtime::net::CheckNoOverlap(o.name, addressing.subnet, others));
  HostNetwork hn{o.name, addressing.subnet.ToString(), runtime::net::FormatIpv4(addressing.gateway),
                 o.nat};
  BERTH_ASSIGN_OR_RETURN(std::string bridge, host_->EnsureNetwork(hn));
  Json body = {{"kind", "network"},
               {"name", o.name},
               {"spec", {{"subnet", hn.subnet}, {"gateway", hn.gateway}, {"nat", o.nat}}},
               {"status", {{"state", "ready"}, {"bridge", bridge}}}};
  StampObject(&body, 0, clock_, true);
  auto rev = CommitObjects(
      store_, clock_, {{NetworkKey(o.name), 0, body}, {IpamKey(o.name), 0, addressing.ToJson()}},
      {"network", o.name, "created",
       Cat("network ", hn.subnet, " (gateway ", hn.gateway, ") on bridge ", bridge)});
  if (!rev.ok()) {
    (void)host_->DeleteNetwork(o.name);
    return rev.status();
  }
  body["revision"] = *rev;
  return body;
}

absl::StatusOr<Json> NetworkService::GetNetwork(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, ReadOrNotFound("network", NetworkKey(name), name));
  BERTH_ASSIGN_OR_RETURN(auto ipam, ReadObject(store_, IpamKey(name)));
  if (ipam) {
    auto a = NetworkAddressing::FromJson(ipam->body);
    if (a.ok()) {
      Json addresses = Json::object();
      for (const auto& [addr, owner] : a->allocations) {
        addresses[owner] = runtime::net::FormatIpv4(addr);
      }
      obj.body["status"]["addresses"] = addresses;
      obj.body["status"]["free_addresses"] = a->FreeCount();
    }
  }
  return obj.body;
}

absl::StatusOr<std::vector<Json>> NetworkService::ListNetworks(int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(auto objects, ListObjects(store_, kNetworkPrefix, revision));
  std::vector<Json> out;
  for (auto& o : objects) out.push_back(std::move(o.body));
  return out;
}

absl::Status NetworkService::DeleteNetwork(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, ReadOrNotFound("network", NetworkKey(name), name));
  BERTH_ASSIGN_OR_RETURN(auto forwards, ListObjects(store_, kPortForwardPrefix));
  for (const auto& f : forwards) {
    if (f.body["spec"].value("network", "") == name) {
      return absl::FailedPreconditionError(Cat("network \"", name, "\": port forward ",
                                               f.body.value("id", ""),
                                               " uses it; remove it first (berth portfwd rm)"));
    }
  }
  BERTH_ASSIGN_OR_RETURN(auto ipam, ReadObject(store_, IpamKey(name)));
  int64_t ipam_rev = 0;
  if (ipam) {
    ipam_rev = ipam->mod_revision;
    auto a = NetworkAddressing::FromJson(ipam->body);
    if (a.ok() && !a->allocations.empty()) {
      return absl::FailedPreconditionError(
          Cat("network \"", name, "\": ", a->allocations.size(), " address(es) in use (",
              a->allocations.begin()->second, "); detach its workloads first"));
    }
  }
  absl::Status s = host_->DeleteNetwork(name);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  std::vector<ObjectWrite> writes = {{obj.key, obj.mod_revision, std::nullopt}};
  if (ipam) writes.push_back({IpamKey(name), ipam_rev, std::nullopt});
  BERTH_RETURN_IF_ERROR(
      CommitObjects(store_, clock_, writes,
                    {"network", std::string(name), "deleted", "network deleted; bridge removed"}));
  return absl::OkStatus();
}

absl::StatusOr<std::string> NetworkService::AllocateAddress(std::string_view network,
                                                            std::string_view owner,
                                                            std::string_view requested) {
  BERTH_RETURN_IF_ERROR(ValidateAddressOwner(network, owner));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject ipam, ReadOrNotFound("network", IpamKey(network), network));
  BERTH_ASSIGN_OR_RETURN(NetworkAddressing a, NetworkAddressing::FromJson(ipam.body));
  BERTH_ASSIGN_OR_RETURN(runtime::net::Ipv4 addr, a.AllocateText(owner, requested));
  std::string text = runtime::net::FormatIpv4(addr);
  BERTH_RETURN_IF_ERROR(
      CommitObjects(store_, clock_, {{ipam.key, ipam.mod_revision, a.ToJson()}},
                    {"network", std::string(network), "address", Cat(text, " given to ", owner)}));
  return text;
}

absl::Status NetworkService::ReleaseAddress(std::string_view network, std::string_view owner) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject ipam, ReadOrNotFound("network", IpamKey(network), network));
  BERTH_ASSIGN_OR_RETURN(NetworkAddressing a, NetworkAddressing::FromJson(ipam.body));
  if (a.Release(owner) == 0) return absl::OkStatus();
  BERTH_RETURN_IF_ERROR(CommitObjects(
      store_, clock_, {{ipam.key, ipam.mod_revision, a.ToJson()}},
      {"network", std::string(network), "address", Cat("address of ", owner, " released")}));
  return absl::OkStatus();
}

absl::StatusOr<HostEndpoint> NetworkService::AttachWorkload(const WorkloadEndpointOptions& o) {
  absl::MutexLock lock(&mu_);
  auto field_error = [&](std::string_view field, const absl::Status& s) {
    return absl::Status(s.code(), Cat("workload \"", o.workload, "\": networks[", o.network, "].",
                                      field, ": ", s.message()));
  };
  auto ipam = ReadOrNotFound("network", IpamKey(o.network), o.network);
  if (!ipam.ok()) {
    return field_error("network", absl::NotFoundError(Cat("network \"", o.network,
                                                          "\" does not exist; create it with "
                                                          "`berth net create`")));
  }
  for (const auto& g : o.security_groups) {
    BERTH_ASSIGN_OR_RETURN(auto group, ReadObject(store_, SecGroupKey(g)));
    if (!group) {
      return field_error("security_groups",
                         absl::NotFoundError(Cat("security group \"", g, "\" does not exist")));
    }
  }
  BERTH_ASSIGN_OR_RETURN(NetworkAddressing a, NetworkAddressing::FromJson(ipam->body));
  const bool held = a.AddressOf(o.workload).has_value();
  auto addr = a.AllocateText(o.workload, o.address);
  if (!addr.ok()) return field_error("address", addr.status());
  std::string text = runtime::net::FormatIpv4(*addr);
  if (!held) {
    BERTH_RETURN_IF_ERROR(
        CommitObjects(store_, clock_, {{ipam->key, ipam->mod_revision, a.ToJson()}},
                      {"network", o.network, "address", Cat(text, " given to ", o.workload)}));
  }
  HostEndpointSpec spec{.network = o.network,
                        .owner = o.workload,
                        .tap = o.tap,
                        .address = text,
                        .netns = o.netns,
                        .ifname = o.ifname,
                        .groups = o.security_groups};
  auto endpoint = host_->AttachEndpoint(spec);
  if (!endpoint.ok() && !held) {
    // Give the address back so a failed start leaves nothing behind.
    auto again = ReadObject(store_, IpamKey(o.network));
    if (again.ok() && *again) {
      auto b = NetworkAddressing::FromJson((*again)->body);
      if (b.ok() && b->Release(o.workload) > 0) {
        (void)CommitObjects(
            store_, clock_, {{(*again)->key, (*again)->mod_revision, b->ToJson()}},
            {"network", o.network, "address", Cat("address of ", o.workload, " released")});
      }
    }
  }
  if (!endpoint.ok()) return field_error("network", endpoint.status());
  endpoint->address = text;
  endpoint->prefix_length = a.subnet.length;
  endpoint->gateway = runtime::net::FormatIpv4(a.gateway);
  return endpoint;
}

absl::StatusOr<std::vector<std::string>> NetworkService::NetworksOf(std::string_view workload) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto ipams, ListObjects(store_, kIpamPrefix));
  std::vector<std::string> out;
  for (const auto& i : ipams) {
    auto a = NetworkAddressing::FromJson(i.body);
    if (a.ok() && a->AddressOf(workload)) out.push_back(a->network);
  }
  return out;
}

absl::Status NetworkService::DetachWorkload(std::string_view network, std::string_view workload) {
  absl::Status host = host_->DetachEndpoint(network, workload);
  if (!host.ok() && !absl::IsNotFound(host)) return host;
  absl::Status released = ReleaseAddress(network, workload);
  return absl::IsNotFound(released) ? absl::OkStatus() : released;
}

absl::StatusOr<Json> NetworkService::PutGroup(StoredObject obj, std::string_view type,
                                              std::string_view message) {
  BERTH_RETURN_IF_ERROR(host_->PutGroup(GroupFromJson(obj.body)));
  StampObject(&obj.body, 0, clock_, obj.mod_revision == 0);
  auto rev = CommitObjects(
      store_, clock_, {{obj.key, obj.mod_revision, obj.body}},
      {"secgroup", obj.body.value("name", ""), std::string(type), std::string(message)});
  if (!rev.ok()) return rev.status();
  obj.body["revision"] = *rev;
  return obj.body;
}

absl::StatusOr<Json> NetworkService::CreateGroup(std::string_view name) {
  BERTH_RETURN_IF_ERROR(core::ValidateName("secgroup", name));
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(auto existing, ReadObject(store_, SecGroupKey(name)));
  if (existing) {
    return absl::AlreadyExistsError(Cat("secgroup \"", name, "\": name is already taken"));
  }
  StoredObject obj{SecGroupKey(name),
                   Json{{"kind", "secgroup"},
                        {"name", std::string(name)},
                        {"spec", {{"rules", Json::array()}}},
                        {"status", {{"next_rule", 1}}}},
                   0};
  auto put = PutGroup(std::move(obj), "created", "security group created");
  if (!put.ok() && !absl::IsAborted(put.status())) return put.status();
  if (!put.ok()) (void)host_->DeleteGroup(name);
  return put;
}

absl::StatusOr<Json> NetworkService::GetGroup(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, ReadOrNotFound("secgroup", SecGroupKey(name), name));
  return obj.body;
}

absl::StatusOr<std::vector<Json>> NetworkService::ListGroups(int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(auto objects, ListObjects(store_, kSecGroupPrefix, revision));
  std::vector<Json> out;
  for (auto& o : objects) out.push_back(std::move(o.body));
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
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, ReadOrNotFound("secgroup", SecGroupKey(group), group));
  if (!o.from_group.empty()) {
    BERTH_ASSIGN_OR_RETURN(auto other, ReadObject(store_, SecGroupKey(o.from_group)));
    if (!other) {
      return core::FieldError("secgroup", group, "from_group",
                              Cat("names no security group: \"", o.from_group, "\" not found"));
    }
  }
  int64_t next = obj.body["status"].value("next_rule", int64_t{1});
  std::string id = Cat("r", next);
  obj.body["status"]["next_rule"] = next + 1;
  obj.body["spec"]["rules"].push_back(Json{{"id", id},
                                           {"protocol", proto},
                                           {"ports", o.ports},
                                           {"port_from", from},
                                           {"port_to", to},
                                           {"from", o.from_cidr},
                                           {"from_group", o.from_group}});
  return PutGroup(std::move(obj), "rule-added",
                  Cat("rule ", id, " allows ", proto, o.ports.empty() ? "" : " ", o.ports));
}

absl::StatusOr<Json> NetworkService::RemoveRule(std::string_view group, std::string_view rule_id) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, ReadOrNotFound("secgroup", SecGroupKey(group), group));
  Json& rules = obj.body["spec"]["rules"];
  Json kept = Json::array();
  for (const auto& r : rules) {
    if (r.value("id", "") != rule_id) kept.push_back(r);
  }
  if (kept.size() == rules.size()) {
    return absl::NotFoundError(Cat("secgroup \"", group, "\": rule \"", rule_id, "\" not found"));
  }
  rules = kept;
  return PutGroup(std::move(obj), "rule-removed", Cat("rule ", rule_id, " removed"));
}

absl::Status NetworkService::DeleteGroup(std::string_view name) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, ReadOrNotFound("secgroup", SecGroupKey(name), name));
  BERTH_ASSIGN_OR_RETURN(auto groups, ListObjects(store_, kSecGroupPrefix));
  for (const auto& g : groups) {
    if (g.body.value("name", "") == name) continue;
    for (const auto& r : g.body["spec"]["rules"]) {
      if (r.value("from_group", "") == name) {
        return absl::FailedPreconditionError(
            Cat("secgroup \"", name, "\": rule ", r.value("id", ""), " of secgroup \"",
                g.body.value("name", ""), "\" names it; remove that rule first"));
      }
    }
  }
  absl::Status s = host_->DeleteGroup(name);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  BERTH_RETURN_IF_ERROR(
      CommitObjects(store_, clock_, {{obj.key, obj.mod_revision, std::nullopt}},
                    {"secgroup", std::string(name), "deleted", "security group deleted"}));
  return absl::OkStatus();
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
  BERTH_ASSIGN_OR_RETURN(auto existing, ReadObject(store_, PortForwardKey(id)));
  if (existing) {
    return absl::AlreadyExistsError(Cat("portforward \"", id, "\": host_port ", o.host_port, "/",
                                        proto, " is already forwarded"));
  }
  // The workload's address: the first network that gave it one.
  BERTH_ASSIGN_OR_RETURN(auto ipams, ListObjects(store_, kIpamPrefix));
  std::string network, address;
  for (const auto& i : ipams) {
    auto a = NetworkAddressing::FromJson(i.body);
    if (!a.ok()) continue;
    if (auto addr = a->AddressOf(o.workload)) {
      network = a->network;
      address = runtime::net::FormatIpv4(*addr);
      break;
    }
  }
  if (address.empty()) {
    return absl::FailedPreconditionError(
        Cat("portforward \"", id, "\": workload \"", o.workload,
            "\" has no address on any network; put it on a network first"));
  }
  Json body = {{"kind", "portforward"},
               {"id", id},
               {"spec",
                {{"protocol", proto},
                 {"host_port", o.host_port},
                 {"workload", o.workload},
                 {"port", o.port},
                 {"network", network},
                 {"target_address", address}}}};
  BERTH_RETURN_IF_ERROR(host_->AddForward(ForwardFromJson(body)));
  StampObject(&body, 0, clock_, true);
  auto rev = CommitObjects(store_, clock_, {{PortForwardKey(id), 0, body}},
                           {"portforward", id, "created",
                            Cat("host port ", o.host_port, "/", proto, " -> ", o.workload, " (",
                                address, ":", o.port, ")")});
  if (!rev.ok()) {
    (void)host_->RemoveForward(id);
    return rev.status();
  }
  body["revision"] = *rev;
  return body;
}

absl::StatusOr<std::vector<Json>> NetworkService::ListPortForwards(int64_t* revision) {
  BERTH_ASSIGN_OR_RETURN(auto objects, ListObjects(store_, kPortForwardPrefix, revision));
  std::vector<Json> out;
  for (auto& o : objects) out.push_back(std::move(o.body));
  return out;
}

absl::Status NetworkService::RemovePortForward(std::string_view id) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(StoredObject obj, ReadOrNotFound("portforward", PortForwardKey(id), id));
  absl::Status s = host_->RemoveForward(id);
  if (!s.ok() && !absl::IsNotFound(s)) return s;
  BERTH_RETURN_IF_ERROR(
      CommitObjects(store_, clock_, {{obj.key, obj.mod_revision, std::nullopt}},
                    {"portforward", std::string(id), "deleted", "port forward removed"}));
  return absl::OkStatus();
}

}  // namespace berth::control
