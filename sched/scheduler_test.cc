#include "sched/scheduler.h"

#include "gtest/gtest.h"
#include "sched/test_hosts.h"

namespace berth::sched {
namespace {

using testing::CpuRequest;
using testing::GpuHost;
using testing::MigRequest;
using testing::Res;
using testing::ShareRequest;
using testing::WholeGpuRequest;

Scheduler Make(Cluster& c, std::string_view policy, const WorkloadMix* mix = nullptr) {
  SchedulerOptions o;
  o.policy = *Policy::Parse(policy);
  o.mix = mix;
  return Scheduler(&c, o);
}

int Reason(const Decision& d, std::string_view reason) {
  for (const ReasonCount& r : d.reasons) {
    if (r.reason == reason) return r.hosts;
  }
  return 0;
}

TEST(PolicyTest, ParsesWeightsAsMilli) {
  absl::StatusOr<Policy> p = Policy::Parse("binpack:1+topology:0.5");
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->terms.size(), 2u);
  EXPECT_EQ(p->terms[0].weight_milli, 1000);
  EXPECT_EQ(p->terms[1].weight_milli, 500);
  EXPECT_EQ(p->ToString(), "binpack:1+topology:0.5");
  EXPECT_EQ(Policy::Parse("fgd")->ToString(), "fgd");
  EXPECT_TRUE(Policy::Parse(kDefaultPolicy).ok());
}

// The server's --policy and `berth sim --policy` share one spelling: '+' joins terms, and
// "default" names the server's default policy.
TEST(PolicyTest, PlusJoinsTermsAndDefaultNamesTheDefault) {
  absl::StatusOr<Policy> def = Policy::Parse("default");
  ASSERT_TRUE(def.ok()) << def.status();
  EXPECT_EQ(*def, *Policy::Parse(kDefaultPolicy));
  EXPECT_EQ(Policy::Parse(def->ToString())->ToString(), def->ToString());
  absl::StatusOr<Policy> spaced = Policy::Parse("fgd:1 + binpack:0.001");
  ASSERT_TRUE(spaced.ok()) << spaced.status();
  EXPECT_EQ(spaced->terms[1].weight_milli, 1);
  absl::StatusOr<Policy> comma = Policy::Parse("fgd:1,topology:0.2");
  ASSERT_FALSE(comma.ok());
  EXPECT_EQ(comma.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(comma.status().message().find("\"fgd:1+topology:0.2\""), std::string_view::npos)
      << comma.status().message();
  EXPECT_FALSE(Policy::Parse("fgd+").ok());
  EXPECT_FALSE(Policy::Parse("+fgd").ok());
}

TEST(PolicyTest, RejectsUnknownRankerAndBadWeight) {
  EXPECT_FALSE(Policy::Parse("bestfit").ok());
  EXPECT_FALSE(Policy::Parse("binpack:x").ok());
  EXPECT_FALSE(Policy::Parse("binpack:0.1234").ok());
  EXPECT_FALSE(Policy::Parse("binpack+binpack").ok());
  EXPECT_FALSE(Policy::Parse("").ok());
}

TEST(SchedulerTest, InvalidRequestIsAnError) {
  Cluster c;
  Scheduler s = Make(c, "binpack");
  Request r = WholeGpuRequest("train-7", 1);
  r.gpu.count = -2;
  absl::StatusOr<Decision> d = s.Schedule(r);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "workload \"train-7\": gpu.count must be >= 1, got -2");
}

TEST(CheckerTest, EachCheckerCountsItsHosts) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("t4-0", 2, "T4", 16384)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("t4-1", 2, "T4", 16384)).ok());
  HostSpec cpu_only = GpuHost("cpu-0", 0);
  ASSERT_TRUE(c.AddHost(cpu_only).ok());
  HostSpec small = GpuHost("small", 2);
  small.capacity = Res(1000, 1024);
  ASSERT_TRUE(c.AddHost(small).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("a100", 2)).ok());
  Scheduler s = Make(c, "binpack");
  Decision d = *s.Schedule(WholeGpuRequest("w", 4, {"A100-SXM4-80GB"}));
  ASSERT_FALSE(d.scheduled);
  EXPECT_EQ(Reason(d, "gpu model not allowed"), 2);
  EXPECT_EQ(Reason(d, "no gpus"), 1);
  EXPECT_EQ(Reason(d, "cpu"), 1);
  EXPECT_EQ(Reason(d, "insufficient gpus"), 1);
  EXPECT_EQ(d.reasons.front().reason, "gpu model not allowed");
  EXPECT_NE(d.Explain().find("gpu model not allowed: 2 hosts"), std::string::npos);
}

