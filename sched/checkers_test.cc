#include <set>
#include <string>

#include "gtest/gtest.h"
#include "sched/checker.h"
#include "sched/scheduler.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using testing::CpuRequest;
using testing::GpuHost;
using testing::MigRequest;
using testing::Res;
using testing::ShareRequest;
using testing::WholeGpuRequest;

// Runs checker `name` alone on host `h` for `r`, at its scope, as the scheduler would: the class
// checkers before it in the table fill the ClassCheck it reads; a group check that passes or
// leaves the group open is followed by the host check. kFeasible, or the Reason.
int RunChecker(std::string_view name, const Cluster& c, const Request& r, int h) {
  const Cluster::Index& x = c.index();
  const CheckContext ctx{c, x, r};
  ClassCheck cc;
  HostCheck hc;
  for (const CheckerEntry& e : CheckerTable()) {
    std::unique_ptr<Checker> checker = e.make();
    if (e.name != name) {
      if (checker->scope() == CheckScope::kClass && checker->Prepare(ctx)) {
        if (checker->CheckClass(ctx, x.host_class[h], cc) >= 0) return kFeasible;
      }
      continue;
    }
    if (!checker->Prepare(ctx)) return kFeasible;
    switch (checker->scope()) {
      case CheckScope::kClass:
        return checker->CheckClass(ctx, x.host_class[h], cc);
      case CheckScope::kGroup: {
        int v = checker->CheckGroup(ctx, x.summary[x.host_group[h]], cc);
        return v >= 0 ? v : checker->CheckHost(ctx, h, cc, hc);
      }
      case CheckScope::kHost:
        return checker->CheckHost(ctx, h, cc, hc);
    }
  }
  ADD_FAILURE() << "no checker " << name;
  return kFeasible;
}

// Hosts the decision's explanation counts under `reason`.
int Explained(const Decision& d, std::string_view reason) {
  for (const ReasonCount& rc : d.reasons) {
    if (rc.reason == reason) return rc.hosts;
  }
  return 0;
}

Decision ScheduleOn(Cluster& c, const Request& r) {
  Scheduler s(&c, SchedulerOptions{.policy = *Policy::Parse("binpack")});
  absl::StatusOr<Decision> d = s.Schedule(r);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : Decision{};
}

TEST(CheckerTableTest, EveryCheckerIsRegisteredOnceWithADoc) {
  std::set<std::string_view> names;
  for (const CheckerEntry& e : CheckerTable()) {
    SCOPED_TRACE(std::string(e.name));
    EXPECT_TRUE(names.insert(e.name).second) << "named twice";
    ASSERT_NE(e.make, nullptr);
    EXPECT_NE(e.make(), nullptr);
    EXPECT_FALSE(e.doc.empty());
    EXPECT_EQ(FindChecker(e.name), &e);
  }
  EXPECT_EQ(names, (std::set<std::string_view>{"host-state", "labels", "gpu-devices", "gpu-quota",
                                               "device-classes", "resources", "gpu-capacity",
                                               "device-capacity", "affinity"}));
  EXPECT_EQ(FindChecker("no-such-checker"), nullptr);
}

// The table's order is the pipeline's: a cordoned host is reported as cordoned, static checks
// come before capacity, and checks on other workloads last.
TEST(CheckerTableTest, OrderIsThePipelines) {
  std::vector<std::string_view> order;
  for (const CheckerEntry& e : CheckerTable()) order.push_back(e.name);
  EXPECT_EQ(order, (std::vector<std::string_view>{"host-state", "labels", "gpu-devices",
                                                  "gpu-quota", "device-classes", "resources",
                                                  "gpu-capacity", "device-capacity", "affinity"}));
  // Static checks (once per class) must precede the checks that read their ClassCheck.
  EXPECT_EQ(FindChecker("labels")->make()->scope(), CheckScope::kClass);
  EXPECT_EQ(FindChecker("gpu-devices")->make()->scope(), CheckScope::kClass);
  EXPECT_EQ(FindChecker("gpu-quota")->make()->scope(), CheckScope::kClass);
  EXPECT_EQ(FindChecker("affinity")->make()->scope(), CheckScope::kHost);
}

TEST(CheckerTableTest, EveryReasonHasADistinctName) {
  std::set<std::string_view> names;
  for (int r = 0; r < kNumReasons; ++r) {
    EXPECT_FALSE(ReasonName(r).empty()) << r;
    EXPECT_TRUE(names.insert(ReasonName(r)).second) << ReasonName(r);
  }
  EXPECT_TRUE(ReasonName(kFeasible).empty());
  EXPECT_TRUE(ReasonName(kNumReasons).empty());
}

