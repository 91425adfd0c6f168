#include "sim/fill_runs.h"

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/fake_engine.h"

namespace berth::sim {
namespace {

using ::testing::HasSubstr;

SimRequest Gpu(std::string name, int64_t milli) {
  SimRequest r;
  r.name = std::move(name);
  r.cpu_milli = 1000;
  r.memory_mib = 1024;
  r.num_gpu = 1;
  r.gpu_milli = milli;
  return r;
}

FillRunRequest Small() {
  FillRunRequest request;
  request.cluster.hosts.push_back(SimHost{"h1", 64000, 256 * 1024, 2, "A100", 0, {}});
  request.trace.requests.push_back(Gpu("half", 500));
  request.policies = {"fake", "first-fit"};
  request.seeds = {1, 2, 3};
  request.cluster_source = "test cluster";
  request.trace_source = "test trace";
  return request;
}

// Waits until comparison `id` leaves "running".
core::Json Finished(FillRuns& runs, int64_t id) {
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  for (;;) {
    absl::StatusOr<core::Json> got = runs.Get(id);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || (*got)["state"] != "running" || absl::Now() > deadline) {
      return got.ok() ? *got : core::Json();
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

TEST(FillRunsTest, RunsAComparisonAndKeepsItsSummaryAndCurves) {
  FillRuns runs(FakeEngine::Factory());
  absl::StatusOr<int64_t> id = runs.Start(Small());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 1);
  core::Json done = Finished(runs, *id);
  ASSERT_EQ(done["state"], "done") << done.dump();
  EXPECT_EQ(done["progress"]["done"], 6);
  EXPECT_EQ(done["progress"]["total"], 6);
  EXPECT_EQ(done["hosts"], 1);
  EXPECT_EQ(done["gpus"], 2);
  EXPECT_EQ(done["cluster"], "test cluster");
  // Six half-GPU requests fill two GPUs (the fake engine places each where it fits): nothing
  // is unallocated at arrived = 100 %, for every policy and seed.
  EXPECT_EQ(done["summary"]["policies"]["fake"]["unallocated_gpu_pct_at_100"]["mean"], 0);
  ASSERT_EQ(done["curves"].size(), 2u);
  const core::Json& fake = done["curves"][0];
  EXPECT_EQ(fake["policy"], "fake");
  ASSERT_FALSE(fake["arrived_pct"].empty());
  EXPECT_EQ(fake["arrived_pct"].size(), fake["unallocated_gpu_pct_mean"].size());
  EXPECT_EQ(fake["arrived_pct"].size(), fake["unallocated_gpu_pct_low"].size());
  EXPECT_EQ(fake["arrived_pct"].size(), fake["unallocated_gpu_pct_high"].size());
  for (size_t i = 0; i < fake["arrived_pct"].size(); ++i) {
    EXPECT_LE(fake["unallocated_gpu_pct_low"][i].get<double>(),
              fake["unallocated_gpu_pct_mean"][i].get<double>());
    EXPECT_LE(fake["unallocated_gpu_pct_mean"][i].get<double>(),
              fake["unallocated_gpu_pct_high"][i].get<double>());
  }
  // The list has it too, without the curves.
  core::Json list = runs.List();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], 1);
  EXPECT_FALSE(list[0].contains("curves"));
}

TEST(FillRunsTest, RefusesBadRequestsNamingTheField) {
  FillRuns runs(FakeEngine::Factory());
  FillRunRequest unknown = Small();
  unknown.policies = {"fake", "no-such"};
  absl::StatusOr<int64_t> id = runs.Start(unknown);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr("policies[1]"));

  FillRunRequest no_gpus = Small();
  no_gpus.cluster.hosts[0].gpu_count = 0;
  id = runs.Start(no_gpus);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr("cluster (test cluster)"));

  FillRunRequest cpu_only = Small();
  cpu_only.trace.requests[0].num_gpu = 0;
  cpu_only.trace.requests[0].gpu_milli = 0;
  id = runs.Start(cpu_only);
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(id.status().message(), HasSubstr("trace (test trace)"));

  FillRunRequest no_seeds = Small();
  no_seeds.seeds.clear();
  EXPECT_EQ(runs.Start(no_seeds).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(runs.List().empty());
  EXPECT_EQ(runs.Get(1).status().code(), absl::StatusCode::kNotFound);
}

TEST(FillRunsTest, OneAtATimeAndOnlyTheNewestAreKept) {
  FillRuns runs(FakeEngine::Factory(), FillRunsOptions{.jobs = 1, .keep = 2});
  // A long comparison: many seeds over a padded trace.
  FillRunRequest big = Small();
  big.seeds.clear();
  for (uint64_t s = 1; s <= 2000; ++s) big.seeds.push_back(s);
  absl::StatusOr<int64_t> first = runs.Start(big);
  ASSERT_TRUE(first.ok());
  absl::StatusOr<int64_t> refused = runs.Start(Small());
  // Unless the first already finished, the second is refused while it runs.
  if (!refused.ok()) {
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(refused.status().message(), HasSubstr("comparison 1 is still running"));
  }
  EXPECT_EQ(Finished(runs, *first)["state"], "done");
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<int64_t> id = runs.Start(Small());
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(Finished(runs, *id)["state"], "done");
  }
  core::Json list = runs.List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_GT(list[0]["id"].get<int64_t>(), list[1]["id"].get<int64_t>());
  EXPECT_EQ(runs.Get(*first).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace berth::sim
