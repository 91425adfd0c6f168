// End-to-end tests of the Linux network driver, as root, entirely inside network namespaces the
// test creates: "h" plays the host, "a" and "b" containers, "c" a machine outside the host.
#include "runtime/net/linux_network_driver.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/host/process.h"
#include "runtime/net/netns_test_util.h"

namespace berth::runtime::net {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::RunIn;
using testing::TcpReachable;
using testing::TcpServer;

constexpr absl::Duration kReachable = absl::Seconds(20);  // generous: a slow machine still passes
constexpr absl::Duration kBlocked = absl::Milliseconds(700);

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The pid in a dnsmasq pid file when that process is alive (not a zombie), else 0.
int LiveDhcpPid(const std::string& dir) {
  int pid = 0;
  std::ifstream(dir + "/pid") >> pid;
  return pid > 0 && host::IsRunning({.pid = pid}) ? pid : 0;
}

TEST(InstanceIdForDirTest, SameDirectorySameIdOtherDirectoryOtherId) {
  char tmpl[] = "/tmp/berth-instance-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string root = tmpl;
  std::filesystem::create_directories(root + "/a/net");
  std::filesystem::create_directories(root + "/b/net");
  std::filesystem::create_directory_symlink(root + "/a", root + "/link");
  const std::string a = InstanceIdForDir(root + "/a/net");
  EXPECT_TRUE(ValidInstanceId(a)) << a;
  // Every spelling of the same directory gives the same id.
  EXPECT_EQ(InstanceIdForDir(root + "/a/net/"), a);
  EXPECT_EQ(InstanceIdForDir(root + "/b/../a/net"), a);
  EXPECT_EQ(InstanceIdForDir(root + "/link/net"), a);
  EXPECT_EQ(InstanceIdForDir(root + "//a/./net"), a);
  // Other directories: other ids, also in the part interface names carry.
  const std::string b = InstanceIdForDir(root + "/b/net");
  EXPECT_NE(b, a);
  EXPECT_NE(ShortInstanceId(b), ShortInstanceId(a));
  EXPECT_NE(BridgeName(a, "default"), BridgeName(b, "default"));
  // A driver left to choose takes the id of its state directory.
  LinuxNetworkDriver driver({.state_dir = root + "/a/net"});
  EXPECT_EQ(driver.instance(), a);
  LinuxNetworkDriver pinned({.state_dir = root + "/a/net", .instance = b});
  EXPECT_EQ(pinned.instance(), b);
  std::filesystem::remove_all(root);
}

class LinuxNetworkDriverTest : public ::testing::Test {
 protected:
  LinuxNetworkDriverTest()
      : ns_({"h", "a", "b", "c"}),
        state_dir_("/tmp/" + ns_.Name("h") + "-state"),
        driver_({.netns = ns_.Name("h"), .state_dir = state_dir_}) {}
  void SetUp() override {
    ASSERT_TRUE(ns_.ok());
    auto n = driver().EnsureNetwork({.name = "n1", .subnet = "10.10.0.0/24"});
    ASSERT_TRUE(n.ok()) << n.status();
    for (auto [id, addr] : {std::pair{"a", "10.10.0.2"}, std::pair{"b", "10.10.0.3"}}) {
      auto e = driver().AttachEndpoint(
          {.network = "n1", .id = id, .address = addr, .netns = ns_.Name(id)});
      ASSERT_TRUE(e.ok()) << e.status();
    }
  }
  void TearDown() override {
    (void)driver().Cleanup({});
    std::filesystem::remove_all(state_dir_);
  }
  NetworkDriver& driver() { return driver_; }
  const std::string& I() const { return driver_.instance(); }
  std::string Host() { return ns_.Name("h"); }
  std::string Links() {
    std::string out;
    RunIn(Host(), {"ip", "-br", "link", "show"}, &out);
    return out;
  }
  std::string Rules() {
    std::string out;
    RunIn(Host(), {"nft", "list", "ruleset"}, &out);
    return out;
  }
  // The "outside" machine c, linked to h over 198.18.0.0/30.
  void ConnectOutside() {
    ASSERT_EQ(RunIn(Host(), {"ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1",
                             "netns", ns_.Name("c")}),
              0);
    ASSERT_EQ(RunIn(Host(), {"ip", "addr", "add", "198.18.0.1/30", "dev", "up0"}), 0);
    ASSERT_EQ(RunIn(Host(), {"ip", "link", "set", "up0", "up"}), 0);
    ASSERT_EQ(RunIn(ns_.Name("c"), {"ip", "addr", "add", "198.18.0.2/30", "dev", "up1"}), 0);
    ASSERT_EQ(RunIn(ns_.Name("c"), {"ip", "link", "set", "up1", "up"}), 0);
  }

