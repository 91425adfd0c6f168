#include "agent/inventory.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace berth::agent {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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
  EXPECT_EQ((*gpus)[1].pci_address, "0000:0f:00.0");
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

std::string Recorded(const std::string& machine, const std::string& file) {
  std::ifstream in(std::string(BERTH_NVIDIA_SMI_TESTDATA) + "/" + machine + "/" + file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Inventory, EightV100sOnNvlinkFormOneIslandOverTwoNumaNodes) {
  auto gpus = ParseNvidiaSmi(Recorded("v100x8", "query.csv"));
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 8u);
  EXPECT_EQ((*gpus)[0].model, "Tesla-V100-SXM2-32GB");
  EXPECT_EQ((*gpus)[0].memory_mib, 32768);
  EXPECT_FALSE((*gpus)[0].mig_enabled);
  EXPECT_EQ((*gpus)[7].pci_address, "0000:8a:00.0");
  ApplyNvidiaTopology(Recorded("v100x8", "topo.txt"), &*gpus);
  for (const auto& g : *gpus) {
    EXPECT_EQ(g.nvlink_island, 0) << g.index;
    EXPECT_EQ(g.numa_node, g.index < 4 ? 0 : 1) << g.index;
  }
}

TEST(Inventory, PcieOnlyGpusAreIslandsOfTheirOwn) {
  std::vector<core::GpuDevice> gpus(3);
  for (int i = 0; i < 3; ++i) gpus[i].index = i;
  ApplyNvidiaTopology(
      "\tGPU0\tGPU1\tGPU2\tCPU Affinity\tNUMA Affinity\n"
      "GPU0\t X \tNV4\tSYS\t0-15\t0\n"
      "GPU1\tNV4\t X \tSYS\t0-15\t0\n"
      "GPU2\tSYS\tSYS\t X \t16-31\t1\n",
      &gpus);
  EXPECT_EQ(gpus[0].nvlink_island, gpus[1].nvlink_island);
  EXPECT_NE(gpus[0].nvlink_island, gpus[2].nvlink_island);
  EXPECT_EQ(gpus[2].numa_node, 1);
}

TEST(Inventory, A100MigInstancesComeWithUuidsAndStartSlices) {
  auto gpus = ParseNvidiaSmi(Recorded("a100-mig", "query.csv"));
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_TRUE((*gpus)[0].mig_enabled);
  EXPECT_FALSE((*gpus)[1].mig_enabled);
  ASSERT_TRUE(ParseNvidiaSmiList(Recorded("a100-mig", "list.txt"), &*gpus).ok());
  const auto& mig = (*gpus)[0].mig_instances;
  ASSERT_EQ(mig.size(), 4u);
  EXPECT_EQ(mig[0].profile, "3g.40gb");
  EXPECT_EQ(mig[0].uuid, "MIG-4a8c2e6f-1b3d-5f7a-9c2e-4b6d8f1a3c57");
  EXPECT_EQ(mig[0].start_slice, -1);
  EXPECT_TRUE((*gpus)[1].mig_instances.empty());
  ApplyMigPlacements(Recorded("a100-mig", "lgi.txt"), &*gpus);
  std::vector<int> starts;
  for (const auto& m : mig) starts.push_back(m.start_slice);
  EXPECT_EQ(starts, (std::vector<int>{4, 0, 2, 3}));
  // A 3g.40gb request placed at slice 4 gets that instance.
  std::vector<core::GpuAssignment> a = {
      {.index = 0, .milli = 428, .mig_profile = "3g.40gb", .mig_start_slice = 4}};
  core::ResolveGpuDeviceIds(*gpus, &a);
  EXPECT_EQ(a[0].device_id, "MIG-4a8c2e6f-1b3d-5f7a-9c2e-4b6d8f1a3c57");
}

TEST(Inventory, H100sReadWithTheirDriverVersionThroughAFakeNvidiaSmi) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "berth-smi-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  std::filesystem::copy(std::string(BERTH_NVIDIA_SMI_TESTDATA) + "/h100", dir + "/h100");
  const std::string smi = dir + "/nvidia-smi";
  {
    std::ofstream(dir + "/h100/calls").flush();
    std::ofstream(smi) << "#!/bin/sh\nexec " << BERTH_NVIDIA_SMI_TESTDATA << "/fake-nvidia-smi "
                       << dir << "/h100 \"$@\"\n";
  }
  std::filesystem::permissions(smi, std::filesystem::perms::owner_all);
  auto report = QueryNvidiaSmi(runtime::host::RealExecutor(), smi);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->gpus.size(), 4u);
  EXPECT_EQ(report->driver_version, "550.54.15");
  EXPECT_EQ(report->gpus[0].model, "H100-80GB-HBM3");
  EXPECT_EQ(report->gpus[3].uuid, "GPU-6a4d1e8c-9f3b-2a5e-c7d1-4e8b6a3f9d52");
  EXPECT_EQ(report->gpus[2].numa_node, 1);
  EXPECT_EQ(report->gpus[0].nvlink_island, report->gpus[3].nvlink_island);
  // No MIG on these: no -L or `mig -lgi` query was needed.
  EXPECT_EQ(ReadAll(dir + "/h100/calls").find("-L"), std::string::npos);
  // A driver that has lost a device makes the query fail, naming nvidia-smi's words.
  {
    std::ofstream(dir + "/h100/fail")
        << "Unable to determine the device handle for GPU0000:18:00.0: Unknown Error\n";
  }
  auto failed = QueryNvidiaSmi(runtime::host::RealExecutor(), smi);
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("Unknown Error"), std::string::npos) << failed.status();
  std::filesystem::remove_all(dir);
}

