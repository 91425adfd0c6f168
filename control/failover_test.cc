// Restart policies, failover of a lost host's workloads after its TTL and grace, cordon and
// drain, on the in-memory store with a paused clock.
#include "control/failover.h"

#include "control/control_plane.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::DesiredState;
using core::WorkloadState;

core::WorkloadSpec Spec(const std::string& name, const char* restart = nullptr) {
  core::Json j = {{"name", name},
                  {"kind", "process"},
                  {"command", {"/bin/true"}},
                  {"resources", {{"cpu", "500m"}, {"memory", "64Mi"}}}};
  if (restart != nullptr) j["restart"] = core::Json::parse(restart);
  auto spec = core::DecodeWorkloadSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

core::HostInventory Inventory() {
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(2000);
  inv.capacity.memory = core::MemoryMiB(1024);
  inv.drivers = {"process"};
  return inv;
}

class FailoverTest : public ::testing::Test {
 protected:
  FailoverTest()
      : store_(state::StoreOptions{.clock = &clock_}),
        cp_(&store_, ControlPlaneOptions{.clock = &clock_,
                                         .host_ttl = absl::Seconds(10),
                                         .failover_grace = absl::Seconds(3),
                                         .policy = "binpack"}) {}

  core::Workload Get(const std::string& name) {
    auto w = cp_.GetWorkload(name);
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : core::Workload{};
  }
  // Places `name` (pending) and reports it running where it went.
  std::string PlaceAndRun(const std::string& name) {
    EXPECT_GE(*cp_.ScheduleOnce(), 1);
    core::Workload w = Get(name);
    EXPECT_EQ(w.status.state, WorkloadState::kScheduled) << w.status.reason;
    EXPECT_TRUE(
        cp_.ReportStatus(w.status.host, name,
                         {.generation = w.status.generation, .state = WorkloadState::kRunning})
            .ok());
    return w.status.host;
  }
  bool Report(const std::string& name, WorkloadState state, std::optional<int> exit = {}) {
    core::Workload w = Get(name);
    return cp_
        .ReportStatus(w.status.host, name,
                      {.generation = w.status.generation, .state = state, .exit_code = exit})
        .ok();
  }
  std::vector<std::string> EventTypes(const std::string& name) {
    std::vector<std::string> out;
    for (const core::Event& e : *cp_.ListEvents(0, 1000)) {
      if (e.object == name) out.push_back(e.type);
    }
    return out;
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
};

TEST(RestartBackoffTest, DoublesUpToTheCap) {
  core::RestartSpec r{.policy = core::RestartPolicy::kAlways, .backoff = absl::Seconds(2)};
  EXPECT_EQ(RestartBackoff(r, 0), absl::Seconds(2));
  EXPECT_EQ(RestartBackoff(r, 1), absl::Seconds(4));
  EXPECT_EQ(RestartBackoff(r, 3), absl::Seconds(16));
  EXPECT_EQ(RestartBackoff(r, 100), core::kMaxRestartBackoff);
  r.backoff = absl::ZeroDuration();
  EXPECT_EQ(RestartBackoff(r, 5), absl::ZeroDuration());
}

TEST_F(FailoverTest, AFailedExitRestartsAfterItsBackoffUntilMaxRetries) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(
      cp_.CreateWorkload(Spec("w", R"({"policy":"on-failure","max_retries":2,"backoff":"2s"})"))
          .ok());
  PlaceAndRun("w");
  const int64_t first_generation = Get("w").status.generation;
  ASSERT_TRUE(Report("w", WorkloadState::kFailed, 3));
  core::Workload w = Get("w");
  EXPECT_EQ(w.status.state, WorkloadState::kPending);
  EXPECT_EQ(w.status.host, "");
  EXPECT_EQ(w.status.restarts, 1);
  EXPECT_EQ(w.status.exit_code, 3);
  EXPECT_NE(w.status.reason.find("restart 1 of 2 in 2s"), std::string::npos) << w.status.reason;
  EXPECT_TRUE(cp_.Assignments("h1")->empty());
  // A late report from the old copy is stale.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      cp_.ReportStatus("h1", "w",
                       {.generation = first_generation, .state = WorkloadState::kRunning})
          .status()));
  // Not before its backoff.
  EXPECT_EQ(*cp_.ScheduleOnce(), 0);
  clock_.Advance(absl::Seconds(2));
  PlaceAndRun("w");
  EXPECT_GT(Get("w").status.generation, first_generation);
  ASSERT_TRUE(Report("w", WorkloadState::kFailed, 1));
  EXPECT_EQ(Get("w").status.restarts, 2);
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(*cp_.ScheduleOnce(), 0);  // the second backoff is twice the first: 4s
  clock_.Advance(absl::Seconds(1));
  PlaceAndRun("w");
  ASSERT_TRUE(Report("w", WorkloadState::kFailed, 1));
  w = Get("w");
  EXPECT_EQ(w.status.state, WorkloadState::kFailed);
  EXPECT_NE(w.status.reason.find("max_retries (2) reached"), std::string::npos) << w.status.reason;
  const std::vector<std::string> types = EventTypes("w");
  EXPECT_EQ(std::count(types.begin(), types.end(), "restarting"), 2);
}

