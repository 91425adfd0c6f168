// One contract suite for every NetworkDriver: the Linux driver (inside namespaces the test
// creates) and the fake. Checks state, validation and that refused input changes nothing.
#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/net/fake_network_driver.h"
#include "runtime/net/linux_network_driver.h"
#include "runtime/net/netns_test_util.h"

namespace berth::runtime::net {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

class NetEnv {
 public:
  virtual ~NetEnv() = default;
  virtual NetworkDriver& driver() = 0;
  virtual std::string container_netns() = 0;
  // A fingerprint of everything the driver made (links and rules), to check nothing changed.
  virtual std::string Observed() = 0;
};

class FakeEnv final : public NetEnv {
 public:
  NetworkDriver& driver() override { return driver_; }
  std::string container_netns() override { return "fake-ns"; }
  std::string Observed() override {
    std::string out = driver_.ruleset();
    for (const auto& l : driver_.links()) out += l + "\n";
    return out;
  }

 private:
  FakeNetworkDriver driver_;
};

class LinuxEnv final : public NetEnv {
 public:
  LinuxEnv()
      : ns_({"h", "c"}),
        state_dir_("/tmp/" + ns_.Name("h") + "-state"),
        driver_({.netns = ns_.Name("h"), .state_dir = state_dir_}) {}
  ~LinuxEnv() override { std::filesystem::remove_all(state_dir_); }
  NetworkDriver& driver() override { return driver_; }
  std::string container_netns() override { return ns_.Name("c"); }
  std::string Observed() override {
    std::string links, rules;
    testing::RunIn(ns_.Name("h"), {"ip", "-br", "link", "show"}, &links);
    testing::RunIn(ns_.Name("h"), {"nft", "list", "ruleset"}, &rules);
    // Each link by name and MAC: its operational state and flags follow the carrier, which
    // the kernel settles on its own time after an attach.
    std::string out;
    for (absl::string_view line : absl::StrSplit(links, '\n', absl::SkipEmpty())) {
      std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
      out += absl::StrCat(f[0], " ", f.size() > 2 ? f[2] : "", "\n");
    }
    return out + rules;
  }

 private:
  testing::TestNamespaces ns_;
  std::string state_dir_;
  LinuxNetworkDriver driver_;
};

struct EnvFactory {
  std::string name;
  std::function<std::unique_ptr<NetEnv>()> make;
  friend void PrintTo(const EnvFactory& f, std::ostream* os) { *os << f.name; }
};

class NetworkContractTest : public ::testing::TestWithParam<EnvFactory> {
 protected:
  void SetUp() override {
    env_ = GetParam().make();
    auto n = driver().EnsureNetwork({.name = "n0", .subnet = "10.0.0.0/16"});
    ASSERT_TRUE(n.ok()) << n.status();
  }
  NetworkDriver& driver() { return env_->driver(); }
  EndpointSpec Container(std::string id, std::string address) {
    return EndpointSpec{.network = "n0",
                        .id = std::move(id),
                        .address = std::move(address),
                        .netns = env_->container_netns()};
  }
  std::unique_ptr<NetEnv> env_;
};

TEST_P(NetworkContractTest, EnsureIsIdempotentAndListed) {
  auto again = driver().EnsureNetwork({.name = "n0", .subnet = "10.0.0.0/16"});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->gateway, "10.0.0.1");
  EXPECT_LE(again->bridge.size(), 15u);
  EXPECT_THAT(driver().ListNetworks(), SizeIs(1));
}

