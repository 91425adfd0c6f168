// Workloads on Berth networks and disks, end to end through the real `berth serve --dev` binary:
// containers on one network reach each other by address, a security group lets one port in and
// keeps another out until a rule allows it, a port forward reaches a container's server from
// the host, a VM takes its address by DHCP and answers, and a disk formatted by Berth is seen by
// the guest with its size, keeps what the guest wrote, and goes back to a snapshot on revert.
//
// The network data path (bridges, veths, taps, nftables, dnsmasq) lives in a namespace the test
// creates (BERTH_NET_NETNS); containers get their own namespaces (berth-INSTANCE-NAME). Needs
// root, runc and qemu-system-x86_64; skips otherwise.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "core/job.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/net/linux_network_driver.h"
#include "runtime/net/netns_test_util.h"
#include "tests/e2e_util.h"
#include "tests/test_images.h"

namespace berth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;
namespace nt = runtime::net::testing;

using e2e::ImagesDir;

std::string SkipReason() {
  if (geteuid() != 0) return "needs root (runc, bridges, nftables)";
  if (nt::RunIn("", {"runc", "--version"}) != 0) return "runc missing";
  if (nt::RunIn("", {"qemu-system-x86_64", "--version"}) != 0) return "qemu missing";
  if (ImagesDir().empty()) return "test images could not be built";
  return "";
}

class WorkloadNetworkE2eTest : public ::testing::Test {
 protected:
  WorkloadNetworkE2eTest() : ns_({"host"}), dir_(e2e::TempDir("wlnet")), server_(dir_) {}

  void SetUp() override {
    if (std::string why = SkipReason(); !why.empty()) GTEST_SKIP() << why;
    ASSERT_TRUE(ns_.ok());
    setenv("BERTH_NET_NETNS", ns_.Name("host").c_str(), 1);
    ASSERT_TRUE(server_.Start()) << e2e::ReadFile(dir_ + "/serve.log");
  }
  void TearDown() override {
    // Delete every workload so no container, VM, namespace or mount outlives the test.
    if (server_.pid() > 0) e2e::DeleteAllWorkloads(server_);
    server_.Kill(SIGTERM);
    if (geteuid() == 0 && ns_.ok()) {
      std::string pids;
      nt::RunIn("", {"ip", "netns", "pids", ns_.Name("host")}, &pids);
      std::istringstream in(pids);
      for (int pid = 0; in >> pid;) kill(pid, SIGKILL);
    }
    unsetenv("BERTH_NET_NETNS");
    std::filesystem::remove_all(dir_);
  }

