#include "runtime/net/network_model.h"

#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime::net {
namespace {

using core::Cat;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

constexpr std::string_view kInst = "1a2b3c4d5e6f7081";
constexpr std::string_view kOther = "9f8e7d6c5b4a3921";

TEST(NetworkModelTest, NamesAreDeterministicAndFitIfnamsiz) {
  EXPECT_EQ(BridgeName(kInst, "n1"), BridgeName(kInst, "n1"));
  EXPECT_NE(BridgeName(kInst, "n1"), BridgeName(kInst, "n2"));
  EXPECT_NE(VethName(kInst, "n1", "a"), VethName(kInst, "n1", "b"));
  EXPECT_NE(VethName(kInst, "n1", "a"), VethName(kInst, "n2", "a"));
  EXPECT_NE(VethName(kInst, "n1", "a"), PeerName(kInst, "n1", "a"));
  EXPECT_NE(TapName(kInst, "n1", "a"), VethName(kInst, "n1", "a"));
  std::string longest(63, 'x');
  for (const auto& n :
       {BridgeName(kInst, longest), VethName(kInst, longest, longest), PeerName(kInst, "a", "b"),
        TapName(kInst, longest, "a"), VxlanName(kInst, longest)}) {
    EXPECT_EQ(n.size(), kLinkNameLength) << n;
    EXPECT_LE(n.size(), 15u) << n;  // IFNAMSIZ - 1
    EXPECT_TRUE(IsInstanceLinkName(kInst, n)) << n;
    EXPECT_FALSE(IsInstanceLinkName(kOther, n)) << n;
  }
  // Readable: kind, then the instance's short id, then the owner's hash.
  EXPECT_EQ(BridgeName(kInst, "n1").substr(0, 6), "bb1a2b");
  EXPECT_EQ(VethName(kInst, "n1", "a").substr(0, 6), "bv1a2b");
  EXPECT_EQ(PeerName(kInst, "n1", "a").substr(0, 6), "bp1a2b");
  EXPECT_EQ(TapName(kInst, "n1", "a").substr(0, 6), "bt1a2b");
  EXPECT_EQ(VxlanName(kInst, "n1").substr(0, 6), "bx1a2b");
  // Pinned: names must not change between releases, or a restart no longer finds its links.
  EXPECT_EQ(BridgeName(kInst, "n1"), "bb1a2b3ecaad514");
  EXPECT_EQ(VethName(kInst, "n1", "web"), "bv1a2b5561e14e1");
  EXPECT_EQ(DeriveMac("n", "a").substr(0, 9), "52:54:00:");
}

TEST(NetworkModelTest, InstancesGetDistinctNamesAndTables) {
  for (std::string_view net : {"default", "n1", "blue"}) {
    EXPECT_NE(BridgeName(kInst, net), BridgeName(kOther, net));
    EXPECT_NE(VxlanName(kInst, net), VxlanName(kOther, net));
    EXPECT_NE(VethName(kInst, net, "web"), VethName(kOther, net, "web"));
    EXPECT_NE(TapName(kInst, net, "vm"), TapName(kOther, net, "vm"));
  }
  EXPECT_EQ(NftTableName(kInst), "berth_1a2b3c4d5e6f7081");
  EXPECT_NE(NftTableName(kInst), NftTableName(kOther));
  // Links of other shapes are never taken for this instance's.
  EXPECT_FALSE(IsInstanceLinkName(kInst, "bbdeadbeef00"));  // an unscoped 12-character name
  EXPECT_FALSE(IsInstanceLinkName(kInst, "eth0"));
  EXPECT_FALSE(IsInstanceLinkName(kInst, "bq1a2b00000000a"));
  EXPECT_FALSE(IsInstanceLinkName(kInst, "bb1a2b00000000G"));
  EXPECT_TRUE(IsInstanceLinkName(kInst, "bb1a2b00000000a"));
}

TEST(NetworkModelTest, InstanceIdsAreStableHexAndDistinct) {
  EXPECT_EQ(InstanceIdOf("/var/lib/berth"), InstanceIdOf("/var/lib/berth"));
  EXPECT_NE(InstanceIdOf("/var/lib/berth"), InstanceIdOf("/var/lib/berth2"));
  EXPECT_NE(ShortInstanceId(InstanceIdOf("/srv/a")), ShortInstanceId(InstanceIdOf("/srv/b")));
  EXPECT_TRUE(ValidInstanceId(InstanceIdOf("/srv/a")));
  EXPECT_EQ(ShortInstanceId(InstanceIdOf("/srv/a")).size(), kShortInstanceIdLength);
  // Pinned: fixed by the hash function, not by the build or the standard library, so the same
  // directory keeps its names across upgrades too.
  EXPECT_EQ(InstanceIdOf("/var/lib/berth"), "0dcc2fa983e0610d");
  // The example in docs/storage-network.md.
  EXPECT_EQ(BridgeName(InstanceIdOf("/var/lib/berth"), "n1"), "bb0dcc3ecaad514");
  EXPECT_FALSE(ValidInstanceId("1a2b"));
  EXPECT_FALSE(ValidInstanceId("1A2B3C4D5E6F7081"));
  EXPECT_FALSE(ValidInstanceId("1a2b3c4d5e6f708g"));
}

TEST(NetworkModelTest, LinkAliasCarriesTheInstance) {
  ParsedLinkAlias a;
  ASSERT_TRUE(ParseLinkAlias(LinkAlias(kInst, "ep", "n1", "web"), &a));
  EXPECT_EQ(a.instance, kInst);
  EXPECT_EQ(a.kind, "ep");
  EXPECT_EQ(a.network, "n1");
  EXPECT_EQ(a.endpoint, "web");
  EXPECT_EQ(LinkAlias(kInst, "net", "n1", ""), "berth:1a2b3c4d5e6f7081:net:n1");
  ASSERT_TRUE(ParseLinkAlias(LinkAlias(kInst, "net", "n1", ""), &a));
  EXPECT_EQ(a.endpoint, "");
  EXPECT_FALSE(ParseLinkAlias("something else", &a));
  EXPECT_FALSE(ParseLinkAlias("berth:net:n1", &a));  // no instance
  EXPECT_FALSE(ParseLinkAlias("berth:1a2b3c4d5e6f7081:net:", &a));
}

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto n = model_.PrepareNetwork({.name = "n1", .subnet = "10.0.0.0/24"});
    ASSERT_TRUE(n.ok()) << n.status();
    model_.CommitNetwork(*n);
  }
  NetworkModel model_{std::string(kInst)};
};

