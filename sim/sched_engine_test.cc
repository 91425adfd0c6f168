#include "sim/sched_engine.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "sched/scheduler.h"
#include "sim/fill.h"
#include "sim/formats.h"
#include "sim/replay.h"
#include "sim/sim_command.h"

namespace berth::sim {
namespace {

using ::testing::HasSubstr;

// The checked-in sample: 22 hosts (112 GPUs), 250 requests.
class SchedEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = LoadCluster("sim/testdata/small/nodes.csv", TraceFormat::kAuto);
    auto trace = LoadTrace("sim/testdata/small/pods.csv", TraceFormat::kAuto);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    ASSERT_TRUE(trace.ok()) << trace.status();
    cluster_ = *std::move(cluster);
    trace_ = *std::move(trace);
  }
  SimCluster cluster_;
  SimTrace trace_;
};

TEST_F(SchedEngineTest, PlacesAndReleasesThroughTheScheduler) {
  SimCluster cluster{{SimHost{"h1", 8000, 16384, 2, "A100", 0, {}}}};
  SimTrace mix{{}};
  auto engine = NewSchedEngine(EngineConfig{&cluster, "binpack", &mix});
  ASSERT_TRUE(engine.ok()) << engine.status();
  SimRequest half{"half", 1000, 1024, 1, 500, {}, 0};
  SimRequest two{"two", 1000, 1024, 2, 1000, {}, 0};
  auto a = (*engine)->Place(1, half, {});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->placed);
  EXPECT_EQ((*engine)->AllocatedGpuMilli(), 500);
  auto b = (*engine)->Place(2, two, {});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_FALSE(b->placed);  // one device is half used
  ASSERT_TRUE((*engine)->Release(1).ok());
  auto c = (*engine)->Place(3, two, {});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->placed);
  EXPECT_EQ((*engine)->AllocatedGpuMilli(), 2000);
  EXPECT_EQ((*engine)->CapacityGpuMilli(), 2000);
  EXPECT_FALSE((*engine)->Release(99).ok());
}

TEST_F(SchedEngineTest, ModelConstraintsAreHonoured) {
  SimCluster cluster{
      {SimHost{"t4", 8000, 16384, 1, "T4", 0, {}}, SimHost{"a100", 8000, 16384, 1, "A100", 0, {}}}};
  SimTrace mix;
  auto engine = NewSchedEngine(EngineConfig{&cluster, "first-fit", &mix});
  ASSERT_TRUE(engine.ok()) << engine.status();
  SimRequest a100_only{"x", 1000, 1024, 1, 1000, {"A100"}, 0};
  ASSERT_TRUE((*engine)->Place(1, a100_only, {})->placed);
  EXPECT_FALSE((*engine)->Place(2, a100_only, {})->placed);  // only the T4 is left
}

TEST_F(SchedEngineTest, UnknownPolicyIsInvalidArgument) {
  auto engine = NewSchedEngine(EngineConfig{&cluster_, "no-such-policy", &trace_});
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(engine.status().message()), HasSubstr("no-such-policy"));
}

TEST_F(SchedEngineTest, FillWithEveryPolicyIsSaneAndRepeatable) {
  for (const char* policy :
       {"first-fit", "binpack", "spread", "dotprod", "gpu-packing", "fgd", "fgd-ref", "default"}) {
    FillOptions options;
    options.policy = policy;
    options.shuffle_hosts = true;
    auto a = RunFill(cluster_, trace_, options, SchedEngineFactory());
    auto b = RunFill(cluster_, trace_, options, SchedEngineFactory());
    ASSERT_TRUE(a.ok()) << policy << ": " << a.status();
    ASSERT_TRUE(b.ok()) << policy << ": " << b.status();
    EXPECT_EQ(a->placed + a->dropped, a->offered) << policy;
    EXPECT_GE(a->steps.back().arrived_pct, 130.0) << policy;
    double previous = 0;
    for (const FillStep& s : a->steps) {
      EXPECT_LE(s.allocated_pct, s.arrived_pct + 1e-9) << policy;
      EXPECT_GE(s.allocated_pct, previous) << policy;  // no departures in fill mode
      EXPECT_GE(s.frag_ratio_pct, 0) << policy;
      EXPECT_LE(s.frag_ratio_pct, 100 + 1e-9) << policy;
      previous = s.allocated_pct;
    }
    ASSERT_EQ(a->steps.size(), b->steps.size());
    for (size_t i = 0; i < a->steps.size(); ++i) {
      EXPECT_EQ(a->steps[i].allocated_pct, b->steps[i].allocated_pct) << policy;
      EXPECT_EQ(a->steps[i].fragmented_pct, b->steps[i].fragmented_pct) << policy;
    }
  }
}