TEST(CheckerTest, HostStateRejectsCordonedHosts) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("a", 2)).ok());
  const Request r = CpuRequest("r", 1000, 1024);
  EXPECT_EQ(RunChecker("host-state", c, r, 0), kFeasible);
  c.SetSchedulable(0, false);
  EXPECT_EQ(RunChecker("host-state", c, r, 0), kNotSchedulable);
  EXPECT_EQ(Explained(ScheduleOn(c, r), "host not schedulable"), 1);
}

TEST(CheckerTest, LabelsMatchTheHostSelector) {
  Cluster c;
  HostSpec h = GpuHost("a", 0);
  h.labels["zone"] = "z1";
  ASSERT_TRUE(c.AddHost(h).ok());
  Request r = CpuRequest("r", 1000, 1024);
  EXPECT_EQ(RunChecker("labels", c, r, 0), kFeasible);
  r.host_selector.push_back({"zone", LabelSelector::Op::kEquals, {"z1"}});
  EXPECT_EQ(RunChecker("labels", c, r, 0), kFeasible);
  r.host_selector[0].values = {"z2"};
  EXPECT_EQ(RunChecker("labels", c, r, 0), kLabels);
  EXPECT_EQ(Explained(ScheduleOn(c, r), "host labels"), 1);
}

TEST(CheckerTest, GpuDevicesNamesWhatNoDeviceOffers) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("cpu", 0)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("t4", 2, "T4", 16384)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("mig", 2, "A100-SXM4-80GB", 81920, /*mig=*/true)).ok());
  EXPECT_EQ(RunChecker("gpu-devices", c, CpuRequest("r", 1000, 1024), 0), kFeasible);
  EXPECT_EQ(RunChecker("gpu-devices", c, WholeGpuRequest("r", 1), 0), kNoGpu);
  EXPECT_EQ(RunChecker("gpu-devices", c, WholeGpuRequest("r", 1), 1), kFeasible);
  EXPECT_EQ(RunChecker("gpu-devices", c, WholeGpuRequest("r", 1, {"H100-SXM5-80GB"}), 1),
            kGpuModel);
  EXPECT_EQ(RunChecker("gpu-devices", c, ShareRequest("r", 500, 32768), 1), kGpuMemory);
  EXPECT_EQ(RunChecker("gpu-devices", c, MigRequest("r", "1g.10gb"), 1), kMigProfile);
  EXPECT_EQ(RunChecker("gpu-devices", c, MigRequest("r", "1g.10gb"), 2), kFeasible);
  // A whole device of a MIG-partitioned host is not offered.
  EXPECT_EQ(RunChecker("gpu-devices", c, WholeGpuRequest("r", 1), 2), kGpuMemory);
  Decision d = ScheduleOn(c, WholeGpuRequest("r", 1, {"H100-SXM5-80GB"}));
  EXPECT_EQ(Explained(d, "no gpus"), 1);
  EXPECT_EQ(Explained(d, "gpu model not allowed"), 2);
}

TEST(CheckerTest, GpuQuotaDropsModelsOverTheTenantsQuota) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("a", 2)).ok());
  Request r = WholeGpuRequest("r", 1);
  r.tenant = "team";
  EXPECT_EQ(RunChecker("gpu-quota", c, r, 0), kFeasible);
  Quota q;
  q.gpu_milli_by_model["A100-SXM4-80GB"] = 500;
  c.SetQuota("team", q);
  EXPECT_EQ(RunChecker("gpu-quota", c, r, 0), kQuotaModel);
  EXPECT_EQ(Explained(ScheduleOn(c, r), "quota"), 1);
  q.gpu_milli_by_model["A100-SXM4-80GB"] = 1000;
  c.SetQuota("team", q);
  EXPECT_EQ(RunChecker("gpu-quota", c, r, 0), kFeasible);
}

TEST(CheckerTest, ResourcesNamesTheFirstDimensionShort) {
  Cluster c;
  HostSpec h = GpuHost("a", 0);
  h.capacity = Res(4000, 8192, 10240);
  ASSERT_TRUE(c.AddHost(h).ok());
  Request r;
  r.id = "r";
  r.resources = Res(4000, 8192, 10240);
  EXPECT_EQ(RunChecker("resources", c, r, 0), kFeasible);
  r.resources = Res(4001, 8193, 10241);
  EXPECT_EQ(RunChecker("resources", c, r, 0), kCpu);
  r.resources = Res(4000, 8193, 10241);
  EXPECT_EQ(RunChecker("resources", c, r, 0), kMemory);
  r.resources = Res(4000, 8192, 10241);
  EXPECT_EQ(RunChecker("resources", c, r, 0), kDisk);
  EXPECT_EQ(Explained(ScheduleOn(c, r), "disk"), 1);
}

