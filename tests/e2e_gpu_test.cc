// GPUs reach workloads end to end, through the real binary in dev mode on a host whose agent
// config declares two GPUs: each process workload granted one sees exactly the device id its
// status records, and the next one gets the other. With a fake device tree (character devices
// made with mknod), a CDI spec naming them and runc, a container sees its own node and not the
// other's. Devices of other classes (FPGAs) come from CDI specs and reach workloads the same way.
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fstream>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "runtime/host/run.h"
#include "tests/e2e_util.h"
#include "tests/test_images.h"

namespace berth::e2e {
namespace {

using nlohmann::json;

constexpr char kTwoGpus[] = R"(name: gpu-host
gpus:
  - {model: A100-SXM4-80GB, memory: 80Gi}
  - {model: A100-SXM4-80GB, memory: 80Gi}
cdi_dirs: []
)";

std::string GpuProcess(const std::string& name) {
  return "name: " + name + R"(
kind: process
command: ["/bin/sh", "-c", "echo \"cuda=[$CUDA_VISIBLE_DEVICES] nvidia=[$NVIDIA_VISIBLE_DEVICES]\"; sleep 3600"]
resources: {cpu: 100m, memory: 32Mi, gpu: {count: 1}}
)";
}

class GpuE2eTest : public ::testing::Test {
 protected:
  // Starts a dev server with `agent_config`, in dir_ (made here unless the test made it).
  void Start(const std::string& agent_config) {
    if (dir_.empty()) dir_ = TempDir("e2e-gpu");
    std::ofstream(dir_ + "/agent.yaml") << agent_config;
    server_ = std::make_unique<DevServer>(
        dir_ + "/data", std::vector<std::string>{"--dev", "--agent-config", dir_ + "/agent.yaml"});
    ASSERT_TRUE(server_->Start()) << ReadFile(dir_ + "/data/serve.log");
    ASSERT_TRUE(Eventually([&] {
      auto hosts = server_->client().ListHosts();
      return hosts.ok() && !hosts->items.empty();
    })) << ReadFile(dir_ + "/data/serve.log");
  }
  void TearDown() override {
    if (server_ && server_->pid() > 0) DeleteAllWorkloads(*server_);
    server_.reset();
    if (!dir_.empty()) {
      UnmountBelow(dir_);  // what the server's agent had not yet taken down when it stopped
      std::filesystem::remove_all(dir_);
    }
  }
  Result Cli(std::vector<std::string> args, const std::string& input = "") {
    return e2e::Run(dir_ + "/data", std::move(args), input);
  }
  // The first line of the workload's log once it has one.
  std::string FirstLogLine(const std::string& name) {
    std::string out;
    Eventually([&] {
      Result logs = Cli({"workload", "logs", name});
      out = logs.out;
      return logs.exit_code == 0 && out.find('\n') != std::string::npos;
    });
    return out.substr(0, out.find('\n'));
  }

  std::string dir_;
  std::unique_ptr<DevServer> server_;
};

TEST_F(GpuE2eTest, EachProcessSeesExactlyTheGpuItsStatusRecords) {
  Start(kTwoGpus);
  std::set<std::string> seen;
  for (const std::string name : {"train-a", "train-b"}) {
    Result created = Cli({"workload", "create", "-f", "-"}, GpuProcess(name));
    ASSERT_EQ(created.exit_code, 0) << created.err;
    ASSERT_TRUE(Eventually([&] { return server_->State(name) == "running"; }))
        << server_->Dump(name).dump();
    Result got = Cli({"workload", "get", name, "--json"});
    ASSERT_EQ(got.exit_code, 0) << got.err;
    json status = json::parse(got.out)["status"];
    ASSERT_EQ(status["gpus"].size(), 1u) << status.dump();
    const std::string id = status["gpus"][0].value("device_id", "");
    EXPECT_EQ(id.rfind("GPU-", 0), 0u) << status.dump();
    EXPECT_EQ(FirstLogLine(name), "cuda=[" + id + "] nvidia=[" + id + "]");
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 2u);  // the second workload got the other GPU
  // The host lists both devices with the ids its workloads see.
  Result host = Cli({"host", "get", "gpu-host", "--json"});
  ASSERT_EQ(host.exit_code, 0) << host.err;
  std::set<std::string> listed;
  const json host_json = json::parse(host.out);
  for (const json& g : host_json["inventory"]["gpus"]) listed.insert(g.value("uuid", ""));
  EXPECT_EQ(listed, seen);
  // A third finds no free GPU and says so.
  Result third = Cli({"workload", "create", "-f", "-"}, GpuProcess("train-c"));
  ASSERT_EQ(third.exit_code, 0) << third.err;
  ASSERT_TRUE(Eventually([&] {
    return server_->Dump("train-c")["status"].value("explanation", "").find("gpu") !=
           std::string::npos;
  })) << server_->Dump("train-c").dump();
  EXPECT_EQ(server_->State("train-c"), "pending");
}

