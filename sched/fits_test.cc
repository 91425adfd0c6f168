#include "sched/fits.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sched/cluster.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using Kind = core::GpuRequest::Kind;

core::GpuDevice Device(std::string model, int64_t memory_mib, bool mig = false) {
  core::GpuDevice d;
  d.index = 0;
  d.model = std::move(model);
  d.memory_mib = memory_mib;
  d.mig_enabled = mig;
  return d;
}

GpuState State(core::GpuDevice d, int64_t free_milli, int64_t free_memory_mib, uint8_t mig_used,
               int shares) {
  GpuState g;
  g.device = std::move(d);
  g.free_milli = free_milli;
  g.free_memory_mib = free_memory_mib;
  g.mig_slices_used = mig_used;
  g.shares = shares;
  return g;
}

core::GpuRequest Whole(int64_t min_memory_mib = 0, std::vector<std::string> models = {}) {
  core::GpuRequest r;
  r.kind = Kind::kWhole;
  r.count = 1;
  r.min_memory_mib = min_memory_mib;
  r.models = std::move(models);
  return r;
}

core::GpuRequest Share(int64_t milli, int64_t memory_mib) {
  core::GpuRequest r;
  r.kind = Kind::kShare;
  r.milli = milli;
  r.memory_mib = memory_mib;
  return r;
}

core::GpuRequest Mig(std::string profile) {
  core::GpuRequest r;
  r.kind = Kind::kMig;
  r.mig_profile = std::move(profile);
  return r;
}

struct Case {
  const char* name;
  GpuState gpu;
  core::GpuRequest request;
  DeviceMisfit misfit;  // the static half
  bool holds;           // the whole rule
};