TEST_F(ModelTest, RuleValidationNamesTheField) {
  SecurityGroup g{.name = "web", .rules = {{.protocol = Protocol::kTcp, .port_from = 80}}};
  EXPECT_TRUE(model_.PrepareGroup(g).ok());
  g.rules.push_back({.protocol = Protocol::kTcp, .port_from = 90, .port_to = 20});
  EXPECT_EQ(model_.PrepareGroup(g).message(),
            "security group \"web\": rules[1].port_to must be between port_from (90) and 65535, "
            "got 20");
  g.rules[1] = {.protocol = Protocol::kUdp, .port_from = 70000};
  EXPECT_THAT(model_.PrepareGroup(g).message(), HasSubstr("rules[1].port_from must be between"));
  g.rules[1] = {.protocol = Protocol::kIcmp, .port_from = 5};
  EXPECT_THAT(model_.PrepareGroup(g).message(), HasSubstr("rules[1].port_from must be 0"));
  g.rules[1] = {.protocol = Protocol::kTcp, .port_from = 5, .source_cidr = "10.0.0.1/8"};
  EXPECT_THAT(model_.PrepareGroup(g).message(), HasSubstr("rules[1].source_cidr"));
  g.rules[1] = {.protocol = Protocol::kTcp, .port_from = 5, .source_group = "nope"};
  EXPECT_THAT(model_.PrepareGroup(g).message(), HasSubstr("rules[1].source_group"));
  EXPECT_TRUE(model_.groups().empty());
}

