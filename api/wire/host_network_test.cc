#include "api/wire/host_network.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::api::wire {
namespace {

using core::Json;
using ::testing::HasSubstr;

HostNetworkPlan SomePlan() {
  HostNetworkPlan plan;
  plan.local_address = "10.200.0.2";
  plan.networks.push_back({.name = "blue",
                           .subnet = "10.88.0.0/24",
                           .gateway = "10.88.0.1",
                           .nat = true,
                           .vni = 4242,
                           .peers = {"10.200.0.3", "10.200.0.4"}});
  plan.groups.push_back({.name = "db",
                         .rules = {{.id = "r1",
                                    .protocol = "tcp",
                                    .ports = "",
                                    .port_from = 5432,
                                    .port_to = 5432,
                                    .from_group = "web"}},
                         .remote_members = {"10.88.0.7"}});
  plan.groups.push_back({.name = "web"});
  plan.nics.push_back({.workload = "pg",
                       .network = "blue",
                       .address = "10.88.0.5",
                       .prefix_length = 24,
                       .tap = false,
                       .ifname = "eth0",
                       .groups = {"db"}});
  plan.forwards.push_back({.id = "tcp-18080",
                           .protocol = "tcp",
                           .host_port = 18080,
                           .network = "blue",
                           .target_address = "10.88.0.5",
                           .target_port = 5432});
  plan.forwards.push_back({.id = "tcp-18081",
                           .protocol = "tcp",
                           .host_port = 18081,
                           .network = "blue",
                           .target_address = "10.88.0.9",
                           .target_port = 80,
                           .source_address = "10.88.0.3"});
  return plan;
}

TEST(HostNetworkPlanTest, RoundTrips) {
  const HostNetworkPlan plan = SomePlan();
  auto back = DecodeHostNetworkPlan("h1", EncodeHostNetworkPlan(plan));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, plan);
  auto empty = DecodeHostNetworkPlan("h1", Json::object());
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, HostNetworkPlan{});
}

TEST(HostNetworkPlanTest, ErrorsNameTheHostAndTheField) {
  auto error = [](const std::function<void(Json&)>& spoil) {
    Json j = EncodeHostNetworkPlan(SomePlan());
    spoil(j);
    auto got = DecodeHostNetworkPlan("h1", j);
    EXPECT_FALSE(got.ok());
    return std::string(got.status().message());
  };
  EXPECT_THAT(error([](Json& j) { j["networks"][0]["vni"] = 0; }),
              HasSubstr("host network plan \"h1\": networks[0].vni"));
  EXPECT_THAT(error([](Json& j) { j["networks"][0].erase("vni"); }),
              HasSubstr("networks[0].vni is required"));
  EXPECT_THAT(error([](Json& j) { j["networks"][0]["vni"] = core::kMaxVni + 1; }),
              HasSubstr("networks[0].vni"));
  EXPECT_THAT(error([](Json& j) { j["groups"][0]["rules"][0]["port_from"] = 70000; }),
              HasSubstr("groups[0].rules[0].port_from"));
  EXPECT_THAT(error([](Json& j) { j["groups"][0]["rules"][0]["extra"] = 1; }),
              HasSubstr("groups[0].rules[0]"));
  EXPECT_THAT(error([](Json& j) { j["nics"][0]["prefix_length"] = 31; }),
              HasSubstr("nics[0].prefix_length"));
  EXPECT_THAT(error([](Json& j) { j["nics"] = "eth0"; }), HasSubstr("nics must be a list"));
  EXPECT_THAT(error([](Json& j) { j["forwards"][0]["host_port"] = 0; }),
              HasSubstr("forwards[0].host_port"));
  EXPECT_THAT(error([](Json& j) { j["forwards"][1]["source_address"] = 3; }),
              HasSubstr("forwards[1].source_address"));
  EXPECT_THAT(error([](Json& j) { j["peers"] = Json::array(); }), HasSubstr("peers"));
}

}  // namespace
}  // namespace berth::api::wire