TEST(CheckerTest, GpuCapacityCountsDevicesThatHoldTheRequestNow) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("a", 2)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("m", 1, "A100-SXM4-80GB", 81920, /*mig=*/true)).ok());
  EXPECT_EQ(RunChecker("gpu-capacity", c, WholeGpuRequest("w", 2), 0), kFeasible);
  EXPECT_EQ(RunChecker("gpu-capacity", c, MigRequest("m", "7g.80gb"), 1), kFeasible);
  ASSERT_TRUE(c.Commit(ShareRequest("x", 600), Placement{0, "a", {{0, 600, 0, "", -1}}}).ok());
  ASSERT_TRUE(c.Commit(ShareRequest("y", 600), Placement{0, "a", {{1, 600, 0, "", -1}}}).ok());
  Scheduler s(&c, SchedulerOptions{.policy = *Policy::Parse("binpack")});
  absl::StatusOr<Decision> mig = s.Place(MigRequest("z", "7g.80gb"));
  ASSERT_TRUE(mig.ok() && mig->scheduled);
  EXPECT_EQ(RunChecker("gpu-capacity", c, WholeGpuRequest("w", 1), 0), kGpuCount);
  EXPECT_EQ(RunChecker("gpu-capacity", c, ShareRequest("s", 400), 0), kFeasible);
  EXPECT_EQ(RunChecker("gpu-capacity", c, ShareRequest("s", 500), 0), kGpuShare);
  EXPECT_EQ(RunChecker("gpu-capacity", c, MigRequest("m", "1g.10gb"), 1), kMigSlot);
  Decision d = ScheduleOn(c, ShareRequest("s", 500));
  EXPECT_EQ(Explained(d, "insufficient gpu share"), 1);
}

TEST(CheckerTest, AffinityLooksAtTheWorkloadsOnTheHost) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("a", 0)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("b", 0)).ok());
  Request kv = CpuRequest("kv", 1000, 1024);
  kv.labels["app"] = "kv";
  ASSERT_TRUE(c.Commit(kv, Placement{0, "a", {}}).ok());
  Request near = CpuRequest("near", 1000, 1024);
  near.affinity.push_back({"app", "kv", /*anti=*/false});
  EXPECT_EQ(RunChecker("affinity", c, near, 0), kFeasible);
  EXPECT_EQ(RunChecker("affinity", c, near, 1), kAffinity);
  Request apart = CpuRequest("apart", 1000, 1024);
  apart.affinity.push_back({"app", "kv", /*anti=*/true});
  EXPECT_EQ(RunChecker("affinity", c, apart, 0), kAntiAffinity);
  EXPECT_EQ(RunChecker("affinity", c, apart, 1), kFeasible);
  c.SetSchedulable(1, false);
  Decision d = ScheduleOn(c, apart);
  EXPECT_FALSE(d.scheduled);
  EXPECT_EQ(Explained(d, "anti-affinity"), 1);
  EXPECT_EQ(Explained(d, "host not schedulable"), 1);
}

// A reason from an earlier checker wins over a later one on the same host, in the group pass
// and in the per-host pass alike.
TEST(CheckerTest, TheFirstRejectingCheckerNamesTheReason) {
  Cluster c;
  HostSpec h = GpuHost("a", 0);
  h.labels["zone"] = "z1";
  ASSERT_TRUE(c.AddHost(h).ok());
  Request r = WholeGpuRequest("r", 1);
  r.resources = Res(1'000'000, 1024);
  r.host_selector.push_back({"zone", LabelSelector::Op::kEquals, {"z2"}});
  EXPECT_EQ(ScheduleOn(c, r).reasons, (std::vector<ReasonCount>{{"host labels", 1}}));
  r.affinity.push_back({"app", "kv", /*anti=*/false});
  EXPECT_EQ(ScheduleOn(c, r).reasons, (std::vector<ReasonCount>{{"host labels", 1}}));
  r.host_selector.clear();
  EXPECT_EQ(ScheduleOn(c, r).reasons, (std::vector<ReasonCount>{{"no gpus", 1}}));
  r.gpu = {};
  EXPECT_EQ(ScheduleOn(c, r).reasons, (std::vector<ReasonCount>{{"cpu", 1}}));
  r.resources = Res(1000, 1024);
  EXPECT_EQ(ScheduleOn(c, r).reasons, (std::vector<ReasonCount>{{"affinity", 1}}));
}

// A host without GPUs offering `n` devices of class `cls`, with ids "<prefix>0", "<prefix>1", ...
HostSpec DeviceHost(std::string name, std::string cls, int n, std::string prefix = "dev") {
  HostSpec h = GpuHost(std::move(name), 0);
  for (int i = 0; i < n; ++i) h.devices.push_back({.cls = cls, .id = prefix + std::to_string(i)});
  return h;
}

Request FpgaRequest(std::string id, int count) {
  Request r = CpuRequest(std::move(id), 1000, 1024);
  r.devices.push_back({.cls = "xilinx.com/fpga", .count = count});
  return r;
}