  e2e::Result Cli(std::vector<std::string> args) { return e2e::Run(dir_, std::move(args)); }
  void MustCli(std::vector<std::string> args) {
    e2e::Result r = Cli(args);
    ASSERT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.err;
  }
  // Copies `files` into the server's image import directory (DATA_DIR/imports) and runs `berth
  // image import` with their names, once the server has attached its host's catalog.
  void MustImport(std::vector<std::string> args, const std::vector<std::string>& files) {
    const std::filesystem::path imports = std::filesystem::path(dir_) / "imports";
    std::filesystem::create_directories(imports);
    for (const std::string& f : files) {
      std::filesystem::copy_file(f, imports / std::filesystem::path(f).filename(),
                                 std::filesystem::copy_options::overwrite_existing);
    }
    args.insert(args.begin(), {"image", "import"});
    e2e::Result r;
    e2e::Eventually([&] { return (r = Cli(args)).exit_code == 0; }, 30);
    ASSERT_EQ(r.exit_code, 0) << "image import: " << r.err;
  }
  void Create(const Json& spec) {
    auto created = server_.client().CreateWorkloadFromText(spec.dump());
    ASSERT_TRUE(created.ok()) << created.status();
  }
  std::string State(const std::string& name) { return server_.State(name); }
  // The disk or network as the server encodes it; null when it cannot be read.
  Json Disk(const std::string& name) {
    auto d = server_.client().GetDisk(name);
    return d.ok() ? *d : Json();
  }
  Json Network(const std::string& name) {
    auto n = server_.client().GetNetwork(name);
    return n.ok() ? *n : Json();
  }
  bool WaitState(const std::string& name, const std::string& state, int seconds = 180) {
    return e2e::Eventually([&] { return State(name) == state; }, seconds);
  }
  std::string Reason(const std::string& name) { return server_.Dump(name).dump(); }
  std::string Logs(const std::string& name) { return Cli({"workload", "logs", name}).out; }
  // The address `owner` holds on `network`.
  std::string AddressOf(const std::string& network, const std::string& owner) {
    Json n = Network(network);
    if (!n.is_object()) return "";
    return n["status"]["addresses"].value(owner, "");
  }
  // Runs a command in a container; true when it succeeded and printed "ok".
  bool ExecSaysOk(const std::string& workload, const std::vector<std::string>& command) {
    std::vector<std::string> args = {"workload", "exec", workload, "--"};
    args.insert(args.end(), command.begin(), command.end());
    e2e::Result r = Cli(args);
    return r.exit_code == 0 && r.out.find("ok") != std::string::npos;
  }
  void Delete(const std::string& name) {
    auto r = server_.client().DeleteWorkload(name);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_TRUE(e2e::Eventually([&] {
      return absl::IsNotFound(server_.client().GetWorkload(name).status());
    })) << name
        << " never went";
    // The agent gives back its disks once the task is destroyed.
    ASSERT_TRUE(e2e::Eventually([&] {
      auto disks = server_.client().ListDisks();
      if (!disks.ok()) return false;
      for (const auto& d : disks->items) {
        if (d["status"].value("attached_to", "") == name) return false;
      }
      return true;
    })) << name
        << " kept its disks";
    // And the server gives back its addresses once it sees the workload gone.
    ASSERT_TRUE(e2e::Eventually([&] {
      auto nets = server_.client().ListNetworks();
      if (!nets.ok()) return false;
      for (const auto& n : nets->items) {
        if (!AddressOf(n.value("name", ""), name).empty()) return false;
      }
      return true;
    })) << name
        << " kept its addresses";
  }
  // The server's network instance id (docs/storage-network.md, "Names").
  std::string Instance() { return runtime::net::InstanceIdForDir(dir_ + "/agent"); }
  std::string ContainerNetns(const std::string& workload) {
    return "/run/netns/berth-" + Instance() + "-" + workload;
  }
  // What the alias of every endpoint link of this server starts with.
  std::string EndpointAlias() { return "berth:" + Instance() + ":ep:"; }
  std::string HostLinks() {
    std::string out;
    nt::RunIn(ns_.Name("host"), {"ip", "-o", "link", "show"}, &out);
    return out;
  }

  nt::TestNamespaces ns_;
  std::string dir_;
  e2e::DevServer server_;
};

