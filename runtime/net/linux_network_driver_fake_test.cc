// The Linux network driver against host::FakeExecutor: which commands it runs, where, and what it
// signals. Needs neither root nor iproute2.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/host/fake_executor.h"
#include "runtime/host/process.h"
#include "runtime/net/linux_network_driver.h"

namespace berth::runtime::net {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class LinuxNetworkDriverFakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-net-fake-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fake_.Script({"ip", "-j", "link", "show"}, host::FakeExecutor::Exited(0, "[]"));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  LinuxNetworkDriver::Options Options() {
    return {.netns = "berth-test-ns", .state_dir = dir_, .executor = &fake_};
  }

  std::string dir_;
  host::FakeExecutor fake_;
};

TEST_F(LinuxNetworkDriverFakeTest, RunsEveryCommandInItsNamespace) {
  LinuxNetworkDriver driver(Options());
  auto n = driver.EnsureNetwork({.name = "n1", .subnet = "10.10.0.0/24"}, {});
  ASSERT_TRUE(n.ok()) << n.status();
  std::vector<host::FakeExecutor::Call> calls = fake_.Calls();
  ASSERT_GE(calls.size(), 3u);
  EXPECT_THAT(calls[0].argv, ElementsAre("ip", "-j", "link", "show"));
  EXPECT_THAT(calls[1].argv, ElementsAre("ip", "-batch", "-"));
  EXPECT_THAT(calls[1].stdin_data, HasSubstr("link add " + n->bridge + " type bridge"));
  bool applied_rules = false;
  for (const auto& c : calls) {
    EXPECT_EQ(c.netns, "berth-test-ns");
    if (c.argv == std::vector<std::string>{"nft", "-f", "-"}) applied_rules = true;
  }
  EXPECT_TRUE(applied_rules);
}

TEST_F(LinuxNetworkDriverFakeTest, AFailingToolIsAnErrorQuotingIt) {
  fake_.Script({"nft"}, host::FakeExecutor::Exited(1, "", "Error: No such file or directory"));
  LinuxNetworkDriver driver(Options());
  auto n = driver.EnsureNetwork({.name = "n1", .subnet = "10.10.0.0/24"}, {});
  ASSERT_FALSE(n.ok());
  EXPECT_THAT(n.status().message(), HasSubstr("`nft -f -` exited with code 1: Error: No such"));
  // The bridge it had made is taken down again.
  EXPECT_EQ(fake_.Commands().back()[0], "ip");
}

TEST_F(LinuxNetworkDriverFakeTest, AForwardLetsItsBridgeRouteLoopbackWhileItLasts) {
  LinuxNetworkDriver driver(Options());
  auto n = driver.EnsureNetwork({.name = "n1", .subnet = "10.10.0.0/24"}, {});
  ASSERT_TRUE(n.ok()) << n.status();
  const std::vector<std::string> on = {"sysctl", "-qw",
                                       "net.ipv4.conf." + n->bridge + ".route_localnet=1"};
  const std::vector<std::string> off = {"sysctl", "-qw",
                                        "net.ipv4.conf." + n->bridge + ".route_localnet=0"};
  // The index of the first call from `from` on that ran `argv`; -1 when none did.
  auto index = [&](const std::vector<std::string>& argv, size_t from) {
    std::vector<host::FakeExecutor::Call> calls = fake_.Calls();
    for (size_t i = from; i < calls.size(); ++i) {
      if (calls[i].argv == argv) return static_cast<int>(i);
    }
    return -1;
  };
  const std::vector<std::string> nft = {"nft", "-f", "-"};
  EXPECT_GE(index(off, 0), 0);  // a bridge without forwards keeps loopback out
  EXPECT_EQ(index(on, 0), -1);
  size_t mark = fake_.Calls().size();
  ASSERT_TRUE(driver
                  .AddPortForward({.id = "f",
                                   .host_port = 8080,
                                   .network = "n1",
                                   .target_address = "10.10.0.5",
                                   .target_port = 80},
                                  {})
                  .ok());
  // On only after the rules that guard it are in.
  EXPECT_GT(index(on, mark), index(nft, mark));
  EXPECT_GE(index(nft, mark), 0);
  mark = fake_.Calls().size();
  ASSERT_TRUE(driver.RemovePortForward("f", {}).ok());
  // Off before the guard goes.
  EXPECT_GE(index(off, mark), 0);
  EXPECT_LT(index(off, mark), index(nft, mark));
}

TEST_F(LinuxNetworkDriverFakeTest, StopDhcpLeavesAProcessThatIsNotItsDnsmasqAlone) {
  // A stale pid file whose pid now names another process (here: a sleep of this test).
  auto stranger = host::SpawnDetached({"sleep", "100"}, {});
  ASSERT_TRUE(stranger.ok());
  LinuxNetworkDriver driver(Options());
  std::filesystem::create_directories(driver.DhcpDir("n1"));
  std::ofstream(driver.DhcpDir("n1") + "/pid") << stranger->pid << "\n";
  // A network without DHCP stops whatever dnsmasq it had.
  ASSERT_TRUE(driver.EnsureNetwork({.name = "n1", .subnet = "10.10.0.0/24"}, {}).ok());
  EXPECT_FALSE(std::filesystem::exists(driver.DhcpDir("n1")));
  EXPECT_TRUE(host::IsRunning(*stranger));
  ASSERT_TRUE(host::SignalProcess(*stranger, SIGKILL).ok());
  ASSERT_TRUE(host::ReapChild(stranger->pid, absl::Seconds(30)).ok());
}

}  // namespace
}  // namespace berth::runtime::net
