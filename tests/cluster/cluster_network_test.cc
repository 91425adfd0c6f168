// A Berth network across hosts (tests/cluster/cluster.h): containers on two hosts, each host's
// agent making its bridge and a VXLAN tunnel to the other, reach each other by address; a
// security group on one host admits members of another group that run on the other host and
// keeps everyone else out; the interfaces' MTU leaves room for the tunnel; the hosts' bridges
// and tunnels go once no workload needs them; a container and a VM (DHCP from its own host) on
// two hosts ping each other; a port forward is made on its workload's host, or on the host it
// names, which reaches the workload on another host across the tunnel; an agent restart
// keeps its containers reachable and their groups enforced; a container moved by failover keeps
// its address. Needs root, runc and the test images; skips otherwise.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/host/run.h"
#include "tests/cluster/cluster.h"
#include "tests/cluster/test_images.h"

namespace berth::cluster {
namespace {

using core::Json;
using e2e::Eventually;

// A busybox container on network `blue` in `groups`, running `script`.
core::WorkloadSpec Box(const std::string& name, const std::string& script,
                       const std::vector<std::string>& groups, const char* restart = nullptr) {
  Json net = {{"network", "blue"}};
  if (!groups.empty()) net["security_groups"] = groups;
  Json j = {{"name", name},
            {"kind", "container"},
            {"image", "busybox"},
            {"command", {"/bin/sh", "-c", script}},
            {"resources", {{"cpu", "100m"}, {"memory", "64Mi"}}},
            {"networks", {net}}};
  if (restart != nullptr) j["restart"] = Json::parse(restart);
  auto spec = core::DecodeWorkloadSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

class ClusterNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string skip = SkipReason();
    if (!skip.empty()) GTEST_SKIP() << skip;
    const std::string images = ImagesDir();
    // Failover needs a third host to move to.
    const bool three = std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())
                           .find("Failover") != std::string::npos;
    cluster_ = std::make_unique<Cluster>(ClusterOptions{
        .hosts = three ? 3 : 2,
        .images = {
            {"busybox", {.rootfs = images + "/busybox-rootfs.tar"}},
            {"tiny-vm",
             {.kernel = images + "/tiny-vm/vmlinuz", .initrd = images + "/tiny-vm/initrd.img"}}}});
    ASSERT_EQ(cluster_->Start(), "");
  }
  void TearDown() override {
    if (!cluster_) return;
    // Deleting stops every container; the hosts then drop their bridges and tunnels.
    EXPECT_TRUE(cluster_->DeleteAllWorkloads());
    cluster_.reset();
  }

