// fgd-ref against values worked out by hand from the definitions of the FGD paper (Weng et al.,
// USENIX ATC 2023): F_n(M) = Σ_c p_c F_n(c), Δ = F before − F after, score floor(100 σ(Δ/1000)).
#include <memory>

#include "gtest/gtest.h"
#include "sched/cluster_index.h"
#include "sched/mix.h"
#include "sched/ranker.h"
#include "sched/scheduler.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using testing::CpuRequest;
using testing::GpuHost;
using testing::ShareRequest;
using testing::WholeGpuRequest;

constexpr int64_t kStep = kScoreMax / 100;

TEST(PopularClassesTest, KeysByCpuAndGpuAndKeepsTheClassesCovering95Percent) {
  WorkloadMix mix;
  // Class X in two memory sizes (one class), then Y, Z and a rare W.
  Request x1 = ShareRequest("x1", 500);
  Request x2 = ShareRequest("x2", 500);
  x2.resources.memory = core::MemoryMiB(1024);
  x2.gpu.memory_mib = 4096;
  mix.Add(Shape::Of(x1), 40);
  mix.Add(Shape::Of(x2), 20);
  mix.Add(Shape::Of(WholeGpuRequest("y", 2)), 30);
  mix.Add(Shape::Of(CpuRequest("z", 4000, 8192)), 6);
  mix.Add(Shape::Of(WholeGpuRequest("w", 8)), 4);
  WorkloadMix popular = PopularClasses(mix);
  // 60 < 95, 90 < 95, 96 >= 95: W is left out.
  ASSERT_EQ(popular.entries().size(), 3u);
  EXPECT_EQ(popular.total_weight(), 96);
  const WorkloadMix::Entry& x = popular.entries()[0];
  EXPECT_EQ(x.weight, 60);
  EXPECT_EQ(x.shape.resources.cpu, x1.resources.cpu);
  EXPECT_EQ(x.shape.resources.memory.value(), 0);
  EXPECT_EQ(x.shape.gpu.milli, 500);
  EXPECT_EQ(x.shape.gpu.memory_mib, 0);
  EXPECT_EQ(popular.entries()[1].weight, 30);
  EXPECT_EQ(popular.entries()[1].shape.gpu.count, 2);
  EXPECT_EQ(popular.entries()[2].weight, 6);
  EXPECT_EQ(popular.entries()[2].shape.gpu.kind, core::GpuRequest::Kind::kNone);
  // Everything at 100 %; only the most popular class at a low coverage.
  EXPECT_EQ(PopularClasses(mix, 1000).entries().size(), 4u);
  EXPECT_EQ(PopularClasses(mix, 500).entries().size(), 1u);
}

class FgdRefTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(c_.AddHost(GpuHost("h", 8)).ok());
    // p(A: half a GPU) = 3/4, p(B: one whole GPU) = 1/4.
    mix_.Add(Shape::Of(ShareRequest("a", 500)), 3);
    mix_.Add(Shape::Of(WholeGpuRequest("b", 1)), 1);
    const RankerEntry* e = FindRanker("fgd-ref");
    ASSERT_NE(e, nullptr);
    ranker_ = e->make();
  }
  // The ranker's score for host 0 taking `changes` for `r`.
  int64_t ScoreOf(const Request& r, GpuChanges changes) {
    RankContext ctx{c_.index(), r, r.gpu.TotalMilli(), mix_};
    const GroupSummary& g = c_.index().summary[c_.index().host_group[0]];
    Candidate cand{0, g, 0, changes.data(), changes.size()};
    return ranker_->Score(ctx, cand);
  }
  Cluster c_;
  WorkloadMix mix_;
  std::unique_ptr<Ranker> ranker_;
};

TEST_F(FgdRefTest, IdleEightGpuHost) {
  // Half a GPU on device 0: F(A) = 0 (500 >= 500), F(B) = 500 (device 0 cannot hold a whole
  // GPU). F = 1/4 · 500 = 125, Δ = 0 − 125, floor(100 σ(−0.125)) = floor(46.88) = 46.
  EXPECT_EQ(ScoreOf(ShareRequest("s", 500), {{0, 500, 0, 0}}), 46 * kStep);
  // A whole GPU leaves seven idle ones: Δ = 0, σ(0) = 1/2.
  EXPECT_EQ(ScoreOf(WholeGpuRequest("w", 1), {{0, 1000, 0, 0}}), 50 * kStep);
  // A CPU-only request changes no GPU and leaves the CPU every class needs.
  EXPECT_EQ(ScoreOf(CpuRequest("c", 4000, 1024), {}), 50 * kStep);
}