  testing::TestNamespaces ns_;
  std::string state_dir_;
  LinuxNetworkDriver driver_;
};

TEST_F(LinuxNetworkDriverTest, TwoContainersReachEachOtherByIp) {
  std::string out;
  EXPECT_EQ(RunIn(ns_.Name("a"), {"busybox", "ping", "-c", "1", "-W", "20", "10.10.0.3"}, &out), 0)
      << out;
  EXPECT_EQ(RunIn(ns_.Name("b"), {"busybox", "ping", "-c", "1", "-W", "20", "10.10.0.2"}, &out), 0)
      << out;
  // And their gateway on the host's bridge.
  EXPECT_EQ(RunIn(ns_.Name("a"), {"busybox", "ping", "-c", "1", "-W", "20", "10.10.0.1"}, &out), 0)
      << out;
  TcpServer server(ns_.Name("b"));
  ASSERT_GT(server.port(), 0);
  EXPECT_TRUE(TcpReachable(ns_.Name("a"), "10.10.0.3", server.port(), kReachable));
}

TEST_F(LinuxNetworkDriverTest, HeldRulesStayOnTheHostUntilTheWholeNewSetIsReleased) {
  ASSERT_TRUE(driver().PutSecurityGroup({.name = "g"}).ok());
  ASSERT_TRUE(driver().SetEndpointGroups("n1", "b", {"g"}).ok());
  const std::string guarded = Rules();
  ASSERT_THAT(guarded, HasSubstr("10.10.0.3"));  // b's address, in g's set
  driver().HoldRules();
  // Re-declared from scratch (as after a restart): the model passes through states naming no
  // endpoint, and the host's rules stay as they were meanwhile.
  ASSERT_TRUE(driver().SetEndpointGroups("n1", "b", {}).ok());
  ASSERT_TRUE(driver().PutSecurityGroup({.name = "g"}).ok());
  EXPECT_EQ(Rules(), guarded);
  ASSERT_TRUE(driver().SetEndpointGroups("n1", "b", {"g"}).ok());
  ASSERT_TRUE(driver().ReleaseRules().ok());
  EXPECT_THAT(Rules(), HasSubstr("10.10.0.3"));
  // Released, changes reach the host at once again.
  ASSERT_TRUE(driver().SetEndpointGroups("n1", "b", {}).ok());
  EXPECT_NE(Rules(), guarded);
}

TEST_F(LinuxNetworkDriverTest, SecurityGroupBlocksThenAllows) {
  TcpServer server(ns_.Name("b"));
  ASSERT_GT(server.port(), 0);
  ASSERT_TRUE(TcpReachable(ns_.Name("a"), "10.10.0.3", server.port(), kReachable));

  // A group that allows only ssh: b's server port is now refused.
  ASSERT_TRUE(driver()
                  .PutSecurityGroup(
                      {.name = "locked", .rules = {{.protocol = Protocol::kTcp, .port_from = 22}}})
                  .ok());
  ASSERT_TRUE(driver().SetEndpointGroups("n1", "b", {"locked"}).ok());
  EXPECT_FALSE(TcpReachable(ns_.Name("a"), "10.10.0.3", server.port(), kBlocked));

  // A rule for the server's port from a's subnet lets it through again.
  ASSERT_TRUE(driver()
                  .PutSecurityGroup({.name = "locked",
                                     .rules = {{.protocol = Protocol::kTcp, .port_from = 22},
                                               {.protocol = Protocol::kTcp,
                                                .port_from = server.port(),
                                                .source_cidr = "10.10.0.0/24"}}})
                  .ok());
  EXPECT_TRUE(TcpReachable(ns_.Name("a"), "10.10.0.3", server.port(), kReachable));

  // Source-group rules: only members of "clients" may connect.
  ASSERT_TRUE(driver().PutSecurityGroup({.name = "clients"}).ok());
  ASSERT_TRUE(driver()
                  .PutSecurityGroup({.name = "locked",
                                     .rules = {{.protocol = Protocol::kTcp,
                                                .port_from = server.port(),
                                                .source_group = "clients"}}})
                  .ok());
  EXPECT_FALSE(TcpReachable(ns_.Name("a"), "10.10.0.3", server.port(), kBlocked));
  ASSERT_TRUE(driver().SetEndpointGroups("n1", "a", {"clients"}).ok());
  EXPECT_TRUE(TcpReachable(ns_.Name("a"), "10.10.0.3", server.port(), kReachable));

  // A protected endpoint still reaches others (its replies are established traffic).
  TcpServer server_a(ns_.Name("a"));
  ASSERT_TRUE(driver().SetEndpointGroups("n1", "a", {}).ok());
  EXPECT_TRUE(TcpReachable(ns_.Name("b"), "10.10.0.2", server_a.port(), kReachable));
}

TEST_F(LinuxNetworkDriverTest, PortForwardReachesContainerFromOutsideAndFromHost) {
  ConnectOutside();
  TcpServer server(ns_.Name("b"));
  ASSERT_GT(server.port(), 0);
  int host_port = testing::FreePort(Host());
  ASSERT_GT(host_port, 0);
  EXPECT_FALSE(TcpReachable(ns_.Name("c"), "198.18.0.1", host_port, kBlocked));
  ASSERT_TRUE(driver()
                  .AddPortForward({.id = "web",
                                   .protocol = Protocol::kTcp,
                                   .host_port = host_port,
                                   .network = "n1",
                                   .target_address = "10.10.0.3",
                                   .target_port = server.port()})
                  .ok());
  EXPECT_TRUE(TcpReachable(ns_.Name("c"), "198.18.0.1", host_port, kReachable));
  EXPECT_TRUE(TcpReachable(Host(), "198.18.0.1", host_port, kReachable));
  // The host reaches it at 127.0.0.1 too: the bridge routes loopback while the forward lasts.
  EXPECT_TRUE(TcpReachable(Host(), "127.0.0.1", host_port, kReachable));
  const std::string bridge = BridgeName(I(), "n1");
  auto localnet = [&] {
    std::string out;
    RunIn(Host(), {"sysctl", "-n", "net.ipv4.conf." + bridge + ".route_localnet"}, &out);
    return out;
  };
  EXPECT_EQ(localnet(), "1\n");
  ASSERT_TRUE(driver().RemovePortForward("web").ok());
  EXPECT_FALSE(TcpReachable(ns_.Name("c"), "198.18.0.1", host_port, kBlocked));
  EXPECT_FALSE(TcpReachable(Host(), "127.0.0.1", host_port, kBlocked));
  EXPECT_EQ(localnet(), "0\n");
}

// A workload on another host of the network stands in as namespace c plugged straight into
// the bridge (as the tunnel would bring it), unknown to the driver: the forward reaches it
// through the host's leg, from the leg's address, and c's answers come back to the leg.
TEST_F(LinuxNetworkDriverTest, ForwardToAWorkloadElsewhereLeavesFromTheHostsLeg) {
  auto net = driver().ListNetworks();
  ASSERT_EQ(net.size(), 1u);
  ASSERT_EQ(RunIn(Host(), {"ip", "link", "add", "farport", "type", "veth", "peer", "name", "eth0",
                           "netns", ns_.Name("c")}),
            0);
  ASSERT_EQ(RunIn(Host(), {"ip", "link", "set", "farport", "master", net[0].bridge, "up"}), 0);
  for (const std::vector<std::string>& cmd :
       {std::vector<std::string>{"ip", "addr", "add", "10.10.0.9/24", "dev", "eth0"},
        {"ip", "link", "set", "eth0", "up"},
        {"ip", "route", "add", "default", "via", "10.10.0.1"}}) {
    ASSERT_EQ(RunIn(ns_.Name("c"), cmd), 0);
  }
  TcpServer server(ns_.Name("c"));
  ASSERT_GT(server.port(), 0);
  const int host_port = testing::FreePort(Host());
  ASSERT_GT(host_port, 0);
  PortForward f{.id = "far",
                .protocol = Protocol::kTcp,
                .host_port = host_port,
                .network = "n1",
                .target_address = "10.10.0.9",
                .target_port = server.port(),
                .source_address = "10.10.0.250"};
  // The leg's address must be on the network, and not its gateway or the target.
  for (const char* bad : {"10.11.0.250", "10.10.0.1", "10.10.0.9", "ten"}) {
    PortForward wrong = f;
    wrong.source_address = bad;
    absl::Status s = driver().AddPortForward(wrong);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad << ": " << s;
    EXPECT_THAT(s.message(), HasSubstr("source_address")) << bad;
  }
  EXPECT_THAT(Links(), Not(HasSubstr(LegName(I(), "n1"))));
  ASSERT_TRUE(driver().AddPortForward(f).ok());
  const std::string leg = LegName(I(), "n1");
  EXPECT_THAT(Links(), HasSubstr(leg));
  // From the host itself (127.0.0.1 too) and from a workload here, at the gateway.
  EXPECT_TRUE(TcpReachable(Host(), "127.0.0.1", host_port, kReachable));
  EXPECT_TRUE(TcpReachable(ns_.Name("a"), "10.10.0.1", host_port, kReachable));
  // c answered the leg's address, resolved to the leg's own MAC (not the bridge's).
  std::string leg_link, neigh;
  RunIn(Host(), {"ip", "-br", "link", "show", "dev", leg}, &leg_link);
  RunIn(ns_.Name("c"), {"ip", "neigh", "show", "10.10.0.250"}, &neigh);
  std::vector<std::string> words = absl::StrSplit(leg_link, ' ', absl::SkipWhitespace());
  ASSERT_GE(words.size(), 3u) << leg_link;
  EXPECT_THAT(neigh, HasSubstr(words[2])) << leg_link;
  // A second forward on the network must leave from the same address.
  PortForward other = f;
  other.id = "far2";
  other.host_port = host_port + 1;
  other.source_address = "10.10.0.251";
  EXPECT_THAT(driver().AddPortForward(other).message(), HasSubstr("source_address"));
  // The leg goes with the last forward that needs it.
  ASSERT_TRUE(driver().RemovePortForward("far").ok());
  EXPECT_THAT(Links(), Not(HasSubstr(leg)));
  EXPECT_FALSE(TcpReachable(Host(), "127.0.0.1", host_port, kBlocked));
  std::string routes;
  RunIn(Host(), {"ip", "route", "show"}, &routes);
  EXPECT_THAT(routes, Not(HasSubstr("10.10.0.9")));
}

TEST_F(LinuxNetworkDriverTest, DhcpServesStaticLeaseToTapMac) {
  ASSERT_TRUE(driver().EnsureNetwork({.name = "n1", .subnet = "10.10.0.0/24", .dhcp = true}).ok());
  auto tap = driver().AttachEndpoint({.network = "n1",
                                      .id = "vm",
                                      .kind = EndpointKind::kTap,
                                      .address = "10.10.0.50",
                                      .mac = "52:54:00:aa:bb:cc"});
  ASSERT_TRUE(tap.ok()) << tap.status();
  EXPECT_THAT(Links(), HasSubstr(tap->host_ifname));
  std::string dir = driver_.DhcpDir("n1");
  std::ifstream hosts(dir + "/hosts");
  std::stringstream text;
  text << hosts.rdbuf();
  EXPECT_EQ(text.str(), "52:54:00:aa:bb:cc,10.10.0.50,vm\n");

  // Stand in for the VM: a client in namespace c, plugged into the bridge, with the tap's MAC.
  auto net = driver().ListNetworks();
  ASSERT_EQ(RunIn(Host(), {"ip", "link", "add", "vmport", "type", "veth", "peer", "name", "eth0",
                           "netns", ns_.Name("c")}),
            0);
  ASSERT_EQ(RunIn(Host(), {"ip", "link", "set", "vmport", "master", net[0].bridge, "up"}), 0);
  ASSERT_EQ(
      RunIn(ns_.Name("c"), {"ip", "link", "set", "eth0", "address", "52:54:00:aa:bb:cc", "up"}), 0);
  std::string out;
  EXPECT_EQ(RunIn(ns_.Name("c"),
                  {"busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "20", "-T", "1", "-s",
                   "/bin/true"},
                  &out),
            0)
      << out;
  std::ifstream leases(dir + "/leases");
  std::stringstream lease_text;
  lease_text << leases.rdbuf();
  EXPECT_THAT(lease_text.str(), HasSubstr("52:54:00:aa:bb:cc 10.10.0.50"));

  // Teardown stops dnsmasq.
  std::ifstream pid_file(dir + "/pid");
  int pid = 0;
  pid_file >> pid;
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(driver().DeleteNetwork("n1").ok());
  EXPECT_FALSE(std::filesystem::exists(dir));
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(stat)), {});
  EXPECT_TRUE(s.empty() || s.find(") Z") != std::string::npos) << s;
}

