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

TEST(GpuIds, DeclaredUuidsAreStableUuidShapedAndDifferPerHostAndIndex) {
  const std::string a = DeclaredGpuUuid("gpu-1", 0);
  EXPECT_EQ(a, DeclaredGpuUuid("gpu-1", 0));
  EXPECT_NE(a, DeclaredGpuUuid("gpu-1", 1));
  EXPECT_NE(a, DeclaredGpuUuid("gpu-2", 0));
  ASSERT_EQ(a.size(), 40u) << a;  // "GPU-" and 8-4-4-4-12 hex digits
  EXPECT_EQ(a.substr(0, 4), "GPU-");
  for (size_t at : {12u, 17u, 22u, 27u}) EXPECT_EQ(a[at], '-') << a;
}

TEST(GpuIds, WholeGpusAndSharesGetTheDeviceUuid) {
  std::vector<GpuDevice> gpus = {{.index = 0, .uuid = "GPU-aaa"}, {.index = 3, .uuid = "GPU-ddd"}};
  std::vector<GpuAssignment> a = {
      {.index = 3, .milli = 1000}, {.index = 0, .milli = 250}, {.index = 7, .milli = 1000}};
  ResolveGpuDeviceIds(gpus, &a);
  EXPECT_EQ(a[0].device_id, "GPU-ddd");
  EXPECT_EQ(a[1].device_id, "GPU-aaa");
  EXPECT_EQ(a[2].device_id, "");  // no such device on the host
}

TEST(GpuIds, MigSlicesGetTheInstanceAtTheirStartSlice) {
  GpuDevice d{.index = 0,
              .uuid = "GPU-a",
              .model = "A100-SXM4-80GB",
              .memory_mib = 81920,
              .mig_enabled = true};
  d.mig_instances = {{.profile = "3g.40gb", .start_slice = 4, .uuid = "MIG-four"},
                     {.profile = "3g.40gb", .start_slice = 0, .uuid = "MIG-zero"},
                     {.profile = "1g.10gb", .start_slice = 2, .uuid = "MIG-small"}};
  std::vector<GpuAssignment> a = {
      {.index = 0, .milli = 428, .mig_profile = "3g.40gb", .mig_start_slice = 0},
      {.index = 0, .milli = 428, .mig_profile = "3g.40gb", .mig_start_slice = 4},
      {.index = 0, .milli = 142, .mig_profile = "1g.10gb", .mig_start_slice = 5}};
  ResolveGpuDeviceIds({d}, &a);
  EXPECT_EQ(a[0].device_id, "MIG-zero");
  EXPECT_EQ(a[1].device_id, "MIG-four");
  EXPECT_EQ(a[2].device_id, "");  // no 1g.10gb instance starts at slice 5
}

TEST(GpuIds, MigInstancesWithoutPlacementsAreTakenInOrder) {
  GpuDevice d{.index = 1, .model = "A100-SXM4-80GB", .memory_mib = 81920, .mig_enabled = true};
  d.mig_instances = {{.profile = "3g.40gb", .uuid = "MIG-first"},
                     {.profile = "3g.40gb", .uuid = "MIG-second"}};
  std::vector<GpuAssignment> a = {{.index = 1, .mig_profile = "3g.40gb", .mig_start_slice = 4},
                                  {.index = 1, .mig_profile = "3g.40gb", .mig_start_slice = 0},
                                  {.index = 1, .mig_profile = "7g.80gb", .mig_start_slice = 0}};
  ResolveGpuDeviceIds({d}, &a);
  EXPECT_EQ(a[0].device_id, "MIG-second");
  EXPECT_EQ(a[1].device_id, "MIG-first");
  EXPECT_EQ(a[2].device_id, "");
}

}  // namespace
}  // namespace berth::core