TEST_F(WorkloadNetworkE2eTest, ContainersTalkThroughGroupsAndPortForwards) {
  MustImport({"busybox", "--rootfs", "busybox-rootfs.tar"}, {ImagesDir() + "/busybox-rootfs.tar"});
  MustCli({"net", "create", "blue", "--subnet", "10.216.0.0/24"});
  MustCli({"secgroup", "create", "web"});
  MustCli({"secgroup", "rule", "add", "web", "--proto", "tcp", "--ports", "8080"});
  // A raw disk with a filesystem, for srv to mount.
  MustCli({"disk", "create", "shared", "--size", "32Mi", "--format", "raw", "--fs", "ext4"});

  // srv listens on 8080 (allowed by its group) and 9090 (not yet); cli listens on 7070 and has
  // no group, so anything may reach it.
  auto listen = [](int port) { return "nc -ll -p " + std::to_string(port) + " -e /bin/echo ok &"; };
  Create({{"name", "srv"},
          {"kind", "container"},
          {"image", "busybox"},
          {"command", {"/bin/sh", "-c", listen(8080) + listen(9090) + " sleep 3600"}},
          {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
          {"networks", {{{"network", "blue"}, {"security_groups", {"web"}}}}},
          {"disks", {{{"disk", "shared"}, {"mount", "/data"}}}}});
  Create({{"name", "cli"},
          {"kind", "container"},
          {"image", "busybox"},
          {"command", {"/bin/sh", "-c", listen(7070) + " sleep 3600"}},
          {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
          {"networks", {{{"network", "blue"}, {"address", "10.216.0.50"}}}}});
  ASSERT_TRUE(WaitState("srv", "running")) << Reason("srv");
  ASSERT_TRUE(WaitState("cli", "running")) << Reason("cli");
  EXPECT_EQ(AddressOf("blue", "cli"), "10.216.0.50");
  const std::string srv = AddressOf("blue", "srv");
  ASSERT_FALSE(srv.empty());
  // Each container's namespace carries the server's instance id.
  EXPECT_TRUE(std::filesystem::exists(ContainerNetns("srv")));
  EXPECT_TRUE(std::filesystem::exists(ContainerNetns("cli")));
  EXPECT_THAT(HostLinks(), HasSubstr(EndpointAlias()));

  // The disk's filesystem is mounted where the spec says, and writable.
  e2e::Result wrote =
      Cli({"workload", "exec", "srv", "--", "/bin/sh", "-c", "echo kept > /data/f && cat /data/f"});
  EXPECT_EQ(wrote.exit_code, 0) << wrote.err;
  EXPECT_EQ(wrote.out, "kept\n");
  EXPECT_EQ(Disk("shared")["status"]["attached_to"], "srv");

  // By address, both ways; the group lets 8080 in and keeps 9090 out.
  EXPECT_TRUE(e2e::Eventually([&] { return ExecSaysOk("cli", {"nc", "-w", "2", srv, "8080"}); }));
  EXPECT_TRUE(ExecSaysOk("srv", {"nc", "-w", "2", "10.216.0.50", "7070"}));
  EXPECT_FALSE(ExecSaysOk("cli", {"nc", "-w", "2", srv, "9090"}));
  MustCli({"secgroup", "rule", "add", "web", "--proto", "tcp", "--ports", "9090"});
  EXPECT_TRUE(e2e::Eventually([&] { return ExecSaysOk("cli", {"nc", "-w", "2", srv, "9090"}); }));

  // A host port forwarded to srv:8080 answers on the host (the bridge's gateway address).
  const int port = nt::FreePort(ns_.Name("host"));
  MustCli({"portfwd", "add", "--host-port", std::to_string(port), "--workload", "srv", "--port",
           "8080"});
  EXPECT_TRUE(nt::TcpReachable(ns_.Name("host"), "10.216.0.1", port, absl::Seconds(5)));
  // ... and at 127.0.0.1, where a user on the host tries it first.
  EXPECT_TRUE(nt::TcpReachable(ns_.Name("host"), "127.0.0.1", port, absl::Seconds(5)));
  // One host has no other host to forward at: --host is refused, naming the field.
  e2e::Result elsewhere = Cli({"portfwd", "add", "--host-port", std::to_string(port + 1),
                               "--workload", "srv", "--port", "8080", "--host", "gpu-2"});
  EXPECT_EQ(elsewhere.exit_code, 1);
  EXPECT_THAT(elsewhere.err, HasSubstr("host names a host of a fleet"));
  // A port a process on the host listens on is refused: the forward would take its traffic.
  {
    nt::TcpServer busy(ns_.Name("host"));
    e2e::Result taken = Cli({"portfwd", "add", "--host-port", std::to_string(busy.port()),
                             "--workload", "srv", "--port", "8080"});
    EXPECT_EQ(taken.exit_code, 1);
    EXPECT_THAT(taken.err,
                HasSubstr("host_port " + std::to_string(busy.port()) + "/tcp is in use"));
    EXPECT_TRUE(nt::TcpReachable(ns_.Name("host"), "127.0.0.1", busy.port(), absl::Seconds(5)));
  }

  // A running container has its disk mounted: the disk cannot be taken from it.
  e2e::Result detach = Cli({"disk", "detach", "shared"});
  EXPECT_EQ(detach.exit_code, 1);
  EXPECT_THAT(detach.err, HasSubstr("workload \"srv\""));
  EXPECT_THAT(detach.err, HasSubstr("stop the workload first"));
  EXPECT_EQ(Disk("shared")["status"]["attached_to"], "srv");

  // References to what does not exist are refused at create, naming the field; nothing is made.
  auto refused = [&](const Json& spec, const std::string& field) {
    auto r = server_.client().CreateWorkloadFromText(spec.dump());
    ASSERT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(field));
  };
  auto lost = [](const std::string& key, const Json& value) {
    Json spec = {
        {"name", "lost"}, {"kind", "container"}, {"image", "busybox"}, {"command", {"/bin/true"}}};
    spec[key] = value;
    return spec;
  };
  refused(lost("networks", {"nosuch"}), "networks[0].network");
  refused(lost("networks", {{{"network", "blue"}, {"address", "10.99.0.5"}}}),
          "networks[0].address");
  refused(lost("networks", {{{"network", "blue"}, {"security_groups", {"nosuch"}}}}),
          "networks[0].security_groups[0]");
  refused(lost("disks", {{{"disk", "nosuch"}, {"mount", "/data"}}}), "disks[0].disk");
  MustCli({"disk", "create", "blocky", "--size", "32Mi"});  // qcow2: a VM's, not a container's
  refused(lost("disks", {{{"disk", "blocky"}, {"mount", "/data"}}}), "disks[0].disk");
  EXPECT_TRUE(absl::IsNotFound(server_.client().GetWorkload("lost").status()));

  // Deleting the workloads takes their interfaces, namespaces, addresses and forwards with
  // them.
  Delete("srv");
  Delete("cli");
  // The agent tears down after the workload is gone from the API.
  EXPECT_TRUE(e2e::Eventually([&] { return Network("blue")["status"]["addresses"].empty(); }))
      << Network("blue").dump();
  EXPECT_TRUE(e2e::Eventually([&] {
    return !std::filesystem::exists(ContainerNetns("srv")) &&
           !std::filesystem::exists(ContainerNetns("cli"));
  }));
  EXPECT_TRUE(e2e::Eventually([&] {
    return HostLinks().find(EndpointAlias()) == std::string::npos;
  })) << HostLinks();
  // srv's disk was unmounted and detached, and keeps what srv wrote.
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/agent/mounts/srv"));
  EXPECT_EQ(Disk("shared")["status"]["attached_to"], "");
  const std::string image = Disk("shared")["status"]["path"];
  std::string listing;
  EXPECT_EQ(nt::RunIn("", {"debugfs", "-R", "cat /f", image}, &listing), 0);
  EXPECT_THAT(listing, HasSubstr("kept"));
  // Its port forward went with it, rule and all.
  e2e::Result fwd = Cli({"portfwd", "ls", "--json"});
  Json forwards = Json::parse(fwd.out, nullptr, false);
  ASSERT_TRUE(forwards.is_object()) << fwd.out << fwd.err;
  EXPECT_TRUE(forwards["items"].empty()) << fwd.out;
  std::string rules;
  nt::RunIn(ns_.Name("host"), {"nft", "list", "ruleset"}, &rules);
  EXPECT_THAT(rules, Not(HasSubstr(srv))) << rules;
  MustCli({"net", "rm", "blue"});
}

TEST_F(WorkloadNetworkE2eTest, AStoppedWorkloadKeepsWhatItHoldsAndGroupsHoldAfterARestart) {
  MustImport({"busybox", "--rootfs", "busybox-rootfs.tar"}, {ImagesDir() + "/busybox-rootfs.tar"});
  MustCli({"net", "create", "green", "--subnet", "10.218.0.0/24"});
  MustCli({"secgroup", "create", "web"});
  MustCli({"secgroup", "rule", "add", "web", "--proto", "tcp", "--ports", "8080"});
  MustCli({"disk", "create", "kept", "--size", "32Mi", "--format", "raw", "--fs", "ext4"});
  auto listen = [](int port) { return "nc -ll -p " + std::to_string(port) + " -e /bin/echo ok &"; };
  Create({{"name", "srv"},
          {"kind", "container"},
          {"image", "busybox"},
          {"command", {"/bin/sh", "-c", listen(8080) + listen(9090) + " sleep 3600"}},
          {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
          {"networks", {{{"network", "green"}, {"security_groups", {"web"}}}}},
          {"disks", {{{"disk", "kept"}, {"mount", "/data"}}}}});
  Create({{"name", "cli"},
          {"kind", "container"},
          {"image", "busybox"},
          {"command", {"/bin/sh", "-c", "sleep 3600"}},
          {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
          {"networks", {"green"}}});
  ASSERT_TRUE(WaitState("srv", "running")) << Reason("srv");
  ASSERT_TRUE(WaitState("cli", "running")) << Reason("cli");
  const std::string srv = AddressOf("green", "srv");
  ASSERT_FALSE(srv.empty());
  EXPECT_TRUE(e2e::Eventually([&] { return ExecSaysOk("cli", {"nc", "-w", "2", srv, "8080"}); }));
  EXPECT_FALSE(ExecSaysOk("cli", {"nc", "-w", "2", srv, "9090"}));

  // The server restarts; the containers run on, and the group still keeps 9090 out.
  server_.Kill(SIGTERM);
  ASSERT_TRUE(server_.Start()) << e2e::ReadFile(dir_ + "/serve.log");
  EXPECT_EQ(State("srv"), "running");
  EXPECT_TRUE(e2e::Eventually([&] { return ExecSaysOk("cli", {"nc", "-w", "2", srv, "8080"}); }));
  EXPECT_FALSE(ExecSaysOk("cli", {"nc", "-w", "2", srv, "9090"}));

  // Stopped, srv keeps its address, the forward to it and its disk; only its interface and
  // namespace go.
  const int port = nt::FreePort(ns_.Name("host"));
  MustCli({"portfwd", "add", "--host-port", std::to_string(port), "--workload", "srv", "--port",
           "8080"});
  EXPECT_TRUE(nt::TcpReachable(ns_.Name("host"), "127.0.0.1", port, absl::Seconds(5)));
  MustCli({"workload", "stop", "srv"});
  ASSERT_TRUE(WaitState("srv", "stopped")) << Reason("srv");
  EXPECT_TRUE(e2e::Eventually([&] { return !std::filesystem::exists(ContainerNetns("srv")); }));
  // The namespace goes first, then the disk's mount.
  EXPECT_TRUE(
      e2e::Eventually([&] { return !std::filesystem::exists(dir_ + "/agent/mounts/srv"); }));
  EXPECT_EQ(AddressOf("green", "srv"), srv);
  EXPECT_EQ(Disk("kept")["status"]["attached_to"], "srv");
  Json forwards = Json::parse(Cli({"portfwd", "ls", "--json"}).out, nullptr, false);
  ASSERT_TRUE(forwards.is_object());
  EXPECT_EQ(forwards["items"].size(), 1u) << forwards.dump();

  // Started again, it is where it was: same address, the forward reaches it, the group holds.
  MustCli({"workload", "start", "srv"});
  ASSERT_TRUE(WaitState("srv", "running")) << Reason("srv");
  EXPECT_EQ(AddressOf("green", "srv"), srv);
  EXPECT_TRUE(e2e::Eventually(
      [&] { return nt::TcpReachable(ns_.Name("host"), "127.0.0.1", port, absl::Seconds(2)); }));
  EXPECT_TRUE(e2e::Eventually([&] { return ExecSaysOk("cli", {"nc", "-w", "2", srv, "8080"}); }));
  EXPECT_FALSE(ExecSaysOk("cli", {"nc", "-w", "2", srv, "9090"}));

  // Stopped and then deleted, it gives everything back.
  MustCli({"workload", "stop", "srv"});
  ASSERT_TRUE(WaitState("srv", "stopped")) << Reason("srv");
  Delete("srv");
  EXPECT_TRUE(e2e::Eventually([&] { return AddressOf("green", "srv").empty(); }))
      << Network("green").dump();
  EXPECT_TRUE(e2e::Eventually([&] {
    Json f = Json::parse(Cli({"portfwd", "ls", "--json"}).out, nullptr, false);
    return f.is_object() && f["items"].empty();
  }));
  Delete("cli");
  MustCli({"net", "rm", "green"});
}

// A job's checkpoint disk: task 0 of the first attempt writes a checkpoint on it and fails; the
// retry's task 0 takes the disk over and finds the checkpoint where BERTH_RESUME_FROM says.
TEST_F(WorkloadNetworkE2eTest, AJobsCheckpointDiskPassesFromOneAttemptsTaskZeroToTheNext) {
  MustImport({"busybox", "--rootfs", "busybox-rootfs.tar"}, {ImagesDir() + "/busybox-rootfs.tar"});
  MustCli({"disk", "create", "ckpt", "--size", "32Mi", "--format", "raw", "--fs", "ext4"});
  const Json job = e2e::CheckpointDiskJob("ckpt", "0s");
  auto made = server_.client().CreateJobFromText(job.dump());
  ASSERT_TRUE(made.ok()) << made.status();
  std::string message;
  const std::string state = e2e::WaitForJobEnd(server_.client(), "ft", 180, &message);
  ASSERT_EQ(state, "succeeded") << message << "\n" << Reason("ft-0") << "\n" << Reason("ft-0-r1");
  EXPECT_THAT(Logs("ft-0-r1"), HasSubstr("resumed-7"));
  EXPECT_EQ(Disk("ckpt")["status"]["attached_to"], "ft-0-r1");
}

TEST_F(WorkloadNetworkE2eTest, VmTakesItsAddressAndKeepsItsDiskThroughSnapshotRevert) {
  const std::string images = ImagesDir();
  MustImport({"tiny-vm", "--kernel", "vmlinuz", "--initrd", "initrd.img"},
             {images + "/tiny-vm/vmlinuz", images + "/tiny-vm/initrd.img"});
  MustCli({"net", "create", "vmnet", "--subnet", "10.217.0.0/24"});
  MustCli({"disk", "create", "vmdata", "--size", "64Mi", "--fs", "ext4"});
  auto vm = [](const std::string& name, const std::string& script) {
    return Json{{"name", name},
                {"kind", "vm"},
                {"image", "tiny-vm"},
                {"command", {"/bin/sh", "-c", script}},
                {"resources", {{"cpu", 1}, {"memory", "256Mi"}}},
                {"networks", {"vmnet"}},
                {"disks", {"vmdata"}}};
  };

  // The guest sees the disk with its size and Berth's filesystem, writes a file, and stays up.
  Create(vm("first",
            "echo SIZE=$(cat /sys/block/vda/size); mkdir -p /mnt && "
            "mount -t ext4 /dev/vda /mnt && echo one > /mnt/data && umount /mnt && "
            "sync && echo WROTE-ONE; "
            // Announce the guest's disks whenever they change (hot-plug below).
            "while true; do b=$(ls /sys/block | tr '\\n' ,); "
            "[ \"$b\" != \"$a\" ] && echo BLOCK=$b && a=$b; sleep 0.3; done"));
  ASSERT_TRUE(WaitState("first", "running")) << Reason("first");
  EXPECT_EQ(Disk("vmdata")["status"]["attached_to"], "first");
  ASSERT_TRUE(
      e2e::Eventually([&] { return Logs("first").find("WROTE-ONE") != std::string::npos; }, 180))
      << Logs("first");
  EXPECT_THAT(Logs("first"), HasSubstr("SIZE=131072"));  // 64 MiB in 512-byte sectors

  // Its address comes from the network's DHCP, and it answers there.
  const std::string address = AddressOf("vmnet", "first");
  ASSERT_FALSE(address.empty());
  ASSERT_TRUE(e2e::Eventually(
      [&] { return Logs("first").find("BERTH-GUEST-IP=eth0:" + address) != std::string::npos; },
      120))
      << Logs("first");
  EXPECT_TRUE(e2e::Eventually(
      [&] {
        return nt::RunIn(ns_.Name("host"), {"busybox", "ping", "-c", "1", "-W", "2", address}) == 0;
      },
      60));

  // A disk the running VM holds open is snapshotted through QEMU.
  MustCli({"disk", "snapshot", "vmdata", "live"});
  EXPECT_THAT(Disk("vmdata")["status"]["snapshots"].dump(), HasSubstr("live"));

  // A disk attached while the VM runs is plugged in (PCIe hot-plug) and pulled out on detach;
  // one after another, the last with a name longer than QEMU takes as a node name.
  const std::vector<std::string> extras = {"extra", "extra-two", "third-disk-with-a-longer-name"};
  for (const std::string& extra : extras) {
    MustCli({"disk", "create", extra, "--size", "32Mi"});
    const size_t before = Logs("first").size();
    MustCli({"disk", "attach", extra, "first"});
    EXPECT_TRUE(e2e::Eventually(
        [&] { return Logs("first").find("BLOCK=vda,vdb,\n", before) != std::string::npos; }, 60))
        << extra << "\n"
        << Logs("first");
    EXPECT_EQ(Disk(extra)["status"]["attached_to"], "first");
    const size_t plugged = Logs("first").size();
    MustCli({"disk", "detach", extra});
    EXPECT_TRUE(e2e::Eventually(
        [&] { return Logs("first").find("BLOCK=vda,\n", plugged) != std::string::npos; }, 90))
        << extra << "\n"
        << Logs("first");
    EXPECT_EQ(Disk(extra)["status"]["attached_to"], "") << extra;
  }
  // All three at once: each goes into a root port of its own, and the guest sees every one.
  {
    const size_t before = Logs("first").size();
    for (const std::string& extra : extras) MustCli({"disk", "attach", extra, "first"});
    EXPECT_TRUE(e2e::Eventually(
        [&] { return Logs("first").find("BLOCK=vda,vdb,vdc,vdd,\n", before) != std::string::npos; },
        90))
        << Logs("first");
    const size_t plugged = Logs("first").size();
    for (const std::string& extra : extras) MustCli({"disk", "detach", extra});
    EXPECT_TRUE(e2e::Eventually(
        [&] { return Logs("first").find("BLOCK=vda,\n", plugged) != std::string::npos; }, 120))
        << Logs("first");
  }

  // An attached disk cannot be deleted or reverted; deleting the VM detaches it.
  EXPECT_NE(Cli({"disk", "rm", "vmdata"}).exit_code, 0);
  Delete("first");
  EXPECT_TRUE(e2e::Eventually([&] { return Disk("vmdata")["status"]["attached_to"] == ""; }));
  EXPECT_TRUE(e2e::Eventually([&] { return Network("vmnet")["status"]["addresses"].empty(); }));

  // Snapshot, overwrite in a second guest, revert: a third guest reads the first data.
  MustCli({"disk", "snapshot", "vmdata", "one"});
  Create(vm("second",
            "mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo two > /mnt/data && "
            "cat /mnt/data && umount /mnt && sync"));
  ASSERT_TRUE(WaitState("second", "stopped")) << Reason("second") << Logs("second");
  EXPECT_THAT(Logs("second"), HasSubstr("two"));
  Delete("second");
  MustCli({"disk", "revert", "vmdata", "one"});
  Create(vm("third",
            "mkdir -p /mnt && mount -t ext4 -o ro /dev/vda /mnt && "
            "echo DATA=$(cat /mnt/data)"));
  ASSERT_TRUE(WaitState("third", "stopped")) << Reason("third") << Logs("third");
  EXPECT_THAT(Logs("third"), HasSubstr("DATA=one"));
  Delete("third");
  MustCli({"net", "rm", "vmnet"});
}

}  // namespace
}  // namespace berth
