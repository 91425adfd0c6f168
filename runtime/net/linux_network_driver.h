// The real NetworkDriver: iproute2 for bridges, veth pairs, taps and VXLAN; nftables for port
// forwards, NAT and security groups (table `inet berth_<instance>`, replaced atomically on every
// change); dnsmasq for DHCP. Every command runs in `Options::netns` when set (tests use a namespace
// they create, so nothing touches the host's own); a container's end of a veth pair is set up by
// running ip in the container's namespace. Commands run through host::Executor. dnsmasq is
// signalled only when the pid in its pid file still names the dnsmasq of that very network (its
// command line carries the pid file's path), so a reused pid is never signalled.
//
// Security groups filter bridged traffic in the inet forward hook, so bridged IPv4 must pass
// through netfilter: the driver sets net.bridge.bridge-nf-call-iptables=1 (br_netfilter).
//
// Several drivers (one per Berth data directory) may share a namespace: every link name, link
// alias and the nftables table carry the driver's instance id (network_model.h), dnsmasq files
// live under the driver's own state directory, and the driver adopts, changes and deletes only
// what carries its own id.
//
// Ownership and thread-safety as NetworkDriver; the desired state lives in memory and is
// re-declared by the caller after a restart.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "runtime/host/executor.h"
#include "runtime/net/network_driver.h"
#include "runtime/net/network_model.h"

namespace berth::runtime::net {

// The instance id of the Berth whose state lives in `dir`: a hash of its absolute path with
// symlinks resolved, so the same directory gives the same id on every start.
std::string InstanceIdForDir(const std::string& dir);

class LinuxNetworkDriver final : public NetworkDriver {
 public:
  struct Options {
    std::string netns;      // named namespace to work in; empty = the agent's own
    std::string state_dir;  // dnsmasq pid, lease and host files, one directory per network
    // The instance id in every kernel object name (16 hex digits, ValidInstanceId); empty =
    // InstanceIdForDir(state_dir). Anything else is a programming error and aborts.
    std::string instance;
    absl::Duration process_deadline = absl::Seconds(30);  // dnsmasq start/stop
    host::Executor* executor = nullptr;                   // null = the host
  };

  explicit LinuxNetworkDriver(Options options);

  const std::string& instance() const { return options_.instance; }

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
  void HoldRules() override;
  absl::Status ReleaseRules() override;

  // Path of a network's dnsmasq files (pid, leases, hosts).
  std::string DhcpDir(std::string_view network) const;

 private:
  absl::StatusOr<std::string> Run(const std::vector<std::string>& argv,
                                  const std::string& stdin_data = "") const;
  // The pid of the running dnsmasq of `network`, or 0 when there is none (no pid file, or its
  // pid names a process that is not that dnsmasq).
  pid_t DhcpPid(std::string_view network) const;
  absl::Status IpBatch(const std::string& commands) const;
  // The links in the driver's namespace: name -> alias ("" when none).
  absl::StatusOr<std::map<std::string, std::string>> Links() const;
  // FailedPrecondition when `name` exists with an alias that names another Berth instance.
  absl::Status CheckNotForeign(const std::map<std::string, std::string>& links,
                               const std::string& name) const;
  // OK when already gone; refuses another instance's link (CheckNotForeign).
  absl::Status DeleteLink(const std::string& name) const;
  // Makes the tunnel's flood list (its all-zero MAC entries) exactly `peers`.
  absl::Status SyncFloodPeers(const std::string& vxlan,
                              const std::vector<std::string>& peers) const;
  absl::Status ApplyRules(const NetworkModel& model) const;
  absl::Status StartDhcp(const NetworkRecord& network, const NetworkModel& model) const;
  absl::Status ReloadDhcp(const NetworkModel& model, std::string_view network) const;
  absl::Status StopDhcp(std::string_view network) const;
  // Swaps the applied rules (and DHCP hosts) to `next` and makes it the model.
  absl::Status Commit(NetworkModel next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes the host's legs exactly what `next`'s forwards need (Legs()): links, addresses and
  // routes; runs nothing when they are as last made.
  absl::Status SyncLegs(const NetworkModel& next) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes one leg on `net`'s bridge: from a bare link unless `known` (as this run last made it)
  // has the same address and the link is `there`, when only its routes change.
  absl::Status MakeLeg(const std::string& network, const Leg& leg, const NetworkRecord& net,
                       const Leg* known, bool there) const;

  // Sets net.ipv4.conf.BRIDGE.route_localnet unless it is known to be so already; a failure is
  // reported (only forwards reached at 127.0.0.1 need it).
  void SetRouteLocalnet(const std::string& bridge, bool on) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  NetworkModel model_ ABSL_GUARDED_BY(mu_);
  bool hold_rules_ ABSL_GUARDED_BY(mu_) = false;  // HoldRules() until ReleaseRules()
  // The route_localnet value each bridge was last given.
  std::map<std::string, bool> localnet_ ABSL_GUARDED_BY(mu_);
  // The legs as last made, by network.
  std::map<std::string, Leg> legs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::runtime::net