TEST_P(NetworkContractTest, BadInputIsRefusedWithFieldAndChangesNothing) {
  ASSERT_TRUE(driver().AttachEndpoint(Container("a", "10.0.0.2")).ok());
  std::string before = env_->Observed();

  auto s = driver().EnsureNetwork({.name = "n1", .subnet = "10.0.1.0/24"}).status();
  EXPECT_EQ(s.message(),
            "network \"n1\": subnet 10.0.1.0/24 overlaps network \"n0\" (10.0.0.0/16)");
  s = driver().EnsureNetwork({.name = "n0", .subnet = "10.0.0.0/24"}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  s = driver()
          .EnsureNetwork({.name = "n2", .subnet = "10.2.0.0/24", .gateway = "10.3.0.1"})
          .status();
  EXPECT_THAT(s.message(), HasSubstr("gateway 10.3.0.1 is outside subnet 10.2.0.0/24"));
  s = driver().AttachEndpoint(Container("b", "10.1.0.9")).status();
  EXPECT_THAT(s.message(), HasSubstr("address 10.1.0.9 is outside subnet 10.0.0.0/16"));
  s = driver().AttachEndpoint(Container("b", "10.0.0.2")).status();
  EXPECT_THAT(s.message(), HasSubstr("already in use by \"a\""));
  s = driver().AttachEndpoint(Container("a", "10.0.0.3")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  s = driver().PutSecurityGroup(
      {.name = "web", .rules = {{.protocol = Protocol::kTcp, .port_from = 443, .port_to = 80}}});
  EXPECT_THAT(s.message(), HasSubstr("rules[0].port_to"));
  s = driver().AddPortForward({.id = "f",
                               .host_port = 70000,
                               .network = "n0",
                               .target_address = "10.0.0.2",
                               .target_port = 80});
  EXPECT_THAT(s.message(), HasSubstr("host_port must be between 1 and 65535"));
  s = driver().AddPortForward({.id = "f",
                               .host_port = 80,
                               .network = "n9",
                               .target_address = "10.0.0.2",
                               .target_port = 80});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(driver().DeleteNetwork("n9").code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(env_->Observed(), before);
  EXPECT_THAT(driver().ListNetworks(), SizeIs(1));
  EXPECT_THAT(driver().ListEndpoints("n0"), SizeIs(1));
  EXPECT_THAT(driver().ListPortForwards(), SizeIs(0));
}

TEST_P(NetworkContractTest, GroupsInUseCannotBeDeleted) {
  ASSERT_TRUE(driver().PutSecurityGroup({.name = "db"}).ok());
  ASSERT_TRUE(
      driver()
          .PutSecurityGroup(
              {.name = "web",
               .rules = {{.protocol = Protocol::kTcp, .port_from = 80, .source_group = "db"}}})
          .ok());
  EndpointSpec spec = Container("a", "10.0.0.2");
  spec.security_groups = {"web"};
  ASSERT_TRUE(driver().AttachEndpoint(spec).ok());
  EXPECT_EQ(driver().DeleteSecurityGroup("web").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(driver().DeleteSecurityGroup("db").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(driver().SetEndpointGroups("n0", "a", {}).ok());
  EXPECT_TRUE(driver().DeleteSecurityGroup("web").ok());
  EXPECT_TRUE(driver().DeleteSecurityGroup("db").ok());
  EXPECT_EQ(driver().DeleteSecurityGroup("db").code(), absl::StatusCode::kNotFound);
}

TEST_P(NetworkContractTest, DeleteNetworkTakesEndpointsAndForwards) {
  ASSERT_TRUE(driver().AttachEndpoint(Container("a", "10.0.0.2")).ok());
  auto tap = driver().AttachEndpoint(
      {.network = "n0", .id = "vm", .kind = EndpointKind::kTap, .address = "10.0.0.3"});
  ASSERT_TRUE(tap.ok()) << tap.status();
  EXPECT_EQ(tap->host_ifname.substr(0, 2), "bt");
  ASSERT_TRUE(driver()
                  .AddPortForward({.id = "f",
                                   .host_port = 8080,
                                   .network = "n0",
                                   .target_address = "10.0.0.2",
                                   .target_port = 80})
                  .ok());
  EXPECT_EQ(driver()
                .AddPortForward({.id = "g",
                                 .host_port = 8080,
                                 .network = "n0",
                                 .target_address = "10.0.0.3",
                                 .target_port = 80})
                .code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(driver().DetachEndpoint("n0", "vm").ok());
  EXPECT_EQ(driver().DetachEndpoint("n0", "vm").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(driver().DeleteNetwork("n0").ok());
  EXPECT_THAT(driver().ListNetworks(), SizeIs(0));
  EXPECT_THAT(driver().ListEndpoints("n0"), SizeIs(0));
  EXPECT_THAT(driver().ListPortForwards(), SizeIs(0));
  // The subnet is free again.
  EXPECT_TRUE(driver().EnsureNetwork({.name = "n1", .subnet = "10.0.0.0/24"}).ok());
}

TEST_P(NetworkContractTest, CleanupKeepsOnlyTheKeepSet) {
  ASSERT_TRUE(driver().EnsureNetwork({.name = "n1", .subnet = "10.1.0.0/24"}).ok());
  ASSERT_TRUE(driver().AttachEndpoint(Container("a", "10.0.0.2")).ok());
  ASSERT_TRUE(
      driver()
          .AttachEndpoint(
              {.network = "n1", .id = "vm", .kind = EndpointKind::kTap, .address = "10.1.0.5"})
          .ok());
  KeepSet keep;
  keep.networks = {"n1"};
  keep.endpoints = {{"n1", "vm"}};
  ASSERT_TRUE(driver().Cleanup(keep).ok());
  auto nets = driver().ListNetworks();
  ASSERT_THAT(nets, SizeIs(1));
  EXPECT_EQ(nets[0].name, "n1");
  EXPECT_THAT(driver().ListEndpoints("n1"), SizeIs(1));
  EXPECT_THAT(driver().ListEndpoints("n0"), SizeIs(0));
}

std::unique_ptr<NetEnv> MakeFake() { return std::make_unique<FakeEnv>(); }
std::unique_ptr<NetEnv> MakeLinux() { return std::make_unique<LinuxEnv>(); }

INSTANTIATE_TEST_SUITE_P(Drivers, NetworkContractTest,
                         ::testing::Values(EnvFactory{"linux", MakeLinux},
                                           EnvFactory{"fake", MakeFake}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace berth::runtime::net