TEST_F(FgdRefTest, ShareGoesToTheDeviceWithTheBestRoundedScore) {
  // Device 0 keeps 600 free: F = 1/4 · 600 = 150.
  ASSERT_TRUE(c_.Commit(ShareRequest("x", 400), Placement{0, "h", {{0, 400, 0, "", -1}}}).ok());
  // On device 0 (100 left): F(A) = F(B) = 100, F = 100, Δ = +50: floor(51.25) = 51.
  EXPECT_EQ(ScoreOf(ShareRequest("s", 500), {{0, 500, 0, 0}}), 51 * kStep);
  // On device 1 (500 left): F(A) = 0, F(B) = 600 + 500, F = 275, Δ = −125: 46.
  EXPECT_EQ(ScoreOf(ShareRequest("s", 500), {{1, 500, 0, 0}}), 46 * kStep);
  Scheduler s(&c_, SchedulerOptions{.policy = *Policy::Parse("fgd-ref"), .mix = &mix_});
  absl::StatusOr<Decision> d = s.Schedule(ShareRequest("s", 500));
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(d->scheduled);
  ASSERT_EQ(d->plan.placement.gpus.size(), 1u);
  EXPECT_EQ(d->plan.placement.gpus[0].index, 0);
}

// Hosts whose Δ differ by less than one step of the rounded score tie, and the tie goes to the
// lowest host index; Berth's fgd ranks on the exact Δ.
TEST(FgdRefResolutionTest, RoundedScoresTieWhereExactOnesDoNot) {
  WorkloadMix mix;
  mix.Add(Shape::Of(ShareRequest("a", 500)), 1);
  for (const auto& [policy, want] :
       std::vector<std::pair<std::string, std::string>>{{"fgd-ref", "a"}, {"fgd", "b"}}) {
    Cluster c;
    ASSERT_TRUE(c.AddHost(GpuHost("a", 8)).ok());
    ASSERT_TRUE(c.AddHost(GpuHost("b", 8)).ok());
    // b's device 0 keeps 30 free, too little for A: F_b = 30. 30 more there makes Δ = +30
    // (floor(100 σ(0.03)) = 50); 30 on an idle device of a changes nothing (Δ = 0, 50).
    ASSERT_TRUE(c.Commit(ShareRequest("x", 970), Placement{1, "b", {{0, 970, 0, "", -1}}}).ok());
    Scheduler s(&c, SchedulerOptions{.policy = *Policy::Parse(policy), .mix = &mix});
    absl::StatusOr<Decision> d = s.Schedule(ShareRequest("y", 30));
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_TRUE(d->scheduled);
    EXPECT_EQ(d->plan.placement.host_name, want) << policy;
  }
}

// fgd-pool: a class tied to GPU models counts no fragmentation on a host whose GPUs it may not
// use. Same host and mix shape as FgdRefTest, but B is tied to a model the host lacks.
TEST(FgdPoolTest, ClassesTiedToOtherModelsCountNothing) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 8)).ok());
  WorkloadMix mix;
  mix.Add(Shape::Of(ShareRequest("a", 500)), 3);
  mix.Add(Shape::Of(WholeGpuRequest("b", 1, {"H100"})), 1);
  auto score = [&](std::string_view ranker, const Request& r, GpuChanges changes) {
    std::unique_ptr<Ranker> k = FindRanker(ranker)->make();
    RankContext ctx{c.index(), r, r.gpu.TotalMilli(), mix};
    const GroupSummary& g = c.index().summary[c.index().host_group[0]];
    return k->Score(ctx, Candidate{0, g, 0, changes.data(), changes.size()});
  };
  // Half a GPU: F(A) = 0 before and after. fgd-ref counts all free GPU as B's fragmentation:
  // 8000 before, 7500 after, so F = 2000 → 1875, Δ = +125: floor(100 σ(0.125)) = 53.
  // fgd-pool leaves B out on this host: Δ = 0, 50.
  EXPECT_EQ(score("fgd-ref", ShareRequest("s", 500), {{0, 500, 0, 0}}), 53 * kStep);
  EXPECT_EQ(score("fgd-pool", ShareRequest("s", 500), {{0, 500, 0, 0}}), 50 * kStep);
  // A whole GPU: fgd-ref F(B) 8000 → 7000, F = 2000 → 1750, Δ = +250: floor(56.2) = 56.
  EXPECT_EQ(score("fgd-ref", WholeGpuRequest("w", 1), {{0, 1000, 0, 0}}), 56 * kStep);
  EXPECT_EQ(score("fgd-pool", WholeGpuRequest("w", 1), {{0, 1000, 0, 0}}), 50 * kStep);
}