TEST_F(ModelTest, AGroupsSetHoldsItsRemoteMembersBesideItsLocalEndpoints) {
  SecurityGroup g{.name = "db",
                  .rules = {{.protocol = Protocol::kTcp, .port_from = 5432, .source_group = "db"}},
                  .remote_members = {"10.0.0.9", "10.0.0.7", "10.0.0.9"}};
  ASSERT_TRUE(model_.PrepareGroup(g).ok());
  model_.CommitGroup(g);
  auto e = model_.PrepareEndpoint(
      {.network = "n1", .id = "a", .address = "10.0.0.5", .netns = "x", .security_groups = {"db"}});
  ASSERT_TRUE(e.ok()) << e.status();
  model_.CommitEndpoint(*e);
  // Sorted, each once, local and remote alike.
  EXPECT_THAT(RenderNftRuleset(model_), HasSubstr("elements = { 10.0.0.5, 10.0.0.7, 10.0.0.9 }"));
  g.remote_members = {"10.0.0.7", "host-b"};
  EXPECT_EQ(model_.PrepareGroup(g).message(),
            "security group \"db\": remote_members[1] must be an IPv4 address, got \"host-b\"");
}

TEST_F(ModelTest, AnMtuOutsideItsBoundsIsRefusedNamingIt) {
  EXPECT_TRUE(model_.PrepareNetwork({.name = "m", .subnet = "10.1.0.0/24", .mtu = 1450}).ok());
  EXPECT_EQ(
      model_.PrepareNetwork({.name = "m", .subnet = "10.1.0.0/24", .mtu = 100}).status().message(),
      "network \"m\": mtu must be 0 (the default) or between 576 and 9000, got 100");
  EXPECT_FALSE(model_.PrepareNetwork({.name = "m", .subnet = "10.1.0.0/24", .mtu = 9001}).ok());
}

TEST(NetworkModelTest, EveryHostGivesANetworksGatewayTheSameLocalMac) {
  EXPECT_EQ(GatewayMac("blue"), GatewayMac("blue"));
  EXPECT_NE(GatewayMac("blue"), GatewayMac("green"));
  EXPECT_THAT(GatewayMac("blue"), MatchesRegex("02:b7(:[0-9a-f]{2}){4}"));
}

TEST_F(ModelTest, RendersForwardsMasqueradeAndGroupChains) {
  EXPECT_THAT(RenderNftRuleset(model_), Not(HasSubstr("table inet berth_1a2b3c4d5e6f7081 {")));
  // The script only ever names this instance's table.
  EXPECT_EQ(RenderNftRuleset(model_),
            "table inet berth_1a2b3c4d5e6f7081\ndelete table inet berth_1a2b3c4d5e6f7081\n");
  model_.CommitGroup(
      {.name = "web",
       .rules = {{.protocol = Protocol::kTcp, .port_from = 80, .port_to = 81},
                 {.protocol = Protocol::kTcp, .port_from = 22, .source_group = "web"}}});
  auto e = model_.PrepareEndpoint({.network = "n1",
                                   .id = "a",
                                   .address = "10.0.0.5",
                                   .netns = "x",
                                   .security_groups = {"web"}});
  ASSERT_TRUE(e.ok()) << e.status();
  model_.CommitEndpoint(*e);
  ASSERT_TRUE(model_
                  .PrepareForward({.id = "f",
                                   .host_port = 8080,
                                   .network = "n1",
                                   .target_address = "10.0.0.5",
                                   .target_port = 80})
                  .ok());
  model_.CommitForward({.id = "f",
                        .host_port = 8080,
                        .network = "n1",
                        .target_address = "10.0.0.5",
                        .target_port = 80});
  std::string rules = RenderNftRuleset(model_);
  EXPECT_THAT(rules, HasSubstr("table inet berth_1a2b3c4d5e6f7081 {"));
  EXPECT_THAT(rules, Not(HasSubstr("table inet berth {")));
  EXPECT_THAT(rules, HasSubstr("elements = { 10.0.0.5 }"));
  EXPECT_THAT(rules, HasSubstr("tcp dport 8080 dnat ip to 10.0.0.5:80"));
  EXPECT_THAT(rules, HasSubstr("ip daddr 10.0.0.5 jump ep_n1__a"));
  EXPECT_THAT(rules, HasSubstr("tcp dport 80-81 accept"));
  EXPECT_THAT(rules, HasSubstr("ip saddr @g_web tcp dport 22 accept"));
  // No NAT network: only the host's own loopback connections to the forward are masqueraded.
  EXPECT_THAT(rules, Not(HasSubstr("ip saddr 10.0.0.0/24")));
  EXPECT_EQ(RenderDhcpHosts(model_, "n1"), "");  // veth endpoints get no DHCP lease
  PortForward udp{.id = "dns",
                  .protocol = Protocol::kUdp,
                  .host_port = 5353,
                  .network = "n1",
                  .target_address = "10.0.0.5",
                  .target_port = 53};
  ASSERT_TRUE(model_.PrepareForward(udp).ok());
  model_.CommitForward(udp);
  EXPECT_THAT(RenderNftRuleset(model_), HasSubstr("udp dport 5353 dnat ip to 10.0.0.5:53"));
  auto tap = model_.PrepareEndpoint({.network = "n1",
                                     .id = "vm",
                                     .kind = EndpointKind::kTap,
                                     .address = "10.0.0.6",
                                     .mac = "52:54:00:00:00:06"});
  ASSERT_TRUE(tap.ok()) << tap.status();
  model_.CommitEndpoint(*tap);
  EXPECT_EQ(RenderDhcpHosts(model_, "n1"), "52:54:00:00:00:06,10.0.0.6,vm\n");
  model_.RemoveNetwork("n1");
  EXPECT_THAT(RenderNftRuleset(model_), Not(HasSubstr("table inet berth_1a2b3c4d5e6f7081 {")));
}

