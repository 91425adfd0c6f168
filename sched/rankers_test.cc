#include <string>

#include "gtest/gtest.h"
#include "sched/cluster_index.h"
#include "sched/ranker.h"
#include "sched/scheduler.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using testing::GpuHost;
using testing::ShareRequest;

TEST(RankerTableTest, UnknownRankerIsAnErrorNamingIt) {
  absl::StatusOr<Policy> p = Policy::Parse("fgd:1+packwell:0.5");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("\"packwell\""), std::string_view::npos)
      << p.status().message();
  EXPECT_EQ(FindRanker("packwell"), nullptr);
}

TEST(RankerTableTest, NamesComeFromTheTable) {
  std::vector<std::string> names = RankerNames();
  ASSERT_EQ(names.size(), RankerTable().size());
  for (size_t i = 0; i < names.size(); ++i) EXPECT_EQ(names[i], RankerTable()[i].name);
  for (const char* name :
       {"first-fit", "binpack", "spread", "dotprod", "gpu-packing", "fgd", "topology"}) {
    EXPECT_NE(FindRanker(name), nullptr) << name;
  }
}

// Every ranker of the table is usable by name from a policy, alone and weighted with another.
TEST(RankerTableTest, EveryRegisteredRankerIsUsableByName) {
  for (const RankerEntry& e : RankerTable()) {
    SCOPED_TRACE(std::string(e.name));
    ASSERT_NE(e.make, nullptr);
    ASSERT_NE(e.make(), nullptr);
    EXPECT_FALSE(e.doc.empty());
    const std::string other = e.name == "binpack" ? "spread" : "binpack";
    for (std::string text : {std::string(e.name), std::string(e.name) + ":0.5+" + other + ":0.1"}) {
      absl::StatusOr<Policy> p = Policy::Parse(text);
      ASSERT_TRUE(p.ok()) << p.status();
      EXPECT_TRUE(p->Uses(e.name));
      Cluster c;
      ASSERT_TRUE(c.AddHost(GpuHost("a", 2)).ok());
      ASSERT_TRUE(c.AddHost(GpuHost("b", 2)).ok());
      Scheduler s(&c, SchedulerOptions{.policy = *p});
      for (int i = 0; i < 6; ++i) {
        absl::StatusOr<Decision> d = s.Place(ShareRequest("s" + std::to_string(i), 300));
        ASSERT_TRUE(d.ok()) << d.status();
        EXPECT_TRUE(d->scheduled);
      }
    }
  }
}

// The table's rankers steer placement as their names say: binpack fills the busier host,
// spread the emptier one.
TEST(RankerTableTest, PolicyComposesRankersFromTheTable) {
  for (const auto& [policy, want] :
       std::vector<std::pair<std::string, std::string>>{{"binpack", "a"}, {"spread", "b"}}) {
    Cluster c;
    ASSERT_TRUE(c.AddHost(GpuHost("a", 2)).ok());
    ASSERT_TRUE(c.AddHost(GpuHost("b", 2)).ok());
    ASSERT_TRUE(c.Commit(ShareRequest("x", 500), Placement{0, "a", {{0, 500, 0, "", -1}}}).ok());
    Scheduler s(&c, SchedulerOptions{.policy = *Policy::Parse(policy)});
    absl::StatusOr<Decision> d = s.Schedule(ShareRequest("y", 200));
    ASSERT_TRUE(d.ok());
    ASSERT_TRUE(d->scheduled);
    EXPECT_EQ(d->plan.placement.host_name, want) << policy;
  }
}

// The scheduler computes pack and spread summary scores itself: every ranker's SummaryScore must
// be what its summary_role says.
TEST(RankerTableTest, SummaryScoresAreWhatTheRoleSays) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("a", 2)).ok());
  const Request r = ShareRequest("s", 300);
  const WorkloadMix mix;
  RankContext ctx{c.index(), r, r.gpu.TotalMilli(), mix};
  const GroupSummary& g = c.index().summary[c.index().host_group[0]];
  for (const RankerEntry& e : RankerTable()) {
    SCOPED_TRACE(std::string(e.name));
    std::unique_ptr<Ranker> ranker = e.make();
    const SummaryRole role = ranker->summary_role(r);
    for (int64_t util : {int64_t{0}, int64_t{123'456'789}, kScoreMax}) {
      const int64_t score = ranker->SummaryScore(ctx, g, util);
      switch (role) {
        case SummaryRole::kPack:
          EXPECT_EQ(score, util);
          break;
        case SummaryRole::kSpread:
          EXPECT_EQ(score, kScoreMax - util);
          break;
        case SummaryRole::kConstant:
          EXPECT_EQ(score, ranker->SummaryScore(ctx, g, 0));
          break;
        case SummaryRole::kVaries:
          break;
      }
    }
  }
}

}  // namespace
}  // namespace berth::sched