// A request may name the hosts it may (or may not) go to; the hosts stay one group.
TEST(SchedulerTest, HostNamesLimitWhereARequestGoesWithoutSplittingGroups) {
  Cluster c;
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(c.AddHost(GpuHost("h" + std::to_string(i), 0)).ok());
  }
  EXPECT_EQ(c.num_groups(), 1);
  Scheduler s = Make(c, "spread");
  Request r = CpuRequest("r", 1000, 1024);
  r.only_hosts = {"h5"};
  Decision d = *s.Schedule(r);
  ASSERT_TRUE(d.scheduled);
  EXPECT_EQ(d.plan.placement.host_name, "h5");
  r.only_hosts = {"h3", "h6"};
  r.not_hosts = {"h3"};
  d = *s.Schedule(r);
  ASSERT_TRUE(d.scheduled);
  EXPECT_EQ(d.plan.placement.host_name, "h6");
  // Nowhere to go: every other host counts as turned down by its labels.
  r.only_hosts = {"h2", "gone"};
  r.not_hosts = {"h2"};
  d = *s.Schedule(r);
  ASSERT_FALSE(d.scheduled);
  EXPECT_EQ(Reason(d, "host labels"), 8);
  // A named host that is full says so.
  r.not_hosts.clear();
  r.resources = Res(1 << 20, 1024);
  d = *s.Schedule(r);
  ASSERT_FALSE(d.scheduled);
  EXPECT_EQ(Reason(d, "host labels"), 7);
  EXPECT_EQ(Reason(d, "cpu"), 1);
  EXPECT_EQ(c.num_groups(), 1);
}

TEST(CheckerTest, LabelsMemoryDiskShareAndMig) {
  Cluster c;
  HostSpec h = GpuHost("h", 1, "A100-SXM4-80GB", 81920);
  h.labels = {{"zone", "a"}};
  ASSERT_TRUE(c.AddHost(h).ok());
  Scheduler s = Make(c, "binpack");
  Request r = CpuRequest("r", 1000, 1024);
  r.host_selector = {{"zone", LabelSelector::Op::kIn, {"b", "c"}}};
  EXPECT_EQ(Reason(*s.Schedule(r), "host labels"), 1);
  r.host_selector = {{"zone", LabelSelector::Op::kNotIn, {"b"}},
                     {"zone", LabelSelector::Op::kExists, {}}};
  EXPECT_TRUE(s.Schedule(r)->scheduled);
  Request mem = CpuRequest("m", 1000, 1 << 30);
  EXPECT_EQ(Reason(*s.Schedule(mem), "memory"), 1);
  Request disk = CpuRequest("d", 1000, 10);
  disk.resources.disk = core::DiskMiB(int64_t(1) << 40);
  EXPECT_EQ(Reason(*s.Schedule(disk), "disk"), 1);
  Request gm = WholeGpuRequest("gm", 1);
  gm.gpu.min_memory_mib = 100000;
  EXPECT_EQ(Reason(*s.Schedule(gm), "insufficient gpu memory"), 1);
  ASSERT_TRUE(c.Commit(ShareRequest("x", 800), Placement{0, "h", {{0, 800, 0, "", -1}}}).ok());
  EXPECT_EQ(Reason(*s.Schedule(ShareRequest("y", 300)), "insufficient gpu share"), 1);
  EXPECT_EQ(Reason(*s.Schedule(MigRequest("z", "1g.10gb")), "mig profile not offered"), 1);
}

TEST(SchedulerTest, MigRequestsGetTheSlicesOfCarvedInstances) {
  Cluster c;
  HostSpec h = GpuHost("a100", 1, "A100-SXM4-80GB", 81920, /*mig=*/true);
  h.gpus[0].mig_instances = {{.profile = "3g.40gb", .start_slice = 4, .uuid = "MIG-a"},
                             {.profile = "2g.20gb", .start_slice = 0, .uuid = "MIG-b"},
                             {.profile = "1g.10gb", .start_slice = 2, .uuid = "MIG-c"},
                             {.profile = "1g.10gb", .start_slice = 3, .uuid = "MIG-d"}};
  ASSERT_TRUE(c.AddHost(h).ok());
  Scheduler s = Make(c, "binpack");
  auto first = s.Schedule(MigRequest("m1", "3g.40gb"));
  ASSERT_TRUE(first.ok() && first->scheduled);
  ASSERT_EQ(first->plan.placement.gpus.size(), 1u);
  EXPECT_EQ(first->plan.placement.gpus[0].mig_start_slice, 4);
  ASSERT_TRUE(c.Commit(MigRequest("m1", "3g.40gb"), first->plan.placement).ok());
  // The one 3g.40gb instance is taken; slices 0-3 are free but hold other profiles.
  auto second = s.Schedule(MigRequest("m2", "3g.40gb"));
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->scheduled);
  auto small = s.Schedule(MigRequest("m3", "1g.10gb"));
  ASSERT_TRUE(small.ok() && small->scheduled);
  EXPECT_EQ(small->plan.placement.gpus[0].mig_start_slice, 2);
}

