#include "main/agent_network.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "api/client/client.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "main/storenet_host.h"
#include "runtime/host/executor.h"
#include "runtime/host/file.h"
#include "runtime/net/network_model.h"

namespace berth {

using api::wire::HostNetworkPlan;
using api::wire::PlannedNic;
using core::Cat;
namespace rn = runtime::net;

namespace {

constexpr std::string_view kWhere = "agent networks";
// What a VXLAN header takes of each frame on the underlay (outer IPv4, UDP, VXLAN, inner
// Ethernet).
constexpr int kVxlanOverhead = 50;

absl::StatusOr<rn::SecurityGroup> ToDriverGroup(const api::wire::PlannedGroup& g, bool with_rules) {
  rn::SecurityGroup out{.name = g.name, .remote_members = g.remote_members};
  if (!with_rules) return out;
  for (const core::SecurityRule& r : g.rules) {
    BERTH_ASSIGN_OR_RETURN(rn::Protocol protocol, rn::ParseProtocol(r.protocol));
    out.rules.push_back(rn::SecurityRule{.protocol = protocol,
                                         .port_from = r.port_from,
                                         .port_to = r.port_to,
                                         .source_cidr = r.from,
                                         .source_group = r.from_group});
  }
  return out;
}

}  // namespace

absl::StatusOr<int> UnderlayMtu(std::string_view address) {
  BERTH_ASSIGN_OR_RETURN(std::string shown, runtime::host::RunOk(runtime::host::RealExecutor(),
                                                                 {"ip", "-j", "addr", "show"}));
  core::Json links = core::Json::parse(shown, nullptr, /*allow_exceptions=*/false);
  if (!links.is_array()) return absl::InternalError("ip -j addr show printed no JSON list");
  for (const core::Json& link : links) {
    if (!link.is_object() || !link.contains("addr_info") || !link["addr_info"].is_array()) continue;
    for (const core::Json& a : link["addr_info"]) {
      if (a.is_object() && a.value("local", "") == address && link.contains("mtu") &&
          link["mtu"].is_number_integer()) {
        return link["mtu"].get<int>();
      }
    }
  }
  return absl::NotFoundError(Cat("no interface holds ", address));
}

HostCall HostCaller(const std::string& server_url, const std::string& agent_dir,
                    const std::string& host) {
  struct Caller {
    absl::Mutex mu;
    api::Client client ABSL_GUARDED_BY(mu);
    explicit Caller(const std::string& url)
        : client(url, api::ClientOptions{.timeout = absl::Seconds(30)}) {}
  };
  auto caller = std::make_shared<Caller>(server_url);
  const std::string credential_file = agent::HostCredentialPath(agent_dir);
  return [caller, credential_file, host](std::string_view method, const std::string& path,
                                         const core::Json* body) -> absl::StatusOr<core::Json> {
    // The credential the agent's registration saved (read each time: a new registration
    // replaces it).
    auto credential = runtime::host::ReadFile(credential_file);
    if (!credential.ok()) {
      return absl::FailedPreconditionError(
          Cat("host ", host, " has no credential yet (", credential.status().message(), ")"));
    }
    absl::MutexLock lock(&caller->mu);
    caller->client.SetToken(std::string(absl::StripAsciiWhitespace(*credential)));
    return caller->client.Call(std::string(method), path, body);
  };
}

AgentNetworksOptions AgentNetworksFor(const std::string& server_url, const std::string& agent_dir,
                                      const std::string& host, const std::string& instance) {
  AgentNetworksOptions o;
  o.host = host;
  o.instance = instance;
  o.fetch = [call = HostCaller(server_url, agent_dir, host),
             host](std::string_view workload) -> absl::StatusOr<HostNetworkPlan> {
    absl::StatusOr<core::Json> reply;
    if (workload.empty()) {
      reply = call("GET", Cat("/v1/hosts/", host, "/networks"), nullptr);
    } else {
      const core::Json body = {{"workload", std::string(workload)}};
      reply = call("POST", Cat("/v1/hosts/", host, "/network-attach"), &body);
    }
    if (!reply.ok()) return reply.status();
    return api::wire::DecodeHostNetworkPlan(host, *reply);
  };
  o.underlay_mtu = [](std::string_view address) { return UnderlayMtu(address); };
  o.make_netns = [](const std::string& netns) { return MakeNetns(netns); };
  o.netns_exists = [](const std::string& netns) {
    std::error_code ec;
    return std::filesystem::exists("/run/netns/" + netns, ec);
  };
  o.delete_netns = [](const std::string& netns) {
    core::ReportError(
        kWhere, Cat("delete network namespace ", netns),
        runtime::host::RunOk(runtime::host::RealExecutor(), {"ip", "netns", "del", netns})
            .status());
  };
  o.port_free = [](std::string_view protocol, int port) {
    return HostPortFree("", protocol, port);
  };
  o.link_exists = [](const std::string& link) {
    return runtime::host::RunOk(runtime::host::RealExecutor(), {"ip", "link", "show", "dev", link})
        .ok();
  };
  return o;
}

AgentNetworks::AgentNetworks(AgentNetworksOptions options, rn::NetworkDriver* driver)
    : options_(std::move(options)), driver_(driver) {}

AgentNetworks::~AgentNetworks() { Stop(); }

void AgentNetworks::Wire(agent::AgentOptions& options) {
  options.attach = [this](const core::WorkloadSpec& spec, runtime::TaskConfig* config) {
    return Attach(spec, config);
  };
  options.detach = [this](std::string_view workload) { Detach(workload); };
}

void AgentNetworks::Start() {
  refresher_ = std::thread([this] {
    core::ReportError(kWhere, "refresh loop",
                      core::RunGuarded("agent network refresh", [this] { RefreshLoop(); }));
  });
}

void AgentNetworks::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (refresher_.joinable()) refresher_.join();
}