// fgd-pool's pool term: floor(10 · free share of the host's model pool) score steps, for
// requests free to choose a model, while the target holds a class tied to a model.
class FgdPoolTermTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Pool X: a and c, 8 GPUs, c's 4 taken (half free). Pool Y: b and e, 8 GPUs, all free.
    ASSERT_TRUE(c_.AddHost(GpuHost("a", 4, "X")).ok());
    ASSERT_TRUE(c_.AddHost(GpuHost("b", 4, "Y")).ok());
    ASSERT_TRUE(c_.AddHost(GpuHost("c", 4, "X")).ok());
    ASSERT_TRUE(c_.AddHost(GpuHost("e", 4, "Y")).ok());
    ASSERT_TRUE(c_.Commit(WholeGpuRequest("c-full", 4), Placement{2,
                                                                  "c",
                                                                  {{0, 1000, 0, "", -1},
                                                                   {1, 1000, 0, "", -1},
                                                                   {2, 1000, 0, "", -1},
                                                                   {3, 1000, 0, "", -1}}})
                    .ok());
    // A: half a GPU, 3/4; Z: a whole GPU tied to model Z, which no host has, 1/4.
    tied_.Add(Shape::Of(ShareRequest("a", 500)), 3);
    tied_.Add(Shape::Of(WholeGpuRequest("z", 1, {"Z"})), 1);
    untied_.Add(Shape::Of(ShareRequest("a", 500)), 1);
  }
  std::string Place(std::string_view policy, const WorkloadMix& mix, const Request& r) {
    Scheduler s(&c_, SchedulerOptions{.policy = *Policy::Parse(policy), .mix = &mix});
    absl::StatusOr<Decision> d = s.Schedule(r);
    if (!d.ok() || !d->scheduled) return "";
    return d->plan.placement.host_name;
  }
  Cluster c_;
  WorkloadMix tied_, untied_;
};

TEST_F(FgdPoolTermTest, ScoresTheFreeShareOfTheHostsPool) {
  std::unique_ptr<Ranker> k = FindRanker("fgd-pool")->make();
  const Request any = WholeGpuRequest("w", 1);
  RankContext ctx{c_.index(), any, 1000, tied_};
  ASSERT_TRUE(k->has_cluster_score(any));
  EXPECT_FALSE(k->has_cluster_score(WholeGpuRequest("t", 1, {"X"})));
  EXPECT_FALSE(k->has_cluster_score(CpuRequest("cpu", 1000, 1024)));
  const int cls_x = c_.index().host_class[0], cls_y = c_.index().host_class[1];
  EXPECT_EQ(k->ClusterScore(ctx, cls_x), 5 * kStep);  // floor(10 · 4000/8000)
  EXPECT_EQ(k->ClusterScore(ctx, cls_y), 10 * kStep);
  // Three of pool Y's eight GPUs taken: floor(10 · 5/8) = 6; given back, 10 again.
  ASSERT_TRUE(
      c_.Commit(
            WholeGpuRequest("y3", 3),
            Placement{3, "e", {{0, 1000, 0, "", -1}, {1, 1000, 0, "", -1}, {2, 1000, 0, "", -1}}})
          .ok());
  EXPECT_EQ(k->ClusterScore(ctx, cls_y), 6 * kStep);
  ASSERT_TRUE(c_.Release("y3").ok());
  EXPECT_EQ(k->ClusterScore(ctx, cls_y), 10 * kStep);
  // Without a class tied to a model there is no pool to keep room in.
  RankContext untied{c_.index(), any, 1000, untied_};
  EXPECT_EQ(k->ClusterScore(untied, cls_y), 0);
}

TEST_F(FgdPoolTermTest, RequestsFreeToChooseGoToTheFreerPool) {
  // A whole GPU on a, b or e scores 50 in fgd-pool (Z counts nothing on X or Y hosts, and A still
  // fits every idle device); the pool term adds 5 on a (pool X half free) and 10 on b and e.
  EXPECT_EQ(Place("fgd-pool", tied_, WholeGpuRequest("w", 1)), "b");
  // fgd-ref scores all three 56 (Z's fragmentation falls by the GPU taken, Δ = +250): host a.
  EXPECT_EQ(Place("fgd-ref", tied_, WholeGpuRequest("w", 1)), "a");
  // A request tied to models has no choice to steer, and a target without tied classes no pools
  // to keep room in: 50 everywhere, the lowest index wins.
  EXPECT_EQ(Place("fgd-pool", tied_, WholeGpuRequest("t", 1, {"X", "Y"})), "a");
  EXPECT_EQ(Place("fgd-pool", untied_, WholeGpuRequest("w", 1)), "a");
}

// The pool term follows the cluster, not the host: a scheduler that has weighed b once must see
// pool Y fill up through host e although b itself did not change.
TEST_F(FgdPoolTermTest, PoolTermIsNotCachedWithTheHost) {
  Scheduler s(&c_, SchedulerOptions{.policy = *Policy::Parse("fgd-pool"), .mix = &tied_});
  absl::StatusOr<Decision> first = s.Schedule(WholeGpuRequest("w1", 1));
  ASSERT_TRUE(first.ok() && first->scheduled);
  EXPECT_EQ(first->plan.placement.host_name, "b");
  ASSERT_TRUE(c_.Commit(WholeGpuRequest("e-full", 4), Placement{3,
                                                                "e",
                                                                {{0, 1000, 0, "", -1},
                                                                 {1, 1000, 0, "", -1},
                                                                 {2, 1000, 0, "", -1},
                                                                 {3, 1000, 0, "", -1}}})
                  .ok());
  // Pool Y half free now: a and b both 55, the lowest index wins.
  absl::StatusOr<Decision> second = s.Schedule(WholeGpuRequest("w2", 1));
  ASSERT_TRUE(second.ok() && second->scheduled);
  EXPECT_EQ(second->plan.placement.host_name, "a");
}

}  // namespace
}  // namespace berth::sched
