#include "sched/cluster.h"

#include "gtest/gtest.h"
#include "sched/scheduler.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using testing::CpuRequest;
using testing::GpuHost;
using testing::MigRequest;
using testing::Res;
using testing::ShareRequest;
using testing::WholeGpuRequest;

TEST(ClusterTest, AddHostValidates) {
  Cluster c;
  EXPECT_EQ(*c.AddHost(GpuHost("a", 2)), 0);
  EXPECT_EQ(c.AddHost(GpuHost("a", 2)).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(c.AddHost(GpuHost("Bad_Name", 2)).ok());
  HostSpec dup = GpuHost("dup", 2);
  dup.gpus[1].index = 0;
  EXPECT_FALSE(c.AddHost(dup).ok());
  HostSpec neg = GpuHost("neg", 0);
  neg.capacity.cpu = core::MilliCpu(-1);
  EXPECT_FALSE(c.AddHost(neg).ok());
  EXPECT_EQ(c.num_hosts(), 1);
  EXPECT_EQ(c.FindHost("a"), 0);
  EXPECT_FALSE(c.FindHost("b").has_value());
}

TEST(ClusterTest, CommitRejectsWithoutChangingAnything) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 2)).ok());
  Request w = WholeGpuRequest("w", 1);
  ASSERT_TRUE(c.Commit(w, Placement{0, "h", {{0, 1000}}}).ok());
  EXPECT_EQ(c.Commit(w, Placement{0, "h", {{1, 1000}}}).code(), absl::StatusCode::kAlreadyExists);
  // Device already taken, unknown device, wrong count, wrong host name, unknown host.
  EXPECT_FALSE(c.Commit(WholeGpuRequest("x", 1), Placement{0, "h", {{0, 1000}}}).ok());
  EXPECT_FALSE(c.Commit(WholeGpuRequest("x", 1), Placement{0, "h", {{7, 1000}}}).ok());
  EXPECT_FALSE(c.Commit(WholeGpuRequest("x", 2), Placement{0, "h", {{1, 1000}}}).ok());
  EXPECT_FALSE(c.Commit(WholeGpuRequest("x", 1), Placement{0, "other", {{1, 1000}}}).ok());
  EXPECT_FALSE(c.Commit(WholeGpuRequest("x", 1), Placement{3, "", {{1, 1000}}}).ok());
  // Over CPU capacity.
  EXPECT_EQ(c.Commit(CpuRequest("big", 999999, 1), Placement{0, ""}).code(),
            absl::StatusCode::kFailedPrecondition);
  // A share larger than what is left on the device.
  ASSERT_TRUE(c.Commit(ShareRequest("s1", 600), Placement{0, "", {{1, 600}}}).ok());
  EXPECT_FALSE(c.Commit(ShareRequest("s2", 500), Placement{0, "", {{1, 500}}}).ok());
  EXPECT_EQ(c.num_allocations(), 2);
  EXPECT_EQ(c.host(0).gpus[1].free_milli, 400);
  EXPECT_EQ(c.host(0).allocated, w.resources + ShareRequest("s1", 600).resources);
}

TEST(ClusterTest, ReleaseRestoresAndTotalsFollow) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 4)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("m", 1, "A100-SXM4-80GB", 81920, true)).ok());
  ClusterTotals empty = c.Totals();
  EXPECT_EQ(empty.gpus, 5);
  EXPECT_EQ(empty.idle_gpus, 5);
  EXPECT_EQ(empty.gpu_milli_capacity, 5000);
  int groups = c.num_groups();
  ASSERT_TRUE(c.Commit(WholeGpuRequest("w", 2), Placement{0, "", {{0, 1000}, {1, 1000}}}).ok());
  ASSERT_TRUE(c.Commit(ShareRequest("s", 250), Placement{0, "", {{2, 250}}}).ok());
  ASSERT_TRUE(
      c.Commit(MigRequest("g", "3g.40gb"), Placement{1, "", {{0, 428, 0, "3g.40gb", 4}}}).ok());
  ClusterTotals t = c.Totals();
  EXPECT_EQ(t.allocations, 3);
  EXPECT_EQ(t.idle_gpus, 1);
  EXPECT_EQ(t.gpu_milli_allocated, 2000 + 250 + 428);
  EXPECT_EQ(c.host(1).gpus[0].mig_slices_used, 0xf0);
  EXPECT_EQ(c.AllocationsOn(0), (std::vector<std::string>{"w", "s"}));
  EXPECT_EQ(c.Release("nope").code(), absl::StatusCode::kNotFound);
  for (const char* id : {"w", "s", "g"}) ASSERT_TRUE(c.Release(id).ok());
  ClusterTotals after = c.Totals();
  EXPECT_EQ(after.idle_gpus, 5);
  EXPECT_EQ(after.gpu_milli_allocated, 0);
  EXPECT_EQ(after.allocated, core::Resources{});
  EXPECT_EQ(c.host(1).gpus[0].mig_slices_used, 0);
  // Back in the same state as at the start: back in one group per hardware kind.
  EXPECT_EQ(c.num_groups(), groups);
}