// The server's policy spelling works unchanged in the simulator: "default" and the default
// policy's own text run the same placements.
TEST_F(SchedEngineTest, ServerPolicySpellingRunsInTheSimulator) {
  const std::string server_default(sched::kDefaultPolicy);
  ASSERT_NE(server_default.find('+'), std::string::npos);
  std::vector<std::string> args = {"fill",
                                   "--cluster",
                                   "sim/testdata/small/nodes.csv",
                                   "--trace",
                                   "sim/testdata/small/pods.csv",
                                   "--policy",
                                   "default," + server_default,
                                   "--seeds",
                                   "42..43",
                                   "--json",
                                   "--quiet",
                                   "--no-timings"};
  std::ostringstream out, err;
  ASSERT_EQ(RunSimCommand(args, out, err), 0) << err.str();
  auto j = nlohmann::json::parse(out.str());
  ASSERT_TRUE(j["policies"].contains("default"));
  ASSERT_TRUE(j["policies"].contains(server_default));
  EXPECT_EQ(j["policies"]["default"].dump(), j["policies"][server_default].dump());
  // A comma inside one policy is refused with the '+' spelling to use.
  auto engine = NewSchedEngine(EngineConfig{&cluster_, "fgd:1,topology:0.2", &trace_});
  ASSERT_FALSE(engine.ok());
  EXPECT_THAT(std::string(engine.status().message()), HasSubstr("fgd:1+topology:0.2"));
}

TEST_F(SchedEngineTest, ReplayWithPreemptionUsesTheScheduler) {
  auto trace = LoadTrace("sim/testdata/small/trace.yaml", TraceFormat::kAuto);
  ASSERT_TRUE(trace.ok()) << trace.status();
  // Squeeze the cluster so requests queue and priorities matter.
  SimCluster small{{cluster_.hosts[0], cluster_.hosts[8]}};
  ReplayOptions options;
  options.policy = "binpack";
  options.preemption = true;
  auto r = RunReplay(small, *trace, options, SchedEngineFactory());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->submitted, 250);
  EXPECT_GT(r->finished, 0);
  EXPECT_LE(r->queue_delays.size(), static_cast<size_t>(r->started));
}

// Two 8-GPU hosts, each half taken (spread puts one 4-GPU request on each); an 8-GPU request
// arrives at t = 10. Without defragmentation it waits for the first departure (t = 1000); with
// it, one 4-GPU request moves to the other host and the big one starts at once.
TEST(SchedEngineDefragTest, ReplayMovesARequestToMakeRoom) {
  SimCluster cluster{{SimHost{"a", 96000, 524288, 8, "A100", 0, {}},
                      SimHost{"b", 96000, 524288, 8, "A100", 0, {}}}};
  auto request = [](std::string name, int gpus, int64_t created, int64_t deleted) {
    SimRequest r{name, 8000, 16384, gpus, 1000, {}, 0};
    r.creation_time = created;
    r.scheduled_time = created;
    r.deletion_time = deleted;
    return r;
  };
  SimTrace trace{
      {request("r1", 4, 0, 1000), request("r2", 4, 0, 2000), request("big", 8, 10, 510)}};
  ReplayOptions options;
  options.policy = "spread";
  auto off = RunReplay(cluster, trace, options, SchedEngineFactory());
  ASSERT_TRUE(off.ok()) << off.status();
  options.defrag = true;
  options.migration_cost_s = 60;
  auto on = RunReplay(cluster, trace, options, SchedEngineFactory());
  ASSERT_TRUE(on.ok()) << on.status();

  EXPECT_EQ(off->moves, 0);
  EXPECT_EQ(off->queue_delays, (std::vector<int64_t>{0, 0, 990}));
  // big waits from 10 to 1000 with half the GPUs idle; the run spans 0..2000.
  EXPECT_DOUBLE_EQ(off->stranded_gpu_pct, 50.0 * 990 / 2000);
  EXPECT_EQ(off->completion_times, (std::vector<int64_t>{1000, 1490, 2000}));

  EXPECT_EQ(on->moves, 1);
  EXPECT_EQ(on->queue_delays, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_DOUBLE_EQ(on->stranded_gpu_pct, 0);
  // The moved request ends 60 s late: r1 (1060) or r2 (2060), whichever sat on host a.
  std::vector<int64_t> done = on->completion_times;
  EXPECT_EQ(done[0], 500);
  EXPECT_EQ(done[1] + done[2], 1000 + 2000 + 60);
  EXPECT_DOUBLE_EQ(on->moves_per_hour, 3600.0 / (done[2]));
}

TEST_F(SchedEngineTest, CommandOutputIsByteIdentical) {
  std::vector<std::string> args = {"fill",
                                   "--cluster",
                                   "sim/testdata/small/nodes.csv",
                                   "--trace",
                                   "sim/testdata/small/pods.csv",
                                   "--format",
                                   "alibaba-gpu-2023",
                                   "--policy",
                                   "fgd,binpack",
                                   "--seeds",
                                   "42..45",
                                   "--json",
                                   "--quiet"};
  std::ostringstream out1, err1, out2, err2;
  ASSERT_EQ(RunSimCommand(args, out1, err1), 0) << err1.str();
  args.push_back("--jobs");
  args.push_back("1");
  ASSERT_EQ(RunSimCommand(args, out2, err2), 0) << err2.str();
  auto j1 = nlohmann::json::parse(out1.str());
  auto j2 = nlohmann::json::parse(out2.str());
  for (auto* j : {&j1, &j2}) {
    for (auto& [name, policy] : (*j)["policies"].items()) {
      EXPECT_GT(policy["seconds_per_run"]["mean"].get<double>(), 0) << name;
      policy.erase("seconds_per_run");
    }
  }
  EXPECT_EQ(j1.dump(), j2.dump());
  EXPECT_TRUE(j1["policies"].contains("fgd"));
  double fgd = j1["policies"]["fgd"]["unallocated_gpu_pct_at_100"]["mean"].get<double>();
  EXPECT_GE(fgd, 0);
  EXPECT_LE(fgd, 100);
}

}  // namespace
}  // namespace berth::sim