TEST(CheckerTest, UnschedulableHostIsSkipped) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 1)).ok());
  c.SetSchedulable(0, false);
  Scheduler s = Make(c, "binpack");
  EXPECT_EQ(Reason(*s.Schedule(CpuRequest("r", 1, 1)), "host not schedulable"), 1);
}

TEST(RankerTest, BinpackPrefersFullestAndSpreadEmptiest) {
  Cluster c;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.AddHost(GpuHost("h" + std::to_string(i), 8)).ok());
  ASSERT_TRUE(c.Commit(WholeGpuRequest("a", 4),
                       Placement{1, "", {{0, 1000}, {1, 1000}, {2, 1000}, {3, 1000}}})
                  .ok());
  Scheduler bin = Make(c, "binpack");
  EXPECT_EQ(bin.Schedule(WholeGpuRequest("b", 2))->plan.placement.host, 1);
  Scheduler spread = Make(c, "spread");
  EXPECT_EQ(spread.Schedule(WholeGpuRequest("b", 2))->plan.placement.host, 0);
  Scheduler ff = Make(c, "first-fit");
  EXPECT_EQ(ff.Schedule(WholeGpuRequest("b", 2))->plan.placement.host, 0);
  // Whole GPUs are the lowest idle indices.
  Decision d = *bin.Schedule(WholeGpuRequest("b", 2));
  ASSERT_EQ(d.plan.placement.gpus.size(), 2u);
  EXPECT_EQ(d.plan.placement.gpus[0].index, 4);
  EXPECT_EQ(d.plan.placement.gpus[1].index, 5);
}

TEST(RankerTest, GpuPackingSharesTheTightestSharedGpu) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("idle", 2)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("used", 2)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("shared", 2)).ok());
  ASSERT_TRUE(c.Commit(WholeGpuRequest("w", 1), Placement{1, "", {{0, 1000}}}).ok());
  ASSERT_TRUE(c.Commit(ShareRequest("s1", 500), Placement{2, "", {{1, 500}}}).ok());
  Scheduler s = Make(c, "gpu-packing");
  Decision d = *s.Schedule(ShareRequest("x", 400));
  EXPECT_EQ(d.plan.placement.host, 2);
  EXPECT_EQ(d.plan.placement.gpus[0].index, 1);
  // Too big for the shared GPU: a free GPU on a used host beats an idle host.
  d = *s.Schedule(ShareRequest("y", 600));
  EXPECT_EQ(d.plan.placement.host, 1);
}

TEST(RankerTest, DotprodPrefersAlignedFreeVector) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("gpu-free", 8)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("cpu-free", 8)).ok());
  // Host 0 keeps its GPUs but little CPU; host 1 keeps CPU but few GPUs.
  ASSERT_TRUE(c.Commit(CpuRequest("c", 120000, 1000), Placement{0, ""}).ok());
  std::vector<core::GpuAssignment> g;
  for (int i = 0; i < 7; ++i) g.push_back({i, 1000});
  Request seven = WholeGpuRequest("g", 7);
  seven.resources = Res(0, 0);
  ASSERT_TRUE(c.Commit(seven, Placement{1, "", g}).ok());
  Scheduler s = Make(c, "dotprod");
  EXPECT_EQ(s.Schedule(CpuRequest("cpu", 4000, 1000))->plan.placement.host, 1);
  Request gpu = WholeGpuRequest("gpu", 1);
  gpu.resources = Res(0, 0);
  EXPECT_EQ(s.Schedule(gpu)->plan.placement.host, 0);
}