TEST(ClusterTest, IdenticalHostsShareAGroup) {
  Cluster c;
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(c.AddHost(GpuHost("h" + std::to_string(i), 8)).ok());
  EXPECT_EQ(c.num_groups(), 1);
  ASSERT_TRUE(c.Commit(WholeGpuRequest("a", 1), Placement{5, "", {{0, 1000}}}).ok());
  ASSERT_TRUE(c.Commit(WholeGpuRequest("b", 1), Placement{9, "", {{0, 1000}}}).ok());
  EXPECT_EQ(c.num_groups(), 2);
  c.SetSchedulable(3, false);
  EXPECT_EQ(c.num_groups(), 3);
  EXPECT_FALSE(c.schedulable(3));
  EXPECT_GT(c.MemoryBytes(), 0u);
}

TEST(ClusterTest, QuotaUsageAndEnforcedCommit) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 8)).ok());
  Quota q;
  q.cpu = core::MilliCpu(20000);
  q.gpu_milli_by_model["A100-SXM4-80GB"] = 1500;
  c.SetQuota("t", q);
  Request a = WholeGpuRequest("a", 1);
  a.tenant = "t";
  ASSERT_TRUE(c.Commit(a, Placement{0, "", {{0, 1000}}}, {.enforce_quota = true}).ok());
  TenantUsage u = c.Usage("t");
  EXPECT_EQ(u.gpu_milli, 1000);
  EXPECT_EQ(u.gpu_milli_by_model["A100-SXM4-80GB"], 1000);
  EXPECT_EQ(u.resources.cpu.value(), 8000);
  Request b = WholeGpuRequest("b", 1);
  b.tenant = "t";
  absl::Status s = c.Commit(b, Placement{0, "", {{1, 1000}}}, {.enforce_quota = true});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("tenant \"t\""), absl::string_view::npos);
  // Without enforcement the model records what the caller decided.
  EXPECT_TRUE(c.Commit(b, Placement{0, "", {{1, 1000}}}).ok());
  ASSERT_NE(c.FindQuota("t"), nullptr);
  c.ClearQuota("t");
  EXPECT_EQ(c.FindQuota("t"), nullptr);
}

TEST(MixTest, TrackerLearnsTheWindow) {
  MixTracker t(MixTrackerOptions{.window = 4, .refresh_every = 2});
  for (int i = 0; i < 4; ++i) t.Observe(CpuRequest("c" + std::to_string(i), 1000, 1024));
  EXPECT_EQ(t.mix().total_weight(), 4);
  EXPECT_EQ(t.mix().entries().size(), 1u);
  uint64_t v = t.mix().version();
  t.Observe(WholeGpuRequest("g1", 1));
  EXPECT_EQ(t.mix().version(), v);  // not yet republished
  t.Observe(WholeGpuRequest("g2", 1));
  EXPECT_NE(t.mix().version(), v);
  ASSERT_EQ(t.mix().entries().size(), 2u);
  EXPECT_EQ(t.mix().total_weight(), 4);
  EXPECT_EQ(t.mix().entries()[1].weight, 2);
}

TEST(ModelTest, SelectorsAndValidation) {
  Labels l = {{"zone", "a"}};
  EXPECT_TRUE((LabelSelector{"zone", LabelSelector::Op::kEquals, {"a"}}).Matches(l));
  EXPECT_FALSE((LabelSelector{"zone", LabelSelector::Op::kEquals, {"b"}}).Matches(l));
  EXPECT_TRUE((LabelSelector{"zone", LabelSelector::Op::kIn, {"b", "a"}}).Matches(l));
  EXPECT_FALSE((LabelSelector{"zone", LabelSelector::Op::kNotIn, {"a"}}).Matches(l));
  EXPECT_TRUE((LabelSelector{"rack", LabelSelector::Op::kNotIn, {"a"}}).Matches(l));
  EXPECT_FALSE((LabelSelector{"rack", LabelSelector::Op::kExists, {}}).Matches(l));
  Request r = ShareRequest("s", 1000);
  EXPECT_EQ(ValidateRequest(r).message(),
            "workload \"s\": gpu.share must be between 1 and 999 milli, got 1000");
  r = MigRequest("m", "9g.99gb");
  EXPECT_FALSE(ValidateRequest(r).ok());
  r = CpuRequest("", 1, 1);
  EXPECT_FALSE(ValidateRequest(r).ok());
  r = CpuRequest("c", -5, 1);
  EXPECT_EQ(ValidateRequest(r).message(), "workload \"c\": cpu must be >= 0, got -5m");
  EXPECT_EQ(FormatReasons({{"gpu model not allowed", 312}, {"cpu", 1}}),
            "gpu model not allowed: 312 hosts; cpu: 1 host");
}

}  // namespace
}  // namespace berth::sched
