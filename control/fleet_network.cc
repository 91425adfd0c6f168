#include "control/fleet_network.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "core/guard.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "runtime/net/network_model.h"

namespace berth::control {

using api::wire::HostNetworkPlan;
using core::Cat;

namespace {

constexpr std::string_view kWhere = "fleet networks";

class FleetNetworkHost final : public NetworkHost {
 public:
  explicit FleetNetworkHost(ControlPlane* control) : control_(control) {}
  absl::StatusOr<std::string> EnsureNetwork(const HostNetwork&) override { return std::string(); }
  absl::Status DeleteNetwork(std::string_view) override { return absl::OkStatus(); }
  absl::Status PutGroup(const HostGroup&) override { return absl::OkStatus(); }
  absl::Status DeleteGroup(std::string_view) override { return absl::OkStatus(); }
  // The forward is made by the agent of the host its workload runs on.
  absl::Status AddForward(const HostForward&) override { return absl::OkStatus(); }
  absl::Status RemoveForward(std::string_view) override { return absl::OkStatus(); }
  absl::Status Cleanup(const HostKeep&) override { return absl::OkStatus(); }
  absl::StatusOr<HostEndpoint> AttachEndpoint(const HostEndpointSpec& spec) override {
    return HostEndpoint{.mac = runtime::net::DeriveMac(spec.network, spec.owner)};
  }
  absl::Status DetachEndpoint(std::string_view, std::string_view) override {
    return absl::OkStatus();
  }
  // Any registered host: one that is down makes the forward when it is back.
  absl::Status CheckForwardHost(std::string_view forward, std::string_view host) override {
    if (control_ == nullptr) return NetworkHost::CheckForwardHost(forward, host);
    auto h = control_->GetHost(host);
    if (h.ok()) return absl::OkStatus();
    if (!absl::IsNotFound(h.status())) return h.status();
    return core::FieldError(
        "portforward", forward, "host",
        Cat("\"", host.substr(0, 64), "\" is not a registered host; `berth host ls` lists them"));
  }

 private:
  ControlPlane* const control_;
};

// Where a workload's interfaces are: its host while it is placed and not terminal, else "".
std::string HostOf(const core::Workload& w) {
  if (w.status.host.empty() || core::IsTerminal(w.status.state)) return "";
  return w.status.host;
}

}  // namespace

std::unique_ptr<NetworkHost> NewFleetNetworkHost(ControlPlane* control) {
  return std::make_unique<FleetNetworkHost>(control);
}

FleetNetworks::FleetNetworks(state::Store* store, core::Clock* clock, ControlPlane* control)
    : store_(store),
      control_(control),
      host_(NewFleetNetworkHost(control)),
      network_(store, clock, host_.get()) {}

FleetNetworks::~FleetNetworks() {
  watch_.reset();
  host_watch_.reset();
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (releaser_.joinable()) releaser_.join();
}

absl::Status FleetNetworks::Start() {
  BERTH_RETURN_IF_ERROR(network_.Start());
  auto listed = store_->List(kWorkloadPrefix);
  if (!listed.ok()) return listed.status();
  releaser_ = std::thread([this] {
    core::ReportError(kWhere, "release loop",
                      core::RunGuarded("fleet network release", [this] { ReleaseLoop(); }));
  });
  // Deletions the server did not see (it was down): owners that are no longer workloads.
  std::set<std::string> existing;
  for (const state::KeyValue& kv : listed->kvs) {
    existing.insert(kv.key.substr(kWorkloadPrefix.size()));
  }
  BERTH_ASSIGN_OR_RETURN(auto addressings, network_.Addressings());
  {
    absl::MutexLock lock(&mu_);
    for (const auto& a : addressings) {
      for (const auto& [addr, owner] : a.allocations) {
        // A host's own address goes with its last forward (NetworkService).
        if (!existing.contains(owner) && !IsHostAddressOwner(owner)) to_release_.push_back(owner);
      }
    }
  }
  auto watch = store_->Watch(kWorkloadPrefix, listed->revision + 1, [this](const state::Event& e) {
    if (e.type != state::Event::Type::kDelete) return;
    absl::MutexLock lock(&mu_);
    to_release_.push_back(e.kv.key.substr(kWorkloadPrefix.size()));
  });
  if (!watch.ok()) {
    return absl::Status(watch.status().code(), Cat("watching workloads: ", watch.status().message(),
                                                   "; a deleted workload's addresses stay held"));
  }
  watch_ = *std::move(watch);
  // Forwards at a host that is removed (`berth host rm`) go with it, and its addresses with
  // them; so do those at hosts removed while the server was down.
  auto hosts = store_->List(kHostPrefix);
  if (!hosts.ok()) return hosts.status();
  std::set<std::string> registered;
  for (const state::KeyValue& kv : hosts->kvs) registered.insert(kv.key.substr(kHostPrefix.size()));
  if (auto forwards = network_.Forwards(); forwards.ok()) {
    absl::MutexLock lock(&mu_);
    for (const core::PortForward& f : *forwards) {
      if (!f.spec.host.empty() && !registered.contains(f.spec.host)) {
        to_release_.push_back(HostAddressOwner(f.spec.host));
      }
    }
  }
  auto host_watch = store_->Watch(kHostPrefix, hosts->revision + 1, [this](const state::Event& e) {
    if (e.type != state::Event::Type::kDelete) return;
    absl::MutexLock lock(&mu_);
    to_release_.push_back(HostAddressOwner(e.kv.key.substr(kHostPrefix.size())));
  });
  if (!host_watch.ok()) {
    return absl::Status(host_watch.status().code(),
                        Cat("watching hosts: ", host_watch.status().message(),
                            "; a removed host's port forwards stay"));
  }
  host_watch_ = *std::move(host_watch);
  return absl::OkStatus();
}

absl::Status FleetNetworks::CheckReferences(const core::WorkloadSpec& spec) {
  return network_.CheckReferences(spec);
}

void FleetNetworks::ReleaseLoop() {
  for (;;) {
    std::string workload;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](FleetNetworks* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->to_release_.empty();
          },
          this));
      if (stopping_) return;
      workload = std::move(to_release_.front());
      to_release_.pop_front();
    }
    ReleaseIfGone(workload);
  }
}