TEST(RankerTest, TopologyKeepsMultiGpuOnOneIsland) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 8)).ok());
  // Island 0 = GPUs 0-3, island 1 = 4-7. Take GPUs 0 and 4 so both islands have three left.
  ASSERT_TRUE(c.Commit(WholeGpuRequest("a", 1), Placement{0, "", {{0, 1000}}}).ok());
  ASSERT_TRUE(c.Commit(WholeGpuRequest("b", 1), Placement{0, "", {{4, 1000}}}).ok());
  Scheduler plain = Make(c, "binpack");
  Decision d = *plain.Schedule(WholeGpuRequest("x", 3));
  EXPECT_EQ(d.plan.placement.gpus[0].index, 1);
  EXPECT_EQ(d.plan.placement.gpus[2].index, 3);
  Decision t = *Make(c, "binpack:1+topology:1").Schedule(WholeGpuRequest("x", 3));
  EXPECT_EQ(t.plan.placement.gpus[0].index, 1);
  EXPECT_EQ(t.plan.placement.gpus[2].index, 3);
  // Four GPUs cannot sit on one island now; with topology the plan still succeeds.
  Decision four = *Make(c, "topology").Schedule(WholeGpuRequest("y", 4));
  EXPECT_TRUE(four.scheduled);
  // Prefers the host whose island holds the request.
  Cluster c2;
  ASSERT_TRUE(c2.AddHost(GpuHost("split", 8)).ok());
  ASSERT_TRUE(c2.AddHost(GpuHost("whole", 8)).ok());
  ASSERT_TRUE(c2.Commit(WholeGpuRequest("a", 2), Placement{0, "", {{0, 1000}, {4, 1000}}}).ok());
  ASSERT_TRUE(c2.Commit(WholeGpuRequest("b", 2), Placement{1, "", {{0, 1000}, {1, 1000}}}).ok());
  EXPECT_EQ(Make(c2, "topology").Schedule(WholeGpuRequest("z", 4))->plan.placement.host, 1);
}

TEST(RankerTest, FgdAvoidsBreakingIdleGpus) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h0", 2)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("h1", 2)).ok());
  ASSERT_TRUE(c.Commit(ShareRequest("s", 500), Placement{1, "", {{1, 500}}}).ok());
  WorkloadMix mix;
  mix.Add(Shape::Of(WholeGpuRequest("w", 1)), 1);
  mix.Add(Shape::Of(ShareRequest("s", 500)), 1);
  Scheduler s = Make(c, "fgd", &mix);
  Decision d = *s.Schedule(ShareRequest("x", 500));
  // Filling h1's half-used GPU leaves no fragment; any other choice breaks a whole GPU.
  EXPECT_EQ(d.plan.placement.host, 1);
  EXPECT_EQ(d.plan.placement.gpus[0].index, 1);
  Decision small = *s.Schedule(ShareRequest("y", 200));
  EXPECT_EQ(small.plan.placement.host, 1);
  EXPECT_EQ(small.plan.placement.gpus[0].index, 1);
}

TEST(RankerTest, MigPlacementUsesFreeSlots) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("m", 2, "H100-SXM5-80GB", 81920, true)).ok());
  Scheduler s = Make(c, "binpack");
  for (int i = 0; i < 2; ++i) {
    Request r = MigRequest("r" + std::to_string(i), "3g.40gb");
    Decision d = *s.Place(r);
    ASSERT_TRUE(d.scheduled);
    EXPECT_EQ(d.plan.placement.gpus[0].index, 0);
    EXPECT_EQ(d.plan.placement.gpus[0].mig_start_slice, i * 4);
  }
  Decision d = *s.Place(MigRequest("r2", "7g.80gb"));
  EXPECT_EQ(d.plan.placement.gpus[0].index, 1);
  EXPECT_EQ(Reason(*s.Schedule(MigRequest("r3", "1g.10gb")), "no free mig slot"), 1);
}