TEST_F(LinuxNetworkDriverTest, TeardownLeavesNothing) {
  ASSERT_TRUE(driver().PutSecurityGroup({.name = "g"}).ok());
  ASSERT_TRUE(driver().SetEndpointGroups("n1", "a", {"g"}).ok());
  ASSERT_TRUE(driver()
                  .AddPortForward({.id = "f",
                                   .host_port = 1000,
                                   .network = "n1",
                                   .target_address = "10.10.0.2",
                                   .target_port = 80})
                  .ok());
  ASSERT_TRUE(
      driver()
          .EnsureNetwork(
              {.name = "n1",
               .subnet = "10.10.0.0/24",
               .nat = true,
               .vxlan = VxlanSpec{.vni = 42, .local_address = "127.0.0.1", .peers = {"127.0.0.2"}},
               .mtu = 1450})
          .ok());
  auto tap = driver().AttachEndpoint(
      {.network = "n1", .id = "vm", .kind = EndpointKind::kTap, .address = "10.10.0.9"});
  ASSERT_TRUE(tap.ok()) << tap.status();
  std::string links = Links();
  for (const auto& name :
       {BridgeName(I(), "n1"), VethName(I(), "n1", "a"), VethName(I(), "n1", "b"),
        TapName(I(), "n1", "vm"), VxlanName(I(), "n1")}) {
    EXPECT_THAT(links, HasSubstr(name));
  }
  std::string fdb;
  RunIn(Host(), {"bridge", "fdb", "show", "dev", VxlanName(I(), "n1")}, &fdb);
  EXPECT_THAT(fdb, HasSubstr("dst 127.0.0.2"));
  // New peers change the flood list in place; the tunnel stays on the bridge.
  ASSERT_TRUE(driver()
                  .EnsureNetwork({.name = "n1",
                                  .subnet = "10.10.0.0/24",
                                  .nat = true,
                                  .vxlan = VxlanSpec{.vni = 42,
                                                     .local_address = "127.0.0.1",
                                                     .peers = {"127.0.0.3", "127.0.0.4"}}})
                  .ok());
  RunIn(Host(), {"bridge", "fdb", "show", "dev", VxlanName(I(), "n1")}, &fdb);
  EXPECT_THAT(fdb, Not(HasSubstr("dst 127.0.0.2")));
  EXPECT_THAT(fdb, HasSubstr("dst 127.0.0.3"));
  EXPECT_THAT(fdb, HasSubstr("dst 127.0.0.4"));
  std::string vx_link;
  RunIn(Host(), {"ip", "link", "show", "dev", VxlanName(I(), "n1")}, &vx_link);
  EXPECT_THAT(vx_link, HasSubstr("master " + BridgeName(I(), "n1")));
  // The tunnel, the bridge and the VM's tap take the network's MTU; the bridge answers for the
  // gateway with the MAC every host gives it.
  EXPECT_THAT(vx_link, HasSubstr("mtu 1450"));
  std::string br_link;
  RunIn(Host(), {"ip", "link", "show", "dev", BridgeName(I(), "n1")}, &br_link);
  EXPECT_THAT(br_link, HasSubstr("mtu 1450"));
  EXPECT_THAT(br_link, HasSubstr(GatewayMac("n1")));
  std::string tap_link;
  RunIn(Host(), {"ip", "link", "show", "dev", TapName(I(), "n1", "vm")}, &tap_link);
  EXPECT_THAT(tap_link, HasSubstr("mtu 1450"));
  std::string rules = Rules();
  EXPECT_THAT(rules, HasSubstr("table inet " + NftTableName(I())));
  EXPECT_THAT(rules, HasSubstr("masquerade"));

  ASSERT_TRUE(driver().DeleteNetwork("n1").ok());
  ASSERT_TRUE(driver().DeleteSecurityGroup("g").ok());
  links = Links();
  for (const auto& name :
       {BridgeName(I(), "n1"), VethName(I(), "n1", "a"), VethName(I(), "n1", "b"),
        TapName(I(), "n1", "vm"), VxlanName(I(), "n1")}) {
    EXPECT_THAT(links, Not(HasSubstr(name)));
  }
  EXPECT_THAT(Rules(), Not(HasSubstr("berth")));
  // The containers' ends went with their pairs.
  std::string a_links;
  RunIn(ns_.Name("a"), {"ip", "-br", "link", "show"}, &a_links);
  EXPECT_THAT(a_links, Not(HasSubstr("eth0")));
}

