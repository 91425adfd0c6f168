#include "runtime/net/fake_network_driver.h"

#include <algorithm>

#include "core/status.h"
#include "core/strings.h"

namespace berth::runtime::net {

using core::Cat;

NetworkInfo InfoOf(const NetworkModel& model, const NetworkRecord& r) {
  NetworkInfo info;
  info.name = r.spec.name;
  info.bridge = r.bridge;
  info.subnet = r.addressing.subnet.ToString();
  info.gateway = FormatIpv4(r.addressing.gateway);
  for (const auto& [key, _] : model.endpoints()) info.endpoint_count += key.first == r.spec.name;
  return info;
}

EndpointInfo InfoOf(const EndpointRecord& r) {
  return EndpointInfo{r.spec.network,        r.spec.id, r.spec.kind, r.host_ifname,
                      FormatIpv4(r.address), r.mac};
}

std::vector<NetworkInfo> ListNetworksOf(const NetworkModel& model) {
  std::vector<NetworkInfo> out;
  for (const auto& [_, r] : model.networks()) out.push_back(InfoOf(model, r));
  return out;
}

std::vector<EndpointInfo> ListEndpointsOf(const NetworkModel& model, std::string_view network) {
  std::vector<EndpointInfo> out;
  for (const auto& [key, r] : model.endpoints()) {
    if (key.first == network) out.push_back(InfoOf(r));
  }
  return out;
}

std::vector<PortForward> ListForwardsOf(const NetworkModel& model) {
  std::vector<PortForward> out;
  for (const auto& [_, f] : model.forwards()) out.push_back(f);
  return out;
}

NetworkModel KeepOnly(const NetworkModel& model, const KeepSet& keep) {
  NetworkModel out = model;
  for (const auto& [name, _] : model.networks()) {
    if (!keep.networks.contains(name)) out.RemoveNetwork(name);
  }
  for (const auto& [key, _] : model.endpoints()) {
    if (!keep.endpoints.contains(key)) out.RemoveEndpoint(key.first, key.second);
  }
  for (const auto& [id, _] : model.forwards()) {
    if (!keep.port_forwards.contains(id)) out.RemoveForward(id);
  }
  // A group still used by a kept endpoint or group stays.
  bool removed = true;
  while (removed) {
    removed = false;
    for (const auto& [name, _] : out.groups()) {
      if (!keep.security_groups.contains(name) && out.CheckGroupUnused(name).ok()) {
        out.RemoveGroup(name);
        removed = true;
        break;
      }
    }
  }
  return out;
}

std::string FakeNetworkDriver::ruleset() {
  absl::MutexLock lock(&mu_);
  return RenderNftRuleset(model_);
}

std::vector<std::string> FakeNetworkDriver::links() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [name, r] : model_.networks()) {
    out.push_back(r.bridge);
    if (r.spec.vxlan) out.push_back(VxlanName(model_.instance(), name));
  }
  for (const auto& [_, e] : model_.endpoints()) out.push_back(e.host_ifname);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<NetworkInfo> FakeNetworkDriver::EnsureNetwork(const NetworkSpec& spec,
                                                             const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(NetworkRecord r, model_.PrepareNetwork(spec));
  model_.CommitNetwork(std::move(r));
  return InfoOf(model_, *model_.FindNetwork(spec.name));
}

absl::Status FakeNetworkDriver::DeleteNetwork(std::string_view name,
                                              const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  if (model_.FindNetwork(name) == nullptr) {
    return absl::NotFoundError(Cat("network \"", name, "\" not found"));
  }
  model_.RemoveNetwork(name);
  return absl::OkStatus();
}

std::optional<NetworkSpec> FakeNetworkDriver::network_spec(std::string_view name) {
  absl::MutexLock lock(&mu_);
  const NetworkRecord* r = model_.FindNetwork(name);
  if (r == nullptr) return std::nullopt;
  return r->spec;
}

std::vector<NetworkInfo> FakeNetworkDriver::ListNetworks() {
  absl::MutexLock lock(&mu_);
  return ListNetworksOf(model_);
}

absl::StatusOr<EndpointInfo> FakeNetworkDriver::AttachEndpoint(const EndpointSpec& spec,
                                                               const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_ASSIGN_OR_RETURN(EndpointRecord r, model_.PrepareEndpoint(spec));
  EndpointInfo info = InfoOf(r);
  model_.CommitEndpoint(std::move(r));
  return info;
}

absl::Status FakeNetworkDriver::DetachEndpoint(std::string_view network, std::string_view id,
                                               const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  if (model_.FindEndpoint(network, id) == nullptr) {
    return absl::NotFoundError(Cat("endpoint \"", id, "\" not found on network \"", network, "\""));
  }
  model_.RemoveEndpoint(network, id);
  return absl::OkStatus();
}

std::vector<EndpointInfo> FakeNetworkDriver::ListEndpoints(std::string_view network) {
  absl::MutexLock lock(&mu_);
  return ListEndpointsOf(model_, network);
}

absl::Status FakeNetworkDriver::SetEndpointGroups(std::string_view network, std::string_view id,
                                                  const std::vector<std::string>& groups,
                                                  const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  return model_.SetEndpointGroups(network, id, groups);
}

absl::Status FakeNetworkDriver::PutSecurityGroup(const SecurityGroup& group,
                                                 const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(model_.PrepareGroup(group));
  model_.CommitGroup(group);
  return absl::OkStatus();
}

absl::Status FakeNetworkDriver::DeleteSecurityGroup(std::string_view name,
                                                    const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(model_.CheckGroupUnused(name));
  model_.RemoveGroup(name);
  return absl::OkStatus();
}

absl::Status FakeNetworkDriver::AddPortForward(const PortForward& forward,
                                               const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  BERTH_RETURN_IF_ERROR(model_.PrepareForward(forward));
  model_.CommitForward(forward);
  return absl::OkStatus();
}

absl::Status FakeNetworkDriver::RemovePortForward(std::string_view id,
                                                  const NetworkOptions& options) {
  absl::MutexLock lock(&mu_);
  if (!model_.forwards().contains(std::string(id))) {
    return absl::NotFoundError(Cat("port forward \"", id, "\" not found"));
  }
  model_.RemoveForward(id);
  return absl::OkStatus();
}

std::vector<PortForward> FakeNetworkDriver::ListPortForwards() {
  absl::MutexLock lock(&mu_);
  return ListForwardsOf(model_);
}

absl::Status FakeNetworkDriver::Cleanup(const KeepSet& keep) {
  absl::MutexLock lock(&mu_);
  model_ = KeepOnly(model_, keep);
  return absl::OkStatus();
}

}  // namespace berth::runtime::net
