#include "agent/cdi_specs.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CdiSpecsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "berth-cdi-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/etc");
    fs::create_directories(dir_ + "/run");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& path, const std::string& text) {
    std::ofstream(dir_ + "/" + path) << text;
  }
  std::string dir_;
};

// As `nvidia-ctk cdi generate` writes it (YAML), cut down.
constexpr char kNvidiaYaml[] = R"(---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: GPU-1c7e9a52-8d3f-4b6e-a2c1-5f9d3e7b8a24
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: MIG-4a8c2e6f-1b3d-5f7a-9c2e-4b6d8f1a3c57
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia-caps/nvidia-cap21
containerEdits:
  env:
  - NVIDIA_VISIBLE_DEVICES=void
  deviceNodes:
  - path: /dev/nvidiactl
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-ctk
    args:
    - nvidia-ctk
    - hook
    - update-ldcache
)";

TEST_F(CdiSpecsTest, ReadsYamlAndJsonSpecsAndALaterDirectoryWins) {
  Write("etc/nvidia.yaml", kNvidiaYaml);
  Write("etc/fpga.json", R"({"cdiVersion": "0.6.0", "kind": "xilinx.com/fpga",
      "devices": [{"name": "u250-0", "containerEdits": {"env": ["XILINX=etc"]}}]})");
  Write("run/fpga.json", R"({"cdiVersion": "0.6.0", "kind": "xilinx.com/fpga",
      "devices": [{"name": "u250-0", "containerEdits": {"env": ["XILINX=run"]}}]})");
  Write("etc/README", "not a spec");
  CdiSpecs specs = LoadCdiSpecs({dir_ + "/etc", dir_ + "/run", dir_ + "/absent"});
  EXPECT_TRUE(specs.problems.empty()) << specs.problems.front();
  EXPECT_EQ(specs.files.size(), 3u);
  EXPECT_TRUE(specs.registry.Has("nvidia.com/gpu=0"));
  EXPECT_EQ(specs.registry.Devices("xilinx.com/fpga"),
            std::vector<std::string>{"xilinx.com/fpga=u250-0"});
  auto fpga = specs.registry.Resolve({"xilinx.com/fpga=u250-0"});
  ASSERT_TRUE(fpga.ok()) << fpga.status();
  EXPECT_EQ(fpga->env, std::vector<std::string>{"XILINX=run"});
  auto gpu = specs.registry.Resolve({"nvidia.com/gpu=0"});
  ASSERT_TRUE(gpu.ok());
  EXPECT_EQ(gpu->hooks.size(), 1u);
  EXPECT_EQ(gpu->device_nodes.size(), 2u);
}

TEST_F(CdiSpecsTest, ABadSpecIsSkippedAndNamedWithoutHidingTheOthers) {
  Write("etc/nvidia.yaml", kNvidiaYaml);
  Write("etc/broken.yaml", "cdiVersion: 0.5.0\nkind: acme.com/npu\ndevices:\n- name: x\n");
  Write("etc/garbage.json", "{not json");
  CdiSpecs specs = LoadCdiSpecs({dir_ + "/etc"});
  ASSERT_EQ(specs.problems.size(), 2u);
  EXPECT_THAT(specs.problems[0], HasSubstr("broken.yaml"));
  EXPECT_THAT(specs.problems[0], HasSubstr("devices[0].containerEdits is required"));
  EXPECT_THAT(specs.problems[1], HasSubstr("garbage.json"));
  EXPECT_TRUE(specs.registry.Has("nvidia.com/gpu=0"));
  EXPECT_FALSE(specs.registry.Has("acme.com/npu=x"));
}

TEST_F(CdiSpecsTest, GpusAreFoundByUuidThenByIndex) {
  Write("etc/nvidia.yaml", kNvidiaYaml);
  CdiSpecs specs = LoadCdiSpecs({dir_ + "/etc"});
  core::GpuAssignment whole{.index = 0, .milli = 1000};
  EXPECT_EQ(CdiNameForGpu(specs.registry, whole, "GPU-1c7e9a52-8d3f-4b6e-a2c1-5f9d3e7b8a24"),
            "nvidia.com/gpu=GPU-1c7e9a52-8d3f-4b6e-a2c1-5f9d3e7b8a24");
  EXPECT_EQ(CdiNameForGpu(specs.registry, whole, "GPU-declared"), "nvidia.com/gpu=0");
  core::GpuAssignment mig{.index = 0, .milli = 428, .mig_profile = "3g.40gb", .mig_start_slice = 4};
  EXPECT_EQ(CdiNameForGpu(specs.registry, mig, "MIG-4a8c2e6f-1b3d-5f7a-9c2e-4b6d8f1a3c57"),
            "nvidia.com/gpu=MIG-4a8c2e6f-1b3d-5f7a-9c2e-4b6d8f1a3c57");
  // A MIG slice is never handed the whole GPU of its index.
  EXPECT_EQ(CdiNameForGpu(specs.registry, mig, "MIG-unknown"), "");
  EXPECT_EQ(CdiNameForGpu(specs.registry, {.index = 5}, "GPU-x"), "");
}

TEST_F(CdiSpecsTest, DevicesOfOtherClassesAreHealthyWhileTheirNodesExist) {
  // /dev/null and /dev/zero stand in for the FPGA nodes: character devices every host has.
  Write("etc/fpga.yaml",
        "cdiVersion: 0.6.0\nkind: xilinx.com/fpga\ndevices:\n"
        "- name: u250-0\n  containerEdits:\n    deviceNodes:\n"
        "    - {path: /dev/xclmgmt0, hostPath: /dev/null}\n"
        "- name: u250-1\n  containerEdits:\n    deviceNodes:\n"
        "    - {path: /dev/xclmgmt1, hostPath: " +
            dir_ +
            "/missing}\n"
            "- name: u250-2\n  containerEdits:\n    deviceNodes:\n"
            "    - {path: /dev/xclmgmt2, hostPath: " +
            dir_ +
            "/etc/fpga.yaml}\n"
            "- name: all\n  containerEdits:\n    deviceNodes:\n"
            "    - {path: /dev/xclmgmt0, hostPath: /dev/zero}\n");
  Write("etc/nvidia.yaml", kNvidiaYaml);
  CdiSpecs specs = LoadCdiSpecs({dir_ + "/etc"});
  ASSERT_TRUE(specs.problems.empty()) << specs.problems.front();
  std::vector<core::Device> devices = CdiClassDevices(specs.registry);
  ASSERT_EQ(devices.size(), 3u);  // not the GPUs, not "all"
  EXPECT_EQ(devices[0].cls, "xilinx.com/fpga");
  EXPECT_EQ(devices[0].id, "u250-0");
  EXPECT_TRUE(devices[0].healthy) << devices[0].health;
  EXPECT_EQ(devices[1].id, "u250-1");
  EXPECT_FALSE(devices[1].healthy);
  EXPECT_THAT(devices[1].health, HasSubstr("/missing: No such file"));
  EXPECT_FALSE(devices[2].healthy);
  EXPECT_THAT(devices[2].health, HasSubstr("is not a device"));
}

}  // namespace
}  // namespace berth::agent