void FleetNetworks::ForgetHost(const std::string& host) {
  auto h = control_->GetHost(host);
  if (h.ok()) return;  // registered again
  if (!absl::IsNotFound(h.status())) {
    core::ReportError(kWhere, Cat("host ", host, ": read it"), h.status());
    return;
  }
  auto forwards = network_.Forwards();
  if (!forwards.ok()) {
    core::ReportError(kWhere, Cat("host ", host, ": its port forwards"), forwards.status());
    return;
  }
  for (const core::PortForward& f : *forwards) {
    if (f.spec.host != host) continue;
    core::ReportError(kWhere, Cat("host ", host, " removed: remove its port forward ", f.id),
                      network_.RemovePortForward(f.id));
  }
}

void FleetNetworks::ReleaseIfGone(const std::string& workload) {
  if (IsHostAddressOwner(workload)) {
    ForgetHost(workload.substr(std::string_view("host:").size()));
    return;
  }
  auto w = control_->GetWorkload(workload);
  if (w.ok() && w->status.desired != core::DesiredState::kDeleted) return;
  if (!w.ok() && !absl::IsNotFound(w.status())) {
    // Nothing is released on a guess.
    core::ReportError(kWhere, Cat("workload ", workload, ": read it"), w.status());
    return;
  }
  if (also_release_) also_release_(workload);
  // Port forwards to the workload go with it.
  if (auto forwards = network_.Forwards(); forwards.ok()) {
    for (const core::PortForward& f : *forwards) {
      if (f.spec.workload != workload) continue;
      core::ReportError(kWhere, Cat("workload ", workload, ": remove its port forward ", f.id),
                        network_.RemovePortForward(f.id));
    }
  } else {
    core::ReportError(kWhere, Cat("workload ", workload, ": its port forwards"), forwards.status());
  }
  auto nets = network_.NetworksOf(workload);
  if (!nets.ok()) {
    core::ReportError(kWhere, Cat("workload ", workload, ": its networks"), nets.status());
    return;
  }
  for (const std::string& n : *nets) {
    core::ReportError(kWhere, Cat("workload ", workload, ": release its address on ", n),
                      network_.DetachWorkload(n, workload));
  }
}

