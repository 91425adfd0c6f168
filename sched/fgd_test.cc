#include "sched/fgd.h"

#include "gtest/gtest.h"
#include "sched/cluster.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using testing::CpuRequest;
using testing::GpuHost;
using testing::MigRequest;
using testing::ShareRequest;
using testing::WholeGpuRequest;

TEST(FgdTest, IdleHostWithFittingMixHasNoFragmentation) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 8)).ok());
  WorkloadMix mix;
  mix.Add(Shape::Of(WholeGpuRequest("a", 1)), 1);
  mix.Add(Shape::Of(WholeGpuRequest("b", 8)), 1);
  mix.Add(Shape::Of(ShareRequest("c", 500)), 2);
  EXPECT_EQ(WeightedFragmentation(c.host(0), mix), 0);
  EXPECT_DOUBLE_EQ(c.HostFragmentation(0, mix), 0.0);
}

TEST(FgdTest, CpuOnlyShapeMakesAllFreeGpuFragmented) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 8)).ok());
  WorkloadMix mix;
  mix.Add(Shape::Of(CpuRequest("cpu", 1000, 1024)), 1);  // p = 1/4
  mix.Add(Shape::Of(WholeGpuRequest("g", 1)), 3);
  EXPECT_EQ(ShapeFragmentation(c.host(0), Shape::Of(CpuRequest("cpu", 1000, 1024))), 8000);
  // p x 8000 with p = 0.25.
  EXPECT_DOUBLE_EQ(c.HostFragmentation(0, mix), 2000.0);
  EXPECT_DOUBLE_EQ(c.Fragmentation(mix).fragmented_milli, 2000.0);
}

TEST(FgdTest, PartialGpusAreFragmentsForWholeAndLargeShares) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 4)).ok());
  // GPU 0 keeps 300 free, GPU 1 keeps 700 free, GPUs 2 and 3 idle.
  Request a = ShareRequest("a", 700);
  ASSERT_TRUE(c.Commit(a, Placement{0, "h", {{0, 700, 0, "", -1}}}).ok());
  Request b = ShareRequest("b", 300);
  ASSERT_TRUE(c.Commit(b, Placement{0, "h", {{1, 300, 0, "", -1}}}).ok());
  const HostState& h = c.host(0);
  // Whole GPUs: both partial devices are fragments.
  EXPECT_EQ(ShapeFragmentation(h, Shape::Of(WholeGpuRequest("w", 1))), 1000);
  // A 500 share: only the device with 300 free is too small.
  EXPECT_EQ(ShapeFragmentation(h, Shape::Of(ShareRequest("s", 500))), 300);
  // A 200 share fits everywhere.
  EXPECT_EQ(ShapeFragmentation(h, Shape::Of(ShareRequest("s", 200))), 0);
  // Three whole GPUs cannot run at all: every free milli counts.
  EXPECT_EQ(ShapeFragmentation(h, Shape::Of(WholeGpuRequest("w", 3))), 3000);
  WorkloadMix mix;
  mix.Add(Shape::Of(WholeGpuRequest("w", 1)), 1);
  mix.Add(Shape::Of(ShareRequest("s", 500)), 1);
  EXPECT_DOUBLE_EQ(c.HostFragmentation(0, mix), (1000.0 + 300.0) / 2);
}

TEST(FgdTest, ModelConstraintMakesHostUnusable) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 2, "T4", 16384)).ok());
  EXPECT_EQ(ShapeFragmentation(c.host(0), Shape::Of(WholeGpuRequest("w", 1, {"H100"}))), 2000);
  EXPECT_EQ(ShapeFragmentation(c.host(0), Shape::Of(WholeGpuRequest("w", 1, {"T4"}))), 0);
}

TEST(FgdTest, ShapeThatDoesNotFitCpuCountsAllFreeGpu) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 2)).ok());
  Request big = WholeGpuRequest("w", 1);
  big.resources.cpu = core::MilliCpu(999999);
  EXPECT_EQ(ShapeFragmentation(c.host(0), Shape::Of(big)), 2000);
}

TEST(FgdTest, MigSlotsDecideFit) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 1, "A100-SXM4-80GB", 81920, /*mig=*/true)).ok());
  Shape seven = Shape::Of(MigRequest("m", "7g.80gb"));
  EXPECT_EQ(ShapeFragmentation(c.host(0), seven), 0);
  Request one = MigRequest("one", "1g.10gb");
  ASSERT_TRUE(c.Commit(one, Placement{0, "h", {{0, 142, 0, "1g.10gb", 0}}}).ok());
  // The device now has 858 milli free but no room for a 7g instance.
  EXPECT_EQ(ShapeFragmentation(c.host(0), seven), 858);
  EXPECT_EQ(ShapeFragmentation(c.host(0), Shape::Of(MigRequest("x", "3g.40gb"))), 0);
}

}  // namespace
}  // namespace berth::sched
