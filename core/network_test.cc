#include "core/network.h"

#include "gtest/gtest.h"

namespace berth::core {
namespace {

template <typename Decoded>
void ExpectFieldError(const Decoded& decoded, const std::string& object, const std::string& field) {
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(decoded.status().message());
  EXPECT_NE(message.find(field), std::string::npos) << message << " should name " << field;
  EXPECT_NE(message.find(object), std::string::npos) << message << " should name " << object;
}

TEST(Network, RoundTripsAndLoadsTheEarlierShape) {
  Network n;
  n.name = "lan";
  n.spec = {.subnet = "10.88.0.0/24", .gateway = "10.88.0.1", .nat = true};
  n.status.bridge = "brb-lan";
  n.status.vni = 4242;
  n.revision = 3;
  n.created_at = n.updated_at = absl::FromUnixMillis(1700000000000);
  auto back = DecodeNetwork(EncodeNetwork(n));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, n);

  Json old = Json::parse(R"({"kind":"network","name":"lan","spec":{"subnet":"10.9.0.0/24",
      "gateway":"10.9.0.1","nat":false},"status":{"state":"ready","bridge":"brb-lan"},
      "created_at":"2026-01-02T03:04:05.000Z","updated_at":"2026-01-02T03:04:05.000Z"})");
  auto loaded = DecodeNetwork(old);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->spec.subnet, "10.9.0.0/24");
  Json again = EncodeNetwork(*loaded);
  again.erase("revision");
  EXPECT_EQ(again, old);
}

TEST(Network, ErrorsNameTheField) {
  Network n;
  n.name = "lan";
  Json j = EncodeNetwork(n);
  j["spec"]["nat"] = "yes";
  ExpectFieldError(DecodeNetwork(j), "network \"lan\"", "spec.nat");
  j = EncodeNetwork(n);
  j["status"]["vni"] = kMaxVni + 1;
  ExpectFieldError(DecodeNetwork(j), "network \"lan\"", "status.vni");
  j = EncodeNetwork(n);
  j["status"]["state"] = "gone";
  ExpectFieldError(DecodeNetwork(j), "network \"lan\"", "status.state");
  j = EncodeNetwork(n);
  j["spec"]["mtu"] = 9000;
  ExpectFieldError(DecodeNetwork(j), "network \"lan\"", "spec.mtu");
}

TEST(SecurityGroup, RoundTripsAndLoadsTheEarlierShape) {
  SecurityGroup g;
  g.name = "web";
  g.spec.rules.push_back({.id = "r1",
                          .protocol = "tcp",
                          .ports = "80-90",
                          .port_from = 80,
                          .port_to = 90,
                          .from = "10.0.0.0/8"});
  g.spec.rules.push_back({.id = "r3", .protocol = "icmp", .from_group = "ops"});
  g.status.next_rule = 4;
  g.created_at = g.updated_at = absl::FromUnixMillis(1700000000000);
  auto back = DecodeSecurityGroup(EncodeSecurityGroup(g));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, g);

  Json old = Json::parse(R"({"kind":"secgroup","name":"web","spec":{"rules":[{"id":"r1",
      "protocol":"udp","ports":"53","port_from":53,"port_to":53,"from":"","from_group":""}]},
      "status":{"next_rule":2},"created_at":"2026-01-02T03:04:05.000Z",
      "updated_at":"2026-01-02T03:04:05.000Z"})");
  auto loaded = DecodeSecurityGroup(old);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->spec.rules.size(), 1u);
  EXPECT_EQ(loaded->spec.rules[0].port_to, 53);
  Json again = EncodeSecurityGroup(*loaded);
  again.erase("revision");
  EXPECT_EQ(again, old);
}

TEST(SecurityGroup, ErrorsNameTheField) {
  SecurityGroup g;
  g.name = "web";
  g.spec.rules.push_back(
      {.id = "r1", .protocol = "tcp", .ports = "80", .port_from = 80, .port_to = 80});
  Json j = EncodeSecurityGroup(g);
  j["spec"]["rules"][0]["port_to"] = 70000;
  ExpectFieldError(DecodeSecurityGroup(j), "secgroup \"web\"", "spec.rules[0].port_to");
  j = EncodeSecurityGroup(g);
  j["spec"]["rules"][0]["protocol"] = "sctp";
  ExpectFieldError(DecodeSecurityGroup(j), "secgroup \"web\"", "spec.rules[0].protocol");
  j = EncodeSecurityGroup(g);
  j["status"]["next_rule"] = "two";
  ExpectFieldError(DecodeSecurityGroup(j), "secgroup \"web\"", "status.next_rule");
}

TEST(PortForward, RoundTripsAndLoadsTheEarlierShape) {
  PortForward f;
  f.id = "tcp-8080";
  f.spec = {.protocol = "tcp",
            .host_port = 8080,
            .workload = "web",
            .port = 80,
            .network = "lan",
            .target_address = "10.88.0.2"};
  f.created_at = f.updated_at = absl::FromUnixMillis(1700000000000);
  auto back = DecodePortForward(EncodePortForward(f));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, f);
  EXPECT_FALSE(EncodePortForward(f)["spec"].contains("host"));
  f.spec.host = "gpu-1.example.com";
  back = DecodePortForward(EncodePortForward(f));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->spec.host, "gpu-1.example.com");
  EXPECT_EQ(*back, f);

  Json old = Json::parse(R"({"kind":"portforward","id":"udp-53","spec":{"protocol":"udp",
      "host_port":53,"workload":"dns","port":53,"network":"lan","target_address":"10.88.0.3"},
      "created_at":"2026-01-02T03:04:05.000Z","updated_at":"2026-01-02T03:04:05.000Z"})");
  auto loaded = DecodePortForward(old);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->spec.workload, "dns");
  Json again = EncodePortForward(*loaded);
  again.erase("revision");
  EXPECT_EQ(again, old);
}

TEST(PortForward, ErrorsNameTheField) {
  PortForward f;
  f.id = "tcp-80";
  f.spec.host_port = 80;
  f.spec.port = 80;
  Json j = EncodePortForward(f);
  j["spec"]["host_port"] = 0;
  ExpectFieldError(DecodePortForward(j), "portforward \"tcp-80\"", "spec.host_port");
  j = EncodePortForward(f);
  j["spec"]["protocol"] = "icmp";
  ExpectFieldError(DecodePortForward(j), "portforward \"tcp-80\"", "spec.protocol");
  j = EncodePortForward(f);
  j["spec"]["host"] = 7;
  ExpectFieldError(DecodePortForward(j), "portforward \"tcp-80\"", "spec.host");
  j = EncodePortForward(f);
  j["status"] = Json::object();
  ExpectFieldError(DecodePortForward(j), "portforward \"tcp-80\"", "status");
}

}  // namespace
}  // namespace berth::core