TEST(ConstraintTest, AffinityAntiAffinityAndSpread) {
  Cluster c;
  for (int i = 0; i < 4; ++i) {
    HostSpec h = GpuHost("h" + std::to_string(i), 8);
    h.labels["rack"] = i < 2 ? "r1" : "r2";
    ASSERT_TRUE(c.AddHost(h).ok());
  }
  Scheduler s = Make(c, "binpack");
  Request db = CpuRequest("db", 1000, 1000);
  db.labels = {{"app", "db"}};
  ASSERT_TRUE(c.Commit(db, Placement{2, ""}).ok());
  Request near = CpuRequest("near", 1000, 1000);
  near.affinity = {{"app", "db", false}};
  EXPECT_EQ(s.Schedule(near)->plan.placement.host, 2);
  Request far = CpuRequest("far", 1000, 1000);
  far.affinity = {{"app", "db", true}};
  Decision fd = *s.Schedule(far);
  EXPECT_NE(fd.plan.placement.host, 2);
  Request lonely = CpuRequest("lonely", 1000, 1000);
  lonely.affinity = {{"app", "cache", false}};
  EXPECT_EQ(Reason(*s.Schedule(lonely), "affinity"), 4);
  // Spread across racks: members of one group alternate racks.
  std::map<std::string, int> per_rack;
  for (int i = 0; i < 4; ++i) {
    Request r = CpuRequest("w" + std::to_string(i), 1000, 1000);
    r.spread_key = "rack";
    r.spread_group = "web";
    Decision d = *s.Place(r);
    ASSERT_TRUE(d.scheduled);
    per_rack[c.host(d.plan.placement.host).labels.at("rack")]++;
  }
  EXPECT_EQ(per_rack["r1"], 2);
  EXPECT_EQ(per_rack["r2"], 2);
}

TEST(SpreadTest, SpreadByHostNeedsNoLabelAndFillsEveryHostBeforeDoubling) {
  Cluster c;
  for (int i = 0; i < 3; ++i) {
    HostSpec h;
    h.name = "h" + std::to_string(i);
    h.capacity = Res(16000, 16384);
    ASSERT_TRUE(c.AddHost(h).ok());
  }
  // binpack alone would stack every replica on one host.
  Scheduler s = Make(c, "binpack");
  std::map<std::string, int> per_host;
  for (int i = 0; i < 6; ++i) {
    Request r = CpuRequest("web-" + std::to_string(i), 1000, 1000);
    r.spread_key = std::string(kSpreadByHost);
    r.spread_group = "service/web";
    Decision d = *s.Place(r);
    ASSERT_TRUE(d.scheduled);
    per_host[d.plan.placement.host_name]++;
    // After each placement no host holds two more than another.
    int lo = 100, hi = 0;
    for (int h = 0; h < 3; ++h) {
      int n = per_host["h" + std::to_string(h)];
      lo = std::min(lo, n);
      hi = std::max(hi, n);
    }
    EXPECT_LE(hi - lo, 1) << "after " << i + 1 << " replicas";
  }
  EXPECT_EQ(per_host["h0"], 2);
  EXPECT_EQ(per_host["h1"], 2);
  EXPECT_EQ(per_host["h2"], 2);
  // Another group is counted apart: its first member goes where binpack says.
  Request other = CpuRequest("other", 1000, 1000);
  EXPECT_TRUE(s.Schedule(other)->scheduled);
}

// Three equal CPU hosts h0..h2; h2 holds the warm state "web.r1".
class WarmStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      HostSpec h;
      h.name = "h" + std::to_string(i);
      h.capacity = Res(8000, 8192);
      h.labels = {{"zone", i == 2 ? "b" : "a"}};
      ASSERT_TRUE(c_.AddHost(h).ok());
    }
  }
  Scheduler Make(std::string_view policy) {
    SchedulerOptions o;
    o.policy = *Policy::Parse(policy);
    o.holds_warm_state = [](const std::string& host, const std::string& key) {
      return host == "h2" && key == "web.r1";
    };
    return Scheduler(&c_, o);
  }
  static Request Replica(std::string id, int64_t milli_cpu = 1000) {
    Request r = CpuRequest(std::move(id), milli_cpu, 1024);
    r.spread_key = std::string(kSpreadByHost);
    r.spread_group = "service/web";
    r.warm_state = "web.r1";
    return r;
  }
  std::string Host(Scheduler& s, const Request& r) {
    absl::StatusOr<Decision> d = s.Schedule(r);
    if (!d.ok() || !d->scheduled) return "";
    return d->plan.placement.host_name;
  }
  Cluster c_;
};

TEST_F(WarmStateTest, TheHostHoldingTheStateWinsOverEquallyGoodOnes) {
  for (std::string_view policy : {"first-fit", "binpack", "spread", "default"}) {
    Scheduler s = Make(policy);
    EXPECT_EQ(Host(s, Replica("web-0")), "h2") << policy;
    // Without a spread key too (the group pass then looks at each host).
    Request alone = Replica("web-0");
    alone.spread_key.clear();
    EXPECT_EQ(Host(s, alone), "h2") << policy;
    // Another key, or none, goes where the policy says.
    Request other = Replica("web-0");
    other.warm_state = "web.r2";
    EXPECT_NE(Host(s, other), "h2") << policy;
    other.warm_state.clear();
    EXPECT_NE(Host(s, other), "h2") << policy;
  }
  // A scheduler told of no state has no preference.
  Scheduler plain = berth::sched::Make(c_, "first-fit");
  EXPECT_EQ(Host(plain, Replica("web-0")), "h0");
}

