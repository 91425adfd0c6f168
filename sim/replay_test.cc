#include "sim/replay.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/fake_engine.h"

namespace berth::sim {
namespace {

using ::testing::ElementsAre;

SimRequest Job(std::string name, int gpus, int64_t arrival, int64_t duration, int priority = 0) {
  SimRequest r;
  r.name = std::move(name);
  r.cpu_milli = 1000;
  r.memory_mib = 1024;
  r.num_gpu = gpus;
  r.gpu_milli = gpus > 0 ? 1000 : 0;
  r.priority = priority;
  r.creation_time = arrival;
  r.scheduled_time = arrival;
  r.deletion_time = arrival + duration;
  return r;
}

SimCluster OneHost(int gpus) {
  return SimCluster{{SimHost{"h1", 64000, 256 * 1024, gpus, "A100", 0, {}}}};
}

ReplayOptions Options() {
  ReplayOptions o;
  o.policy = "fake";
  return o;
}

TEST(ReplayTest, QueuesUntilCapacityFrees) {
  SimTrace trace{{Job("a", 1, 0, 10), Job("b", 1, 5, 10)}};
  auto r = RunReplay(OneHost(1), trace, Options(), FakeEngine::Factory());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->queue_delays, ElementsAre(0, 5));
  EXPECT_THAT(r->completion_times, ElementsAre(10, 15));
  EXPECT_EQ(r->finished, 2);
  EXPECT_EQ(r->never_started, 0);
  // Fully allocated from 0 to 20: the time-weighted mean is 100%.
  EXPECT_DOUBLE_EQ(r->mean_allocated_pct, 100);
  ASSERT_EQ(r->timeline.size(), 4u);  // t = 0, 5, 10, 20
  EXPECT_EQ(r->timeline[1].time, 5);
  EXPECT_EQ(r->timeline[1].queued, 1);
  EXPECT_EQ(r->timeline[3].running, 0);
}

// a holds 1 of 2 GPUs until 10; b (2 GPUs) waits; c (1 GPU, 3 s) arrives after b.
SimTrace BackfillTrace() {
  return SimTrace{{Job("a", 1, 0, 10), Job("b", 2, 1, 5), Job("c", 1, 2, 3)}};
}

TEST(ReplayTest, StrictFifoBlocksBehindTheHead) {
  ReplayOptions o = Options();
  o.backfill = false;
  auto r = RunReplay(OneHost(2), BackfillTrace(), o, FakeEngine::Factory());
  ASSERT_TRUE(r.ok()) << r.status();
  // b starts at 10 (delay 9) and ends at 15; c starts at 15 (delay 13).
  EXPECT_THAT(r->queue_delays, ElementsAre(0, 9, 13));
}

TEST(ReplayTest, BackfillStartsWhatFits) {
  auto r = RunReplay(OneHost(2), BackfillTrace(), Options(), FakeEngine::Factory());
  ASSERT_TRUE(r.ok()) << r.status();
  // c starts at once on the free GPU; b still starts at 10.
  EXPECT_THAT(r->queue_delays, ElementsAre(0, 0, 9));
}

TEST(ReplayTest, PriorityOrdersTheQueue) {
  // Both wait for a; the later, higher-priority one goes first when priorities are on.
  SimTrace trace{{Job("a", 1, 0, 10), Job("low", 1, 1, 10, 0), Job("high", 1, 2, 10, 1)}};
  ReplayOptions o = Options();
  o.backfill = false;
  auto on = RunReplay(OneHost(1), trace, o, FakeEngine::Factory());
  o.priorities = false;
  auto off = RunReplay(OneHost(1), trace, o, FakeEngine::Factory());
  ASSERT_TRUE(on.ok() && off.ok());
  EXPECT_THAT(on->queue_delays, ElementsAre(0, 8, 19));   // high waits 8, low waits 19
  EXPECT_THAT(off->queue_delays, ElementsAre(0, 9, 18));  // low waits 9, high waits 18
}

TEST(ReplayTest, PreemptionEvictsLowerPriorityAndRestartsIt) {
  SimTrace trace{{Job("low", 1, 0, 100, 0), Job("high", 1, 5, 10, 1)}};
  ReplayOptions o = Options();
  o.preemption = true;
  auto r = RunReplay(OneHost(1), trace, o, FakeEngine::Factory());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->preemptions, 1);
  // high runs 5..15; low restarts at 15 and runs its full 100 s.
  EXPECT_THAT(r->completion_times, ElementsAre(10, 115));
  EXPECT_THAT(r->queue_delays, ElementsAre(0, 15));

  o.preemption = false;
  auto without = RunReplay(OneHost(1), trace, o, FakeEngine::Factory());
  ASSERT_TRUE(without.ok());
  EXPECT_EQ(without->preemptions, 0);
  EXPECT_THAT(without->completion_times, ElementsAre(100, 105));
}

TEST(ReplayTest, RequestsThatNeverFitStayQueued) {
  SimTrace trace{{Job("big", 4, 0, 10), Job("ok", 1, 0, 10)}};
  auto r = RunReplay(OneHost(2), trace, Options(), FakeEngine::Factory());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->never_started, 1);
  EXPECT_EQ(r->finished, 1);
}

TEST(ReplayTest, PercentilesUseNearestRank) {
  std::vector<int64_t> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(ReplayResult::Percentile(v, 50), 5);
  EXPECT_EQ(ReplayResult::Percentile(v, 90), 9);
  EXPECT_EQ(ReplayResult::Percentile(v, 99), 10);
  EXPECT_EQ(ReplayResult::Percentile({}, 50), 0);
}

}  // namespace
}  // namespace berth::sim