void AgentNetworks::RefreshLoop() {
  bool first = true;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (!first && mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.refresh)) return;
      if (stopping_) return;
    }
    // A host with no networks asks nothing (a fleet of such hosts costs the server nothing);
    // the first round asks anyway, to adopt what survived a restart.
    if (!first && driver_->ListNetworks().empty()) continue;
    absl::Status s = Refresh();
    // The first round is tried until it succeeds (the agent registers meanwhile).
    if (s.ok()) first = false;
    if (!s.ok() && !(first && absl::IsFailedPrecondition(s))) {
      core::LogWarn("host %s: networks: %s", options_.host, s.ToString());
    }
  }
}

absl::Status AgentNetworks::Refresh() {
  BERTH_ASSIGN_OR_RETURN(HostNetworkPlan plan, options_.fetch(""));
  absl::MutexLock lock(&mu_);
  if (swept_) return Apply(plan, "");
  // The first look after a start: the host keeps the rules an earlier run left until the whole
  // plan is re-declared (the surviving interfaces adopted), then takes the new set at once.
  driver_->HoldRules();
  absl::Status applied = Apply(plan, "");
  if (applied.ok()) {
    // What an earlier run of this agent left and no plan names (bridges, tunnels, interfaces,
    // rules, dnsmasq) goes.
    rn::KeepSet keep;
    for (const rn::NetworkInfo& n : driver_->ListNetworks()) {
      keep.networks.insert(n.name);
      for (const rn::EndpointInfo& e : driver_->ListEndpoints(n.name)) {
        keep.endpoints.insert({n.name, e.id});
      }
    }
    keep.security_groups = declared_groups_;
    for (const rn::PortForward& f : driver_->ListPortForwards()) keep.port_forwards.insert(f.id);
    applied = driver_->Cleanup(keep);
  }
  absl::Status released = driver_->ReleaseRules();
  if (!applied.ok()) return applied;
  BERTH_RETURN_IF_ERROR(released);
  swept_ = true;
  return absl::OkStatus();
}

rn::EndpointSpec AgentNetworks::EndpointOf(const PlannedNic& nic) const {
  return rn::EndpointSpec{
      .network = nic.network,
      .id = nic.workload,
      .kind = nic.tap ? rn::EndpointKind::kTap : rn::EndpointKind::kVeth,
      .address = nic.address,
      .netns = nic.tap ? std::string() : ContainerNetns(options_.instance, nic.workload),
      .ifname = nic.ifname,
      .security_groups = nic.groups};
}