TEST_F(WarmStateTest, ItOutweighsThePolicysScoresButNotSpreading) {
  // binpack prefers the fuller h0 for anything else.
  ASSERT_TRUE(c_.Commit(CpuRequest("filler", 4000, 4096), Placement{0, "h0", {}}).ok());
  Scheduler s = Make("binpack");
  Request other = CpuRequest("x", 1000, 1024);
  EXPECT_EQ(Host(s, other), "h0");
  EXPECT_EQ(Host(s, Replica("web-0")), "h2");
  // Once h2 runs a replica of the service, the next goes to a host that runs none, where it
  // boots; once every host runs one, h2 wins again.
  std::vector<std::string> placed;
  for (int i = 0; i < 4; ++i) {
    Request r = Replica("web-" + std::to_string(i));
    Decision d = *s.Place(r);
    ASSERT_TRUE(d.scheduled);
    placed.push_back(d.plan.placement.host_name);
  }
  EXPECT_EQ(placed, (std::vector<std::string>{"h2", "h0", "h1", "h2"}));
}

TEST_F(WarmStateTest, AHostHoldingTheStateWhereTheRequestDoesNotFitIsNotChosen) {
  Scheduler s = Make("binpack");
  // Too big for what h2 has left.
  ASSERT_TRUE(c_.Commit(CpuRequest("big", 6000, 1024), Placement{2, "h2", {}}).ok());
  EXPECT_EQ(Host(s, Replica("web-0", 4000)), "h0");
  // A constraint that rules h2 out.
  Request r = Replica("web-1");
  r.host_selector = {LabelSelector{.key = "zone", .values = {"a"}}};
  EXPECT_EQ(Host(s, r), "h0");
  // Nowhere at all: unschedulable, with the reasons of every host.
  absl::StatusOr<Decision> none = s.Schedule(Replica("web-2", 9000));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->scheduled);
  EXPECT_EQ(Reason(*none, "cpu"), 3);
}

TEST(QuotaTest, OverQuotaIsUnschedulableWithReasonQuota) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 8)).ok());
  Quota q;
  q.gpu_milli = 2000;
  c.SetQuota("team", q);
  Scheduler s = Make(c, "binpack");
  Request a = WholeGpuRequest("a", 2);
  a.tenant = "team";
  ASSERT_TRUE(s.Place(a)->scheduled);
  EXPECT_EQ(c.Usage("team").gpu_milli, 2000);
  Request b = WholeGpuRequest("b", 1);
  b.tenant = "team";
  Decision d = *s.Schedule(b);
  EXPECT_FALSE(d.scheduled);
  EXPECT_EQ(Reason(d, "quota"), 1);
  ASSERT_TRUE(c.Release("a").ok());
  EXPECT_TRUE(s.Schedule(b)->scheduled);
  EXPECT_EQ(c.Tenants(), std::vector<std::string>{"team"});
}

// The scheduler remembers, per group of identical hosts, which request shapes it turned down.
// Requests asking the same resources of different hosts (host_selector) are different shapes:
// a group turned down for one is still searched for the other, under every search order.
TEST(SchedulerTest, AGroupTurnedDownForOneSelectorIsStillSearchedForAnother) {
  for (std::string_view policy : {"first-fit", "binpack", "fgd", "spread"}) {
    SCOPED_TRACE(policy);
    Cluster c;
    HostSpec a = GpuHost("a", 0);
    a.labels = {{"zone", "a"}};
    HostSpec b = GpuHost("b", 0);
    b.labels = {{"zone", "b"}};
    ASSERT_TRUE(c.AddHost(a).ok());
    ASSERT_TRUE(c.AddHost(b).ok());
    Scheduler s = Make(c, policy);
    auto in_zone = [](std::string id, std::string zone) {
      Request r = CpuRequest(std::move(id), 1000, 1024);
      r.host_selector.push_back({"zone", LabelSelector::Op::kEquals, {std::move(zone)}});
      return r;
    };
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<Decision> to_b = s.Place(in_zone("b" + std::to_string(i), "b"));
      ASSERT_TRUE(to_b.ok() && to_b->scheduled);
      EXPECT_EQ(to_b->plan.placement.host_name, "b");
      absl::StatusOr<Decision> to_a = s.Place(in_zone("a" + std::to_string(i), "a"));
      ASSERT_TRUE(to_a.ok() && to_a->scheduled) << to_a->Explain();
      EXPECT_EQ(to_a->plan.placement.host_name, "a");
    }
  }
}