  absl::StatusOr<Json> Post(const std::string& path, const Json& body) {
    return cluster_->client().Call("POST", path, &body);
  }
  // Creates `specs` with the other hosts cordoned and waits until they run on `host`.
  void PlaceOn(int host, const std::vector<core::WorkloadSpec>& specs) {
    Cordon(host, "cordon");
    for (const auto& spec : specs) {
      auto created = cluster_->client().CreateWorkload(spec);
      ASSERT_TRUE(created.ok()) << created.status();
    }
    for (const auto& spec : specs) {
      ASSERT_TRUE(Eventually([&] {
        auto w = cluster_->client().GetWorkload(spec.name);
        return w.ok() && w->status.state == core::WorkloadState::kRunning &&
               w->status.host == Cluster::HostName(host);
      })) << cluster_->server().Dump(spec.name).dump()
          << e2e::ReadFile(cluster_->AgentLog(host));
    }
    Cordon(host, "uncordon");
  }
  // Cordons (or uncordons) every host but `host`.
  void Cordon(int host, const std::string& action) {
    for (int other = 0; other < cluster_->hosts(); ++other) {
      if (other == host) continue;
      ASSERT_TRUE(cluster_->client()
                      .Call("POST", "/v1/hosts/" + Cluster::HostName(other) + "/" + action)
                      .ok());
    }
  }
  std::string AddressOf(const std::string& workload) {
    auto net = cluster_->client().Call("GET", "/v1/networks/blue");
    if (!net.ok()) return "";
    return (*net)["status"]["addresses"].value(workload, "");
  }
  // Runs `script` in `workload`'s container: its exit code and output.
  std::pair<int, std::string> Sh(const std::string& workload, const std::string& script) {
    auto r = cluster_->client().Exec(workload, {.argv = {"/bin/sh", "-c", script}});
    if (!r.ok()) return {-1, r.status().ToString()};
    return {r->exit_code, r->stdout_data + r->stderr_data};
  }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(ClusterNetworkTest, ContainersOnTwoHostsReachEachOtherAndGroupsHoldAcrossHosts) {
  ASSERT_TRUE(Post("/v1/networks", {{"name", "blue"}, {"subnet", "10.77.0.0/24"}}).ok());
  ASSERT_TRUE(Post("/v1/secgroups", {{"name", "web"}}).ok());
  ASSERT_TRUE(Post("/v1/secgroups", {{"name", "db"}}).ok());
  auto rule =
      Post("/v1/secgroups/db/rules", {{"proto", "tcp"}, {"ports", "7000"}, {"from_group", "web"}});
  ASSERT_TRUE(rule.ok()) << rule.status();
  const std::string listen = "nc -ll -p 7000 -e /bin/echo db-ok & exec sleep 3600";
  PlaceOn(0, {Box("p", "nc -ll -p 8000 -e /bin/echo p-ok & exec sleep 3600", {}),
              Box("db", listen, {"db"})});
  PlaceOn(1, {Box("q", "exec sleep 3600", {}), Box("app", "exec sleep 3600", {"web"})});
  const std::string p = AddressOf("p"), q = AddressOf("q"), db = AddressOf("db");
  ASSERT_FALSE(p.empty() || q.empty() || db.empty());

  // Across the tunnel, both ways.
  auto pinged = Sh("q", "ping -c 1 -W 3 " + p);
  EXPECT_EQ(pinged.first, 0) << pinged.second << e2e::ReadFile(cluster_->AgentLog(1));
  pinged = Sh("p", "ping -c 1 -W 3 " + q);
  EXPECT_EQ(pinged.first, 0) << pinged.second;
  // The interface leaves the tunnel's 50 bytes of the underlay's 1500.
  auto mtu = Sh("q", "cat /sys/class/net/eth0/mtu");
  EXPECT_EQ(mtu.second, "1450\n");
  // A packet that fills that MTU crosses: 1422 bytes of data, 8 of ICMP, 20 of IP.
  auto full = Sh("q", "ping -c 1 -W 3 -s 1422 " + p);
  EXPECT_EQ(full.first, 0) << full.second;

  // db on host 1 admits web's members, which run on host 2; q, in no group, stays out.
  auto admitted = Sh("app", "nc -w 3 " + db + " 7000 </dev/null");
  EXPECT_EQ(admitted.second, "db-ok\n") << admitted.first;
  auto refused = Sh("q", "nc -w 2 " + db + " 7000 </dev/null");
  EXPECT_EQ(refused.second.find("db-ok"), std::string::npos) << refused.second;

  // A port forward is made on the host its workload runs on, at that host's addresses.
  auto forward =
      Post("/v1/portforwards", {{"host_port", 18080}, {"workload", "p"}, {"port", 8000}});
  ASSERT_TRUE(forward.ok()) << forward.status();
  EXPECT_TRUE(Eventually([&] {
    auto r =
        runtime::host::RunCommand({"busybox", "nc", "-w", "2", cluster_->HostAddress(0), "18080"});
    return r.ok() && r->out == "p-ok\n";
  })) << e2e::ReadFile(cluster_->AgentLog(0));
  auto elsewhere =
      runtime::host::RunCommand({"busybox", "nc", "-w", "2", cluster_->HostAddress(1), "18080"});
  EXPECT_TRUE(elsewhere.ok() && elsewhere->out.empty());

  // A forward that names host 2 answers there, for p on host 1: host 2 sends the connection
  // across the tunnel from its own address on the network.
  forward = Post(
      "/v1/portforwards",
      {{"host_port", 18081}, {"workload", "p"}, {"port", 8000}, {"host", Cluster::HostName(1)}});
  ASSERT_TRUE(forward.ok()) << forward.status();
  EXPECT_TRUE(Eventually([&] {
    auto r =
        runtime::host::RunCommand({"busybox", "nc", "-w", "2", cluster_->HostAddress(1), "18081"});
    return r.ok() && r->out == "p-ok\n";
  })) << e2e::ReadFile(cluster_->AgentLog(1));
  elsewhere =
      runtime::host::RunCommand({"busybox", "nc", "-w", "2", cluster_->HostAddress(0), "18081"});
  EXPECT_TRUE(elsewhere.ok() && elsewhere->out.empty());
  const std::string leg_address = AddressOf("host:" + Cluster::HostName(1));
  EXPECT_FALSE(leg_address.empty());
  // Removing it gives host 2's address on the network back.
  ASSERT_TRUE(cluster_->client().Call("DELETE", "/v1/portforwards/tcp-18081").ok());
  EXPECT_EQ(AddressOf("host:" + Cluster::HostName(1)), "");

  // Deleting host 2's workloads: its bridge and tunnel go once the agent's next look finds
  // no workload of its on the network.
  for (const char* w : {"q", "app"}) ASSERT_TRUE(cluster_->client().DeleteWorkload(w).ok());
  EXPECT_TRUE(Eventually([&] {
    auto r = runtime::host::RunCommand({"ip", "-n", cluster_->Namespace(1), "-o", "link", "show"});
    // Berth's bridges are named bb..., its tunnels bx... (runtime/net/network_model.h).
    return r.ok() && r->out.find(": bb") == std::string::npos &&
           r->out.find(": bx") == std::string::npos;
  })) << e2e::ReadFile(cluster_->AgentLog(1));
}

TEST_F(ClusterNetworkTest, AContainerOnOneHostAndAVmOnAnotherPingEachOther) {
  ASSERT_TRUE(Post("/v1/networks", {{"name", "blue"}, {"subnet", "10.78.0.0/24"}}).ok());
  // On a fleet the server makes no bridge; each host makes its own, joined by the network's id.
  e2e::Result got = e2e::Run(cluster_->server().data_dir(), {"net", "get", "blue"});
  EXPECT_NE(got.out.find("bridge:   (one per host)\nvni:      "), std::string::npos) << got.out;
  EXPECT_EQ(got.out.find("vni:      0\n"), std::string::npos) << got.out;
  PlaceOn(0, {Box("c", "exec sleep 3600", {})});
  auto vm = core::DecodeWorkloadSpec({{"name", "v"},
                                      {"kind", "vm"},
                                      {"image", "tiny-vm"},
                                      {"command", {"/bin/sh", "-c", "exec sleep 3600"}},
                                      {"resources", {{"cpu", 1}, {"memory", "256Mi"}}},
                                      {"networks", {"blue"}}});
  ASSERT_TRUE(vm.ok()) << vm.status();
  PlaceOn(1, {*vm});
  const std::string v = AddressOf("v"), c = AddressOf("c");
  ASSERT_FALSE(v.empty() || c.empty());
  // The VM takes its address from its own host's DHCP (the other host's stays silent for it).
  ASSERT_TRUE(Eventually(
      [&] {
        auto logs = cluster_->client().Logs("v");
        return logs.ok() && logs->find("BERTH-GUEST-IP=eth0:" + v) != std::string::npos;
      },
      180))
      << cluster_->client().Logs("v").value_or("(no logs)");
  // The container on host 1 reaches the VM on host 2, and the VM's answers come back.
  EXPECT_TRUE(Eventually([&] { return Sh("c", "ping -c 1 -W 2 " + v).first == 0; }, 60))
      << Sh("c", "ping -c 1 -W 2 " + v).second << e2e::ReadFile(cluster_->AgentLog(1));
}

TEST_F(ClusterNetworkTest, AnAgentRestartKeepsItsWorkloadsReachableAndItsGroupsEnforced) {
  ASSERT_TRUE(Post("/v1/networks", {{"name", "blue"}, {"subnet", "10.79.0.0/24"}}).ok());
  ASSERT_TRUE(Post("/v1/secgroups", {{"name", "web"}}).ok());
  ASSERT_TRUE(Post("/v1/secgroups", {{"name", "db"}}).ok());
  ASSERT_TRUE(
      Post("/v1/secgroups/db/rules", {{"proto", "tcp"}, {"ports", "7000"}, {"from_group", "web"}})
          .ok());
  const std::string listen = "nc -ll -p 7000 -e /bin/echo db-ok & exec sleep 3600";
  PlaceOn(0, {Box("p", "exec sleep 3600", {}), Box("db", listen, {"db"})});
  PlaceOn(1, {Box("q", "exec sleep 3600", {}), Box("app", "exec sleep 3600", {"web"})});
  const std::string p = AddressOf("p"), db = AddressOf("db");
  ASSERT_EQ(Sh("q", "ping -c 1 -W 3 " + p).first, 0);

  // Host 1's agent restarts; its containers run on. Its first look adopts their interfaces.
  // The group must hold throughout, not only once the look is done: host 1's rules are read
  // every few milliseconds meanwhile, and each reading must still send db's traffic through its
  // group's chain.
  const std::string table = "berth_" + runtime::net::InstanceIdForDir(cluster_->AgentDir(0));
  std::atomic<bool> done{false};
  int readings = 0, unguarded = 0;
  std::thread sampler([&] {
    while (!done) {
      auto r = runtime::host::RunCommand(
          {"ip", "netns", "exec", cluster_->Namespace(0), "nft", "list", "table", "inet", table});
      ++readings;
      if (!r.ok() || r->out.find("ip daddr " + db + " jump") == std::string::npos) ++unguarded;
    }
  });
  cluster_->StopAgent(0);
  cluster_->StartAgent(0);
  ASSERT_TRUE(Eventually([&] { return cluster_->HostState(0) == "ready"; }));
  absl::SleepFor(absl::Seconds(5));  // the first look and a few more
  done = true;
  sampler.join();
  EXPECT_GT(readings, 10);
  EXPECT_EQ(unguarded, 0) << "of " << readings << " readings";
  EXPECT_TRUE(Eventually([&] {
    return Sh("app", "nc -w 2 " + db + " 7000 </dev/null").second == "db-ok\n";
  })) << e2e::ReadFile(cluster_->AgentLog(0));
  EXPECT_EQ(Sh("q", "ping -c 1 -W 3 " + p).first, 0);
  // The group still keeps out whoever is not in web.
  auto refused = Sh("q", "nc -w 2 " + db + " 7000 </dev/null");
  EXPECT_EQ(refused.second.find("db-ok"), std::string::npos) << refused.second;
  auto w = cluster_->client().GetWorkload("db");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->status.state, core::WorkloadState::kRunning);
}

