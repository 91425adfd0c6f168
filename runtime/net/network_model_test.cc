#include "runtime/net/network_model.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime::net {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(NetworkModelTest, NamesAreDeterministicAndFitIfnamsiz) {
  EXPECT_EQ(BridgeName("n1"), BridgeName("n1"));
  EXPECT_NE(BridgeName("n1"), BridgeName("n2"));
  EXPECT_NE(VethName("n1", "a"), VethName("n1", "b"));
  EXPECT_NE(VethName("n1", "a"), VethName("n2", "a"));
  std::string longest(63, 'x');
  for (const auto& n : {BridgeName(longest), VethName(longest, longest), PeerName("a", "b"),
                        TapName(longest, "a"), VxlanName(longest)}) {
    EXPECT_LE(n.size(), 15u) << n;
  }
  EXPECT_EQ(DeriveMac("n", "a").substr(0, 9), "52:54:00:");
  std::string kind, net, ep;
  ASSERT_TRUE(ParseLinkAlias(LinkAlias("ep", "n1", "web"), &kind, &net, &ep));
  EXPECT_EQ(kind, "ep");
  EXPECT_EQ(net, "n1");
  EXPECT_EQ(ep, "web");
  EXPECT_FALSE(ParseLinkAlias("something else", &kind, &net, &ep));
}

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto n = model_.PrepareNetwork({.name = "n1", .subnet = "10.0.0.0/24"});
    ASSERT_TRUE(n.ok()) << n.status();
    model_.CommitNetwork(*n);
  }
  NetworkModel model_;
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

TEST_F(ModelTest, RendersForwardsMasqueradeAndGroupChains) {
  EXPECT_THAT(RenderNftRuleset(model_), Not(HasSubstr("table inet berth {")));
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
  EXPECT_THAT(rules, HasSubstr("elements = { 10.0.0.5 }"));
  EXPECT_THAT(rules, HasSubstr("tcp dport 8080 dnat ip to 10.0.0.5:80"));
  EXPECT_THAT(rules, HasSubstr("ip daddr 10.0.0.5 jump ep_n1__a"));
  EXPECT_THAT(rules, HasSubstr("tcp dport 80-81 accept"));
  EXPECT_THAT(rules, HasSubstr("ip saddr @g_web tcp dport 22 accept"));
  EXPECT_THAT(rules, Not(HasSubstr("masquerade")));
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
  EXPECT_THAT(RenderNftRuleset(model_), Not(HasSubstr("table inet berth {")));
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