TEST_F(GpuE2eTest, AProcessWithoutAGrantSeesNoGpu) {
  Start(kTwoGpus);
  Result created = Cli({"workload", "create", "-f", "-"}, R"(name: plain
kind: process
command: ["/bin/sh", "-c", "echo \"cuda=[$CUDA_VISIBLE_DEVICES] nvidia=[$NVIDIA_VISIBLE_DEVICES]\"; sleep 3600"]
env: {CUDA_VISIBLE_DEVICES: "0,1"}
resources: {cpu: 100m, memory: 32Mi}
)");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(FirstLogLine("plain"), "cuda=[] nvidia=[void]");
}

using e2e::ImagesDir;

std::string ContainerSkipReason() {
  if (geteuid() != 0) return "runc, overlay mounts and mknod need root";
  auto runc = runtime::host::RunCommand({"runc", "--version"});
  if (!runc.ok() || !runc->ok()) return "runc missing";
  if (ImagesDir().empty()) return "test images could not be built";
  return "";
}

// Two fake devices of a kind in a container: character devices made with mknod (kmsg's numbers,
// which open for writing without privileges, and loop-control's, which runc does not allow by
// default), a CDI spec of `kind` naming them `names[i]` with nodes /dev/<node>0 and /dev/<node>1,
// and a busybox container `boxed` of `resources`/`devices` that lists its nodes, prints `echo`,
// and tries to open both devices through nodes of its own. Returns what it printed.
struct FakeDevices {
  std::string kind;
  std::string names[2];
  std::string node;        // "fakegpu": the container sees /dev/fakegpu0 or /dev/fakegpu1
  std::string edit_env;    // each device's CDI env adds <edit_env>=<its number>; empty: none
  std::string spec_env;    // the spec's own edits add this "KEY=value"; empty: none
  std::string agent_yaml;  // the agent config, before its cdi_dirs line
  std::string workload;    // the workload's resources and devices lines
  std::string echo;        // what the container prints after its nodes (shell words)
};

std::string RunWithFakeDevices(const std::string& dir, const FakeDevices& f,
                               std::unique_ptr<DevServer>& server) {
  const std::string tree = dir + "/devtree";
  std::filesystem::create_directories(tree);
  std::filesystem::create_directories(dir + "/cdi");
  const dev_t numbers[2] = {makedev(1, 11), makedev(10, 237)};
  json spec = {{"cdiVersion", "0.6.0"}, {"kind", f.kind}, {"devices", json::array()}};
  for (int i = 0; i < 2; ++i) {
    const std::string n = std::to_string(i);
    const std::string host = tree + "/" + f.node + n;
    EXPECT_EQ(mknod(host.c_str(), S_IFCHR | 0666, numbers[i]), 0) << host;
    json edits = {{"deviceNodes", {{{"path", "/dev/" + f.node + n}, {"hostPath", host}}}}};
    if (!f.edit_env.empty()) edits["env"] = {f.edit_env + "=" + n};
    spec["devices"].push_back({{"name", f.names[i]}, {"containerEdits", edits}});
  }
  if (!f.spec_env.empty()) spec["containerEdits"] = {{"env", {f.spec_env}}};
  std::ofstream(dir + "/cdi/fake.json") << spec.dump(2);
  const std::string data = dir + "/data";
  std::filesystem::create_directories(data + "/imports");
  std::filesystem::copy_file(ImagesDir() + "/busybox-rootfs.tar",
                             data + "/imports/busybox-rootfs.tar");
  std::ofstream(dir + "/agent.yaml") << f.agent_yaml << "cdi_dirs: [" << dir << "/cdi]\n";
  server = std::make_unique<DevServer>(
      data, std::vector<std::string>{"--dev", "--agent-config", dir + "/agent.yaml"});
  if (!server->Start()) {
    ADD_FAILURE() << ReadFile(data + "/serve.log");
    return "";
  }
  // The server attaches its host's catalog once the local agent runs: retry briefly.
  Result imported;
  if (!Eventually([&] {
        imported = e2e::Run(data, {"image", "import", "busybox", "--rootfs", "busybox-rootfs.tar"});
        return imported.exit_code == 0;
      })) {
    ADD_FAILURE() << imported.err;
    return "";
  }
  const std::string command =
      "ls /dev | grep " + f.node + "; echo " + f.echo +
      "; for n in 0 1; do mknod /tmp/d$n c $([ $n = 0 ] && echo '1 11' || echo '10 237'); "
      "true > /tmp/d$n && echo open$n || echo refused$n; done; echo done; sleep 3600";
  Result created = e2e::Run(data, {"workload", "create", "-f", "-"},
                            "name: boxed\nkind: container\nimage: busybox\ncommand: "
                            "[\"/bin/sh\", \"-c\", \"" +
                                command + "\"]\n" + f.workload);
  EXPECT_EQ(created.exit_code, 0) << created.err;
  std::string out;
  EXPECT_TRUE(Eventually([&] {
    out = e2e::Run(data, {"workload", "logs", "boxed"}).out;
    return out.find("done\n") != std::string::npos;
  })) << out
      << server->Dump("boxed").dump() << ReadFile(data + "/serve.log");
  return out;
}