TEST(Inventory, DetectionPrefersNvidiaSmiAndAFailingOneOffersNoGpus) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "berth-smi-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  std::filesystem::copy(std::string(BERTH_NVIDIA_SMI_TESTDATA) + "/a100-mig", dir + "/a100");
  const std::string smi = dir + "/nvidia-smi";
  {
    std::ofstream(smi) << "#!/bin/sh\nexec " << BERTH_NVIDIA_SMI_TESTDATA << "/fake-nvidia-smi "
                       << dir << "/a100 \"$@\"\n";
  }
  std::filesystem::permissions(smi, std::filesystem::perms::owner_all);
  auto cfg = ParseAgentConfig(core::Json::parse(
      R"({"name":"h","gpus":[{"model":"T4","memory":"16Gi"}],"nvidia_smi":")" + smi + "\"}"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  auto inv = DetectInventory(*cfg, dir);
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->gpus.size(), 2u);  // nvidia-smi's, not the declared T4
  EXPECT_EQ(inv->gpus[0].mig_instances.size(), 4u);
  EXPECT_EQ(inv->fingerprint.at("gpu_driver"), "535.129.03");
  {
    std::ofstream(dir + "/a100/fail")
        << "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n";
  }
  inv = DetectInventory(*cfg, dir);
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_TRUE(inv->gpus.empty());
  EXPECT_NE(inv->fingerprint.at("gpu_error").find("couldn't communicate"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(Inventory, DeclaredGpusGetStableIdsAndConfigTakesCdiDirsAndNvidiaSmi) {
  auto cfg = ParseAgentConfig(core::Json::parse(R"({"name":"gpu-1",
      "gpus":[{"model":"A100-SXM4-80GB","memory":"80Gi"},
              {"model":"A100-SXM4-80GB","memory":"80Gi","uuid":"GPU-given"}],
      "cdi_dirs":["/opt/cdi"], "nvidia_smi":"/opt/bin/nvidia-smi"})"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->cdi_dirs, std::vector<std::string>{"/opt/cdi"});
  EXPECT_EQ(cfg->nvidia_smi, "/opt/bin/nvidia-smi");
  std::vector<core::GpuDevice> gpus = cfg->declared.gpus;
  NameDeclaredGpus("gpu-1", &gpus);
  EXPECT_EQ(gpus[0].uuid, core::DeclaredGpuUuid("gpu-1", 0));
  EXPECT_EQ(gpus[1].uuid, "GPU-given");
  auto defaults = ParseAgentConfig(core::Json::parse(R"({"name":"h"})"));
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->cdi_dirs, (std::vector<std::string>{"/etc/cdi", "/var/run/cdi"}));
  for (const char* bad : {R"({"cdi_dirs": "/etc/cdi"})", R"({"cdi_dirs": ["etc/cdi"]})",
                          R"({"nvidia_smi": "nvidia-smi"})"}) {
    auto s = ParseAgentConfig(core::Json::parse(bad)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(s.message().find("cdi_dirs") != std::string::npos ||
                s.message().find("nvidia_smi") != std::string::npos)
        << s;
  }
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

TEST(Inventory, ConfigTakesAnXidLogAsAnAbsolutePath) {
  auto cfg = ParseAgentConfig(core::Json::parse(R"({"xid_log": "/var/log/kern.log"})"));
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->xid_log, "/var/log/kern.log");
  for (const char* bad : {R"({"xid_log": "kern.log"})", R"({"xid_log": 1})"}) {
    auto s = ParseAgentConfig(core::Json::parse(bad)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("xid_log"), std::string::npos) << s;
  }
}

TEST(Inventory, LocalHostNameIsValid) {
  std::string name = LocalHostName();
  EXPECT_FALSE(name.empty());
  for (char c : name) EXPECT_TRUE(std::islower(c) || std::isdigit(c) || c == '-' || c == '.');
}

}  // namespace
}  // namespace berth::agent
