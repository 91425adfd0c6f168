#include "control/fleet_network.h"

#include <string>
#include <vector>

#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using api::wire::HostNetworkPlan;
using core::Json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

core::HostInventory Inventory() {
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu("8");
  inv.capacity.memory = *core::ParseMemory("8Gi");
  inv.capacity.disk = core::DiskMiB(10240);
  inv.drivers = {"container", "vm"};
  return inv;
}

// A container (or VM) on `networks`, each {network, groups...}.
core::WorkloadSpec OnNetworks(const std::string& name,
                              const std::vector<std::vector<std::string>>& networks,
                              const char* kind = "container") {
  Json nets = Json::array();
  for (const auto& n : networks) {
    Json a = {{"network", n[0]}};
    if (n.size() > 1) a["security_groups"] = std::vector<std::string>(n.begin() + 1, n.end());
    nets.push_back(a);
  }
  Json j = {{"name", name},
            {"kind", kind},
            {"image", "busybox"},
            {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
            {"networks", nets}};
  if (std::string(kind) == "container") j["command"] = {"/bin/sleep", "60"};
  auto spec = core::DecodeWorkloadSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

class FleetNetworksTest : public ::testing::Test {
 protected:
  FleetNetworksTest()
      : store_(state::StoreOptions{.clock = &clock_, .lease_tick_interval = absl::ZeroDuration()}),
        cp_(&store_, Options()),
        fleet_(&store_, &clock_, &cp_) {}
  ControlPlaneOptions Options() {
    ControlPlaneOptions o;
    o.clock = &clock_;
    o.host_ttl = absl::Seconds(10);
    return o;
  }
  void SetUp() override {
    for (const char* h : {"h1", "h2", "h3"}) {
      ASSERT_TRUE(cp_.RegisterHost(h, Inventory()).ok());
    }
    ASSERT_TRUE(fleet_.Start().ok());
    ASSERT_TRUE(fleet_.service().CreateNetwork({.name = "blue", .subnet = "10.88.0.0/24"}).ok());
    ASSERT_TRUE(fleet_.service().CreateGroup("web").ok());
    ASSERT_TRUE(fleet_.service().CreateGroup("db").ok());
    RuleAddOptions from_web;
    from_web.ports = "5432";
    from_web.from_group = "web";
    ASSERT_TRUE(fleet_.service().AddRule("db", from_web).ok());
  }
  // Places `spec` on `host` (the others cordoned for the pass).
  void PlaceOn(const std::string& host, const core::WorkloadSpec& spec) {
    for (const char* h : {"h1", "h2", "h3"}) {
      ASSERT_TRUE(cp_.CordonHost(h, h != host).ok());
    }
    ASSERT_TRUE(cp_.CreateWorkload(spec).ok());
    ASSERT_TRUE(cp_.ScheduleOnce().ok());
    auto w = cp_.GetWorkload(spec.name);
    ASSERT_TRUE(w.ok());
    ASSERT_EQ(w->status.host, host);
  }
  void Beat(const std::string& host, const std::string& address) {
    ASSERT_TRUE(cp_.Heartbeat(host, std::nullopt,
                              TaskApiEndpoint{.address = address, .port = 7000, .token = "t"})
                    .ok());
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
  FleetNetworks fleet_;
};

TEST_F(FleetNetworksTest, AHostsPlanHasItsNetworksPeersGroupsAndInterfaces) {
  Beat("h1", "192.0.2.1");
  Beat("h2", "192.0.2.2");
  PlaceOn("h1", OnNetworks("api", {{"blue", "web"}}));
  PlaceOn("h2", OnNetworks("pg", {{"blue", "db"}}));
  PlaceOn("h3", OnNetworks("lonely", {}));

  auto a = fleet_.Attach("h1", "api", "192.0.2.1");
  ASSERT_TRUE(a.ok()) << a.status();
  // Alone on the network so far: no peers yet.
  ASSERT_EQ(a->networks.size(), 1u);
  EXPECT_THAT(a->networks[0].peers, IsEmpty());
  auto p = fleet_.Attach("h2", "pg", "192.0.2.2");
  ASSERT_TRUE(p.ok()) << p.status();

  auto plan = fleet_.PlanFor("h1", "192.0.2.1");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->local_address, "192.0.2.1");
  ASSERT_EQ(plan->networks.size(), 1u);
  EXPECT_EQ(plan->networks[0].name, "blue");
  EXPECT_EQ(plan->networks[0].subnet, "10.88.0.0/24");
  EXPECT_GE(plan->networks[0].vni, 1);
  EXPECT_THAT(plan->networks[0].peers, ElementsAre("192.0.2.2"));
  ASSERT_EQ(plan->nics.size(), 1u);
  EXPECT_EQ(plan->nics[0].workload, "api");
  EXPECT_EQ(plan->nics[0].ifname, "eth0");
  EXPECT_EQ(plan->nics[0].prefix_length, 24);
  EXPECT_FALSE(plan->nics[0].tap);
  const std::string api_address = plan->nics[0].address;
  // h1 enforces web; db is not enforced here and no rule names it.
  ASSERT_EQ(plan->groups.size(), 1u);
  EXPECT_EQ(plan->groups[0].name, "web");

  auto on2 = fleet_.PlanFor("h2", "192.0.2.2");
  ASSERT_TRUE(on2.ok()) << on2.status();
  EXPECT_THAT(on2->networks[0].peers, ElementsAre("192.0.2.1"));
  // db's rule admits web's members: web comes along with api's address as a remote member.
  ASSERT_EQ(on2->groups.size(), 2u);
  EXPECT_EQ(on2->groups[0].name, "db");
  ASSERT_EQ(on2->groups[0].rules.size(), 1u);
  EXPECT_EQ(on2->groups[0].rules[0].from_group, "web");
  EXPECT_EQ(on2->groups[0].rules[0].port_from, 5432);
  EXPECT_EQ(on2->groups[1].name, "web");
  EXPECT_THAT(on2->groups[1].remote_members, ElementsAre(api_address));

  // A host without workloads on Berth networks has nothing to make.
  auto on3 = fleet_.PlanFor("h3", "192.0.2.3");
  ASSERT_TRUE(on3.ok()) << on3.status();
  EXPECT_THAT(on3->networks, IsEmpty());
  EXPECT_THAT(on3->nics, IsEmpty());
}

TEST_F(FleetNetworksTest, AttachKeepsAnAddressAndRefusesAWorkloadPlacedElsewhere) {
  PlaceOn("h1", OnNetworks("api", {{"blue"}}));
  auto first = fleet_.Attach("h1", "api", "192.0.2.1");
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = fleet_.Attach("h1", "api", "192.0.2.1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->nics.at(0).address, first->nics.at(0).address);
  // Without a heartbeat's address, the caller's stands in for the host's own.
  EXPECT_EQ(again->local_address, "192.0.2.1");

  auto elsewhere = fleet_.Attach("h2", "api", "192.0.2.2");
  EXPECT_EQ(elsewhere.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(elsewhere.status().message(), HasSubstr("is on \"h1\""));
  EXPECT_EQ(fleet_.Attach("h1", "nobody", "192.0.2.1").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(FleetNetworksTest, AWorkloadOnAMissingNetworkGetsNoAddressAnywhere) {
  ASSERT_TRUE(fleet_.service().CreateNetwork({.name = "green", .subnet = "10.89.0.0/24"}).ok());
  PlaceOn("h1", OnNetworks("two", {{"blue"}, {"green"}}));
  ASSERT_TRUE(fleet_.service().DeleteNetwork("green").ok());
  auto attached = fleet_.Attach("h1", "two", "192.0.2.1");
  EXPECT_EQ(attached.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(attached.status().message(), HasSubstr("networks[green].network"));
  auto nets = fleet_.service().NetworksOf("two");
  ASSERT_TRUE(nets.ok());
  EXPECT_THAT(*nets, IsEmpty());  // blue's address was given back
}

TEST_F(FleetNetworksTest, DeletingAWorkloadReleasesItsAddresses) {
  PlaceOn("h1", OnNetworks("api", {{"blue"}}));
  ASSERT_TRUE(fleet_.Attach("h1", "api", "192.0.2.1").ok());
  ASSERT_TRUE(store_.Delete(WorkloadKey("api")).ok());
  for (int i = 0; i < 500; ++i) {
    auto nets = fleet_.service().NetworksOf("api");
    ASSERT_TRUE(nets.ok());
    if (nets->empty()) return;
    absl::SleepFor(absl::Milliseconds(10));  // the release thread follows the watch
  }
  FAIL() << "api's address was not released";
}

TEST_F(FleetNetworksTest, AWorkloadMustNameExistingNetworksAndGroups) {
  EXPECT_TRUE(fleet_.CheckReferences(OnNetworks("ok", {{"blue", "web", "db"}})).ok());
  absl::Status s = fleet_.CheckReferences(OnNetworks("w", {{"red"}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("networks[0].network"));
  s = fleet_.CheckReferences(OnNetworks("w", {{"blue", "web", "nope"}}));
  EXPECT_THAT(s.message(), HasSubstr("networks[0].security_groups[1]"));
}

TEST_F(FleetNetworksTest, AForwardIsPlannedForTheHostItsWorkloadRunsOnAndGoesWithIt) {
  PlaceOn("h1", OnNetworks("api", {{"blue"}}));
  ASSERT_TRUE(fleet_.Attach("h1", "api", "192.0.2.1").ok());
  auto f = fleet_.service().AddPortForward({.host_port = 18080, .workload = "api", .port = 80});
  ASSERT_TRUE(f.ok()) << f.status();
  auto on1 = fleet_.PlanFor("h1", "192.0.2.1");
  ASSERT_TRUE(on1.ok()) << on1.status();
  ASSERT_EQ(on1->forwards.size(), 1u);
  EXPECT_EQ(on1->forwards[0].id, "tcp-18080");
  EXPECT_EQ(on1->forwards[0].host_port, 18080);
  EXPECT_EQ(on1->forwards[0].target_address, on1->nics.at(0).address);
  EXPECT_EQ(on1->forwards[0].target_port, 80);
  auto on2 = fleet_.PlanFor("h2", "192.0.2.2");
  ASSERT_TRUE(on2.ok()) << on2.status();
  EXPECT_THAT(on2->forwards, IsEmpty());

  // Deleting the workload removes its forward with its address.
  ASSERT_TRUE(store_.Delete(WorkloadKey("api")).ok());
  for (int i = 0; i < 500; ++i) {
    auto list = fleet_.service().ListPortForwards();
    ASSERT_TRUE(list.ok());
    if (list->empty()) return;
    absl::SleepFor(absl::Milliseconds(10));  // the release thread follows the watch
  }
  FAIL() << "api's forward was not removed";
}

// The addresses held on `network`, by owner.
Json AddressesOn(NetworkService& service, const std::string& network) {
  auto n = service.GetNetwork(network);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? (*n)["status"]["addresses"] : Json();
}

TEST_F(FleetNetworksTest, AForwardAtANamedHostReachesItsWorkloadOnAnotherHost) {
  Beat("h1", "192.0.2.1");
  Beat("h2", "192.0.2.2");
  Beat("h3", "192.0.2.3");
  PlaceOn("h2", OnNetworks("api", {{"blue"}}));
  ASSERT_TRUE(fleet_.Attach("h2", "api", "192.0.2.2").ok());
  const int64_t before = *store_.Revision();
  auto unknown = fleet_.service().AddPortForward(
      {.host_port = 18080, .workload = "api", .port = 80, .host = "h9"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("host \"h9\" is not a registered host"));
  EXPECT_EQ(*store_.Revision(), before);

  auto f = fleet_.service().AddPortForward(
      {.host_port = 18080, .workload = "api", .port = 80, .host = "h1"});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)["spec"]["host"], "h1");
  // h1 holds an address of its own on the network, for the forward to leave from.
  Json addresses = AddressesOn(fleet_.service(), "blue");
  ASSERT_TRUE(addresses.contains(HostAddressOwner("h1"))) << addresses.dump();
  const std::string h1_address = addresses[HostAddressOwner("h1")];
  const std::string api_address = addresses["api"];

  // h1 joins the network (h2 its peer) and makes the forward from its address; it runs no
  // interface of the workload.
  auto on1 = fleet_.PlanFor("h1", "192.0.2.1");
  ASSERT_TRUE(on1.ok()) << on1.status();
  ASSERT_EQ(on1->networks.size(), 1u);
  EXPECT_EQ(on1->networks[0].name, "blue");
  EXPECT_THAT(on1->networks[0].peers, ElementsAre("192.0.2.2"));
  EXPECT_THAT(on1->nics, IsEmpty());
  ASSERT_EQ(on1->forwards.size(), 1u);
  EXPECT_EQ(on1->forwards[0].target_address, api_address);
  EXPECT_EQ(on1->forwards[0].source_address, h1_address);
  // h2 runs the workload and has h1 as a peer, but makes no forward; h3 has no part.
  auto on2 = fleet_.PlanFor("h2", "192.0.2.2");
  ASSERT_TRUE(on2.ok()) << on2.status();
  ASSERT_EQ(on2->networks.size(), 1u);
  EXPECT_THAT(on2->networks[0].peers, ElementsAre("192.0.2.1"));
  EXPECT_THAT(on2->forwards, IsEmpty());
  auto on3 = fleet_.PlanFor("h3", "192.0.2.3");
  ASSERT_TRUE(on3.ok()) << on3.status();
  EXPECT_THAT(on3->networks, IsEmpty());
  EXPECT_THAT(on3->forwards, IsEmpty());

  // A forward at the workload's own host is a plain one there.
  auto same = fleet_.service().AddPortForward(
      {.host_port = 18081, .workload = "api", .port = 80, .host = "h2"});
  ASSERT_TRUE(same.ok()) << same.status();
  on2 = fleet_.PlanFor("h2", "192.0.2.2");
  ASSERT_TRUE(on2.ok()) << on2.status();
  ASSERT_EQ(on2->forwards.size(), 1u);
  EXPECT_EQ(on2->forwards[0].id, "tcp-18081");
  EXPECT_EQ(on2->forwards[0].source_address, "");

  // Removing h1's forward gives its address back, and h1 leaves the network.
  ASSERT_TRUE(fleet_.service().RemovePortForward("tcp-18080").ok());
  EXPECT_FALSE(AddressesOn(fleet_.service(), "blue").contains(HostAddressOwner("h1")));
  on1 = fleet_.PlanFor("h1", "192.0.2.1");
  ASSERT_TRUE(on1.ok()) << on1.status();
  EXPECT_THAT(on1->networks, IsEmpty());
  on2 = fleet_.PlanFor("h2", "192.0.2.2");
  ASSERT_TRUE(on2.ok()) << on2.status();
  EXPECT_THAT(on2->networks[0].peers, IsEmpty());

  // Deleting the workload takes its forwards, and with the last one h2's own address.
  ASSERT_TRUE(AddressesOn(fleet_.service(), "blue").contains(HostAddressOwner("h2")));
  ASSERT_TRUE(store_.Delete(WorkloadKey("api")).ok());
  for (int i = 0; i < 500; ++i) {
    if (AddressesOn(fleet_.service(), "blue").empty()) return;
    absl::SleepFor(absl::Milliseconds(10));  // the release thread follows the watch
  }
  FAIL() << "still held: " << AddressesOn(fleet_.service(), "blue").dump();
}

TEST_F(FleetNetworksTest, RemovingAHostRemovesTheForwardsAtItAndItsAddresses) {
  Beat("h2", "192.0.2.2");
  PlaceOn("h2", OnNetworks("api", {{"blue"}}));
  ASSERT_TRUE(fleet_.Attach("h2", "api", "192.0.2.2").ok());
  ASSERT_TRUE(fleet_.service()
                  .AddPortForward({.host_port = 18080, .workload = "api", .port = 80, .host = "h1"})
                  .ok());
  ASSERT_TRUE(AddressesOn(fleet_.service(), "blue").contains(HostAddressOwner("h1")));
  // h1 goes down (no heartbeat past its TTL) and is removed; h2 keeps beating.
  clock_.Advance(absl::Seconds(30));
  Beat("h2", "192.0.2.2");
  ASSERT_TRUE(cp_.CheckHostsOnce().ok());
  ASSERT_TRUE(cp_.RemoveHost("h1").ok());
  for (int i = 0; i < 500; ++i) {
    auto list = fleet_.service().ListPortForwards();
    ASSERT_TRUE(list.ok());
    if (list->empty()) {
      EXPECT_FALSE(AddressesOn(fleet_.service(), "blue").contains(HostAddressOwner("h1")));
      EXPECT_TRUE(AddressesOn(fleet_.service(), "blue").contains("api"));
      return;
    }
    absl::SleepFor(absl::Milliseconds(10));  // the release thread follows the watch
  }
  FAIL() << "the forward at h1 was not removed";
}

}  // namespace
}  // namespace berth::control
