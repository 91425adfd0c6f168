#include "sim/fill.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/fake_engine.h"
#include "sim/generate.h"

namespace berth::sim {
namespace {

SimHost Host(std::string name, int gpus) {
  return SimHost{std::move(name), 64000, 256 * 1024, gpus, "A100", 0, {}};
}

SimRequest Gpu(std::string name, int count, int64_t milli) {
  SimRequest r;
  r.name = std::move(name);
  r.cpu_milli = 1000;
  r.memory_mib = 1024;
  r.num_gpu = count;
  r.gpu_milli = milli;
  return r;
}

TEST(FillOrderTest, ShufflesThenPadsJustPastTheTarget) {
  SimTrace trace;
  for (int i = 0; i < 10; ++i) trace.requests.push_back(Gpu("r" + std::to_string(i), 1, 500));
  // Capacity 4 GPUs; the trace asks for 5 (125%); padding to 200% needs 8 GPUs = 16 requests.
  std::vector<size_t> order = FillOrder(trace, 4000, 42, 200);
  ASSERT_EQ(order.size(), 16u);
  std::vector<size_t> head(order.begin(), order.begin() + 10);
  std::sort(head.begin(), head.end());
  for (size_t i = 0; i < 10; ++i) EXPECT_EQ(head[i], i);  // the original requests, shuffled
  EXPECT_EQ(FillOrder(trace, 4000, 42, 200), order);
  EXPECT_NE(FillOrder(trace, 4000, 43, 200), order);
  // The trace alone passes 100%: it is cut at the request that reaches 4 GPUs.
  EXPECT_EQ(FillOrder(trace, 4000, 42, 100).size(), 8u);
}

TEST(RunFillTest, RecordsArrivedAllocatedAndFragmentationByHand) {
  SimCluster cluster{{Host("h1", 2)}};
  SimTrace trace{{Gpu("half", 1, 500)}};
  FillOptions options;
  options.policy = "fake";
  options.target_pct = 130;
  auto result = RunFill(cluster, trace, options, FakeEngine::Factory());
  ASSERT_TRUE(result.ok()) << result.status();
  // Six half-GPU requests reach 150% >= 130%; four fit on two GPUs.
  ASSERT_EQ(result->steps.size(), 6u);
  EXPECT_EQ(result->offered, 6);
  EXPECT_EQ(result->placed, 4);
  EXPECT_EQ(result->dropped, 2);
  EXPECT_DOUBLE_EQ(result->steps[0].arrived_pct, 25);
  EXPECT_DOUBLE_EQ(result->steps[0].allocated_pct, 25);
  // The first device is half used: its free half counts as fragmented (fake engine's rule).
  EXPECT_DOUBLE_EQ(result->steps[0].fragmented_pct, 25);
  EXPECT_DOUBLE_EQ(result->steps[0].frag_ratio_pct, 100.0 * 500 / 1500);
  EXPECT_DOUBLE_EQ(result->steps[1].frag_ratio_pct, 0);
  EXPECT_DOUBLE_EQ(result->steps[5].arrived_pct, 150);
  EXPECT_DOUBLE_EQ(result->steps[5].allocated_pct, 100);
  EXPECT_DOUBLE_EQ(result->UnallocatedAt100(), 0);
  EXPECT_DOUBLE_EQ(result->At(60).arrived_pct, 75);
  EXPECT_DOUBLE_EQ(result->At(1000).arrived_pct, 150);  // never reached: the last step
}

TEST(RunFillTest, DropsWhatFitsNowhereAndReportsUnallocated) {
  // Two 1-GPU hosts; 2-GPU requests never fit, so half the capacity stays idle at 100%.
  SimCluster cluster{{Host("h1", 1), Host("h2", 1)}};
  SimTrace trace{{Gpu("one", 1, 1000), Gpu("two", 2, 1000)}};
  FillOptions options;
  options.policy = "fake";
  options.seed = 1;
  auto result = RunFill(cluster, trace, options, FakeEngine::Factory());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->placed + result->dropped, result->offered);
  for (const FillStep& s : result->steps) EXPECT_LE(s.allocated_pct, 100.0);
  EXPECT_GE(result->dropped, 1);
}

TEST(RunFillTest, SameSeedSameCurve) {
  GenerateOptions o;
  o.hosts = *ParseHostShapes("6:8:A100:96:512Gi,6:4:V100:64:256Gi");
  o.requests = 300;
  SimCluster cluster = *GenerateCluster(o);
  SimTrace trace = *GenerateTrace(o, cluster);
  FillOptions options;
  options.policy = "fake";
  auto a = RunFill(cluster, trace, options, FakeEngine::Factory());
  auto b = RunFill(cluster, trace, options, FakeEngine::Factory());
  options.seed = 7;
  auto c = RunFill(cluster, trace, options, FakeEngine::Factory());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_EQ(a->steps.size(), b->steps.size());
  for (size_t i = 0; i < a->steps.size(); ++i) {
    EXPECT_EQ(a->steps[i].allocated_pct, b->steps[i].allocated_pct);
    EXPECT_EQ(a->steps[i].fragmented_pct, b->steps[i].fragmented_pct);
  }
  EXPECT_GE(a->steps.back().arrived_pct, 130.0);
  bool differs = a->steps.size() != c->steps.size();
  for (size_t i = 0; !differs && i < a->steps.size(); ++i) {
    differs = a->steps[i].allocated_pct != c->steps[i].allocated_pct;
  }
  EXPECT_TRUE(differs);
}

TEST(RunFillTest, RejectsClustersWithoutGpusAndTracesWithoutGpuDemand) {
  SimCluster no_gpus{{Host("h1", 0)}};
  SimRequest cpu;
  cpu.name = "cpu";
  cpu.cpu_milli = 1000;
  FillOptions options;
  options.policy = "fake";
  EXPECT_FALSE(
      RunFill(no_gpus, SimTrace{{Gpu("g", 1, 1000)}}, options, FakeEngine::Factory()).ok());
  EXPECT_FALSE(
      RunFill(SimCluster{{Host("h1", 1)}}, SimTrace{{cpu}}, options, FakeEngine::Factory()).ok());
  options.policy = "nonsense";
  auto bad_policy = RunFill(SimCluster{{Host("h1", 1)}}, SimTrace{{Gpu("g", 1, 1000)}}, options,
                            FakeEngine::Factory());
  EXPECT_EQ(bad_policy.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::sim
