// The dry-run rebalance plan of the control plane: hosts declared with GPUs, share workloads
// placed by the scheduling pass, then plans for the workloads left pending.
#include "control/rebalance.h"

#include <algorithm>
#include <string>
#include <vector>

#include "control/control_plane.h"
#include "core/clock.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::Cat;
using core::WorkloadState;

// A host with eight 80 GiB GPUs and the given drivers.
core::HostInventory GpuHost(std::vector<std::string> drivers = {"process", "container", "vm"}) {
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu("64");
  inv.capacity.memory = *core::ParseMemory("512Gi");
  inv.capacity.disk = core::DiskMiB(1 << 20);
  inv.drivers = std::move(drivers);
  for (int i = 0; i < 8; ++i) {
    inv.gpus.push_back(
        {.index = i, .uuid = Cat("GPU-", i), .model = "A100-SXM4-80GB", .memory_mib = 81920});
  }
  return inv;
}

// A workload of `kind` asking `gpu` ({"share": "500m"} or {"count": 8}), restarted always
// unless `restart` says otherwise.
core::WorkloadSpec Spec(const std::string& name, const char* kind, core::Json gpu,
                        const char* restart = "always") {
  core::Json j = {{"name", name},
                  {"kind", kind},
                  {"restart", restart},
                  {"resources", {{"cpu", "1"}, {"memory", "1Gi"}, {"gpu", gpu}}}};
  if (std::string(kind) == "process") {
    j["command"] = {"/bin/true"};
  } else {
    j["image"] = "base";
  }
  auto spec = core::DecodeWorkloadSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

core::Json Share() { return {{"share", "500m"}}; }
core::Json Whole(int n) { return {{"count", n}}; }

class RebalanceTest : public ::testing::Test {
 protected:
  RebalanceTest()
      : store_(state::StoreOptions{.clock = &clock_}),
        // Spread places the shares one per host, the fragmentation a plan undoes.
        cp_(&store_, ControlPlaneOptions{.clock = &clock_, .policy = "spread"}) {}

  // Three hosts, one half-GPU share on each: a VM on h1, a container on h2 and a process that
  // stays (restart never) on h3.
  void SpreadShares(const std::vector<core::HostInventory>& hosts, int priority = 0) {
    for (size_t i = 0; i < hosts.size(); ++i) {
      ASSERT_TRUE(cp_.RegisterHost(Cat("h", i + 1), hosts[i]).ok());
    }
    for (core::WorkloadSpec s : {Spec("s-vm", "vm", Share()), Spec("s-ctr", "container", Share()),
                                 Spec("s-pin", "process", Share(), "never")}) {
      s.priority = priority;
      ASSERT_TRUE(cp_.CreateWorkload(s).ok()) << s.name;
      clock_.Advance(absl::Seconds(1));  // the pass takes them oldest first, in this order
    }
    ASSERT_EQ(*cp_.ScheduleOnce(), 3);
    EXPECT_EQ(cp_.GetWorkload("s-vm")->status.host, "h1");
    EXPECT_EQ(cp_.GetWorkload("s-ctr")->status.host, "h2");
    EXPECT_EQ(cp_.GetWorkload("s-pin")->status.host, "h3");
  }

  const RebalanceEntry* Find(const RebalanceReport& report, const std::string& name) {
    for (const RebalanceEntry& e : report.entries) {
      if (e.workload == name) return &e;
    }
    return nullptr;
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
};

TEST_F(RebalanceTest, AnEightGpuWorkloadBlockedBySharesGetsTheCheapestMoves) {
  SpreadShares({GpuHost(), GpuHost(), GpuHost()});
  ASSERT_TRUE(cp_.CreateWorkload(Spec("train", "process", Whole(8), "never")).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(cp_.CreateWorkload(Spec("small", "process", Whole(1))).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(cp_.CreateWorkload(Spec("huge", "process", Whole(24))).ok());
  const int64_t revision = *store_.Revision();
  const auto allocations = *cp_.HostAllocations();

  auto report = PlanRebalance(&cp_, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->policy, "spread");
  EXPECT_EQ(report->pending, 3u);
  EXPECT_FALSE(report->more);
  EXPECT_EQ(report->gpu_milli_capacity, 24000);
  EXPECT_EQ(report->gpu_milli_free, 22500);
  EXPECT_EQ(report->stranded_gpu_milli, 1500);  // half of one GPU on each host
  ASSERT_EQ(report->entries.size(), 3u);
  // Placement order: oldest first at equal priority.
  EXPECT_EQ(report->entries[0].workload, "train");
  EXPECT_EQ(report->entries[1].workload, "small");
  EXPECT_EQ(report->entries[2].workload, "huge");

  // h1 and h2 each need one move; the container (cost 2) moves rather than the VM (cost 4), and
  // the process on h3 stays (restart never).
  const RebalanceEntry& train = report->entries[0];
  ASSERT_EQ(train.outcome, RebalanceOutcome::kPlan) << train.reason;
  EXPECT_EQ(train.host, "h2");
  std::vector<int> devices = train.gpus;
  std::sort(devices.begin(), devices.end());
  EXPECT_EQ(devices, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  ASSERT_EQ(train.moves.size(), 1u);
  EXPECT_EQ(train.moves[0].workload, "s-ctr");
  EXPECT_EQ(train.moves[0].kind, core::WorkloadKind::kContainer);
  EXPECT_EQ(train.moves[0].from_host, "h2");
  EXPECT_TRUE(train.moves[0].to_host == "h1" || train.moves[0].to_host == "h3")
      << train.moves[0].to_host;
  ASSERT_EQ(train.moves[0].to_gpus.size(), 1u);
  EXPECT_EQ(train.moves[0].cost, 2);
  EXPECT_EQ(train.cost, 2);
  // After: h2 is full, the moved share sits beside another half share or on a device of its
  // own: the stranded GPU is what the two shares left outside h2 leave free.
  const int64_t shared_device = train.moves[0].to_gpus[0];
  auto landed = cp_.HostAllocations();
  EXPECT_EQ(train.stranded_gpu_milli_after,
            landed->at(train.moves[0].to_host).gpus.at(shared_device).milli == 500 ? 500 : 1500);

  const RebalanceEntry& small = report->entries[1];
  EXPECT_EQ(small.outcome, RebalanceOutcome::kFits);
  EXPECT_FALSE(small.host.empty());
  EXPECT_TRUE(small.moves.empty());

  const RebalanceEntry& huge = report->entries[2];
  EXPECT_EQ(huge.outcome, RebalanceOutcome::kNoPlan);
  EXPECT_EQ(huge.reason,
            "the cluster lacks GPU in total: asks 24, 22.5 free on the hosts that can run it");

  // A dry run: nothing written, nothing held.
  EXPECT_EQ(*store_.Revision(), revision);
  const auto after = *cp_.HostAllocations();
  for (const auto& [host, a] : allocations) {
    EXPECT_EQ(after.at(host).gpu_milli, a.gpu_milli) << host;
    EXPECT_EQ(after.at(host).workloads, a.workloads) << host;
  }
  EXPECT_EQ(cp_.GetWorkload("train")->status.state, WorkloadState::kPending);

  // The JSON the API serves.
  core::Json j = EncodeRebalanceReport(*report);
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["gpu"]["stranded_milli"], 1500);
  EXPECT_EQ(j["items"][0]["outcome"], "plan");
  EXPECT_EQ(j["items"][0]["moves"][0]["workload"], "s-ctr");
  EXPECT_EQ(j["items"][0]["moves"][0]["from"], "h2");
  EXPECT_EQ(j["items"][0]["moves"][0]["cost"], 2);
  EXPECT_EQ(j["items"][1]["outcome"], "fits");
  EXPECT_FALSE(j["items"][1].contains("moves"));
  EXPECT_EQ(j["items"][2]["outcome"], "no-plan");
  EXPECT_FALSE(j["items"][2].contains("host"));
}

TEST_F(RebalanceTest, AMoveGoesOnlyWhereADriverForItsKindIs) {
  // Only h2 runs containers: the container there cannot move, so the VM on h1 does.
  SpreadShares({GpuHost({"process", "vm"}), GpuHost({"process", "container", "vm"}),
                GpuHost({"process", "vm"})});
  ASSERT_TRUE(cp_.CreateWorkload(Spec("train", "process", Whole(8))).ok());
  auto report = PlanRebalance(&cp_, {.workload = "train"});
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->entries.size(), 1u);
  const RebalanceEntry& train = report->entries[0];
  ASSERT_EQ(train.outcome, RebalanceOutcome::kPlan) << train.reason;
  EXPECT_EQ(train.host, "h1");
  ASSERT_EQ(train.moves.size(), 1u);
  EXPECT_EQ(train.moves[0].workload, "s-vm");
  EXPECT_EQ(train.moves[0].from_host, "h1");
  EXPECT_NE(train.moves[0].to_host, "h1");
  EXPECT_EQ(train.moves[0].cost, 4);
}

TEST_F(RebalanceTest, NoPlanWhenWhatBlocksMayNotMove) {
  // The pending workload's priority (0) is below the VM's and the container's (each 5): they
  // stay as well as the pinned process (and, being higher, are not preempted either).
  SpreadShares({GpuHost(), GpuHost(), GpuHost()}, /*priority=*/5);
  ASSERT_TRUE(cp_.CreateWorkload(Spec("train", "process", Whole(8))).ok());
  auto report = PlanRebalance(&cp_, {.workload = "train"});
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->entries.size(), 1u);
  EXPECT_EQ(report->entries[0].outcome, RebalanceOutcome::kNoPlan);
  EXPECT_EQ(report->entries[0].reason,
            "no host can be cleared for it within 4 moves: 0 workloads may move, 3 stay (not "
            "running, restart policy never, not preemptible, higher priority, or disks attached)");
}

TEST_F(RebalanceTest, ABadOptionOrAWorkloadThatIsNotPendingIsRefused) {
  SpreadShares({GpuHost(), GpuHost(), GpuHost()});
  auto unknown = PlanRebalance(&cp_, {.workload = "nosuch"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unknown.status().message(), "workload \"nosuch\" not found");
  auto placed = PlanRebalance(&cp_, {.workload = "s-vm"});
  EXPECT_EQ(placed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(placed.status().message(),
            "workload \"s-vm\" is scheduled on h1, not pending: a rebalance plan is for pending "
            "workloads");
  for (int moves : {0, kMaxRebalanceMoves + 1}) {
    auto bad = PlanRebalance(&cp_, {.max_moves = moves});
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << moves;
    EXPECT_NE(bad.status().message().find("max_moves"), std::string::npos);
  }
  EXPECT_EQ(PlanRebalance(&cp_, {.limit = 0}).status().code(), absl::StatusCode::kInvalidArgument);
  // The limit cuts the list, and says so.
  for (const char* name : {"p1", "p2", "p3"}) {
    ASSERT_TRUE(cp_.CreateWorkload(Spec(name, "process", Whole(8))).ok());
  }
  auto cut = PlanRebalance(&cp_, {.limit = 2});
  ASSERT_TRUE(cut.ok()) << cut.status();
  EXPECT_EQ(cut->pending, 3u);
  EXPECT_TRUE(cut->more);
  EXPECT_EQ(cut->entries.size(), 2u);
}

TEST(RebalanceMoveCostTest, KindsCostInOrderAndWhatMayNotMoveStays) {
  core::Workload w;
  w.spec.kind = core::WorkloadKind::kProcess;
  w.spec.restart.policy = core::RestartPolicy::kOnFailure;
  w.status.state = WorkloadState::kRunning;
  EXPECT_EQ(RebalanceMoveCost(w, 0), 1);
  w.spec.kind = core::WorkloadKind::kContainer;
  EXPECT_EQ(RebalanceMoveCost(w, 0), 2);
  w.spec.kind = core::WorkloadKind::kVm;
  EXPECT_EQ(RebalanceMoveCost(w, 0), 4);

  auto stays = [&](auto change) {
    core::Workload x = w;
    change(x);
    return !RebalanceMoveCost(x, 0).has_value();
  };
  EXPECT_TRUE(
      stays([](core::Workload& x) { x.spec.restart.policy = core::RestartPolicy::kNever; }));
  EXPECT_TRUE(stays([](core::Workload& x) { x.spec.preemptible = false; }));
  EXPECT_TRUE(stays([](core::Workload& x) { x.spec.priority = 1; }));
  EXPECT_TRUE(stays([](core::Workload& x) { x.spec.disks = {{.disk = "data"}}; }));
  EXPECT_TRUE(stays([](core::Workload& x) { x.status.state = WorkloadState::kPaused; }));
  EXPECT_TRUE(stays([](core::Workload& x) { x.status.desired = core::DesiredState::kStopped; }));
  core::Workload lower = w;
  lower.spec.priority = 3;
  EXPECT_EQ(RebalanceMoveCost(lower, 5), 4);  // below the pending workload's priority: it moves
}

}  // namespace
}  // namespace berth::control