TEST(FitsTest, DeviceRuleTable) {
  const core::GpuDevice a100 = Device("A100-SXM4-80GB", 81920);
  const core::GpuDevice a100_mig = Device("A100-SXM4-80GB", 81920, /*mig=*/true);
  const core::GpuDevice t4 = Device("T4", 16384);
  const core::GpuDevice t4_mig = Device("T4", 16384, /*mig=*/true);
  const std::vector<Case> cases = {
      {"no gpu asked", State(a100, 1000, 81920, 0, 0), core::GpuRequest{}, DeviceMisfit::kNoGpu,
       false},
      {"whole on idle device", State(a100, 1000, 81920, 0, 0), Whole(), DeviceMisfit::kNone, true},
      {"whole on shared device", State(a100, 600, 40960, 0, 1), Whole(), DeviceMisfit::kNone,
       false},
      {"whole model allowed", State(a100, 1000, 81920, 0, 0), Whole(0, {"A100-SXM4-80GB"}),
       DeviceMisfit::kNone, true},
      {"whole model not allowed", State(a100, 1000, 81920, 0, 0), Whole(0, {"H100"}),
       DeviceMisfit::kModel, false},
      {"whole needs more memory", State(t4, 1000, 16384, 0, 0), Whole(40960), DeviceMisfit::kMemory,
       false},
      {"whole memory exactly enough", State(t4, 1000, 16384, 0, 0), Whole(16384),
       DeviceMisfit::kNone, true},
      {"whole on MIG device", State(a100_mig, 1000, 81920, 0, 0), Whole(), DeviceMisfit::kMigMode,
       false},
      {"share fits", State(a100, 1000, 81920, 0, 0), Share(500, 20480), DeviceMisfit::kNone, true},
      {"share fits exactly", State(a100, 500, 20480, 0, 1), Share(500, 20480), DeviceMisfit::kNone,
       true},
      {"share short of milli", State(a100, 499, 81920, 0, 1), Share(500, 0), DeviceMisfit::kNone,
       false},
      {"share short of free memory", State(a100, 1000, 10240, 0, 1), Share(100, 20480),
       DeviceMisfit::kNone, false},
      {"share larger than the device", State(t4, 1000, 16384, 0, 0), Share(100, 20480),
       DeviceMisfit::kMemory, false},
      {"share on MIG device", State(a100_mig, 1000, 81920, 0, 0), Share(100, 0),
       DeviceMisfit::kMigMode, false},
      {"mig on idle partitioned device", State(a100_mig, 1000, 81920, 0, 0), Mig("3g.40gb"),
       DeviceMisfit::kNone, true},
      {"mig second half free", State(a100_mig, 572, 81920, 0x0f, 1), Mig("3g.40gb"),
       DeviceMisfit::kNone, true},
      {"mig no start slot free", State(a100_mig, 716, 81920, 0x11, 2), Mig("3g.40gb"),
       DeviceMisfit::kNone, false},
      {"mig compute used up", State(a100_mig, 100, 81920, 0x0f, 2), Mig("3g.40gb"),
       DeviceMisfit::kNone, false},
      {"mig on unpartitioned device", State(a100, 1000, 81920, 0, 0), Mig("3g.40gb"),
       DeviceMisfit::kMigMode, false},
      {"mig profile of another memory size", State(a100_mig, 1000, 81920, 0, 0), Mig("3g.20gb"),
       DeviceMisfit::kProfile, false},
      {"mig on model without MIG", State(t4_mig, 1000, 16384, 0, 0), Mig("1g.5gb"),
       DeviceMisfit::kProfile, false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    DeviceFit fit = DeviceFitFor(c.gpu.device, c.request);
    EXPECT_EQ(fit.misfit, c.misfit);
    EXPECT_EQ(Holds(fit, c.request, DeviceFree::Of(c.gpu)), c.holds);
    EXPECT_EQ(GpuHolds(c.gpu, c.request), c.holds);
  }
}

TEST(FitsTest, MigStartIsTheFirstFreeAllowedSlot) {
  DeviceFit fit = DeviceFitFor(Device("A100-SXM4-80GB", 81920, true), Mig("3g.40gb"));
  ASSERT_TRUE(fit.ok());
  EXPECT_EQ(fit.mig_run, 0x0f);
  EXPECT_EQ(fit.mig_milli, 3 * 1000 / 7);
  EXPECT_EQ(FreeMigStart(fit, 0x00), 0);
  EXPECT_EQ(FreeMigStart(fit, 0x01), 4);
  EXPECT_EQ(FreeMigStart(fit, 0x11), -1);
  EXPECT_EQ(MigRunAt(fit, 4), 0xf0);
}

TEST(FitsTest, MigSlicesAreThoseOfTheInstancesCarved) {
  // The A100 recorded in agent/testdata: 2g.20gb at 0, 1g.10gb at 2 and 3, 3g.40gb at 4.
  core::GpuDevice d = Device("A100-SXM4-80GB", 81920, true);
  d.mig_instances = {{.profile = "3g.40gb", .start_slice = 4, .uuid = "MIG-a"},
                     {.profile = "2g.20gb", .start_slice = 0, .uuid = "MIG-b"},
                     {.profile = "1g.10gb", .start_slice = 2, .uuid = "MIG-c"},
                     {.profile = "1g.10gb", .start_slice = 3, .uuid = "MIG-d"}};
  DeviceFit three = DeviceFitFor(d, Mig("3g.40gb"));
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(three.mig_starts, 0x10);
  EXPECT_EQ(FreeMigStart(three, 0x00), 4);  // not 0, where no 3g.40gb instance is
  EXPECT_EQ(DeviceFitFor(d, Mig("1g.10gb")).mig_starts, 0x0c);
  // A profile with no instance carved: the device cannot hold it.
  EXPECT_EQ(DeviceFitFor(d, Mig("4g.40gb")).misfit, DeviceMisfit::kProfile);
  // Instances whose slices were not read stand for the first allowed starts.
  for (auto& m : d.mig_instances) m.start_slice = -1;
  EXPECT_EQ(DeviceFitFor(d, Mig("3g.40gb")).mig_starts, 0x01);
  EXPECT_EQ(DeviceFitFor(d, Mig("1g.10gb")).mig_starts, 0x03);
  // A declared device (no instances reported) offers every allowed start.
  EXPECT_EQ(DeviceFitFor(Device("A100-SXM4-80GB", 81920, true), Mig("3g.40gb")).mig_starts, 0x11);
}

TEST(FitsTest, ResourcesReportTheFirstDimensionShort) {
  const core::Resources free = testing::Res(4000, 8192, 100);
  EXPECT_EQ(ResourcesFit(free, testing::Res(4000, 8192, 100)), ResourceMisfit::kNone);
  EXPECT_EQ(ResourcesFit(free, testing::Res(4001, 9000, 200)), ResourceMisfit::kCpu);
  EXPECT_EQ(ResourcesFit(free, testing::Res(1000, 8193, 200)), ResourceMisfit::kMemory);
  EXPECT_EQ(ResourcesFit(free, testing::Res(1000, 1024, 101)), ResourceMisfit::kDisk);
}

TEST(FitsTest, HostFitsNeedsResourcesAndEnoughHoldingDevices) {
  Cluster c;
  HostSpec spec = testing::GpuHost("h", 2);
  spec.capacity = testing::Res(8000, 65536, 1024);
  ASSERT_TRUE(c.AddHost(spec).ok());
  core::GpuRequest share = Share(300, 0);
  ASSERT_TRUE(
      c.Commit(testing::ShareRequest("s", 300), Placement{0, "h", {{0, 300, 0, "", -1}}}).ok());
  const HostState& h = c.host(0);
  core::GpuRequest one = Whole(), two = Whole();
  two.count = 2;
  EXPECT_TRUE(HostFits(h, testing::Res(1000, 1024), one));
  EXPECT_FALSE(HostFits(h, testing::Res(1000, 1024), two));  // device 0 holds a share
  EXPECT_TRUE(HostFits(h, testing::Res(1000, 1024), share));
  EXPECT_FALSE(HostFits(h, testing::Res(9000, 1024), one));
  EXPECT_FALSE(HostFits(h, testing::Res(1000, 1024, 2048), core::GpuRequest{}));
  EXPECT_TRUE(HostFits(h, testing::Res(1000, 1024, 1024), core::GpuRequest{}));
}

// Commit accepts exactly what the device rule says a device holds.
TEST(FitsTest, CommitAgreesWithTheDeviceRule) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(testing::GpuHost("h", 1)).ok());
  Request big = testing::ShareRequest("big", 700);
  ASSERT_TRUE(c.Commit(big, Placement{0, "h", {{0, 700, 0, "", -1}}}).ok());
  Request small = testing::ShareRequest("small", 400);
  EXPECT_FALSE(GpuHolds(c.host(0).gpus[0], small.gpu));
  EXPECT_EQ(c.CheckFits(small, Placement{0, "h", {{0, 400, 0, "", -1}}}).code(),
            absl::StatusCode::kFailedPrecondition);
  Request fits = testing::ShareRequest("fits", 300);
  EXPECT_TRUE(GpuHolds(c.host(0).gpus[0], fits.gpu));
  EXPECT_TRUE(c.CheckFits(fits, Placement{0, "h", {{0, 300, 0, "", -1}}}).ok());
}

}  // namespace
}  // namespace berth::sched
