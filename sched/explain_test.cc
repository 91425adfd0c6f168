#include "sched/explain.h"

#include "gtest/gtest.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using testing::CpuRequest;
using testing::GpuHost;
using testing::Res;
using testing::ShareRequest;
using testing::WholeGpuRequest;

const CheckFinding* Find(const Explanation& e, std::string_view check) {
  for (const CheckFinding& f : e.failing) {
    if (f.check == check) return &f;
  }
  return nullptr;
}

HostSpec SmallHost(std::string name, int64_t milli_cpu, int64_t memory_mib) {
  HostSpec h = GpuHost(std::move(name), 0);
  h.capacity = Res(milli_cpu, memory_mib, 102400);
  return h;
}

TEST(ExplainTest, CpuFigureNamesAskAndBestHost) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(SmallHost("host-a", 2000, 4096)).ok());
  Explanation e = ExplainRequest(c, CpuRequest("big", 64000, 1024));
  ASSERT_TRUE(e.fits_on.empty());
  const CheckFinding* cpu = Find(e, "cpu");
  ASSERT_NE(cpu, nullptr);
  EXPECT_EQ(cpu->detail, "asks 64, best host has 2 free of 2 (host-a)");
  EXPECT_EQ(cpu->hosts, 1);
  EXPECT_EQ(Find(e, "memory"), nullptr);
  ASSERT_EQ(e.to_fit.size(), 1u);
  EXPECT_NE(e.to_fit[0].find("lower cpu to at most 2"), std::string::npos) << e.to_fit[0];
  EXPECT_NE(e.Text().find("cpu: asks 64, best host has 2 free of 2 (host-a); 1 of 1 host"),
            std::string::npos)
      << e.Text();
}

TEST(ExplainTest, ReportsEveryFailingCheckNotOnlyTheFirst) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(SmallHost("a", 2000, 1024)).ok());
  ASSERT_TRUE(c.AddHost(SmallHost("b", 4000, 2048)).ok());
  c.SetSchedulable(1, false);
  Explanation e = ExplainRequest(c, CpuRequest("w", 8000, 8192));
  ASSERT_NE(Find(e, "cpu"), nullptr);
  ASSERT_NE(Find(e, "memory"), nullptr);
  ASSERT_NE(Find(e, "host-state"), nullptr);
  EXPECT_EQ(Find(e, "cpu")->hosts, 2);
  EXPECT_EQ(Find(e, "memory")->hosts, 2);
  EXPECT_EQ(Find(e, "host-state")->hosts, 1);
  // The best host for a figure is among the schedulable ones.
  EXPECT_EQ(Find(e, "cpu")->detail, "asks 8, best host has 2 free of 2 (a)");
  EXPECT_EQ(Find(e, "memory")->detail, "asks 8Gi, best host has 1Gi free of 1Gi (a)");
}

TEST(ExplainTest, FreeingCapacitySaysHowMuchAndWhere) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(SmallHost("a", 4000, 8192)).ok());
  Request held = CpuRequest("held", 3000, 1024);
  Placement p;
  p.host = 0;
  ASSERT_TRUE(c.Commit(held, p).ok());
  Explanation e = ExplainRequest(c, CpuRequest("w", 2000, 1024));
  ASSERT_NE(Find(e, "cpu"), nullptr);
  EXPECT_EQ(Find(e, "cpu")->detail, "asks 2, best host has 1 free of 4 (a)");
  ASSERT_EQ(e.to_fit.size(), 1u);
  EXPECT_EQ(e.to_fit[0], "free 1 cpu on a");
}

TEST(ExplainTest, GpuModelAndIdleDeviceFigures) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("t4", 2, "T4", 16384)).ok());
  Explanation e = ExplainRequest(c, WholeGpuRequest("w", 2, {"A100"}));
  ASSERT_NE(Find(e, "gpu"), nullptr);
  EXPECT_EQ(Find(e, "gpu")->detail, "asks 2 × A100, 0 hosts have that model");

  Cluster d;
  ASSERT_TRUE(d.AddHost(GpuHost("g", 2)).ok());
  Explanation e2 = ExplainRequest(d, WholeGpuRequest("w", 4));
  ASSERT_NE(Find(e2, "gpu-capacity"), nullptr);
  EXPECT_EQ(Find(e2, "gpu-capacity")->detail, "asks 4 × GPU, best host has 2 idle of 2 (g)");
}

