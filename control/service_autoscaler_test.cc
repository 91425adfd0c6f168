#include "control/service_autoscaler.h"

#include "core/clock.h"
#include "gtest/gtest.h"

namespace berth::control {
namespace {

// The autoscaler on a paused clock: each Step is one second of a given load, then a decision.
class AutoscalerTest : public ::testing::Test {
 protected:
  AutoscalerTest() {
    spec_.min = 1;
    spec_.max = 10;
    spec_.target = 2;
    spec_.stable_window = absl::Seconds(60);
    spec_.panic_window = absl::Seconds(6);
  }
  // One second of `load` open connections (and 10x that in new connections per second).
  void Feed(double load, int seconds = 1) {
    for (int i = 0; i < seconds; ++i) {
      clock_.Advance(absl::Seconds(1));
      kpa_.Record({.at = clock_.Now(),
                   .span = absl::Seconds(1),
                   .concurrency = load,
                   .rps = load * 10,
                   .active = load > 0});
    }
  }
  AutoscaleDecision Decide(int current, int ready) {
    return kpa_.Decide(spec_, clock_.Now(), current, ready);
  }
  // Feeds one second of `load` and decides, the service keeping what was decided before.
  AutoscaleDecision Step(double load) {
    Feed(load);
    last_ = Decide(last_.desired, last_.desired);
    return last_;
  }

  core::ManualClock clock_;
  core::AutoscaleSpec spec_;
  ServiceAutoscaler kpa_{clock_.Now()};
  AutoscaleDecision last_{.desired = 1};
};

TEST_F(AutoscalerTest, WithoutMeasurementsTheServiceKeepsItsReplicas) {
  AutoscaleDecision d = Decide(3, 3);
  EXPECT_EQ(d.desired, 3);
  EXPECT_FALSE(d.panic);
  EXPECT_NE(d.reason.find("no measurement yet"), std::string::npos) << d.reason;
  // Still within min and max.
  EXPECT_EQ(Decide(12, 12).desired, 10);
}

TEST_F(AutoscalerTest, TheStableWindowAveragesTheLoadOverItsWholeLength) {
  Feed(4, 60);
  AutoscaleDecision d = Decide(2, 2);
  EXPECT_DOUBLE_EQ(d.stable_value, 4);
  EXPECT_EQ(d.desired, 2);  // 4 open connections at 2 each
  // Half the window at 6: the stable average is 5, so 3 replicas (not the 3 that 6 alone asks).
  Feed(6, 30);
  d = Decide(2, 2);
  EXPECT_DOUBLE_EQ(d.stable_value, 5);
  EXPECT_DOUBLE_EQ(d.panic_value, 6);
  EXPECT_FALSE(d.panic);  // 6 over 2 ready at 2 each is 1.5x the target, below 2x
  EXPECT_EQ(d.desired, 3);
  EXPECT_NE(d.reason.find("concurrency 5.00 over 1m at target 2 per replica: 3 replicas"),
            std::string::npos)
      << d.reason;
  // What left the window no longer counts.
  Feed(6, 30);
  EXPECT_DOUBLE_EQ(Decide(3, 3).stable_value, 6);
}

TEST_F(AutoscalerTest, RequestsPerSecondIsTheOtherMetric) {
  spec_.metric = core::AutoscaleSpec::Metric::kRps;
  spec_.target = 10;
  Feed(3.5, 60);  // 35 new connections per second
  AutoscaleDecision d = Decide(4, 4);
  EXPECT_DOUBLE_EQ(d.stable_value, 35);
  EXPECT_EQ(d.desired, 4);
  EXPECT_NE(d.reason.find("rps 35.00"), std::string::npos) << d.reason;
}

TEST_F(AutoscalerTest, UtilizationFollowsWhatTheReplicasUse) {
  spec_.metric = core::AutoscaleSpec::Metric::kCpu;
  spec_.target = 0.5;
  // Two replicas each at 90 % of their CPU: 1.8 replicas' worth at 50 % each wants 4.
  for (int i = 0; i < 60; ++i) {
    clock_.Advance(absl::Seconds(1));
    kpa_.Record({.at = clock_.Now(),
                 .span = absl::Seconds(1),
                 .concurrency = 7,
                 .rps = 70,
                 .utilization = 1.8,
                 .active = true});
  }
  AutoscaleDecision d = Decide(2, 2);
  EXPECT_NEAR(d.stable_value, 1.8, 1e-9);
  EXPECT_EQ(d.desired, 4);
  EXPECT_NE(d.reason.find("cpu 1.80 over 1m at target 0.5 per replica: 4 replicas"),
            std::string::npos)
      << d.reason;
  spec_.metric = core::AutoscaleSpec::Metric::kGpu;
  EXPECT_EQ(Decide(2, 2).desired, 4);
}

TEST_F(AutoscalerTest, PanicFollowsTheShortWindowAndOnlyScalesUp) {
  Feed(2, 60);
  EXPECT_EQ(Decide(1, 1).desired, 1);
  // A burst: 10 open connections for 6 s against one ready replica meant to take 2 is 5x the
  // target. The stable average (2.8) would ask for 2; panic asks for what the burst needs.
  Feed(10, 6);
  AutoscaleDecision d = Decide(1, 1);
  EXPECT_TRUE(d.panic);
  EXPECT_EQ(d.desired, 5);
  EXPECT_NEAR(d.stable_value, 2.8, 1e-9);
  EXPECT_NE(d.reason.find("panic"), std::string::npos) << d.reason;
  // The burst ends: in panic nothing is scaled down, for a stable window after the load was last
  // over the threshold.
  for (int i = 0; i < 59; ++i) {
    Feed(2);
    d = Decide(5, 5);
    EXPECT_TRUE(d.panic) << i;
    EXPECT_EQ(d.desired, 5) << i;
  }
  Feed(2);
  d = Decide(5, 5);
  EXPECT_FALSE(d.panic);
  EXPECT_EQ(d.desired, 1);  // the stable window now holds only the load of 2
}

TEST_F(AutoscalerTest, PanicStartsAtTwiceTheTargetPerReadyReplica) {
  Feed(7.6, 60);  // 3.8 per ready replica at target 2 for two ready: 1.9x
  AutoscaleDecision d = Decide(2, 2);
  EXPECT_FALSE(d.panic);
  EXPECT_EQ(d.desired, 4);
  Feed(8, 6);  // 2x for two ready
  d = Decide(2, 2);
  EXPECT_TRUE(d.panic);
  EXPECT_EQ(d.desired, 4);
  // Grows further while in panic, never shrinks.
  Feed(12, 6);
  EXPECT_EQ(Decide(4, 4).desired, 6);
  Feed(0.5, 6);
  EXPECT_EQ(Decide(6, 6).desired, 6);
}

TEST_F(AutoscalerTest, AScaleDownWaitsForTheDelay) {
  spec_.stable_window = absl::Seconds(6);
  spec_.panic_window = absl::Seconds(6);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Step(8).desired, 4);
  // Without load the stable average falls a sixth a second: 6.67, 5.33, 4, ... at 2 each ask for
  // 4, 3, 2, ... replicas; with a delay of 30 s the 4 of the first second holds for 30 s.
  spec_.scale_down_delay = absl::Seconds(30);
  for (int k = 1; k <= 30; ++k) {
    AutoscaleDecision d = Step(0);
    EXPECT_EQ(d.desired, 4) << "second " << k;
    if (k > 1) {
      EXPECT_NE(d.reason.find("scale_down_delay 30s holds 4"), std::string::npos) << k;
    }
  }
  EXPECT_EQ(Step(0).desired, 3);  // the 3 of second 2 is the highest of the last 30 s
  EXPECT_EQ(Step(0).desired, 2);
}

TEST_F(AutoscalerTest, WithoutADelayItScalesDownAtOnce) {
  spec_.stable_window = absl::Seconds(6);
  spec_.panic_window = absl::Seconds(6);
  for (int i = 0; i < 10; ++i) Step(8);
  EXPECT_EQ(Step(0).desired, 4);
  EXPECT_EQ(Step(0).desired, 3);
  EXPECT_EQ(Step(0).desired, 2);
}

TEST_F(AutoscalerTest, MinAndMaxBoundTheDecision) {
  spec_.min = 3;
  Feed(100, 60);
  AutoscaleDecision d = Decide(10, 10);
  EXPECT_EQ(d.desired, 10);  // 50 asked
  EXPECT_NE(d.reason.find("; max 10"), std::string::npos) << d.reason;
  Feed(0.1, 60);
  d = Decide(10, 10);
  EXPECT_EQ(d.desired, 3);
  EXPECT_NE(d.reason.find("; min 3"), std::string::npos) << d.reason;
}

TEST_F(AutoscalerTest, IdleForIdleToZeroScalesToZeroAndARequestBringsOneBack) {
  spec_.min = 0;
  spec_.idle_to_zero = absl::Seconds(3);
  // A new autoscaler counts as active when it starts: no scale to zero before idle_to_zero.
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(Decide(1, 1).desired, 1);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Decide(1, 1).desired, 0);

