#include "agent/usage.h"

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