absl::StatusOr<HostNetworkPlan> FleetNetworks::Attach(std::string_view host,
                                                      std::string_view workload,
                                                      std::string_view caller_address) {
  BERTH_ASSIGN_OR_RETURN(core::Workload w, control_->GetWorkload(workload));
  if (HostOf(w) != host) {
    return absl::FailedPreconditionError(
        Cat("workload \"", workload, "\" is not placed on host \"", host, "\"",
            w.status.host.empty() ? "" : Cat(" (it is on \"", w.status.host, "\")")));
  }
  const bool vm = w.spec.kind == core::WorkloadKind::kVm;
  std::vector<std::string> given;  // networks where it held no address before
  auto held = network_.NetworksOf(workload);
  if (!held.ok()) return held.status();
  for (size_t i = 0; i < w.spec.networks.size(); ++i) {
    const core::NetworkAttachment& n = w.spec.networks[i];
    auto attached =
        network_.AttachWorkload(WorkloadEndpointOptions{.network = n.network,
                                                        .workload = std::string(workload),
                                                        .tap = vm,
                                                        .address = n.address,
                                                        .ifname = Cat("eth", static_cast<int>(i)),
                                                        .security_groups = n.security_groups});
    if (!attached.ok()) {
      for (const std::string& g : given) {
        core::ReportError(kWhere, Cat("workload ", workload, ": give back its address on ", g),
                          network_.ReleaseAddress(g, workload));
      }
      return attached.status();
    }
    if (std::find(held->begin(), held->end(), n.network) == held->end()) {
      given.push_back(n.network);
    }
  }
  return PlanFor(host, caller_address);
}

absl::StatusOr<std::shared_ptr<const FleetNetworks::FleetState>> FleetNetworks::State() {
  BERTH_ASSIGN_OR_RETURN(const int64_t revision, store_->Revision());
  {
    absl::MutexLock lock(&state_mu_);
    if (state_ && state_->revision == revision) return state_;
  }
  auto state = std::make_shared<FleetState>();
  state->revision = revision;
  BERTH_ASSIGN_OR_RETURN(state->networks, network_.Networks());
  BERTH_ASSIGN_OR_RETURN(state->addressings, network_.Addressings());
  BERTH_ASSIGN_OR_RETURN(state->groups, network_.Groups());
  BERTH_ASSIGN_OR_RETURN(state->forwards, network_.Forwards());
  // Every address owner, read once: where it runs and which groups it is in on each network.
  for (const auto& a : state->addressings) {
    for (const auto& [addr, owner] : a.allocations) {
      if (state->owners.contains(owner) || IsHostAddressOwner(owner)) continue;
      auto w = control_->GetWorkload(owner);
      if (w.ok()) {
        state->owners.emplace(owner, *std::move(w));
      } else if (!absl::IsNotFound(w.status())) {
        return w.status();
      }
    }
  }
  absl::MutexLock lock(&state_mu_);
  // Read at `revision` or later: good for every plan asked at that revision.
  state_ = state;
  return std::shared_ptr<const FleetState>(state);
}