TEST_F(LinuxNetworkDriverTest, CleanupAfterRestartRemovesWhatIsNotKept) {
  ASSERT_TRUE(driver().EnsureNetwork({.name = "n2", .subnet = "10.20.0.0/24", .dhcp = true}).ok());
  ASSERT_TRUE(
      driver()
          .AttachEndpoint(
              {.network = "n2", .id = "vm", .kind = EndpointKind::kTap, .address = "10.20.0.5"})
          .ok());
  ASSERT_TRUE(driver()
                  .AddPortForward({.id = "f",
                                   .host_port = 1000,
                                   .network = "n1",
                                   .target_address = "10.10.0.2",
                                   .target_port = 80})
                  .ok());
  // The agent restarts: a new driver re-declares only n1 and endpoint a.
  LinuxNetworkDriver fresh({.netns = Host(), .state_dir = state_dir_});
  NetworkDriver& d = fresh;
  ASSERT_TRUE(d.EnsureNetwork({.name = "n1", .subnet = "10.10.0.0/24"}).ok());
  KeepSet keep;
  keep.networks = {"n1"};
  keep.endpoints = {{"n1", "a"}};
  ASSERT_TRUE(d.Cleanup(keep).ok());
  // Re-declaring the kept container adopts its surviving veth; it still reaches the gateway.
  auto adopted = d.AttachEndpoint(
      {.network = "n1", .id = "a", .address = "10.10.0.2", .netns = ns_.Name("a")});
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  std::string out;
  EXPECT_EQ(RunIn(ns_.Name("a"), {"busybox", "ping", "-c", "1", "-W", "20", "10.10.0.1"}, &out), 0)
      << out;
  std::string links = Links();
  EXPECT_THAT(links, HasSubstr(BridgeName(I(), "n1")));
  EXPECT_THAT(links, HasSubstr(VethName(I(), "n1", "a")));
  EXPECT_THAT(links, Not(HasSubstr(VethName(I(), "n1", "b"))));
  EXPECT_THAT(links, Not(HasSubstr(BridgeName(I(), "n2"))));
  EXPECT_THAT(links, Not(HasSubstr(TapName(I(), "n2", "vm"))));
  EXPECT_FALSE(std::filesystem::exists(fresh.DhcpDir("n2")));
  EXPECT_THAT(Rules(), Not(HasSubstr("dnat")));
}