TEST(QuotaTest, PerModelQuotaSteersToOtherModels) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("a100", 8)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("h100", 8, "H100", 81920)).ok());
  Quota q;
  q.gpu_milli_by_model["A100-SXM4-80GB"] = 0;
  c.SetQuota("team", q);
  Scheduler s = Make(c, "first-fit");
  Request r = WholeGpuRequest("r", 1);
  r.tenant = "team";
  EXPECT_EQ(s.Schedule(r)->plan.placement.host, 1);
  r.gpu.models = {"A100-SXM4-80GB"};
  Decision d = *s.Schedule(r);
  EXPECT_EQ(Reason(d, "quota"), 1);
  EXPECT_EQ(Reason(d, "gpu model not allowed"), 1);
}

TEST(GangTest, AllOrNothingAndPacked) {
  Cluster c;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.AddHost(GpuHost("h" + std::to_string(i), 8)).ok());
  Scheduler s = Make(c, "spread");
  std::vector<Request> gang;
  for (int i = 0; i < 4; ++i) {
    Request r = WholeGpuRequest("g" + std::to_string(i), 2);
    r.gang_id = "job";
    r.gang_size = 4;
    gang.push_back(r);
  }
  GangDecision gd = *s.ScheduleGang(gang);
  ASSERT_TRUE(gd.scheduled);
  ASSERT_EQ(gd.plans.size(), 4u);
  for (const Plan& p : gd.plans) EXPECT_EQ(p.placement.host, gd.plans[0].placement.host);
  EXPECT_EQ(c.num_allocations(), 0);  // planning leaves the cluster as it was
  std::vector<Request> too_big;
  for (int i = 0; i < 4; ++i) too_big.push_back(WholeGpuRequest("b" + std::to_string(i), 8));
  GangDecision no = *s.ScheduleGang(too_big);
  EXPECT_FALSE(no.scheduled);
  EXPECT_TRUE(no.plans.empty());
  EXPECT_EQ(no.failed_member, "b3");
  EXPECT_EQ(c.num_allocations(), 0);
  EXPECT_EQ(c.Totals().idle_gpus, 24);
}

TEST(GangTest, SpreadAcrossLabel) {
  Cluster c;
  for (int i = 0; i < 4; ++i) {
    HostSpec h = GpuHost("h" + std::to_string(i), 8);
    h.labels["rack"] = "r" + std::to_string(i % 2);
    ASSERT_TRUE(c.AddHost(h).ok());
  }
  Scheduler s = Make(c, "binpack");
  std::vector<Request> gang;
  for (int i = 0; i < 2; ++i) {
    Request r = WholeGpuRequest("g" + std::to_string(i), 1);
    r.gang_id = "job";
    r.spread_key = "rack";
    gang.push_back(r);
  }
  GangDecision gd = *s.ScheduleGang(gang);
  ASSERT_TRUE(gd.scheduled);
  EXPECT_NE(c.host(gd.plans[0].placement.host).labels.at("rack"),
            c.host(gd.plans[1].placement.host).labels.at("rack"));
}

TEST(PreemptionTest, EvictsFewestLowestPriorityVictims) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h0", 4)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("h1", 4)).ok());
  auto place = [&](std::string id, int host, std::vector<int> gpus, int prio, bool preemptible) {
    Request r = WholeGpuRequest(id, int(gpus.size()));
    r.priority = prio;
    r.preemptible = preemptible;
    Placement p{host, ""};
    for (int g : gpus) p.gpus.push_back({g, 1000});
    ASSERT_TRUE(c.Commit(r, p).ok());
  };
  place("h0-low-a", 0, {0, 1}, 1, true);
  place("h0-low-b", 0, {2, 3}, 1, true);
  place("h1-low", 1, {0, 1}, 1, true);
  place("h1-mid", 1, {2, 3}, 5, true);
  Scheduler s = Make(c, "binpack");
  Request r = WholeGpuRequest("hi", 2);
  r.priority = 10;
  EXPECT_FALSE(s.Schedule(r)->scheduled);
  Decision d = *s.ScheduleWithPreemption(r);
  ASSERT_TRUE(d.scheduled);
  ASSERT_EQ(d.plan.victims.size(), 1u);
  EXPECT_EQ(c.FindAllocation(d.plan.victims[0])->request.priority, 1);
  for (const std::string& v : d.plan.victims) ASSERT_TRUE(c.Release(v).ok());
  EXPECT_TRUE(c.Commit(r, d.plan.placement).ok());
  // Four GPUs: h0 now holds "hi" (priority 10), so only h1 can make room, by evicting both.
  Request big = WholeGpuRequest("big", 4);
  big.priority = 10;
  Decision b = *s.ScheduleWithPreemption(big);
  ASSERT_TRUE(b.scheduled);
  EXPECT_EQ(b.plan.placement.host, 1);
  std::vector<std::string> victims = b.plan.victims;
  std::sort(victims.begin(), victims.end());
  EXPECT_EQ(victims, (std::vector<std::string>{"h1-low", "h1-mid"}));
}

