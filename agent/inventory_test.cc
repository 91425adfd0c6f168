#include "agent/inventory.h"

#include <filesystem>
#include <fstream>
#include <map>
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
  // A data directory of its own: on a host with nvidia-smi, detection keeps its GPUs there.
  std::string dir = (std::filesystem::temp_directory_path() / "berth-inv-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  auto inv = DetectInventory(*cfg, dir);
  std::filesystem::remove_all(dir);
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

TEST(Inventory, DetectionPrefersNvidiaSmiAndAFailingOneOffersItsLastGpusUnhealthy) {
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
  // A host whose driver fails before it ever answered offers no GPUs, and says why.
  const std::string fresh = dir + "/fresh";
  std::filesystem::create_directory(fresh);
  {
    std::ofstream(dir + "/a100/fail")
        << "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n";
  }
  auto inv = DetectInventory(*cfg, fresh);
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_TRUE(inv->gpus.empty());
  EXPECT_NE(inv->fingerprint.at("gpu_error").find("couldn't communicate"), std::string::npos);
  std::filesystem::remove(dir + "/a100/fail");
  inv = DetectInventory(*cfg, dir);
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->gpus.size(), 2u);  // nvidia-smi's, not the declared T4
  EXPECT_EQ(inv->gpus[0].mig_instances.size(), 4u);
  EXPECT_TRUE(inv->gpus[0].healthy);
  EXPECT_EQ(inv->fingerprint.at("gpu_driver"), "535.129.03");
  EXPECT_TRUE(std::filesystem::exists(LastKnownGpusPath(dir)));
  // The same host after a restart with its driver in trouble: the GPUs it had are there,
  // unhealthy with nvidia-smi's words, so nothing is placed on them and the host says why.
  {
    std::ofstream(dir + "/a100/fail")
        << "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n";
  }
  inv = DetectInventory(*cfg, dir);
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->gpus.size(), 2u);
  for (const core::GpuDevice& g : inv->gpus) {
    EXPECT_FALSE(g.healthy) << g.uuid;
    EXPECT_NE(g.health.find("couldn't communicate"), std::string::npos) << g.health;
  }
  EXPECT_EQ(inv->gpus[1].uuid, "GPU-8f2d4b61-3a9e-7c5d-b1f8-2e6a9c4d7b13");
  EXPECT_NE(inv->fingerprint.at("gpu_error").find("couldn't communicate"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// `text` with the first line that starts (past its indentation) with `key` after the lines that
// hold each of `anchors` in turn given `value` instead of its own.
std::string WithField(const std::string& text, const std::vector<std::string>& anchors,
                      const std::string& key, const std::string& value) {
  size_t at = 0;
  for (const std::string& anchor : anchors) {
    at = text.find(anchor, at);
    if (at == std::string::npos) {
      ADD_FAILURE() << "no " << anchor;
      return text;
    }
  }
  at = text.find('\n', at);
  while (at != std::string::npos) {
    const size_t start = at + 1;
    const size_t first = text.find_first_not_of(' ', start);
    const size_t end = text.find('\n', start);
    if (first != std::string::npos && text.compare(first, key.size(), key) == 0) {
      const size_t colon = text.find(": ", first);
      return text.substr(0, colon + 2) + value + text.substr(end);
    }
    at = end;
  }
  ADD_FAILURE() << "no " << key << " after " << anchors.back();
  return text;
}

TEST(Inventory, RecordedQueryReportsOfHealthyMachinesShowNoFaults) {
  for (const char* machine : {"v100x8", "h100", "a100-mig"}) {
    const std::string q = Recorded(machine, "q.txt");
    ASSERT_FALSE(q.empty()) << machine;
    EXPECT_TRUE(ParseNvidiaSmiErrors(q).empty()) << machine;
  }
}

TEST(Inventory, VolatileUncorrectableEccErrorsAndPendingRemapsMakeAGpuUnhealthy) {
  const std::string q = Recorded("h100", "q.txt");
  // Two uncorrectable DRAM errors since the driver loaded on GPU 2 (0000:ba:00.0); GPU 1 has
  // only lifetime (aggregate) ones, which a reset already dealt with.
  std::string faulty = WithField(q, {"GPU 00000000:BA:00.0"}, "DRAM Uncorrectable", "2");
  faulty = WithField(faulty, {"GPU 00000000:2A:00.0", "Aggregate"}, "DRAM Uncorrectable", "5");
  // GPU 3 has a row remapping waiting for a reset.
  faulty = WithField(faulty, {"GPU 00000000:DB:00.0", "Remapped Rows"}, "Pending", "Yes");
  std::map<std::string, std::string> faults = ParseNvidiaSmiErrors(faulty);
  ASSERT_EQ(faults.size(), 2u) << faulty;
  EXPECT_EQ(faults.at("0000:ba:00.0"),
            "nvidia-smi -q: 2 uncorrectable ECC errors since the driver loaded (reset the GPU: "
            "nvidia-smi -r)");
  EXPECT_EQ(faults.at("0000:db:00.0"),
            "nvidia-smi -q: memory rows pending remapping (reset the GPU: nvidia-smi -r)");
  // A remapping that failed needs a new GPU.
  faulty = WithField(faulty, {"GPU 00000000:DB:00.0"}, "Remapping Failure Occurred", "Yes");
  EXPECT_EQ(ParseNvidiaSmiErrors(faulty).at("0000:db:00.0"),
            "nvidia-smi -q: memory rows pending remapping, a memory row remapping failed (replace "
            "the GPU)");
  auto gpus = ParseNvidiaSmi(Recorded("h100", "query.csv"));
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ApplyNvidiaSmiErrors(faulty, &*gpus);
  std::vector<bool> healthy;
  for (const core::GpuDevice& g : *gpus) healthy.push_back(g.healthy);
  EXPECT_EQ(healthy, (std::vector<bool>{true, true, false, false}));
  EXPECT_NE((*gpus)[2].health.find("2 uncorrectable ECC errors"), std::string::npos);
}

TEST(Inventory, OlderLayoutsAndMigDevicesCountersAreReadWhereTheyBelong) {
  // Older drivers count single and double bit errors by memory, with totals; Volta retires
  // pages. A MIG device's own counters sit in its section and are not read as the GPU's.
  const std::string q =
      "Attached GPUs                             : 2\n"
      "GPU 00000000:06:00.0\n"
      "    Product Name                          : Tesla V100-SXM2-32GB\n"
      "    ECC Errors\n"
      "        Volatile\n"
      "            Single Bit            \n"
      "                Device Memory             : 12\n"
      "                Total                     : 12\n"
      "            Double Bit            \n"
      "                Device Memory             : 1\n"
      "                Register File             : 0\n"
      "                Total                     : 1\n"
      "        Aggregate\n"
      "            Double Bit            \n"
      "                Total                     : 7\n"
      "    Retired Pages\n"
      "        Single Bit ECC                    : 0\n"
      "        Double Bit ECC                    : 1\n"
      "        Pending Page Blacklist            : Yes\n"
      "    Remapped Rows                         : N/A\n"
      "GPU 00000000:07:00.0\n"
      "    MIG Devices\n"
      "        MIG Device\n"
      "            ECC Errors\n"
      "                Volatile\n"
      "                    SRAM Uncorrectable    : 3\n"
      "    ECC Errors\n"
      "        Volatile\n"
      "            SRAM Uncorrectable            : 0\n"
      "            DRAM Uncorrectable            : N/A\n"
      "    Retired Pages\n"
      "        Pending Page Blacklist            : N/A\n"
      "    Remapped Rows\n"
      "        Pending                           : No\n";
  std::map<std::string, std::string> faults = ParseNvidiaSmiErrors(q);
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults.at("0000:06:00.0"),
            "nvidia-smi -q: 1 uncorrectable ECC error since the driver loaded, memory pages "
            "pending retirement (reset the GPU: nvidia-smi -r)");
}

// A fake nvidia-smi in a fresh directory, printing what `machine` recorded; returns the
// directory (the machine's files are in DIR/MACHINE, the binary is DIR/nvidia-smi).
std::string FakeNvidiaSmi(const std::string& machine) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "berth-smi-XXXXXX").string();
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  const std::string dir = tmpl;
  std::filesystem::copy(std::string(BERTH_NVIDIA_SMI_TESTDATA) + "/" + machine,
                        dir + "/" + machine);
  {
    std::ofstream(dir + "/nvidia-smi")
        << "#!/bin/sh\nexec " << BERTH_NVIDIA_SMI_TESTDATA << "/fake-nvidia-smi " << dir << "/"
        << machine << " \"$@\"\n";
  }
  std::filesystem::permissions(dir + "/nvidia-smi", std::filesystem::perms::owner_all);
  return dir;
}