TEST_F(ModelTest, AForwardedNetworksBridgeCarriesTheHostsLoopbackConnectionsOnly) {
  auto other = model_.PrepareNetwork({.name = "n2", .subnet = "10.0.1.0/24"});
  ASSERT_TRUE(other.ok()) << other.status();
  model_.CommitNetwork(*other);
  EXPECT_THAT(LocalnetBridges(model_), testing::IsEmpty());
  EXPECT_THAT(RenderNftRuleset(model_), Not(HasSubstr("127.0.0.0/8")));
  PortForward f{.id = "f",
                .host_port = 8080,
                .network = "n1",
                .target_address = "10.0.0.5",
                .target_port = 80};
  ASSERT_TRUE(model_.PrepareForward(f).ok());
  model_.CommitForward(f);
  // Only n1 has a forward: its bridge, not n2's, routes 127.0.0.1 to the workload.
  const std::string bridge = model_.FindNetwork("n1")->bridge;
  EXPECT_THAT(LocalnetBridges(model_), testing::ElementsAre(bridge));
  std::string rules = RenderNftRuleset(model_);
  EXPECT_THAT(rules, HasSubstr(Cat("oifname \"", bridge, "\" ip saddr 127.0.0.0/8 masquerade")));
  // Workloads never reach the host's loopback through the bridge, nor pose as it.
  EXPECT_THAT(rules, HasSubstr("type filter hook prerouting priority raw;"));
  EXPECT_THAT(rules, HasSubstr(Cat("iifname \"", bridge, "\" ip daddr 127.0.0.0/8 drop")));
  EXPECT_THAT(rules, HasSubstr(Cat("iifname \"", bridge, "\" ip saddr 127.0.0.0/8 drop")));
  EXPECT_THAT(rules, Not(HasSubstr(model_.FindNetwork("n2")->bridge)));
  model_.RemoveForward("f");
  EXPECT_THAT(LocalnetBridges(model_), testing::IsEmpty());
  EXPECT_THAT(RenderNftRuleset(model_), Not(HasSubstr("127.0.0.0/8")));
}