// Two fake GPUs named by the UUIDs the agent config declares, and a container granted one.
TEST_F(GpuE2eTest, AContainerSeesItsFakeDeviceNodeAndNotTheOther) {
  const std::string reason = ContainerSkipReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  dir_ = TempDir("e2e-gpu-cdi");
  const std::string out = RunWithFakeDevices(
      dir_,
      {.kind = "nvidia.com/gpu",
       .names = {"GPU-fake-0", "GPU-fake-1"},
       .node = "fakegpu",
       .edit_env = "FAKE_GPU",
       .spec_env = "NVIDIA_VISIBLE_DEVICES=void",
       .agent_yaml = "name: gpu-host\ngpus:\n"
                     "  - {model: A100-SXM4-80GB, memory: 80Gi, uuid: GPU-fake-0}\n"
                     "  - {model: A100-SXM4-80GB, memory: 80Gi, uuid: GPU-fake-1}\n",
       .workload = "resources: {cpu: 100m, memory: 32Mi, gpu: {count: 1}}\n",
       .echo = "gpu=$FAKE_GPU cuda=$CUDA_VISIBLE_DEVICES"},
      server_);
  const std::string id = server_->Dump("boxed")["status"]["gpus"][0].value("device_id", "");
  ASSERT_TRUE(id == "GPU-fake-0" || id == "GPU-fake-1") << server_->Dump("boxed").dump();
  const std::string mine = id.substr(id.size() - 1);
  const std::string other = mine == "0" ? "1" : "0";
  EXPECT_EQ(out, "fakegpu" + mine + "\ngpu=" + mine + " cuda=" + id + "\nopen" + mine +
                     "\nrefused" + other + "\ndone\n");
}

// Two FPGAs from a CDI spec whose nodes are /dev/null and /dev/zero (character devices every
// host has), beside the two declared GPUs.
std::string FpgaHostConfig(const std::string& dir) {
  std::filesystem::create_directories(dir + "/cdi");
  json spec = {{"cdiVersion", "0.6.0"}, {"kind", "xilinx.com/fpga"}, {"devices", json::array()}};
  const char* hosts[] = {"/dev/null", "/dev/zero"};
  for (int i = 0; i < 2; ++i) {
    spec["devices"].push_back(
        {{"name", "u250-" + std::to_string(i)},
         {"containerEdits",
          {{"deviceNodes",
            {{{"path", "/dev/xclmgmt" + std::to_string(i)}, {"hostPath", hosts[i]}}}}}}});
  }
  std::ofstream(dir + "/cdi/fpga.json") << spec.dump(2);
  return std::string(kTwoGpus).substr(0, std::string(kTwoGpus).find("cdi_dirs")) + "cdi_dirs: [" +
         dir + "/cdi]\n";
}

std::string FpgaProcess(const std::string& name) {
  return "name: " + name + R"(
kind: process
command: ["/bin/sh", "-c", "echo \"fpga=[$BERTH_DEVICES_XILINX_COM_FPGA]\"; sleep 3600"]
env: {BERTH_DEVICES_XILINX_COM_FPGA: "u250-0,u250-1"}
resources: {cpu: 100m, memory: 32Mi}
devices: [{class: xilinx.com/fpga, count: 1}]
)";
}

