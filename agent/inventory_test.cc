#include "agent/inventory.h"

#include "gtest/gtest.h"

namespace berth::agent {
namespace {

TEST(Inventory, ParsesNvidiaSmi) {
  auto gpus = ParseNvidiaSmi(
      "0, GPU-aaaa, NVIDIA A100-SXM4-80GB, 81920, 00000000:07:00.0\n"
      "1, GPU-bbbb, NVIDIA A100-SXM4-80GB, 81920, 00000000:0F:00.0\n");
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[1].index, 1);
  EXPECT_EQ((*gpus)[1].uuid, "GPU-bbbb");
  EXPECT_EQ((*gpus)[1].model, "A100-SXM4-80GB");
  EXPECT_EQ((*gpus)[1].memory_mib, 81920);
  EXPECT_EQ((*gpus)[1].pci_address, "00000000:0F:00.0");
  EXPECT_FALSE(ParseNvidiaSmi("zero, x, y, z\n").ok());
}

TEST(Inventory, DeclaredGpusAndLimitsComeFromTheConfig) {
  auto cfg = ParseAgentConfig(core::Json::parse(R"({"name":"gpu-1","labels":{"rack":"r1"},
      "cpu":"4","gpus":[{"model":"A100-SXM4-80GB","memory":"80Gi"},{"model":"A100-SXM4-80GB","memory":"80Gi"}]})"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  auto inv = DetectInventory(*cfg, "/tmp");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->capacity.cpu, core::MilliCpu(4000));
  EXPECT_GT(inv->capacity.memory.value(), 0);  // detected from /proc/meminfo
  EXPECT_EQ(inv->labels.at("rack"), "r1");
  if (access("/usr/bin/nvidia-smi", X_OK) != 0) {
    ASSERT_EQ(inv->gpus.size(), 2u);
    EXPECT_EQ(inv->gpus[1].index, 1);
    EXPECT_EQ(inv->gpus[0].memory_mib, 81920);
  }
  EXPECT_FALSE(ParseAgentConfig(core::Json::parse(R"({"cpus": 3})")).ok());
  EXPECT_FALSE(ParseAgentConfig(core::Json::parse(R"({"gpus": [{"memory": "1Gi"}]})")).ok());
}

TEST(Inventory, ConfigTakesVmAccel) {
  auto cfg = ParseAgentConfig(core::Json::parse(R"({"vm_accel": "tcg"})"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->vm_accel, "tcg");
  auto unset = ParseAgentConfig(core::Json::parse(R"({"name": "h1"})"));
  ASSERT_TRUE(unset.ok()) << unset.status();
  EXPECT_EQ(unset->vm_accel, "");
  for (const char* bad : {R"({"vm_accel": "fast"})", R"({"vm_accel": 1})"}) {
    auto s = ParseAgentConfig(core::Json::parse(bad)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("vm_accel"), std::string::npos) << s;
    EXPECT_NE(s.message().find("auto, kvm or tcg"), std::string::npos) << s;
  }
}

TEST(Inventory, LocalHostNameIsValid) {
  std::string name = LocalHostName();
  EXPECT_FALSE(name.empty());
  for (char c : name) EXPECT_TRUE(std::islower(c) || std::isdigit(c) || c == '-' || c == '.');
}

}  // namespace
}  // namespace berth::agent