TEST_F(FailoverTest, WhichEndsRestartDependsOnThePolicy) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("clean", R"("on-failure")")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("again", R"({"policy":"always","backoff":"0s"})")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("once")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("asked", R"("always")")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 4);
  for (const char* name : {"clean", "again", "once", "asked"}) {
    ASSERT_TRUE(Report(name, WorkloadState::kRunning)) << name;
  }
  ASSERT_TRUE(Report("clean", WorkloadState::kStopped, 0));
  EXPECT_EQ(Get("clean").status.state, WorkloadState::kStopped);
  ASSERT_TRUE(Report("again", WorkloadState::kStopped, 0));
  EXPECT_EQ(Get("again").status.state, WorkloadState::kPending);
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);  // no backoff
  ASSERT_TRUE(Report("once", WorkloadState::kFailed, 1));
  EXPECT_EQ(Get("once").status.state, WorkloadState::kFailed);
  // An end the user asked for is final, whatever the policy.
  ASSERT_TRUE(cp_.Act("asked", Action::kStop).ok());
  ASSERT_TRUE(Report("asked", WorkloadState::kStopped, 143));
  EXPECT_EQ(Get("asked").status.state, WorkloadState::kStopped);
}

TEST_F(FailoverTest, ALostHostsRestartableWorkloadsMoveAfterTheGraceAndTheOthersFail) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("keep", R"("always")")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("ends")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("unfenced", R"({"policy":"always","fence":false})")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 3);
  for (const char* name : {"keep", "ends", "unfenced"}) {
    ASSERT_TRUE(Report(name, WorkloadState::kRunning)) << name;
  }
  const int64_t generation = Get("keep").status.generation;
  ASSERT_TRUE(cp_.RegisterHost("h2", Inventory()).ok());
  ASSERT_TRUE(cp_.Heartbeat("h2").ok());
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(cp_.Heartbeat("h2").ok());
  EXPECT_EQ(*cp_.CheckHostsOnce(), 1);
  EXPECT_EQ(cp_.GetHost("h1")->state, core::HostState::kDown);
  // At once: what must not run elsewhere fails; the rest waits out the grace, still on h1.
  EXPECT_EQ(Get("ends").status.state, WorkloadState::kFailed);
  EXPECT_EQ(Get("unfenced").status.state, WorkloadState::kFailed);
  EXPECT_EQ(Get("keep").status.state, WorkloadState::kRunning);
  EXPECT_EQ(Get("keep").status.host, "h1");
  EXPECT_TRUE(store_.Get(HostAllocKey("h1"))->kv.has_value());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(cp_.Heartbeat("h2").ok());
  EXPECT_EQ(*cp_.CheckHostsOnce(), 0);
  EXPECT_EQ(Get("keep").status.host, "h1");  // 12s of the 13s
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(cp_.Heartbeat("h2").ok());
  EXPECT_EQ(*cp_.CheckHostsOnce(), 0);
  core::Workload moved = Get("keep");
  EXPECT_EQ(moved.status.state, WorkloadState::kPending);
  EXPECT_NE(moved.status.reason.find("placing it elsewhere"), std::string::npos)
      << moved.status.reason;
  EXPECT_EQ(moved.status.restarts, 0);  // a lost host is not the workload's failure
  EXPECT_FALSE(store_.Get(HostAllocKey("h1"))->kv.has_value());
  EXPECT_EQ(PlaceAndRun("keep"), "h2");
  EXPECT_GT(Get("keep").status.generation, generation);
  // The old host comes back and says its copy is still running: refused as stale.
  ASSERT_TRUE(cp_.Heartbeat("h1").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      cp_.ReportStatus("h1", "keep", {.generation = generation, .state = WorkloadState::kRunning})
          .status()));
  EXPECT_TRUE(cp_.Assignments("h1")->empty());
  const std::vector<std::string> types = EventTypes("keep");
  EXPECT_NE(std::find(types.begin(), types.end(), "rescheduled"), types.end());
}