TEST(Inventory, TheQueryReadsErrorCountersAndAHungNvidiaSmiTimesOut) {
  const std::string dir = FakeNvidiaSmi("h100");
  const std::string smi = dir + "/nvidia-smi";
  {
    std::ofstream(dir + "/h100/q.txt") << WithField(
        Recorded("h100", "q.txt"), {"GPU 00000000:2A:00.0"}, "DRAM Uncorrectable", "1");
  }
  auto report = QueryNvidiaSmi(runtime::host::RealExecutor(), smi);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->gpus.size(), 4u);
  EXPECT_TRUE(report->gpus[0].healthy);
  EXPECT_FALSE(report->gpus[1].healthy);
  EXPECT_EQ(report->gpus[1].health,
            "nvidia-smi -q: 1 uncorrectable ECC error since the driver loaded (reset the GPU: "
            "nvidia-smi -r)");
  EXPECT_TRUE(report->warnings.empty());
  // A driver that hangs: the query gives up after its timeout, and nothing is left running.
  { std::ofstream(dir + "/h100/hang").flush(); }
  const absl::Time start = absl::Now();
  auto hung =
      QueryNvidiaSmi(runtime::host::RealExecutor(), smi, {.timeout = absl::Milliseconds(500)});
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  ASSERT_FALSE(hung.ok());
  EXPECT_EQ(hung.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_NE(hung.status().message().find("timed out"), std::string::npos) << hung.status();
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
