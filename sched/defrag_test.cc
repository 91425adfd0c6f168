#include "sched/defrag.h"

#include <memory>

#include "gtest/gtest.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using testing::GpuHost;
using testing::WholeGpuRequest;

// A plan that puts the request on host `target` after moving `id` alone to host `to`.
void ExpectOneMove(const absl::StatusOr<DefragPlan>& plan, int target, const std::string& id,
                   int to, int64_t cost) {
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->found);
  EXPECT_EQ(plan->placement.host, target);
  ASSERT_EQ(plan->moves.size(), 1u);
  EXPECT_EQ(plan->moves[0].allocation_id, id);
  EXPECT_EQ(plan->moves[0].from_host, target);
  EXPECT_EQ(plan->moves[0].to.host, to);
  EXPECT_EQ(plan->cost, cost);
}

// Two 8-GPU hosts, each half taken by one 4-GPU workload: 8 GPUs free in total, but no host
// has 8 idle ones.
class DefragTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(c_.AddHost(GpuHost("a", 8)).ok());
    ASSERT_TRUE(c_.AddHost(GpuHost("b", 8)).ok());
    ASSERT_TRUE(c_.Commit(WholeGpuRequest("m1", 4), Four(0, "a", 0)).ok());
    ASSERT_TRUE(c_.Commit(WholeGpuRequest("m2", 4), Four(1, "b", 4)).ok());
    options_.policy = *Policy::Parse("binpack");
    s_ = std::make_unique<Scheduler>(&c_, options_);
  }
  static Placement Four(int host, std::string name, int first) {
    Placement p{host, std::move(name), {}};
    for (int i = first; i < first + 4; ++i) p.gpus.push_back({i, 1000, 0, "", -1});
    return p;
  }
  // The cluster as it stands: every allocation with its host.
  std::vector<std::pair<std::string, int>> State() {
    std::vector<std::pair<std::string, int>> out;
    for (const std::string id : {"m1", "m2"}) {
      const Allocation* a = c_.FindAllocation(id);
      out.push_back({id, a == nullptr ? -1 : a->placement.host});
    }
    return out;
  }
  Cluster c_;
  SchedulerOptions options_;
  std::unique_ptr<Scheduler> s_;
};

TEST_F(DefragTest, OneMoveClearsAHost) {
  const auto before = State();
  absl::StatusOr<DefragPlan> plan = PlanDefrag(&c_, s_.get(), WholeGpuRequest("big", 8));
  // Both hosts are 4,000 milli short and cost the same: the lower index, a, is cleared by moving
  // m1 (cost 1 by default) to b's four idle GPUs.
  ExpectOneMove(plan, 0, "m1", 1, 1);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->placement.gpus.size(), 8u);
  // A plan only: the cluster is as it was, and the request is not allocated.
  EXPECT_EQ(State(), before);
  EXPECT_EQ(c_.FindAllocation("big"), nullptr);
}

TEST_F(DefragTest, CheaperMoveWins) {
  DefragOptions o;
  o.move_cost = [](const Allocation& a) -> std::optional<int64_t> {
    return a.request.id == "m1" ? 5 : 2;
  };
  ExpectOneMove(PlanDefrag(&c_, s_.get(), WholeGpuRequest("big", 8), o), 1, "m2", 0, 2);
}

TEST_F(DefragTest, NothingMovableOrTooLittleFreeMeansNoPlan) {
  DefragOptions pinned;
  pinned.move_cost = [](const Allocation&) -> std::optional<int64_t> { return std::nullopt; };
  absl::StatusOr<DefragPlan> plan = PlanDefrag(&c_, s_.get(), WholeGpuRequest("big", 8), pinned);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->found);
  // Nine GPUs asked, eight free in the whole cluster (and no host has nine).
  plan = PlanDefrag(&c_, s_.get(), WholeGpuRequest("huge", 9));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->found);
  // Workloads not marked preemptible stay by default.
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("a", 8)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("b", 8)).ok());
  Request stay = WholeGpuRequest("m1", 4);
  stay.preemptible = false;
  ASSERT_TRUE(c.Commit(stay, Four(0, "a", 0)).ok());
  Request stay2 = WholeGpuRequest("m2", 4);
  stay2.preemptible = false;
  ASSERT_TRUE(c.Commit(stay2, Four(1, "b", 0)).ok());
  Scheduler s2(&c, options_);
  plan = PlanDefrag(&c, &s2, WholeGpuRequest("big", 8));
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->found);
}

// The cheapest first: two one-GPU workloads go before the four-GPU one, and only then does the
// request fit; restoring the costliest first shows the small ones were not needed.
TEST(DefragPruneTest, UnneededEvictionsAreDropped) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("a", 8)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("b", 4)).ok());
  ASSERT_TRUE(c.Commit(WholeGpuRequest("s1", 1), Placement{0, "a", {{0, 1000, 0, "", -1}}}).ok());
  ASSERT_TRUE(c.Commit(WholeGpuRequest("s2", 1), Placement{0, "a", {{1, 1000, 0, "", -1}}}).ok());
  Placement four{0, "a", {}};
  for (int i = 2; i < 6; ++i) four.gpus.push_back({i, 1000, 0, "", -1});
  ASSERT_TRUE(c.Commit(WholeGpuRequest("big", 4), four).ok());
  // b is taken whole by a workload that must stay, so only a can be cleared.
  Request pinned = WholeGpuRequest("pinned", 4);
  pinned.preemptible = false;
  Placement b_all{1, "b", {}};
  for (int i = 0; i < 4; ++i) b_all.gpus.push_back({i, 1000, 0, "", -1});
  ASSERT_TRUE(c.Commit(pinned, b_all).ok());
  DefragOptions o;
  o.move_cost = [](const Allocation& a) -> std::optional<int64_t> {
    if (a.request.id == "pinned") return std::nullopt;
    return a.request.id == "big" ? 2 : 1;
  };
  SchedulerOptions so;
  so.policy = *Policy::Parse("binpack");
  Scheduler s(&c, so);
  // Six GPUs: a has 2 idle; evicting s1 (3 idle), s2 (4), big (8) makes room, and with big alone
  // away a has 6 idle. But big has nowhere to go (b is full, a is the target): no plan.
  absl::StatusOr<DefragPlan> plan = PlanDefrag(&c, &s, WholeGpuRequest("r", 6), o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_FALSE(plan->found);
  // With b free, big moves there and s1, s2 stay.
  ASSERT_TRUE(c.Release("pinned").ok());
  ExpectOneMove(PlanDefrag(&c, &s, WholeGpuRequest("r", 6), o), 0, "big", 1, 2);
}

TEST_F(DefragTest, FitsAlreadyNeedsNoMoves) {
  absl::StatusOr<DefragPlan> plan = PlanDefrag(&c_, s_.get(), WholeGpuRequest("small", 2));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->found);
  EXPECT_TRUE(plan->moves.empty());
  EXPECT_EQ(plan->placement.gpus.size(), 2u);
}

TEST_F(DefragTest, MalformedRequestIsInvalidArgument) {
  Request bad = WholeGpuRequest("", 8);
  absl::StatusOr<DefragPlan> plan = PlanDefrag(&c_, s_.get(), bad);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::sched