TEST_F(FailoverTest, AHostBackWithinTheGraceKeepsItsWorkloads) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("keep", R"("always")")).ok());
  PlaceAndRun("keep");
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(*cp_.CheckHostsOnce(), 1);
  ASSERT_TRUE(cp_.Heartbeat("h1").ok());
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(*cp_.CheckHostsOnce(), 0);
  EXPECT_EQ(cp_.GetHost("h1")->state, core::HostState::kReady);
  EXPECT_EQ(Get("keep").status.state, WorkloadState::kRunning);
  EXPECT_EQ(Get("keep").status.host, "h1");
}

TEST_F(FailoverTest, ACordonedHostTakesNothingNewAndKeepsItsCordonAcrossRegistrations) {
  auto reg = cp_.RegisterHost("h1", Inventory());
  ASSERT_TRUE(reg.ok());
  auto cordoned = cp_.CordonHost("h1", true);
  ASSERT_TRUE(cordoned.ok()) << cordoned.status();
  EXPECT_TRUE(cordoned->cordoned);
  ASSERT_TRUE(cp_.CreateWorkload(Spec("w")).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 0);
  EXPECT_EQ(Get("w").status.state, WorkloadState::kPending);
  // The agent restarting registers again: the cordon stays.
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory(), {.credential = reg->credential}).ok());
  EXPECT_TRUE(cp_.GetHost("h1")->cordoned);
  EXPECT_EQ(*cp_.ScheduleOnce(), 0);
  auto open = cp_.CordonHost("h1", false);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_FALSE(open->cordoned);
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_TRUE(absl::IsNotFound(cp_.CordonHost("nope", true).status()));
  EXPECT_TRUE(absl::IsNotFound(cp_.DrainHost("nope").status()));
  const std::vector<std::string> types = EventTypes("h1");
  EXPECT_NE(std::find(types.begin(), types.end(), "cordoned"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "uncordoned"), types.end());
}

TEST_F(FailoverTest, ADrainMovesRestartableWorkloadsOneAtATimeStoppingEachFirst) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a", R"("always")")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("b", R"("on-failure")")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("stays")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 3);
  for (const char* name : {"a", "b", "stays"}) ASSERT_TRUE(Report(name, WorkloadState::kRunning));
  ASSERT_TRUE(cp_.RegisterHost("h2", Inventory()).ok());
  auto drain = cp_.DrainHost("h1");
  ASSERT_TRUE(drain.ok()) << drain.status();
  EXPECT_TRUE(drain->cordoned);
  EXPECT_TRUE(drain->draining);
  std::vector<std::string> moved_order;
  for (int step = 0; step < 2; ++step) {
    ASSERT_TRUE(cp_.DrainHostsOnce().ok());
    const std::string current = cp_.GetHost("h1")->drain_current;
    ASSERT_FALSE(current.empty());
    moved_order.push_back(current);
    // Stopped here first; nothing else moves meanwhile.
    EXPECT_EQ(Get(current).status.desired, DesiredState::kStopped);
    EXPECT_EQ(Get(current).status.host, "h1");
    ASSERT_TRUE(cp_.DrainHostsOnce().ok());
    EXPECT_EQ(cp_.GetHost("h1")->drain_current, current);
    ASSERT_TRUE(Report(current, WorkloadState::kStopped, 0));
    ASSERT_TRUE(cp_.DrainHostsOnce().ok());
    EXPECT_EQ(Get(current).status.state, WorkloadState::kPending);
    EXPECT_EQ(PlaceAndRun(current), "h2");  // h1 is cordoned
    ASSERT_TRUE(cp_.DrainHostsOnce().ok());
    EXPECT_EQ(cp_.GetHost("h1")->drain_current, "");
    EXPECT_EQ(cp_.GetHost("h1")->drain_moved, step + 1);
  }
  EXPECT_NE(moved_order[0], moved_order[1]);
  ASSERT_TRUE(cp_.DrainHostsOnce().ok());
  core::Host h1 = *cp_.GetHost("h1");
  EXPECT_FALSE(h1.draining);
  EXPECT_TRUE(h1.cordoned);
  EXPECT_EQ(h1.drain_moved, 2);
  EXPECT_EQ(Get("stays").status.host, "h1");
  EXPECT_EQ(Get("stays").status.state, WorkloadState::kRunning);
  const std::vector<std::string> types = EventTypes("h1");
  EXPECT_NE(std::find(types.begin(), types.end(), "drained"), types.end());
}