TEST_F(ModelTest, AForwardToAnotherHostsWorkloadLeavesThroughTheLegFromItsAddress) {
  PortForward f{.id = "f",
                .host_port = 8080,
                .network = "n1",
                .target_address = "10.0.0.5",
                .target_port = 80,
                .source_address = "10.0.0.200"};
  ASSERT_TRUE(model_.PrepareForward(f).ok());
  model_.CommitForward(f);
  PortForward g = f;
  g.id = "g";
  g.host_port = 8081;
  g.target_address = "10.0.0.6";
  ASSERT_TRUE(model_.PrepareForward(g).ok());
  model_.CommitForward(g);
  const std::string leg = LegName(kInst, "n1");
  EXPECT_TRUE(IsInstanceLinkName(kInst, leg));
  EXPECT_TRUE(IsInstanceLinkName(kInst, LegPeerName(kInst, "n1")));
  auto legs = Legs(model_);
  ASSERT_EQ(legs.size(), 1u);
  EXPECT_EQ(legs["n1"],
            (Leg{.link = leg, .address = "10.0.0.200", .targets = {"10.0.0.5", "10.0.0.6"}}));
  const std::string bridge = model_.FindNetwork("n1")->bridge;
  EXPECT_THAT(LocalnetBridges(model_), testing::ElementsAre(bridge, leg));
  std::string rules = RenderNftRuleset(model_);
  EXPECT_THAT(rules, HasSubstr(Cat("oifname \"", leg, "\" snat ip to 10.0.0.200")));
  EXPECT_THAT(rules, Not(HasSubstr(Cat("oifname \"", leg, "\" ip saddr 127.0.0.0/8"))));
  // Nothing from the network reaches the host's loopback through the leg either.
  EXPECT_THAT(rules, HasSubstr(Cat("iifname \"", leg, "\" ip daddr 127.0.0.0/8 drop")));
  // One address per network and host: another is refused, naming the field.
  PortForward h = g;
  h.id = "h";
  h.host_port = 8082;
  h.source_address = "10.0.0.201";
  EXPECT_THAT(model_.PrepareForward(h).message(), HasSubstr("source_address"));
  // A forward to a workload here needs no leg.
  model_.RemoveForward("f");
  model_.RemoveForward("g");
  f.source_address.clear();
  ASSERT_TRUE(model_.PrepareForward(f).ok());
  model_.CommitForward(f);
  EXPECT_THAT(Legs(model_), testing::IsEmpty());
  EXPECT_THAT(RenderNftRuleset(model_), Not(HasSubstr("snat")));
}

TEST_F(ModelTest, EndpointAndForwardValidation) {
  auto e =
      model_.PrepareEndpoint({.network = "n1", .id = "a", .address = "10.1.0.9", .netns = "x"});
  EXPECT_EQ(e.status().message(),
            "endpoint \"a\": network \"n1\": address 10.1.0.9 is outside subnet 10.0.0.0/24");
  e = model_.PrepareEndpoint({.network = "n1", .id = "a", .address = "10.0.0.9"});
  EXPECT_THAT(e.status().message(), HasSubstr("netns must be set"));
  e = model_.PrepareEndpoint({.network = "n1",
                              .id = "a",
                              .address = "10.0.0.9",
                              .mac = "01:00:00:00:00:01",
                              .netns = "x"});
  EXPECT_THAT(e.status().message(), HasSubstr("endpoint \"a\": mac must be a unicast MAC"));
  e = model_.PrepareEndpoint({.network = "n1",
                              .id = "a",
                              .address = "10.0.0.9",
                              .netns = "x",
                              .security_groups = {"ghost"}});
  EXPECT_THAT(e.status().message(), HasSubstr("security_groups[0] names unknown group"));
  e = model_.PrepareEndpoint({.network = "n1", .id = "a", .address = "10.0.0.9", .netns = "x y"});
  EXPECT_THAT(e.status().message(), HasSubstr("endpoint \"a\": netns must be"));
  e = model_.PrepareEndpoint(
      {.network = "n1", .id = "a", .address = "10.0.0.9", .netns = "x", .ifname = "eth 0"});
  EXPECT_THAT(e.status().message(), HasSubstr("endpoint \"a\": ifname must be"));
  PortForward f{
      .id = "f", .host_port = 0, .network = "n1", .target_address = "10.0.0.2", .target_port = 80};
  EXPECT_THAT(model_.PrepareForward(f).message(), HasSubstr("port forward \"f\": host_port"));
  f.host_port = 80;
  f.protocol = Protocol::kIcmp;
  EXPECT_THAT(model_.PrepareForward(f).message(), HasSubstr("protocol must be tcp or udp"));
  f.protocol = Protocol::kUdp;
  f.target_address = "10.9.0.2";
  EXPECT_THAT(model_.PrepareForward(f).message(), HasSubstr("target_address 10.9.0.2 is outside"));
  EXPECT_TRUE(model_.endpoints().empty());
  EXPECT_TRUE(model_.forwards().empty());
}

}  // namespace
}  // namespace berth::runtime::net