absl::StatusOr<HostNetworkPlan> FleetNetworks::PlanFor(std::string_view host,
                                                       std::string_view caller_address) {
  HostNetworkPlan plan;
  auto underlay = [&](std::string_view h) -> std::string {
    std::optional<TaskApiEndpoint> api = control_->TaskApi(h);
    if (api && !api->address.empty()) return api->address;
    return h == host ? std::string(caller_address) : std::string();
  };
  plan.local_address = underlay(host);
  BERTH_ASSIGN_OR_RETURN(std::shared_ptr<const FleetState> state, State());
  const auto& networks = state->networks;
  const auto& addressings = state->addressings;
  const auto& groups = state->groups;
  const auto& owners = state->owners;
  auto attachment = [](const core::Workload& w,
                       std::string_view network) -> const core::NetworkAttachment* {
    for (const auto& n : w.spec.networks) {
      if (n.network == network) return &n;
    }
    return nullptr;
  };

  std::set<std::string> local_groups;
  std::map<std::string, std::set<std::string>> remote_members;  // group -> addresses
  std::map<std::string, std::set<std::string>> peers;           // network -> underlay addresses
  std::set<std::string> local_networks;
  for (const auto& a : addressings) {
    for (const auto& [addr, owner] : a.allocations) {
      auto it = owners.find(owner);
      if (it == owners.end()) continue;
      const core::Workload& w = it->second;
      const std::string on = HostOf(w);
      const core::NetworkAttachment* n = attachment(w, a.network);
      if (on.empty() || n == nullptr) continue;
      const std::string address = runtime::net::FormatIpv4(addr);
      if (on == host) {
        local_networks.insert(a.network);
        local_groups.insert(n->security_groups.begin(), n->security_groups.end());
        const auto index = n - w.spec.networks.data();
        plan.nics.push_back({.workload = owner,
                             .network = a.network,
                             .address = address,
                             .prefix_length = a.subnet.length,
                             .tap = w.spec.kind == core::WorkloadKind::kVm,
                             .ifname = Cat("eth", static_cast<int>(index)),
                             .groups = n->security_groups});
        continue;
      }
      if (std::string peer = underlay(on); !peer.empty()) peers[a.network].insert(peer);
      for (const std::string& g : n->security_groups) remote_members[g].insert(address);
    }
  }
  // Forwards: where each takes connections (its named host, else its workload's host), and
  // whether its workload is there too. A host forwarding to a workload elsewhere joins the
  // network (a peer of the others) and leaves it from its own address there.
  struct ForwardAt {
    const core::PortForward* forward;
    bool local;
  };
  std::vector<ForwardAt> here;
  std::set<std::string> forward_networks;
  for (const core::PortForward& f : state->forwards) {
    auto it = owners.find(f.spec.workload);
    const std::string on = it == owners.end() ? std::string() : HostOf(it->second);
    const std::string at = f.spec.host.empty() ? on : f.spec.host;
    if (at.empty()) continue;
    if (at != host) {
      if (!f.spec.host.empty()) {
        if (std::string peer = underlay(at); !peer.empty()) peers[f.spec.network].insert(peer);
      }
      continue;
    }
    const bool local = on == host && local_networks.contains(f.spec.network);
    here.push_back({&f, local});
    if (!local) forward_networks.insert(f.spec.network);
  }
  for (const core::Network& n : networks) {
    if (!local_networks.contains(n.name) && !forward_networks.contains(n.name)) continue;
    api::wire::PlannedNetwork p{.name = n.name,
                                .subnet = n.spec.subnet,
                                .gateway = n.spec.gateway,
                                .nat = n.spec.nat,
                                .vni = n.status.vni};
    if (p.vni == 0) {
      return absl::FailedPreconditionError(
          Cat("network \"", n.name, "\" has no tunnel id yet; the server gives it one at start"));
    }
    for (const std::string& peer : peers[n.name]) {
      if (peer != plan.local_address) p.peers.push_back(peer);
    }
    plan.networks.push_back(std::move(p));
  }
  for (const ForwardAt& at : here) {
    const core::PortForward& f = *at.forward;
    api::wire::PlannedForward p{.id = f.id,
                                .protocol = f.spec.protocol,
                                .host_port = f.spec.host_port,
                                .network = f.spec.network,
                                .target_address = f.spec.target_address,
                                .target_port = f.spec.port};
    if (!at.local) {
      auto a = std::find_if(addressings.begin(), addressings.end(),
                            [&](const auto& x) { return x.network == f.spec.network; });
      std::optional<runtime::net::Ipv4> mine;
      if (a != addressings.end()) mine = a->AddressOf(HostAddressOwner(host));
      if (!mine) {
        core::LogWarn("portforward %s: host %s holds no address on %s; not forwarded there", f.id,
                      host, f.spec.network);
        continue;
      }
      p.source_address = runtime::net::FormatIpv4(*mine);
    }
    plan.forwards.push_back(std::move(p));
  }
  // The groups the interfaces enforce, and every group their rules name as a source.
  std::map<std::string, const core::SecurityGroup*> by_name;
  for (const auto& g : groups) by_name[g.name] = &g;
  std::vector<std::string> todo(local_groups.begin(), local_groups.end());
  std::set<std::string> wanted;
  while (!todo.empty()) {
    std::string name = std::move(todo.back());
    todo.pop_back();
    if (!wanted.insert(name).second) continue;
    auto it = by_name.find(name);
    if (it == by_name.end()) continue;
    for (const auto& r : it->second->spec.rules) {
      if (!r.from_group.empty()) todo.push_back(r.from_group);
    }
  }
  for (const std::string& name : wanted) {
    auto it = by_name.find(name);
    if (it == by_name.end()) continue;
    const auto& members = remote_members[name];
    plan.groups.push_back({.name = name,
                           .rules = it->second->spec.rules,
                           .remote_members = {members.begin(), members.end()}});
  }
  return plan;
}

}  // namespace berth::control