TEST_F(GpuE2eTest, EachProcessGetsItsFpgaAndHostGetListsEveryDeviceWithItsHolder) {
  dir_ = TempDir("e2e-fpga");
  Start(FpgaHostConfig(dir_));

  Result bad = Cli({"workload", "create", "-f", "-"},
                   "name: bad\nkind: process\ncommand: [\"true\"]\ndevices: [{class: fpga}]\n");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("devices[0].class"), std::string::npos) << bad.err;

  std::set<std::string> seen;
  for (const std::string name : {"fpga-a", "fpga-b"}) {
    Result created = Cli({"workload", "create", "-f", "-"}, FpgaProcess(name));
    ASSERT_EQ(created.exit_code, 0) << created.err;
    ASSERT_TRUE(Eventually([&] { return server_->State(name) == "running"; }))
        << server_->Dump(name).dump();
    const json devices = server_->Dump(name)["status"]["devices"];
    ASSERT_EQ(devices.size(), 1u) << devices.dump();
    EXPECT_EQ(devices[0]["class"], "xilinx.com/fpga");
    const std::string id = devices[0]["id"];
    // The grant replaces what the spec's env said.
    EXPECT_EQ(FirstLogLine(name), "fpga=[" + id + "]");
    seen.insert(id);
  }
  EXPECT_EQ(seen, (std::set<std::string>{"u250-0", "u250-1"}));

  Result third = Cli({"workload", "create", "-f", "-"}, FpgaProcess("fpga-c"));
  ASSERT_EQ(third.exit_code, 0) << third.err;
  ASSERT_TRUE(Eventually([&] {
    return server_->Dump("fpga-c")["status"]
               .value("explanation", "")
               .find("insufficient devices") != std::string::npos;
  })) << server_->Dump("fpga-c").dump();

  Result host = Cli({"host", "get", "gpu-host", "--json"});
  ASSERT_EQ(host.exit_code, 0) << host.err;
  const json listed = json::parse(host.out)["devices"];
  ASSERT_EQ(listed.size(), 4u) << listed.dump();
  std::map<std::string, std::string> holder_of;
  for (const json& d : listed) {
    EXPECT_TRUE(d["healthy"].get<bool>()) << d.dump();
    std::string holders;
    for (const json& h : d["holders"]) holders += h.get<std::string>();
    holder_of[d["class"].get<std::string>() + "=" + d["id"].get<std::string>()] = holders;
  }
  int gpus = 0;
  for (const auto& [name, holders] : holder_of) {
    if (name.rfind("nvidia.com/gpu=GPU-", 0) == 0) {
      ++gpus;
      EXPECT_EQ(holders, "") << name;
    }
  }
  EXPECT_EQ(gpus, 2);
  const std::string a_id = server_->Dump("fpga-a")["status"]["devices"][0]["id"];
  EXPECT_EQ(holder_of["xilinx.com/fpga=" + a_id], "fpga-a");
  EXPECT_EQ(holder_of[std::string("xilinx.com/fpga=") + (a_id == "u250-0" ? "u250-1" : "u250-0")],
            "fpga-b");
  Result table = Cli({"host", "get", "gpu-host"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("xilinx.com/fpga  " + a_id), std::string::npos) << table.out;
}

// Two fake FPGAs and a container granted one: it sees its node and its id, and the device
// cgroup refuses the other.
TEST_F(GpuE2eTest, AContainerSeesItsFpgaNodeAndIsDeniedTheOther) {
  const std::string reason = ContainerSkipReason();
  if (!reason.empty()) GTEST_SKIP() << reason;
  dir_ = TempDir("e2e-fpga-cdi");
  const std::string out = RunWithFakeDevices(dir_,
                                             {.kind = "xilinx.com/fpga",
                                              .names = {"u250-0", "u250-1"},
                                              .node = "fpga",
                                              .agent_yaml = "name: fpga-host\n",
                                              .workload = "resources: {cpu: 100m, memory: 32Mi}\n"
                                                          "devices: [{class: xilinx.com/fpga}]\n",
                                              .echo = "fpga=$BERTH_DEVICES_XILINX_COM_FPGA"},
                                             server_);
  const std::string id = server_->Dump("boxed")["status"]["devices"][0].value("id", "");
  ASSERT_TRUE(id == "u250-0" || id == "u250-1") << server_->Dump("boxed").dump();
  const std::string mine = id.substr(id.size() - 1);
  const std::string other = mine == "0" ? "1" : "0";
  EXPECT_EQ(out,
            "fpga" + mine + "\nfpga=" + id + "\nopen" + mine + "\nrefused" + other + "\ndone\n");
}

}  // namespace
}  // namespace berth::e2e