TEST(ExplainTest, ShareFigureNamesBestDevice) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("g", 1)).ok());
  Placement p;
  p.host = 0;
  p.gpus.push_back({.index = 0, .milli = 750, .memory_mib = 1024});
  Request held = ShareRequest("held", 750, 1024);
  ASSERT_TRUE(c.Commit(held, p).ok());
  Explanation e = ExplainRequest(c, ShareRequest("w", 500));
  ASSERT_NE(Find(e, "gpu-capacity"), nullptr);
  EXPECT_EQ(Find(e, "gpu-capacity")->detail,
            "asks 0.5 of a GPU, best device has 0.25 free with "
            "79Gi (g)");
}

TEST(ExplainTest, QuotaIsReportedAsQuotaNotPerHost) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("g", 8)).ok());
  Quota q;
  q.gpu_milli = 4000;
  c.SetQuota("t", q);
  Request held = WholeGpuRequest("held", 2);
  held.tenant = "t";
  Placement p;
  p.host = 0;
  p.gpus = {{.index = 0, .milli = 1000}, {.index = 1, .milli = 1000}};
  ASSERT_TRUE(c.Commit(held, p).ok());
  Request r = WholeGpuRequest("w", 4);
  r.tenant = "t";
  Explanation e = ExplainRequest(c, r);
  EXPECT_TRUE(e.fits_on.empty());
  ASSERT_NE(Find(e, "quota"), nullptr);
  EXPECT_EQ(Find(e, "quota")->detail, "tenant t asks 4 GPUs, 2 of 4 used");
  EXPECT_EQ(Find(e, "quota")->hosts, 0);
  EXPECT_EQ(Find(e, "gpu-capacity"), nullptr);  // the host has room
  ASSERT_FALSE(e.to_fit.empty());
  EXPECT_EQ(e.to_fit[0], "raise tenant t's GPUs quota to 6, or stop its workloads holding 2 GPUs");
}

TEST(ExplainTest, FitsNowNamesTheHost) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(SmallHost("a", 4000, 4096)).ok());
  Explanation e = ExplainRequest(c, CpuRequest("w", 1000, 1024));
  EXPECT_EQ(e.fits_on, "a");
  EXPECT_TRUE(e.failing.empty());
}

TEST(ExplainTest, DeviceFiguresNameTheClassAndTheBestHost) {
  Cluster c;
  HostSpec none = SmallHost("plain", 8000, 8192);
  HostSpec two = SmallHost("fpga-2", 8000, 8192);
  two.devices = {{.cls = "xilinx.com/fpga", .id = "u250-0"},
                 {.cls = "xilinx.com/fpga", .id = "u250-1"}};
  ASSERT_TRUE(c.AddHost(none).ok());
  ASSERT_TRUE(c.AddHost(two).ok());
  Request r = CpuRequest("f", 1000, 1024);
  r.devices = {{.cls = "xilinx.com/fpga", .count = 3}};
  Explanation e = ExplainRequest(c, r);
  const CheckFinding* devices = Find(e, "devices");
  ASSERT_NE(devices, nullptr) << e.Text();
  EXPECT_EQ(devices->hosts, 2);
  EXPECT_EQ(devices->detail,
            "asks 3 × xilinx.com/fpga, best host has 2 healthy xilinx.com/fpga "
            "(fpga-2)");
  r.devices[0].count = 1;
  Placement held{.host = 1, .devices = {{.cls = "xilinx.com/fpga", .id = "u250-0"}}};
  // A placement may name only the devices its request asks for.
  EXPECT_FALSE(c.Commit(CpuRequest("stray", 1000, 1024), held).ok());
  Request one = CpuRequest("one", 1000, 1024);
  one.devices = {{.cls = "xilinx.com/fpga", .count = 1}};
  ASSERT_TRUE(c.Commit(one, held).ok());
  held.devices[0].id = "u250-1";
  one.id = "two";
  ASSERT_TRUE(c.Commit(one, held).ok());
  e = ExplainRequest(c, r);
  const CheckFinding* capacity = Find(e, "device-capacity");
  ASSERT_NE(capacity, nullptr) << e.Text();
  EXPECT_EQ(capacity->detail,
            "asks 1 × xilinx.com/fpga, best host has 2 healthy xilinx.com/fpga, 0 free (fpga-2)");
  // Both hosts fail one check; the first is the closest, and it has no such device at all.
  ASSERT_EQ(e.to_fit.size(), 1u);
  EXPECT_EQ(e.to_fit[0],
            "add a host with 1 × xilinx.com/fpga (plain has 0 healthy xilinx.com/fpga)");
}

TEST(ExplainTest, NoHosts) {
  Cluster c;
  Explanation e = ExplainRequest(c, CpuRequest("w", 1000, 1024));
  ASSERT_EQ(e.failing.size(), 1u);
  EXPECT_EQ(e.failing[0].detail, "no hosts registered");
}

}  // namespace
}  // namespace berth::sched