// Two Berth instances (two data directories) in one namespace, each with a network "n1" and a
// VM "vm" on it: a restart of the second, its cleanup and its deleting its network leave the
// first's bridge, links, nftables table and dnsmasq alone and working.
TEST_F(LinuxNetworkDriverTest, TwoInstancesInOneNamespaceNeverTouchEachOther) {
  ASSERT_TRUE(driver().EnsureNetwork({.name = "n1", .subnet = "10.10.0.0/24", .dhcp = true}).ok());
  auto tap = driver().AttachEndpoint({.network = "n1",
                                      .id = "vm",
                                      .kind = EndpointKind::kTap,
                                      .address = "10.10.0.50",
                                      .mac = "52:54:00:aa:bb:01"});
  ASSERT_TRUE(tap.ok()) << tap.status();
  TcpServer server(ns_.Name("b"));
  ASSERT_GT(server.port(), 0);
  const int host_port = testing::FreePort(Host());
  ASSERT_GT(host_port, 0);
  ASSERT_TRUE(driver()
                  .AddPortForward({.id = "web",
                                   .host_port = host_port,
                                   .network = "n1",
                                   .target_address = "10.10.0.3",
                                   .target_port = server.port()})
                  .ok());
  const std::string a_dhcp = driver_.DhcpDir("n1");
  const int a_dnsmasq = LiveDhcpPid(a_dhcp);
  ASSERT_GT(a_dnsmasq, 0);

  // The second instance: the same network and VM names, its own data directory.
  const std::string b_state = "/tmp/" + Host() + "-state-b";
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() { std::filesystem::remove_all(dir); }
  } remove_b{b_state};
  auto b = std::make_unique<LinuxNetworkDriver>(
      LinuxNetworkDriver::Options{.netns = Host(), .state_dir = b_state});
  const std::string b_inst = b->instance();
  ASSERT_NE(b_inst, I());
  ASSERT_NE(ShortInstanceId(b_inst), ShortInstanceId(I()));
  NetworkDriver* bd = b.get();
  auto b_net = bd->EnsureNetwork({.name = "n1", .subnet = "10.30.0.0/24", .dhcp = true});
  ASSERT_TRUE(b_net.ok()) << b_net.status();
  EXPECT_EQ(b_net->bridge, BridgeName(b_inst, "n1"));
  EXPECT_NE(b_net->bridge, BridgeName(I(), "n1"));
  auto b_tap = bd->AttachEndpoint(
      {.network = "n1", .id = "vm", .kind = EndpointKind::kTap, .address = "10.30.0.50"});
  ASSERT_TRUE(b_tap.ok()) << b_tap.status();
  ASSERT_TRUE(bd->AddPortForward({.id = "web",
                                  .host_port = host_port == 65535 ? host_port - 1 : host_port + 1,
                                  .network = "n1",
                                  .target_address = "10.30.0.50",
                                  .target_port = 80})
                  .ok());
  const std::string b_dhcp = b->DhcpDir("n1");
  const int b_dnsmasq = LiveDhcpPid(b_dhcp);
  ASSERT_GT(b_dnsmasq, 0);
  EXPECT_NE(b_dnsmasq, a_dnsmasq);
  std::string rules = Rules();
  EXPECT_THAT(rules, HasSubstr("table inet " + NftTableName(I())));
  EXPECT_THAT(rules, HasSubstr("table inet " + NftTableName(b_inst)));
  // Creating its network did not disturb the first instance's.
  EXPECT_TRUE(TcpReachable(Host(), "10.10.0.1", host_port, kReachable));

  // The second instance restarts with nothing kept: it removes all of its own, and only that.
  b.reset();
  b = std::make_unique<LinuxNetworkDriver>(
      LinuxNetworkDriver::Options{.netns = Host(), .state_dir = b_state});
  bd = b.get();
  ASSERT_EQ(b->instance(), b_inst) << "same data directory, same names";
  ASSERT_TRUE(bd->EnsureNetwork({.name = "n1", .subnet = "10.30.0.0/24", .dhcp = true}).ok());
  KeepSet keep{.networks = {"n1"}};
  ASSERT_TRUE(bd->Cleanup(keep).ok());
  std::string links = Links();
  EXPECT_THAT(links, HasSubstr(BridgeName(b_inst, "n1"))) << "its own bridge adopted";
  EXPECT_THAT(links, Not(HasSubstr(TapName(b_inst, "n1", "vm"))));
  ASSERT_TRUE(bd->DeleteNetwork("n1").ok());
  ASSERT_TRUE(bd->Cleanup({}).ok());
  links = Links();
  EXPECT_THAT(links, Not(HasSubstr(BridgeName(b_inst, "n1"))));
  EXPECT_THAT(Rules(), Not(HasSubstr(NftTableName(b_inst))));
  EXPECT_FALSE(std::filesystem::exists(b_dhcp));
  EXPECT_EQ(LiveDhcpPid(b_dhcp), 0);

  // The first instance's objects all survived...
  for (const auto& name : {BridgeName(I(), "n1"), VethName(I(), "n1", "a"),
                           VethName(I(), "n1", "b"), TapName(I(), "n1", "vm")}) {
    EXPECT_THAT(links, HasSubstr(name));
  }
  rules = Rules();
  EXPECT_THAT(rules, HasSubstr("table inet " + NftTableName(I())));
  EXPECT_THAT(rules, HasSubstr("dnat ip to 10.10.0.3:"));
  EXPECT_EQ(LiveDhcpPid(a_dhcp), a_dnsmasq);
  // ...and work: the bridge carries traffic, the forward reaches its container, and dnsmasq
  // hands the VM its lease (namespace c stands in for the VM, with the tap's MAC).
  std::string out;
  EXPECT_EQ(RunIn(ns_.Name("a"), {"busybox", "ping", "-c", "1", "-W", "20", "10.10.0.3"}, &out), 0)
      << out;
  EXPECT_TRUE(TcpReachable(Host(), "10.10.0.1", host_port, kReachable));
  ASSERT_EQ(RunIn(Host(), {"ip", "link", "add", "vmport", "type", "veth", "peer", "name", "eth0",
                           "netns", ns_.Name("c")}),
            0);
  ASSERT_EQ(RunIn(Host(), {"ip", "link", "set", "vmport", "master", BridgeName(I(), "n1"), "up"}),
            0);
  ASSERT_EQ(
      RunIn(ns_.Name("c"), {"ip", "link", "set", "eth0", "address", "52:54:00:aa:bb:01", "up"}), 0);
  EXPECT_EQ(RunIn(ns_.Name("c"),
                  {"busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "20", "-T", "1", "-s",
                   "/bin/true"},
                  &out),
            0)
      << out;
  EXPECT_THAT(ReadAll(a_dhcp + "/leases"), HasSubstr("52:54:00:aa:bb:01 10.10.0.50"));
}

