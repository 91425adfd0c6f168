// An in-memory NetworkDriver: the same validation and state (NetworkModel) as the real driver,
// with no kernel objects. Tests of callers use it, and the contract suite runs against it.
// ruleset() shows the nftables script the real driver would apply.
//
// Thread-safety: all methods are thread-safe (one mutex).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "runtime/net/network_driver.h"
#include "runtime/net/network_model.h"

namespace berth::runtime::net {

class FakeNetworkDriver final : public NetworkDriver {
 public:
  // `instance` goes into the names, as the real driver's Options::instance.
  explicit FakeNetworkDriver(std::string instance = "0000000000000000")
      : model_(std::move(instance)) {}

  std::string ruleset();
  // Interface names the real driver would have made, sorted.
  std::vector<std::string> links();
  // The spec a network was last declared with; none when it is not declared.
  std::optional<NetworkSpec> network_spec(std::string_view name);

  absl::StatusOr<NetworkInfo> EnsureNetwork(const NetworkSpec& spec,
                                            const NetworkOptions& options) override;
  absl::Status DeleteNetwork(std::string_view name, const NetworkOptions& options) override;
  std::vector<NetworkInfo> ListNetworks() override;
  absl::StatusOr<EndpointInfo> AttachEndpoint(const EndpointSpec& spec,
                                              const NetworkOptions& options) override;
  absl::Status DetachEndpoint(std::string_view network, std::string_view id,
                              const NetworkOptions& options) override;
  std::vector<EndpointInfo> ListEndpoints(std::string_view network) override;
  absl::Status SetEndpointGroups(std::string_view network, std::string_view id,
                                 const std::vector<std::string>& groups,
                                 const NetworkOptions& options) override;
  absl::Status PutSecurityGroup(const SecurityGroup& group, const NetworkOptions& options) override;
  absl::Status DeleteSecurityGroup(std::string_view name, const NetworkOptions& options) override;
  absl::Status AddPortForward(const PortForward& forward, const NetworkOptions& options) override;
  absl::Status RemovePortForward(std::string_view id, const NetworkOptions& options) override;
  std::vector<PortForward> ListPortForwards() override;
  absl::Status Cleanup(const KeepSet& keep) override;

 private:
  absl::Mutex mu_;
  NetworkModel model_ ABSL_GUARDED_BY(mu_);
};

// Shared by the drivers: the listing views of a model, and the model trimmed to a KeepSet.
std::vector<NetworkInfo> ListNetworksOf(const NetworkModel& model);
std::vector<EndpointInfo> ListEndpointsOf(const NetworkModel& model, std::string_view network);
NetworkInfo InfoOf(const NetworkModel& model, const NetworkRecord& record);
EndpointInfo InfoOf(const EndpointRecord& record);
NetworkModel KeepOnly(const NetworkModel& model, const KeepSet& keep);
std::vector<PortForward> ListForwardsOf(const NetworkModel& model);

}  // namespace berth::runtime::net