  // Light load keeps one replica.
  Feed(0.1, 5);
  AutoscaleDecision d = Decide(1, 1);
  EXPECT_EQ(d.desired, 1);
  EXPECT_FALSE(d.idle);
  // No request for 2 s: still one; for 3 s: none.
  Feed(0, 2);
  EXPECT_EQ(Decide(1, 1).desired, 1);
  Feed(0, 1);
  d = Decide(1, 1);
  EXPECT_EQ(d.desired, 0);
  EXPECT_TRUE(d.idle);
  EXPECT_NE(d.reason.find("no request for idle_to_zero (3s)"), std::string::npos) << d.reason;
  Feed(0, 10);
  EXPECT_EQ(Decide(0, 0).desired, 0);

  // One held request: a replica at once, whatever the windows say.
  clock_.Advance(absl::Milliseconds(100));
  kpa_.Record(
      {.at = clock_.Now(), .span = absl::Milliseconds(100), .concurrency = 1, .active = true});
  d = Decide(0, 0);
  EXPECT_EQ(d.desired, 1);
  EXPECT_FALSE(d.idle);
}

TEST_F(AutoscalerTest, ARequestWithoutMeasurableLoadStillKeepsOneReplica) {
  spec_.min = 0;
  spec_.idle_to_zero = absl::Seconds(3);
  // A connection that came and went between two passes: active, but no load to speak of.
  clock_.Advance(absl::Seconds(1));
  kpa_.Record({.at = clock_.Now(), .span = absl::Seconds(1), .concurrency = 0, .active = true});
  AutoscaleDecision d = Decide(1, 1);
  EXPECT_EQ(d.desired, 1);
  EXPECT_NE(d.reason.find("at least 1 while requests come"), std::string::npos) << d.reason;
}

TEST_F(AutoscalerTest, AMinAboveZeroNeverStopsTheLastReplica) {
  spec_.min = 1;
  Feed(0, 600);
  EXPECT_EQ(Decide(1, 1).desired, 1);
}

}  // namespace
}  // namespace berth::control
