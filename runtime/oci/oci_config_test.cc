#include "runtime/oci/oci_config.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/golden_test_util.h"

namespace berth::runtime {
namespace {

using ::testing::HasSubstr;

void ExpectGolden(const std::string& name, const std::string& actual) {
  golden::ExpectGolden(BERTH_OCI_TESTDATA, name, actual);
}

ContainerLaunchSpec Box() {
  ContainerLaunchSpec s;
  s.id = "box";
  s.rootfs = "/var/lib/berth/images/busybox/rootfs";
  s.args = {"/bin/sh", "-c", "echo up; sleep 3600"};
  s.env = {{"GREETING", "hello"}};
  s.cpu = core::MilliCpu(250);
  s.memory = core::MemoryMiB(32);
  s.pids_limit = 256;
  s.cgroups_path = "/berth/box";
  return s;
}

std::string Doc(const ContainerLaunchSpec& s) {
  auto j = BuildOciConfig(s);
  EXPECT_TRUE(j.ok()) << j.status();
  return j.ok() ? j->dump(2) + "\n" : "";
}

TEST(OciConfigTest, BusyboxGolden) { ExpectGolden("busybox.json", Doc(Box())); }

TEST(OciConfigTest, ReadOnlyMountsJoinedNetnsGolden) {
  ContainerLaunchSpec s = Box();
  s.read_only_rootfs = true;
  s.cwd = "/work";
  s.hostname = "box-0";
  s.mounts = {{.source = "/pool/box/data", .destination = "/data"},
              {.source = "/pool/models", .destination = "/models", .read_only = true}};
  s.netns = "/run/netns/berth-box";
  s.max_open_files = 65536;
  ExpectGolden("readonly_mounts_netns.json", Doc(s));
}

TEST(OciConfigTest, WholeGpusGolden) {
  ContainerLaunchSpec s = Box();
  s.gpus = {{.id = "GPU-0f2e8a5c-1111-2222-3333-444455556666", .device_index = 0},
            {.id = "GPU-9a8b7c6d-1111-2222-3333-444455556666", .device_index = 3}};
  ExpectGolden("gpus_whole.json", Doc(s));
}

TEST(OciConfigTest, MigSliceGolden) {
  ContainerLaunchSpec s = Box();
  s.gpus = {{.id = "MIG-5c1d0f7e-aaaa-bbbb-cccc-ddddeeeeffff", .device_index = 1}};
  ExpectGolden("gpu_mig.json", Doc(s));
}

TEST(OciConfigTest, FractionalShareGolden) {
  ContainerLaunchSpec s = Box();
  s.gpus = {{.id = "GPU-0f2e8a5c-1111-2222-3333-444455556666",
             .device_index = 2,
             .milli = 250,
             .memory_mib = 10240}};
  ExpectGolden("gpu_share.json", Doc(s));
}

// A GPU delivered through CDI: the spec's device nodes replace the built-in ones, each gets a
// device-cgroup rule (and nothing else does), and its mounts, env and hooks are applied.
TEST(OciConfigTest, CdiDevicesGolden) {
  ContainerLaunchSpec s = Box();
  s.gpus = {{.id = "GPU-0f2e8a5c-1111-2222-3333-444455556666", .device_index = 0}};
  s.devices.env = {"NVIDIA_VISIBLE_DEVICES=void", "FAKE_GPU=0"};
  s.devices.device_nodes = {
      {.path = "/dev/nvidiactl", .type = "c", .major = 195, .minor = 255, .file_mode = 0666},
      {.path = "/dev/nvidia0",
       .host_path = "/dev/nvidia0",
       .type = "c",
       .major = 195,
       .minor = 0,
       .file_mode = 0666,
       .permissions = "rw"}};
  s.devices.mounts = {{.host_path = "/usr/lib/x86_64-linux-gnu/libcuda.so.535.129.03",
                       .container_path = "/usr/lib/x86_64-linux-gnu/libcuda.so.535.129.03",
                       .options = {"ro", "nosuid", "nodev", "bind"}}};
  s.devices.hooks = {{.hook_name = "createContainer",
                      .path = "/usr/bin/nvidia-ctk",
                      .args = {"nvidia-ctk", "hook", "update-ldcache"},
                      .timeout = 30}};
  ExpectGolden("cdi_devices.json", Doc(s));
}

TEST(OciConfigTest, AShareMountsItsMpsPipeDirectory) {
  ContainerLaunchSpec s = Box();
  s.gpus = {{.id = "GPU-a", .milli = 500}};
  s.mps_pipe_dir = "/run/berth/mps/GPU-a";
  auto j = BuildOciConfig(s);
  ASSERT_TRUE(j.ok()) << j.status();
  bool mounted = false;
  for (const auto& m : (*j)["mounts"]) mounted |= m["destination"] == "/run/berth/mps/GPU-a";
  EXPECT_TRUE(mounted) << j->dump();
  EXPECT_THAT((*j)["process"]["env"].dump(),
              HasSubstr("CUDA_MPS_PIPE_DIRECTORY=/run/berth/mps/GPU-a"));
}

TEST(OciConfigTest, DevicesOfOtherClassesComeBesideBuiltInGpuNodes) {
  ContainerLaunchSpec s = Box();
  s.gpus = {{.id = "GPU-a", .device_index = 0}};
  s.class_devices.env = {"XILINX_XRT=/opt/xilinx/xrt"};
  s.class_devices.device_nodes = {
      {.path = "/dev/xclmgmt0", .type = "c", .major = 240, .minor = 0, .file_mode = 0660}};
  auto j = BuildOciConfig(s);
  ASSERT_TRUE(j.ok()) << j.status();
  std::set<std::string> nodes;
  for (const auto& d : (*j)["linux"]["devices"]) nodes.insert(d["path"]);
  // The GPU has no CDI edits, so it still gets the NVIDIA nodes; the FPGA its own node.
  EXPECT_EQ(nodes, (std::set<std::string>{"/dev/nvidiactl", "/dev/nvidia0", "/dev/xclmgmt0"}));
  const auto& rules = (*j)["linux"]["resources"]["devices"];
  ASSERT_GE(rules.size(), 2u);
  EXPECT_EQ(rules[0]["allow"], false);
  int allowed_240 = 0;
  for (const auto& r : rules) allowed_240 += r["allow"] == true && r["major"] == 240;
  EXPECT_EQ(allowed_240, 1) << rules.dump();
  EXPECT_THAT((*j)["process"]["env"].dump(), HasSubstr("XILINX_XRT=/opt/xilinx/xrt"));
}

TEST(OciConfigTest, CgroupLimitsFollowTheRequest) {
  auto j = BuildOciConfig(Box());
  ASSERT_TRUE(j.ok());
  const auto& r = (*j)["linux"]["resources"];
  EXPECT_EQ(r["cpu"]["quota"], 25000);
  EXPECT_EQ(r["cpu"]["period"], 100000);
  EXPECT_EQ(r["cpu"]["shares"], 256);
  EXPECT_EQ(r["memory"]["limit"], 32 << 20);
  EXPECT_EQ(r["pids"]["limit"], 256);
  ContainerLaunchSpec unlimited = Box();
  unlimited.cpu = core::MilliCpu(0);
  unlimited.memory = core::MemoryMiB(0);
  unlimited.pids_limit = 0;
  auto u = BuildOciConfig(unlimited);
  ASSERT_TRUE(u.ok());
  EXPECT_FALSE((*u)["linux"]["resources"].contains("cpu"));
  EXPECT_FALSE((*u)["linux"]["resources"].contains("memory"));
  EXPECT_FALSE((*u)["linux"]["resources"].contains("pids"));
}

TEST(OciConfigTest, HostNetworkAddsNoNetworkNamespace) {
  ContainerLaunchSpec s = Box();
  s.netns = "host";
  auto j = BuildOciConfig(s);
  ASSERT_TRUE(j.ok());
  for (const auto& ns : (*j)["linux"]["namespaces"]) EXPECT_NE(ns["type"], "network");
}

TEST(OciConfigTest, RejectsBadSpecsNamingTheField) {
  struct Case {
    std::function<void(ContainerLaunchSpec&)> mutate;
    std::string want;
  };
  std::vector<Case> cases = {
      {[](ContainerLaunchSpec& s) { s.args.clear(); }, "container \"box\": args must not be empty"},
      {[](ContainerLaunchSpec& s) { s.rootfs = "rel/path"; }, "rootfs must be an absolute path"},
      {[](ContainerLaunchSpec& s) { s.cwd = "work"; }, "cwd must be an absolute path"},
      {[](ContainerLaunchSpec& s) { s.memory = core::MemoryMiB(-1); }, "memory must be >= 0"},
      {[](ContainerLaunchSpec& s) { s.cpu = core::MilliCpu(-5); }, "cpu must be >= 0, got -5m"},
      {[](ContainerLaunchSpec& s) { s.mounts = {{.source = "/a", .destination = "b"}}; },
       "mounts[0].destination"},
      {[](ContainerLaunchSpec& s) { s.gpus = {{.id = "GPU-1", .milli = 0}}; },
       "gpus[0].milli must be in 1..1000, got 0"},
  };
  for (const Case& c : cases) {
    ContainerLaunchSpec s = Box();
    c.mutate(s);
    auto j = BuildOciConfig(s);
    EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument) << c.want;
    EXPECT_THAT(std::string(j.status().message()), HasSubstr(c.want));
  }
}

}  // namespace
}  // namespace berth::runtime
