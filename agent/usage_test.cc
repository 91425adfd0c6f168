#include "agent/usage.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace berth::agent {
namespace {

constexpr char kStat[] =
    "cpu  100 0 100 700 100 0 0 0 0 0\n"
    "cpu0 50 0 50 350 50 0 0 0 0 0\n"
    "cpu1 50 0 50 350 50 0 0 0 0 0\n"
    "intr 1 2 3\n";

TEST(UsageTest, ParsesProcStat) {
  auto t = ParseProcStat(kStat);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->total, 1000);
  EXPECT_EQ(t->busy, 200);
  EXPECT_EQ(t->cpus, 2);
  EXPECT_FALSE(ParseProcStat("intr 1\n").ok());
  EXPECT_FALSE(ParseProcStat("cpu  1 x 3 4 5\n").ok());
}

TEST(UsageTest, ParsesMemInfo) {
  auto used = ParseMemInfoUsedMiB(
      "MemTotal:        8388608 kB\nMemFree:  100 kB\nMemAvailable:    6291456 kB\n");
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, 2048);
  EXPECT_FALSE(ParseMemInfoUsedMiB("MemTotal: 1 kB\n").ok());
}

TEST(UsageTest, ParsesNvidiaSmiUsageAndSkipsUnavailableFigures) {
  auto gpus = ParseNvidiaSmiUsage("0, 87, 40960\n1, [N/A], [N/A]\n2, 0, 3\n");
  ASSERT_TRUE(gpus.ok()) << gpus.status();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0], (core::GpuDeviceUsage{
                            .index = 0, .utilization_percent = 87, .memory_used_mib = 40960}));
  EXPECT_EQ((*gpus)[1].index, 2);
  EXPECT_FALSE(ParseNvidiaSmiUsage("0, 101, 3\n").ok());
  EXPECT_FALSE(ParseNvidiaSmiUsage("garbage\n").ok());
}

TEST(UsageTest, ParsesNvidiaSmiComputeApps) {
  auto apps = ParseNvidiaSmiComputeApps(
      "4121, 30512, GPU-b5e3c8a1-6f2d-9e4b-7a3c-1d8f5b2e9c60\n"
      "4188, [N/A], MIG-4a8c2e6f-1b3d-5f7a-9c2e-4b6d8f1a3c57\n");
  ASSERT_TRUE(apps.ok()) << apps.status();
  ASSERT_EQ(apps->size(), 2u);
  EXPECT_EQ((*apps)[0], (GpuProcess{.pid = 4121,
                                    .memory_used_mib = 30512,
                                    .gpu_uuid = "GPU-b5e3c8a1-6f2d-9e4b-7a3c-1d8f5b2e9c60"}));
  EXPECT_EQ((*apps)[1].memory_used_mib, 0);  // not readable (MIG): counted as nothing
  auto none = ParseNvidiaSmiComputeApps("No running processes found\n");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  EXPECT_TRUE(ParseNvidiaSmiComputeApps("")->empty());
  EXPECT_FALSE(ParseNvidiaSmiComputeApps("4121, 30512\n").ok());
  EXPECT_FALSE(ParseNvidiaSmiComputeApps("-1, 3, GPU-x\n").ok());
  EXPECT_FALSE(ParseNvidiaSmiComputeApps("7, -3, GPU-x\n").ok());
}

TEST(UsageTest, GpuProcessesCountForTheTaskTheyDescendFrom) {
  // A tree: task 100 started 101, which started 102; task 200; 300 is no task's (its parent is
  // init).
  const std::map<int64_t, int64_t> parents = {{100, 1}, {101, 100}, {102, 101}, {200, 1}, {300, 1}};
  auto parent_of = [&](int64_t pid) {
    auto it = parents.find(pid);
    return it == parents.end() ? int64_t{0} : it->second;
  };
  const std::map<int64_t, std::string> tasks = {{100, "train"}, {200, "serve"}};
  std::map<std::string, int64_t> by = GpuMemoryByWorkload(
      {{.pid = 102, .memory_used_mib = 1000, .gpu_uuid = "GPU-a"},
       {.pid = 101, .memory_used_mib = 24, .gpu_uuid = "GPU-b"},
       {.pid = 200, .memory_used_mib = 7, .gpu_uuid = "GPU-a"},
       {.pid = 300, .memory_used_mib = 5, .gpu_uuid = "GPU-a"},
       {.pid = 999, .memory_used_mib = 9, .gpu_uuid = "GPU-a"}},  // gone: no parent
      tasks, parent_of);
  EXPECT_EQ(by, (std::map<std::string, int64_t>{{"train", 1024}, {"serve", 7}}));
  EXPECT_TRUE(GpuMemoryByWorkload({{.pid = 102, .memory_used_mib = 1}}, {}, parent_of).empty());
}

TEST(UsageTest, ProcParentFollowsRealProcesses) {
  // This test process stands for a task's main process, a child of it for a CUDA process.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  EXPECT_EQ(ProcParent(child), getpid());
  std::map<std::string, int64_t> by =
      GpuMemoryByWorkload({{.pid = child, .memory_used_mib = 512, .gpu_uuid = "GPU-a"}},
                          {{getpid(), "train"}}, ProcParent);
  EXPECT_EQ(by, (std::map<std::string, int64_t>{{"train", 512}}));
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_EQ(ProcParent(child), 0);  // gone
}

TEST(UsageTest, SamplerMeasuresCpuBetweenSamples) {
  std::string root = ::testing::TempDir() + "/usage-proc";
  std::filesystem::create_directories(root);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(root + "/" + name) << text;
  };
  write("meminfo", "MemTotal: 4194304 kB\nMemAvailable: 3145728 kB\n");
  write("stat", kStat);
  HostUsageSampler sampler(root);
  auto first = sampler.Sample();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->cpu.value(), 0);  // no interval yet
  EXPECT_EQ(first->memory.value(), 1024);
  // 1000 more jiffies over two CPUs, 500 of them busy: one CPU's worth.
  write("stat", "cpu  300 0 400 1000 300 0 0 0 0 0\ncpu0 0\ncpu1 0\n");
  auto second = sampler.Sample();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->cpu.value(), 1000);
  std::filesystem::remove_all(root);
  EXPECT_FALSE(sampler.Sample().has_value());
}

}  // namespace
}  // namespace berth::agent