// Two data directories whose ids share the four hex digits interface names carry: the alias
// tells them apart, so neither adopts nor deletes the other's links.
TEST_F(LinuxNetworkDriverTest, ClashingShortIdsNeitherAdoptNorDelete) {
  std::string clash = I().substr(0, kShortInstanceIdLength) + "000000000000";
  if (clash == I()) clash.back() = '1';
  const std::string c_state = "/tmp/" + Host() + "-state-c";
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() { std::filesystem::remove_all(dir); }
  } remove_c{c_state};
  LinuxNetworkDriver c({.netns = Host(), .state_dir = c_state, .instance = clash});
  NetworkDriver& cd = c;
  ASSERT_EQ(BridgeName(clash, "n1"), BridgeName(I(), "n1"));
  auto refused = cd.EnsureNetwork({.name = "n1", .subnet = "10.40.0.0/24"});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr(I()));
  EXPECT_THAT(refused.status().message(), HasSubstr(clash));
  ASSERT_TRUE(cd.Cleanup({}).ok());
  std::string links = Links();
  for (const auto& name :
       {BridgeName(I(), "n1"), VethName(I(), "n1", "a"), VethName(I(), "n1", "b")}) {
    EXPECT_THAT(links, HasSubstr(name));
  }
  // The first instance's network still works, gateway address and all.
  std::string out;
  EXPECT_EQ(RunIn(ns_.Name("a"), {"busybox", "ping", "-c", "1", "-W", "20", "10.10.0.1"}, &out), 0)
      << out;
}

}  // namespace
}  // namespace berth::runtime::net