TEST(PreemptionTest, AmongEqualVictimsTheOneThatLosesLeastWorkGoes) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h0", 2)).ok());
  ASSERT_TRUE(c.AddHost(GpuHost("h1", 2)).ok());
  for (const auto& [id, host] : {std::pair<std::string, int>{"stale", 0}, {"fresh", 1}}) {
    Request r = WholeGpuRequest(id, 2);
    r.priority = 1;
    ASSERT_TRUE(c.Commit(r, Placement{host, "", {{0, 1000}, {1, 1000}}}).ok());
  }
  Request hi = WholeGpuRequest("hi", 2);
  hi.priority = 10;
  // Without a measure of lost work the tie goes to the first host.
  Decision plain = *Make(c, "binpack").ScheduleWithPreemption(hi);
  ASSERT_TRUE(plain.scheduled);
  EXPECT_EQ(plain.plan.victims, std::vector<std::string>{"stale"});
  // "fresh" checkpointed 30 s ago, "stale" an hour ago: "fresh" goes, and loses 30 s.
  SchedulerOptions o;
  o.policy = *Policy::Parse("binpack");
  o.lost_work = [](const std::string& id) -> int64_t { return id == "fresh" ? 30 : 3600; };
  Decision d = *Scheduler(&c, o).ScheduleWithPreemption(hi);
  ASSERT_TRUE(d.scheduled);
  EXPECT_EQ(d.plan.victims, std::vector<std::string>{"fresh"});
  EXPECT_EQ(d.plan.placement.host, 1);
  // Fewer victims still come first: one that lost much beats two that lose little.
  Cluster c2;
  ASSERT_TRUE(c2.AddHost(GpuHost("h0", 2)).ok());
  ASSERT_TRUE(c2.AddHost(GpuHost("h1", 2)).ok());
  Request big = WholeGpuRequest("big", 2);
  big.priority = 1;
  ASSERT_TRUE(c2.Commit(big, Placement{0, "", {{0, 1000}, {1, 1000}}}).ok());
  for (int g = 0; g < 2; ++g) {
    Request small = WholeGpuRequest("small-" + std::to_string(g), 1);
    small.priority = 1;
    ASSERT_TRUE(c2.Commit(small, Placement{1, "", {{g, 1000}}}).ok());
  }
  o.lost_work = [](const std::string& id) -> int64_t { return id == "big" ? 3600 : 1; };
  Decision fewest = *Scheduler(&c2, o).ScheduleWithPreemption(hi);
  ASSERT_TRUE(fewest.scheduled);
  EXPECT_EQ(fewest.plan.victims, std::vector<std::string>{"big"});
}

TEST(PreemptionTest, NeverEvictsEqualHigherOrOptedOut) {
  Cluster c;
  ASSERT_TRUE(c.AddHost(GpuHost("h", 2)).ok());
  Request same = WholeGpuRequest("same", 1);
  same.priority = 5;
  ASSERT_TRUE(c.Commit(same, Placement{0, "", {{0, 1000}}}).ok());
  Request pinned = WholeGpuRequest("pinned", 1);
  pinned.priority = 0;
  pinned.preemptible = false;
  ASSERT_TRUE(c.Commit(pinned, Placement{0, "", {{1, 1000}}}).ok());
  Scheduler s = Make(c, "binpack");
  Request r = WholeGpuRequest("r", 1);
  r.priority = 5;
  EXPECT_FALSE(s.ScheduleWithPreemption(r)->scheduled);
  r.priority = 6;
  Decision d = *s.ScheduleWithPreemption(r);
  ASSERT_TRUE(d.scheduled);
  EXPECT_EQ(d.plan.victims, std::vector<std::string>{"same"});
}

}  // namespace
}  // namespace berth::sched