TEST(CheckerTest, DeviceClassesNeedEnoughDevicesOfTheClassOnTheHost) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(DeviceHost("plain", "acme.com/npu", 4)).ok());
  ASSERT_TRUE(c.AddHost(DeviceHost("one", "xilinx.com/fpga", 1)).ok());
  ASSERT_TRUE(c.AddHost(DeviceHost("two", "xilinx.com/fpga", 2)).ok());
  EXPECT_EQ(RunChecker("device-classes", c, FpgaRequest("r", 1), 0), kDeviceClass);
  EXPECT_EQ(RunChecker("device-classes", c, FpgaRequest("r", 1), 1), kFeasible);
  EXPECT_EQ(RunChecker("device-classes", c, FpgaRequest("r", 2), 1), kDeviceClass);
  EXPECT_EQ(RunChecker("device-classes", c, FpgaRequest("r", 2), 2), kFeasible);
  // A request without devices asks nothing of it.
  EXPECT_EQ(RunChecker("device-classes", c, CpuRequest("r", 1000, 1024), 0), kFeasible);
}

TEST(CheckerTest, EachPlacementTakesFreeDevicesOfTheClassUntilNoneIsLeft) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(DeviceHost("a", "xilinx.com/fpga", 2, "u250-")).ok());
  Scheduler s(&c, SchedulerOptions{.policy = *Policy::Parse("binpack")});
  std::set<std::string> ids;
  for (const std::string id : {"first", "second"}) {
    absl::StatusOr<Decision> d = s.Place(FpgaRequest(id, 1));
    ASSERT_TRUE(d.ok()) << d.status();
    ASSERT_TRUE(d->scheduled) << d->Explain();
    ASSERT_EQ(d->plan.placement.devices.size(), 1u);
    EXPECT_EQ(d->plan.placement.devices[0].cls, "xilinx.com/fpga");
    ids.insert(d->plan.placement.devices[0].id);
  }
  EXPECT_EQ(ids, (std::set<std::string>{"u250-0", "u250-1"}));
  EXPECT_EQ(RunChecker("device-capacity", c, FpgaRequest("third", 1), 0), kDeviceCount);
  Decision third = ScheduleOn(c, FpgaRequest("third", 1));
  EXPECT_FALSE(third.scheduled);
  EXPECT_EQ(Explained(third, "insufficient devices"), 1);
  // Releasing one gives exactly that device to the next request.
  ASSERT_TRUE(c.Release("first").ok());
  Decision again = ScheduleOn(c, FpgaRequest("third", 1));
  ASSERT_TRUE(again.scheduled);
  ASSERT_EQ(again.plan.placement.devices.size(), 1u);
  EXPECT_EQ(again.plan.placement.devices[0].id,
            c.FindAllocation("second")->placement.devices[0].id == "u250-0" ? "u250-1" : "u250-0");
}

TEST(CheckerTest, APlacementNamingADeviceTakenOrUnknownDoesNotCommit) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(DeviceHost("a", "xilinx.com/fpga", 2)).ok());
  Placement p{.host = 0, .host_name = "a", .devices = {{.cls = "xilinx.com/fpga", .id = "dev1"}}};
  ASSERT_TRUE(c.Commit(FpgaRequest("one", 1), p).ok());
  EXPECT_EQ(c.Commit(FpgaRequest("two", 1), p).code(), absl::StatusCode::kFailedPrecondition);
  p.devices[0].id = "dev9";
  EXPECT_EQ(c.Commit(FpgaRequest("two", 1), p).code(), absl::StatusCode::kInvalidArgument);
  p.devices.clear();
  EXPECT_EQ(c.Commit(FpgaRequest("two", 1), p).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.Usage("").devices_by_class.at("xilinx.com/fpga"), 1);
}

TEST(CheckerTest, ATenantsDeviceQuotaCountsDevicesPerClass) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(DeviceHost("a", "xilinx.com/fpga", 4)).ok());
  c.SetQuota("t", Quota{.devices_by_class = {{"xilinx.com/fpga", 3}}});
  Scheduler s(&c, SchedulerOptions{.policy = *Policy::Parse("binpack")});
  Request two = FpgaRequest("two", 2);
  two.tenant = "t";
  ASSERT_TRUE(s.Place(two).ok());
  Request more = FpgaRequest("more", 2);
  more.tenant = "t";
  absl::Status over = c.CheckQuota(more, "");
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(over.message().find("devices xilinx.com/fpga"), std::string_view::npos) << over;
  absl::StatusOr<Decision> d = s.Schedule(more);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->scheduled);
  more.devices[0].count = 1;
  EXPECT_TRUE(c.CheckQuota(more, "").ok());
}

}  // namespace
}  // namespace berth::sched
