#include "runtime/net/ipam.h"

#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime::net {
namespace {

using ::testing::HasSubstr;

TEST(IpamTest, ParsesAddressesAndSubnets) {
  EXPECT_EQ(FormatIpv4(*ParseIpv4("10.1.2.3")), "10.1.2.3");
  for (const char* bad :
       {"", "10.1.2", "10.1.2.3.4", "256.1.1.1", "1.2.3.04", "a.b.c.d", "1..2.3"}) {
    EXPECT_FALSE(ParseIpv4(bad).has_value()) << bad;
  }
  auto p = ParseCidr("10.0.0.0/24");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->ToString(), "10.0.0.0/24");
  EXPECT_EQ(p->MaskString(), "255.255.255.0");
  EXPECT_EQ(FormatIpv4(p->Broadcast()), "10.0.0.255");
  EXPECT_THAT(ParseCidr("10.0.0.5/24").status().message(), HasSubstr("no host bits"));
  EXPECT_FALSE(ParseCidr("10.0.0.0").ok());
  EXPECT_FALSE(ParseCidr("10.0.0.0/33").ok());
}

TEST(IpamTest, OverlapNamesBothNetworks) {
  auto n0 = NewNetworkAddressing("n0", "10.0.0.0/16");
  ASSERT_TRUE(n0.ok());
  auto n1 = NewNetworkAddressing("n1", "10.0.0.0/24");
  ASSERT_TRUE(n1.ok());
  absl::Status s = CheckNoOverlap("n1", n1->subnet, {*n0});
  EXPECT_EQ(s.message(),
            "network \"n1\": subnet 10.0.0.0/24 overlaps network \"n0\" (10.0.0.0/16)");
  auto n2 = NewNetworkAddressing("n2", "10.1.0.0/24");
  EXPECT_TRUE(CheckNoOverlap("n2", n2->subnet, {*n0, *n1}).ok());
  // A network never overlaps itself (re-declaring it).
  EXPECT_TRUE(CheckNoOverlap("n0", n0->subnet, {*n0}).ok());
}

TEST(IpamTest, GatewayChecks) {
  EXPECT_EQ(FormatIpv4(NewNetworkAddressing("n", "10.0.0.0/24")->gateway), "10.0.0.1");
  EXPECT_EQ(FormatIpv4(NewNetworkAddressing("n", "10.0.0.0/24", "10.0.0.254")->gateway),
            "10.0.0.254");
  EXPECT_EQ(NewNetworkAddressing("n", "10.0.0.0/24", "10.1.0.1").status().message(),
            "network \"n\": gateway 10.1.0.1 is outside subnet 10.0.0.0/24");
  EXPECT_THAT(NewNetworkAddressing("n", "10.0.0.0/24", "10.0.0.255").status().message(),
              HasSubstr("must be a host address"));
  EXPECT_THAT(NewNetworkAddressing("n", "10.0.0.0/31").status().message(),
              HasSubstr("prefix length"));
  EXPECT_THAT(NewNetworkAddressing("n", "bogus").status().message(),
              HasSubstr("network \"n\": subnet must be a CIDR"));
}

TEST(IpamTest, AllocatesWithoutDuplicatesUntilFull) {
  auto a = NewNetworkAddressing("n", "10.0.0.0/29");  // hosts .1-.6, gateway .1
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->FreeCount(), 5);
  std::set<Ipv4> seen;
  for (int i = 0; i < 5; ++i) {
    auto ip = a->Allocate("w" + std::to_string(i));
    ASSERT_TRUE(ip.ok()) << ip.status();
    EXPECT_TRUE(a->subnet.Contains(*ip));
    EXPECT_NE(*ip, a->gateway);
    EXPECT_TRUE(seen.insert(*ip).second);
  }
  EXPECT_EQ(a->FreeCount(), 0);
  auto full = a->Allocate("w9");
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  // Idempotent for an owner that already holds one.
  EXPECT_EQ(*a->Allocate("w2"), *a->AddressOf("w2"));
  EXPECT_EQ(a->Release("w2"), 1);
  EXPECT_EQ(a->Release("w2"), 0);
  auto again = a->Allocate("w9");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(a->FreeCount(), 0);
}

TEST(IpamTest, StaticRequestsAreChecked) {
  auto a = NewNetworkAddressing("n1", "10.0.0.0/24");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(FormatIpv4(*a->AllocateText("web", "10.0.0.9")), "10.0.0.9");
  auto before = a->allocations;
  EXPECT_EQ(a->AllocateText("db", "10.1.0.9").status().message(),
            "network \"n1\": address 10.1.0.9 is outside subnet 10.0.0.0/24");
  EXPECT_EQ(a->AllocateText("db", "10.0.0.9").status().message(),
            "network \"n1\": address 10.0.0.9 is already in use by \"web\"");
  EXPECT_THAT(a->AllocateText("db", "10.0.0.1").status().message(), HasSubstr("gateway"));
  EXPECT_THAT(a->AllocateText("db", "10.0.0.255").status().message(),
              HasSubstr("not a host address"));
  EXPECT_THAT(a->AllocateText("db", "10.0.0").status().message(),
              HasSubstr("address must be an IPv4 address"));
  EXPECT_THAT(a->AllocateText("web", "10.0.0.10").status().message(),
              HasSubstr("already holds 10.0.0.9"));
  EXPECT_EQ(a->allocations, before);  // failures change nothing
  // The automatic allocator skips the static one.
  for (int i = 0; i < 10; ++i)
    EXPECT_NE(FormatIpv4(*a->Allocate("x" + std::to_string(i))), "10.0.0.9");
}

TEST(IpamTest, JsonRoundTrip) {
  auto a = NewNetworkAddressing("n", "192.168.10.0/24", "192.168.10.254");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->Allocate("a").ok());
  ASSERT_TRUE(a->AllocateText("b", "192.168.10.77").ok());
  auto back = NetworkAddressing::FromJson(a->ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->network, "n");
  EXPECT_EQ(back->subnet, a->subnet);
  EXPECT_EQ(back->gateway, a->gateway);
  EXPECT_EQ(back->allocations, a->allocations);
  EXPECT_FALSE(NetworkAddressing::FromJson(nlohmann::json{{"network", "n"}}).ok());
}

}  // namespace
}  // namespace berth::runtime::net