TEST_F(ClusterNetworkTest, AfterFailoverAContainerKeepsItsAddressAndIsReachedOnItsNewHost) {
  ASSERT_TRUE(Post("/v1/networks", {{"name", "blue"}, {"subnet", "10.80.0.0/24"}}).ok());
  PlaceOn(0, {Box("client", "exec sleep 3600", {})});
  PlaceOn(1, {Box("mover", "exec sleep 3600", {}, R"({"policy": "always"})")});
  const std::string address = AddressOf("mover");
  ASSERT_FALSE(address.empty());
  ASSERT_EQ(Sh("client", "ping -c 1 -W 3 " + address).first, 0);

  // Host 2 dies with its work; the container runs again on host 1 or 3, at the same address.
  cluster_->KillHost(1);
  ASSERT_TRUE(Eventually(
      [&] {
        auto w = cluster_->client().GetWorkload("mover");
        return w.ok() && w->status.state == core::WorkloadState::kRunning &&
               w->status.host != Cluster::HostName(1);
      },
      90))
      << cluster_->server().Dump("mover").dump();
  EXPECT_EQ(AddressOf("mover"), address);
  EXPECT_TRUE(Eventually([&] { return Sh("client", "ping -c 1 -W 2 " + address).first == 0; }))
      << e2e::ReadFile(cluster_->AgentLog(0));
}

}  // namespace
}  // namespace berth::cluster