absl::Status AgentNetworks::Apply(const HostNetworkPlan& plan, std::string_view skip) {
  absl::Status first = absl::OkStatus();
  auto note = [&](absl::Status s) {
    if (!s.ok() && first.ok()) first = s;
  };
  int mtu = 1500;
  if (options_.underlay_mtu) {
    auto m = options_.underlay_mtu(plan.local_address);
    if (m.ok()) mtu = *m;
  }
  // Groups first, bare, as their rules may name each other; then with their rules.
  for (const auto& g : plan.groups) {
    // A group declared before keeps its rules until the full declaration below replaces them.
    if (declared_groups_.contains(g.name)) continue;
    auto bare = ToDriverGroup(g, false);
    if (absl::Status s = bare.ok() ? driver_->PutSecurityGroup(*bare) : bare.status(); s.ok()) {
      declared_groups_.insert(g.name);
    } else {
      note(s);
    }
  }
  // Each declaration re-renders the host's rules: only what changed is declared again.
  for (const auto& g : plan.groups) {
    auto full = ToDriverGroup(g, true);
    if (!full.ok()) {
      note(full.status());
      continue;
    }
    if (auto it = applied_groups_.find(g.name);
        it != applied_groups_.end() && it->second == *full) {
      continue;
    }
    absl::Status put = driver_->PutSecurityGroup(*full);
    if (put.ok()) applied_groups_[g.name] = *full;
    note(put);
  }
  std::set<std::string> wanted;
  for (const auto& n : plan.networks) {
    wanted.insert(n.name);
    bool taps = false;
    for (const auto& nic : plan.nics) taps |= nic.network == n.name && nic.tap;
    rn::NetworkSpec spec{.name = n.name,
                         .subnet = n.subnet,
                         .gateway = n.gateway,
                         .nat = n.nat,
                         .dhcp = taps,
                         .vxlan = rn::VxlanSpec{.vni = static_cast<uint32_t>(n.vni),
                                                .local_address = plan.local_address,
                                                .peers = n.peers},
                         .mtu = mtu - kVxlanOverhead};
    if (auto it = applied_networks_.find(n.name);
        it != applied_networks_.end() && it->second == spec) {
      continue;
    }
    absl::Status ensured = driver_->EnsureNetwork(spec).status();
    if (ensured.ok()) applied_networks_[n.name] = spec;
    note(ensured);
  }
  // Interfaces of tasks that outlived an agent restart: the driver adopts the link that is
  // there. A task that is gone has nothing to adopt; the agent reports it.
  for (const PlannedNic& nic : plan.nics) {
    if (nic.workload == skip || !wanted.contains(nic.network)) continue;
    const auto endpoints = driver_->ListEndpoints(nic.network);
    const bool known = std::any_of(endpoints.begin(), endpoints.end(),
                                   [&](const rn::EndpointInfo& e) { return e.id == nic.workload; });
    const auto key = std::make_pair(nic.network, nic.workload);
    if (known) {
      if (auto it = endpoint_groups_.find(key);
          it == endpoint_groups_.end() || it->second != nic.groups) {
        absl::Status set = driver_->SetEndpointGroups(nic.network, nic.workload, nic.groups);
        if (set.ok()) endpoint_groups_[key] = nic.groups;
        note(set);
      }
      continue;
    }
    const rn::EndpointSpec spec = EndpointOf(nic);
    const bool there =
        nic.tap ? (options_.link_exists &&
                   options_.link_exists(rn::TapName(options_.instance, nic.network, nic.workload)))
                : (options_.netns_exists && options_.netns_exists(spec.netns));
    if (!there) continue;
    absl::Status adopted = driver_->AttachEndpoint(spec).status();
    if (adopted.ok()) endpoint_groups_[key] = nic.groups;
    note(adopted);
  }
  // Port forwards this host makes (to its workloads, and those that name it): new ones are made
  // unless a socket here holds the port (said once), changed ones (their workload came or went)
  // made again, gone ones removed.
  std::set<std::string> wanted_forwards;
  std::map<std::string, rn::PortForward> have_forwards;
  for (rn::PortForward& f : driver_->ListPortForwards()) have_forwards[f.id] = std::move(f);
  for (const api::wire::PlannedForward& f : plan.forwards) {
    wanted_forwards.insert(f.id);
    auto protocol = rn::ParseProtocol(f.protocol);
    if (!protocol.ok()) {
      note(protocol.status());
      continue;
    }
    const rn::PortForward want{.id = f.id,
                               .protocol = *protocol,
                               .host_port = f.host_port,
                               .network = f.network,
                               .target_address = f.target_address,
                               .target_port = f.target_port,
                               .source_address = f.source_address};
    if (auto it = have_forwards.find(f.id); it != have_forwards.end()) {
      if (it->second == want) continue;
      if (absl::Status s = driver_->RemovePortForward(f.id); !s.ok() && !absl::IsNotFound(s)) {
        note(s);
        continue;
      }
    } else if (options_.port_free) {
      if (absl::Status free = options_.port_free(f.protocol, f.host_port); !free.ok()) {
        if (refused_forwards_.insert(f.id).second) {
          note(absl::Status(free.code(),
                            Cat("portforward \"", f.id, "\": host_port ", f.host_port, " ",
                                free.message(), "; not forwarded on host ", options_.host)));
        }
        continue;
      }
    }
    absl::Status added = driver_->AddPortForward(want);
    if (added.ok()) refused_forwards_.erase(f.id);
    note(added);
  }
  for (const auto& [id, _] : have_forwards) {
    if (wanted_forwards.contains(id)) continue;
    absl::Status s = driver_->RemovePortForward(id);
    if (!absl::IsNotFound(s)) note(s);
  }
  for (const rn::NetworkInfo& n : driver_->ListNetworks()) {
    if (wanted.contains(n.name)) continue;
    absl::Status s = driver_->DeleteNetwork(n.name);
    applied_networks_.erase(n.name);
    std::erase_if(endpoint_groups_, [&](const auto& e) { return e.first.first == n.name; });
    if (!absl::IsNotFound(s)) note(s);
  }
  return first;
}