TEST_F(FailoverTest, UncordoningEndsADrain) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a", R"("always")")).ok());
  PlaceAndRun("a");
  ASSERT_TRUE(cp_.DrainHost("h1").ok());
  auto open = cp_.CordonHost("h1", false);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_FALSE(open->cordoned);
  EXPECT_FALSE(open->draining);
  ASSERT_TRUE(cp_.DrainHostsOnce().ok());
  EXPECT_EQ(Get("a").status.desired, DesiredState::kRunning);  // nothing more is moved
  EXPECT_EQ(Get("a").status.host, "h1");
}

TEST_F(FailoverTest, AMoveUnderWayFinishesWhenTheCordonIsLiftedMidway) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a", R"("always")")).ok());
  PlaceAndRun("a");
  ASSERT_TRUE(cp_.DrainHost("h1").ok());
  ASSERT_TRUE(cp_.DrainHostsOnce().ok());
  ASSERT_EQ(cp_.GetHost("h1")->drain_current, "a");
  ASSERT_TRUE(cp_.CordonHost("h1", false).ok());
  ASSERT_TRUE(cp_.DrainHostsOnce().ok());
  EXPECT_EQ(cp_.GetHost("h1")->drain_current, "a");  // still stopping: not done yet
  ASSERT_TRUE(Report("a", WorkloadState::kStopped, 0));
  ASSERT_TRUE(cp_.DrainHostsOnce().ok());
  EXPECT_EQ(Get("a").status.state, WorkloadState::kPending);  // started again, not left stopped
  EXPECT_EQ(PlaceAndRun("a"), "h1");                          // the only host, open again
  ASSERT_TRUE(cp_.DrainHostsOnce().ok());
  EXPECT_EQ(cp_.GetHost("h1")->drain_current, "");
}

}  // namespace
}  // namespace berth::control

namespace berth::control {
namespace {

// A GPU its host reports unhealthy fails the workload on it; with a restart policy the workload
// is placed again, on a host whose GPU is healthy, and the bad device takes nothing new.
TEST_F(FailoverTest, AWorkloadOnAGpuThatTurnedUnhealthyRestartsOnAHealthyOne) {
  core::HostInventory with_gpu = Inventory();
  with_gpu.gpus.push_back({.index = 0, .uuid = "GPU-a", .model = "A100", .memory_mib = 81920});
  auto g1 = cp_.RegisterHost("g1", with_gpu);
  ASSERT_TRUE(g1.ok()) << g1.status();
  core::Json j = {{"name", "train"},
                  {"kind", "process"},
                  {"command", {"/bin/true"}},
                  {"resources", {{"cpu", "500m"}, {"memory", "64Mi"}, {"gpu", {{"count", 1}}}}},
                  {"restart", {{"policy", "on-failure"}, {"backoff", "1s"}}}};
  auto spec = core::DecodeWorkloadSpec(j);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(cp_.CreateWorkload(*spec).ok());
  EXPECT_EQ(PlaceAndRun("train"), "g1");
  ASSERT_TRUE(cp_.RegisterHost("g2", with_gpu).ok());

  // g1's agent sees the device fail: it registers its inventory again and fails the task.
  core::HostInventory failed = with_gpu;
  failed.gpus[0].healthy = false;
  failed.gpus[0].health = "Xid 79: fallen off the bus";
  ASSERT_TRUE(cp_.RegisterHost("g1", failed, {.credential = g1->credential}).ok());
  core::Workload w = Get("train");
  ASSERT_TRUE(cp_.ReportStatus("g1", "train",
                               {.generation = w.status.generation,
                                .state = WorkloadState::kFailed,
                                .reason = "GPU GPU-a became unhealthy: Xid 79"})
                  .ok());
  EXPECT_EQ(Get("train").status.state, WorkloadState::kPending);
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(PlaceAndRun("train"), "g2");
  EXPECT_EQ(Get("train").status.restarts, 1);
}

}  // namespace
}  // namespace berth::control
