#include "main/agent_network.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/net/fake_network_driver.h"

namespace berth {
namespace {

using api::wire::HostNetworkPlan;
using core::Cat;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace rn = runtime::net;

constexpr char kInstance[] = "0123456789abcdef";

core::WorkloadSpec Container(const std::string& name, std::vector<std::string> networks) {
  core::Json nets = core::Json::array();
  for (const auto& n : networks) nets.push_back({{"network", n}});
  auto spec = core::DecodeWorkloadSpec({{"name", name},
                                        {"kind", "container"},
                                        {"image", "busybox"},
                                        {"command", {"/bin/sleep", "60"}},
                                        {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
                                        {"networks", nets}});
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// The fake driver, counting the calls that change the host.
class CountingDriver final : public rn::NetworkDriver {
 public:
  explicit CountingDriver(rn::NetworkDriver* inner) : inner_(inner) {}
  int changes = 0;

  absl::StatusOr<rn::NetworkInfo> EnsureNetwork(const rn::NetworkSpec& spec,
                                                const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->EnsureNetwork(spec, o);
  }
  absl::Status DeleteNetwork(std::string_view name, const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->DeleteNetwork(name, o);
  }
  std::vector<rn::NetworkInfo> ListNetworks() override { return inner_->ListNetworks(); }
  absl::StatusOr<rn::EndpointInfo> AttachEndpoint(const rn::EndpointSpec& spec,
                                                  const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->AttachEndpoint(spec, o);
  }
  absl::Status DetachEndpoint(std::string_view network, std::string_view id,
                              const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->DetachEndpoint(network, id, o);
  }
  std::vector<rn::EndpointInfo> ListEndpoints(std::string_view network) override {
    return inner_->ListEndpoints(network);
  }
  absl::Status SetEndpointGroups(std::string_view network, std::string_view id,
                                 const std::vector<std::string>& groups,
                                 const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->SetEndpointGroups(network, id, groups, o);
  }
  absl::Status PutSecurityGroup(const rn::SecurityGroup& group,
                                const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->PutSecurityGroup(group, o);
  }
  absl::Status DeleteSecurityGroup(std::string_view name, const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->DeleteSecurityGroup(name, o);
  }
  absl::Status AddPortForward(const rn::PortForward& f, const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->AddPortForward(f, o);
  }
  absl::Status RemovePortForward(std::string_view id, const rn::NetworkOptions& o) override {
    ++changes;
    return inner_->RemovePortForward(id, o);
  }
  std::vector<rn::PortForward> ListPortForwards() override { return inner_->ListPortForwards(); }
  absl::Status Cleanup(const rn::KeepSet& keep) override {
    ++changes;
    return inner_->Cleanup(keep);
  }

 private:
  rn::NetworkDriver* const inner_;
};

// The server's answers are plans the test writes; namespaces are names in a set.
class AgentNetworksTest : public ::testing::Test {
 protected:
  AgentNetworksTest() : networks_(Options(), &counting_) {}
  AgentNetworksOptions Options() {
    AgentNetworksOptions o;
    o.host = "h1";
    o.instance = kInstance;
    o.fetch = [this](std::string_view workload) -> absl::StatusOr<HostNetworkPlan> {
      fetched_.push_back(std::string(workload));
      if (!answer_.ok()) return answer_;
      return plan_;
    };
    o.underlay_mtu = [](std::string_view address) -> absl::StatusOr<int> {
      if (address == "192.0.2.1") return 9000;
      return absl::NotFoundError("no such address");
    };
    o.make_netns = [this](const std::string& ns) {
      namespaces_.insert(ns);
      return absl::OkStatus();
    };
    o.netns_exists = [this](const std::string& ns) { return namespaces_.contains(ns); };
    o.delete_netns = [this](const std::string& ns) { namespaces_.erase(ns); };
    o.link_exists = [](const std::string&) { return false; };
    o.port_free = [](std::string_view, int port) {
      return port == 22 ? absl::FailedPreconditionError("is in use on the host: sshd")
                        : absl::OkStatus();
    };
    return o;
  }
  // blue with peers, a group admitting web's members from elsewhere, and `workloads`'s nics.
  void Plan(const std::vector<std::string>& workloads, std::vector<std::string> peers) {
    plan_ = HostNetworkPlan{};
    plan_.local_address = "192.0.2.1";
    plan_.networks.push_back({.name = "blue",
                              .subnet = "10.88.0.0/24",
                              .gateway = "10.88.0.1",
                              .vni = 77,
                              .peers = std::move(peers)});
    plan_.groups.push_back(
        {.name = "db",
         .rules = {{.protocol = "tcp", .port_from = 5432, .port_to = 5432, .from_group = "web"}}});
    plan_.groups.push_back({.name = "web", .remote_members = {"10.88.0.9"}});
    int i = 2;
    for (const auto& w : workloads) {
      plan_.nics.push_back({.workload = w,
                            .network = "blue",
                            .address = Cat("10.88.0.", i++),
                            .prefix_length = 24,
                            .ifname = "eth0",
                            .groups = {"db"}});
    }
  }

  // A TCP forward of `host_port` to `target`:`target_port` on blue, from `source` when given.
  void Forward(int host_port, int target_port, const std::string& source = "") {
    plan_.forwards.push_back({.id = Cat("tcp-", host_port),
                              .protocol = "tcp",
                              .host_port = host_port,
                              .network = "blue",
                              .target_address = "10.88.0.2",
                              .target_port = target_port,
                              .source_address = source});
  }

  rn::FakeNetworkDriver driver_{kInstance};
  CountingDriver counting_{&driver_};
  AgentNetworks networks_;
  HostNetworkPlan plan_;
  absl::Status answer_ = absl::OkStatus();
  std::vector<std::string> fetched_;
  std::set<std::string> namespaces_;
};

TEST_F(AgentNetworksTest, AContainerGetsItsInterfaceOnABridgeTunnelledToThePeers) {
  Plan({"pg"}, {"192.0.2.2", "192.0.2.3"});
  runtime::TaskConfig config;
  ASSERT_TRUE(networks_.Attach(Container("pg", {"blue"}), &config).ok());
  EXPECT_THAT(fetched_, ElementsAre("pg"));  // attach asks the server for this workload

  auto spec = driver_.network_spec("blue");
  ASSERT_TRUE(spec.has_value());
  ASSERT_TRUE(spec->vxlan.has_value());
  EXPECT_EQ(spec->vxlan->vni, 77u);
  EXPECT_EQ(spec->vxlan->local_address, "192.0.2.1");
  EXPECT_THAT(spec->vxlan->peers, ElementsAre("192.0.2.2", "192.0.2.3"));
  EXPECT_EQ(spec->mtu, 9000 - 50);  // the underlay's, less the tunnel's header
  EXPECT_FALSE(spec->dhcp);         // no VM here

  ASSERT_EQ(config.nics.size(), 1u);
  const std::string ns = Cat("berth-", kInstance, "-pg");
  EXPECT_TRUE(namespaces_.contains(ns));
  EXPECT_EQ(config.nics[0].netns_path, "/run/netns/" + ns);
  EXPECT_EQ(config.nics[0].name, "eth0");
  EXPECT_THAT(config.nics[0].addresses, ElementsAre("10.88.0.2/24"));
  // The group's set holds the member on another host; its rule admits web's members.
  const std::string rules = driver_.ruleset();
  EXPECT_THAT(rules, HasSubstr("10.88.0.9"));
  EXPECT_THAT(rules, HasSubstr("tcp dport 5432"));
}

TEST_F(AgentNetworksTest, ALookThatFindsNothingChangedChangesNothing) {
  Plan({"pg"}, {"192.0.2.2"});
  runtime::TaskConfig config;
  ASSERT_TRUE(networks_.Attach(Container("pg", {"blue"}), &config).ok());
  ASSERT_TRUE(networks_.Refresh().ok());  // the first look also sweeps once
  const int before = counting_.changes;
  ASSERT_TRUE(networks_.Refresh().ok());
  ASSERT_TRUE(networks_.Refresh().ok());
  EXPECT_EQ(counting_.changes, before);
  // A new member elsewhere changes that group only.
  plan_.groups[1].remote_members.push_back("10.88.0.10");
  ASSERT_TRUE(networks_.Refresh().ok());
  EXPECT_EQ(counting_.changes, before + 1);
  EXPECT_THAT(driver_.ruleset(), HasSubstr("10.88.0.10"));
}

TEST_F(AgentNetworksTest, ARefreshFollowsPeersAndRemovesNetworksNoLongerPlanned) {
  Plan({"pg"}, {"192.0.2.2"});
  runtime::TaskConfig config;
  ASSERT_TRUE(networks_.Attach(Container("pg", {"blue"}), &config).ok());
  Plan({"pg"}, {"192.0.2.3"});
  ASSERT_TRUE(networks_.Refresh().ok());
  EXPECT_THAT(driver_.network_spec("blue")->vxlan->peers, ElementsAre("192.0.2.3"));
  EXPECT_EQ(fetched_.back(), "");  // a refresh reads the host's whole plan

  // The task goes: its interface and namespace go; the next plan has no network here.
  networks_.Detach("pg");
  EXPECT_THAT(driver_.ListEndpoints("blue"), IsEmpty());
  EXPECT_TRUE(namespaces_.empty());
  plan_ = HostNetworkPlan{.local_address = "192.0.2.1"};
  ASSERT_TRUE(networks_.Refresh().ok());
  EXPECT_FALSE(driver_.network_spec("blue").has_value());
  EXPECT_THAT(driver_.links(), IsEmpty());
}

TEST_F(AgentNetworksTest, AfterARestartTheFirstRefreshAdoptsLiveTasksAndSweepsTheRest) {
  // What an earlier run made: a network nobody plans any more.
  ASSERT_TRUE(driver_.EnsureNetwork({.name = "old", .subnet = "10.99.0.0/24"}, {}).ok());
  // pg's container still runs (its namespace is there); gone's is not.
  namespaces_.insert(Cat("berth-", kInstance, "-pg"));
  Plan({"pg", "gone"}, {});
  ASSERT_TRUE(networks_.Refresh().ok());
  auto endpoints = driver_.ListEndpoints("blue");
  ASSERT_EQ(endpoints.size(), 1u);
  EXPECT_EQ(endpoints[0].id, "pg");
  EXPECT_FALSE(driver_.network_spec("old").has_value());
}

TEST_F(AgentNetworksTest, ForwardsToThisHostsWorkloadsAreMadeUnlessASocketHoldsThePort) {
  Plan({"pg"}, {});
  Forward(15432, 5432);
  Forward(22, 22);
  runtime::TaskConfig config;
  // Port 22 is held here: said, and the workload still starts with its other forward.
  ASSERT_TRUE(networks_.Attach(Container("pg", {"blue"}), &config).ok());
  ASSERT_EQ(config.nics.size(), 1u);
  auto forwards = driver_.ListPortForwards();
  ASSERT_EQ(forwards.size(), 1u);
  EXPECT_EQ(forwards[0].id, "tcp-15432");
  EXPECT_THAT(driver_.ruleset(), HasSubstr("tcp dport 15432 dnat ip to 10.88.0.2:5432"));
  // Said once: the next look does not repeat it. The first look's sweep keeps the forward.
  EXPECT_TRUE(networks_.Refresh().ok());
  EXPECT_EQ(driver_.ListPortForwards().size(), 1u);
  // A forward the plan no longer names is removed.
  plan_.forwards.clear();
  ASSERT_TRUE(networks_.Refresh().ok());
  EXPECT_THAT(driver_.ListPortForwards(), IsEmpty());
}

TEST_F(AgentNetworksTest, AForwardWhoseWorkloadMovesAwayIsMadeAgainFromTheHostsAddress) {
  Plan({"pg"}, {});
  Forward(15432, 5432);
  runtime::TaskConfig config;
  ASSERT_TRUE(networks_.Attach(Container("pg", {"blue"}), &config).ok());
  ASSERT_EQ(driver_.ListPortForwards().size(), 1u);
  EXPECT_EQ(driver_.ListPortForwards()[0].source_address, "");
  // The workload now runs on another host; the forward names this one.
  Plan({}, {"192.0.2.2"});
  Forward(15432, 5432, "10.88.0.250");
  ASSERT_TRUE(networks_.Refresh().ok());
  auto forwards = driver_.ListPortForwards();
  ASSERT_EQ(forwards.size(), 1u);
  EXPECT_EQ(forwards[0].source_address, "10.88.0.250");
  EXPECT_THAT(driver_.ruleset(), HasSubstr("snat ip to 10.88.0.250"));
  // Nothing changed: nothing is made again.
  const int before = counting_.changes;
  ASSERT_TRUE(networks_.Refresh().ok());
  EXPECT_EQ(counting_.changes, before);
}

TEST_F(AgentNetworksTest, ServerErrorsFailTheStartWithTheReason) {
  runtime::TaskConfig config;
  answer_ = absl::NotFoundError("network \"blue\" does not exist");
  absl::Status s = networks_.Attach(Container("pg", {"blue"}), &config);
  EXPECT_THAT(s.message(), HasSubstr("does not exist"));
  EXPECT_TRUE(config.nics.empty());
  EXPECT_TRUE(driver_.ListNetworks().empty());

  // Without networks nothing is asked.
  answer_ = absl::OkStatus();
  fetched_.clear();
  ASSERT_TRUE(networks_.Attach(Container("plain", {}), &config).ok());
  EXPECT_THAT(fetched_, IsEmpty());
}

}  // namespace
}  // namespace berth
