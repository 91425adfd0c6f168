#include "core/gpu.h"

#include "gtest/gtest.h"

namespace berth::core {
namespace {

TEST(Mig, ProfilesDependOnDeviceMemory) {
  EXPECT_TRUE(FindMigProfile("A100-SXM4-80GB", 81920, "3g.40gb").has_value());
  EXPECT_FALSE(FindMigProfile("A100-SXM4-80GB", 81920, "3g.20gb").has_value());
  EXPECT_TRUE(FindMigProfile("A100-SXM4-40GB", 40960, "3g.20gb").has_value());
  EXPECT_TRUE(MigProfilesFor("T4", 16384).empty());
  EXPECT_EQ(FindMigProfile("H100", 81920, "7g.80gb")->memory_slices, 8);
  EXPECT_TRUE(IsKnownMigProfile("1g.10gb"));
  EXPECT_FALSE(IsKnownMigProfile("9g.1gb"));
}

TEST(GpuRequest, TotalMilliAndModels) {
  GpuRequest whole{.kind = GpuRequest::Kind::kWhole, .count = 4};
  EXPECT_EQ(whole.TotalMilli(), 4000);
  GpuRequest share{.kind = GpuRequest::Kind::kShare, .milli = 250};
  EXPECT_EQ(share.TotalMilli(), 250);
  share.models = {"T4"};
  EXPECT_TRUE(share.AllowsModel("T4"));
  EXPECT_FALSE(share.AllowsModel("A100"));
}

}  // namespace
}  // namespace berth::core