absl::Status AgentNetworks::Attach(const core::WorkloadSpec& spec, runtime::TaskConfig* config) {
  if (spec.networks.empty()) return absl::OkStatus();
  BERTH_ASSIGN_OR_RETURN(HostNetworkPlan plan, options_.fetch(spec.name));
  absl::MutexLock lock(&mu_);
  // What the rest of the plan could not make (another workload's forward, say) does not keep
  // this workload from starting; a network of its own that is missing fails its interface below.
  // Before the first look, the rules an earlier run left stay until the others' surviving
  // interfaces are adopted too.
  if (!swept_) driver_->HoldRules();
  absl::Status applied = Apply(plan, spec.name);
  if (!swept_) applied.Update(driver_->ReleaseRules());
  if (!applied.ok()) core::LogWarn("host %s: networks: %s", options_.host, applied.ToString());
  std::vector<PlannedNic> mine;
  for (const PlannedNic& nic : plan.nics) {
    if (nic.workload == spec.name) mine.push_back(nic);
  }
  std::sort(mine.begin(), mine.end(), [](const PlannedNic& a, const PlannedNic& b) {
    return a.ifname.size() != b.ifname.size() ? a.ifname.size() < b.ifname.size()
                                              : a.ifname < b.ifname;
  });
  if (mine.size() != spec.networks.size()) {
    return absl::InternalError(Cat("workload \"", spec.name, "\": the server planned ", mine.size(),
                                   " interface(s) for its ", spec.networks.size(), " network(s)"));
  }
  const bool vm = spec.kind == core::WorkloadKind::kVm;
  for (const PlannedNic& nic : mine) {
    rn::EndpointSpec ep = EndpointOf(nic);
    if (!vm && options_.make_netns) {
      if (absl::Status s = options_.make_netns(ep.netns); !s.ok()) {
        return absl::Status(s.code(), Cat("workload \"", spec.name, "\": networks[", nic.network,
                                          "]: network namespace: ", s.message()));
      }
    }
    // Left from a task of the same workload that went without its clean-up: made anew.
    if (absl::Status s = driver_->DetachEndpoint(nic.network, nic.workload);
        !s.ok() && !absl::IsNotFound(s)) {
      return s;
    }
    endpoint_groups_.erase({nic.network, nic.workload});
    auto made = driver_->AttachEndpoint(ep);
    if (made.ok()) endpoint_groups_[{nic.network, nic.workload}] = nic.groups;
    if (!made.ok()) {
      return absl::Status(made.status().code(),
                          Cat("workload \"", spec.name, "\": networks[", nic.network,
                              "].network: ", made.status().message()));
    }
    runtime::TaskNic task_nic{
        .name = nic.ifname, .host_ifname = made->host_ifname, .mac = made->mac};
    if (!vm) task_nic.netns_path = "/run/netns/" + ep.netns;
    task_nic.addresses.push_back(Cat(nic.address, "/", nic.prefix_length));
    config->nics.push_back(std::move(task_nic));
  }
  return absl::OkStatus();
}

void AgentNetworks::Detach(std::string_view workload) {
  absl::MutexLock lock(&mu_);
  for (const rn::NetworkInfo& n : driver_->ListNetworks()) {
    endpoint_groups_.erase({n.name, std::string(workload)});
    absl::Status s = driver_->DetachEndpoint(n.name, workload);
    if (!absl::IsNotFound(s)) {
      core::ReportError(kWhere, Cat("workload ", workload, ": detach from network ", n.name), s);
    }
  }
  const std::string ns = ContainerNetns(options_.instance, workload);
  if (options_.netns_exists && options_.netns_exists(ns) && options_.delete_netns) {
    options_.delete_netns(ns);
  }
}

}  // namespace berth
