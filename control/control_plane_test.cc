#include "control/control_plane.h"

#include <map>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "control/cluster_model.h"
#include "control/service_controller.h"
#include "core/disk.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::WorkloadState;

core::WorkloadSpec Spec(const std::string& name, const char* cpu = "500m",
                        const char* memory = "64Mi") {
  core::Json j = {{"name", name},
                  {"kind", "process"},
                  {"command", {"/bin/true"}},
                  {"resources", {{"cpu", cpu}, {"memory", memory}}}};
  return *core::DecodeWorkloadSpec(j);
}

core::HostInventory Inventory(const char* cpu = "2", const char* memory = "1Gi") {
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu(cpu);
  inv.capacity.memory = *core::ParseMemory(memory);
  inv.capacity.disk = core::DiskMiB(10240);
  inv.drivers = {"process"};
  return inv;
}

class ControlPlaneTest : public ::testing::Test {
 protected:
  ControlPlaneTest() : store_(state::StoreOptions{.clock = &clock_}), cp_(&store_, Options()) {}
  ControlPlaneOptions Options() {
    ControlPlaneOptions o;
    o.clock = &clock_;
    o.host_ttl = absl::Seconds(10);
    o.policy = "binpack";
    return o;
  }
  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
};

TEST_F(ControlPlaneTest, CreateRefusesDuplicatesAndChangesNothing) {
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a")).ok());
  auto rev = *store_.Revision();
  auto again = cp_.CreateWorkload(Spec("a"));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(*store_.Revision(), rev);
}

TEST_F(ControlPlaneTest, AHostWhoseVmsFellBackToTcgGetsAnEventSayingWhy) {
  core::HostInventory inv = Inventory();
  inv.fingerprint = {{"vm_accel", "tcg"},
                     {"vm_accel_fallback", "true"},
                     {"vm_accel_reason", "kvm probe failed: failed to set MSR 0x10a; using tcg"}};
  ASSERT_TRUE(cp_.RegisterHost("h1", inv).ok());
  ASSERT_TRUE(cp_.RegisterHost("h2", Inventory()).ok());  // KVM works or was not asked for
  std::vector<std::string> fallbacks;
  auto events = cp_.ListEvents(0, 100);
  ASSERT_TRUE(events.ok()) << events.status();
  for (const auto& e : *events) {
    if (e.type == "vm-accel-fallback") fallbacks.push_back(e.object + ": " + e.message);
  }
  ASSERT_EQ(fallbacks.size(), 1u);
  EXPECT_EQ(fallbacks[0], "h1: VMs use tcg: kvm probe failed: failed to set MSR 0x10a; using tcg");
  auto host = cp_.GetHost("h1");
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->inventory.fingerprint.at("vm_accel"), "tcg");
}

TEST_F(ControlPlaneTest, RootProcessWorkloadsOnlyWhereAllowed) {
  auto as_user = [](const std::string& name, const char* user) {
    core::WorkloadSpec s = Spec(name);
    s.user = user;
    return s;
  };
  auto rev = *store_.Revision();
  for (const char* root : {"root", "0", "0:0", "1000:0"}) {
    auto refused = cp_.CreateWorkload(as_user("r", root));
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied) << root;
    EXPECT_NE(refused.status().message().find("workload \"r\": user"), std::string::npos)
        << refused.status();
  }
  EXPECT_EQ(*store_.Revision(), rev);
  EXPECT_TRUE(cp_.CreateWorkload(as_user("plain", "1000")).ok());
  EXPECT_TRUE(cp_.CreateWorkload(as_user("named", "alice")).ok());
  EXPECT_TRUE(cp_.CreateWorkload(Spec("default")).ok());

  ControlPlaneOptions allow = Options();
  allow.allow_root_workloads = true;
  ControlPlane permissive(&store_, allow);
  auto created = permissive.CreateWorkload(as_user("r", "root"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(permissive.GetWorkload("r")->spec.user, "root");
}

TEST_F(ControlPlaneTest, PlacesPendingWorkloadsWithinCapacity) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("1", "1Gi")).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cp_.CreateWorkload(Spec("w" + std::to_string(i))).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 2);  // 1 CPU holds two 500m workloads
  int scheduled = 0;
  std::string pending;
  const std::vector<core::Workload> ws = *cp_.ListWorkloads();
  for (const auto& w : ws) {
    if (w.status.state == WorkloadState::kScheduled) {
      ++scheduled;
      EXPECT_EQ(w.status.host, "h1");
      EXPECT_EQ(w.status.generation, 1);
    } else {
      pending = w.spec.name;
      EXPECT_NE(w.status.explanation.find("cpu"), std::string::npos) << w.status.explanation;
    }
  }
  EXPECT_EQ(scheduled, 2);
  EXPECT_EQ(cp_.Assignments("h1")->size(), 2u);
  // A second pass changes nothing: the host is full and the explanation is already recorded.
  auto rev = *store_.Revision();
  EXPECT_EQ(*cp_.ScheduleOnce(), 0);
  EXPECT_EQ(*store_.Revision(), rev);
  // Stopping one frees room for the pending one.
  auto first = cp_.Assignments("h1")->front();
  ASSERT_TRUE(cp_.Act(first.spec.name, Action::kStop).ok());
  StatusReport stopped{.generation = 1, .state = WorkloadState::kStopped, .reason = "stopped"};
  ASSERT_TRUE(cp_.ReportStatus("h1", first.spec.name, stopped).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload(pending)->status.state, WorkloadState::kScheduled);
}

TEST_F(ControlPlaneTest, AssignmentsSinceARevisionAreWhatChangedAndWhatLeft) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("4", "4Gi")).ok());
  ASSERT_TRUE(cp_.RegisterHost("h2", Inventory("4", "4Gi")).ok());
  ASSERT_TRUE(cp_.CordonHost("h2", true).ok());
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(cp_.CreateWorkload(Spec(n)).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 3);
  // Since 0: the whole set.
  auto all = cp_.AssignmentsSince("h1", 0);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->full);
  EXPECT_EQ(all->items.size(), 3u);
  const int64_t r1 = all->revision;
  ASSERT_GT(r1, 0);
  // Nothing changed: an empty change.
  auto none = cp_.AssignmentsSince("h1", r1);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->full);
  EXPECT_TRUE(none->items.empty());
  EXPECT_TRUE(none->removed.empty());
  // a is asked to stop (changed, still here); b ends (left); c is deleted (left).
  ASSERT_TRUE(cp_.Act("a", Action::kStop).ok());
  StatusReport failed{.generation = 1, .state = WorkloadState::kFailed, .reason = "exit 1"};
  ASSERT_TRUE(cp_.ReportStatus("h1", "b", failed).ok());
  ASSERT_TRUE(cp_.DeleteWorkload("c").ok());
  // A new one placed here since.
  ASSERT_TRUE(cp_.CreateWorkload(Spec("d")).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
  auto changes = cp_.AssignmentsSince("h1", r1);
  ASSERT_TRUE(changes.ok()) << changes.status();
  EXPECT_FALSE(changes->full);
  std::vector<std::string> items;
  for (const auto& w : changes->items) items.push_back(w.spec.name);
  const std::vector<std::string> whole = [&] {
    std::vector<std::string> out;
    for (const auto& w : *cp_.Assignments("h1")) out.push_back(w.spec.name);
    return out;
  }();
  // c may linger as live until its stop is reported: then it is an item, not removed.
  if (std::find(whole.begin(), whole.end(), "c") == whole.end()) {
    EXPECT_THAT(items, ::testing::ElementsAre("a", "d"));
    EXPECT_THAT(changes->removed, ::testing::ElementsAre("b", "c"));
  } else {
    EXPECT_THAT(items, ::testing::ElementsAre("a", "c", "d"));
    EXPECT_THAT(changes->removed, ::testing::ElementsAre("b"));
  }
  // Other hosts see nothing of it; a revision from before the model's load, or beyond what it
  // covers, gets the whole set.
  auto h2 = cp_.AssignmentsSince("h2", r1);
  ASSERT_TRUE(h2.ok());
  EXPECT_FALSE(h2->full);
  EXPECT_TRUE(h2->items.empty() && h2->removed.empty());
  auto ahead = cp_.AssignmentsSince("h1", changes->revision + 1000);
  ASSERT_TRUE(ahead.ok());
  EXPECT_TRUE(ahead->full);
  EXPECT_EQ(ahead->items.size(), whole.size());
  ControlPlane fresh(&store_, Options());
  auto reloaded = fresh.AssignmentsSince("h1", r1);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_TRUE(reloaded->full);
  EXPECT_EQ(reloaded->items.size(), whole.size());
}

TEST_F(ControlPlaneTest, AssignmentsSinceOlderThanTheDeparturesKeptAreTheWholeSet) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("64", "64Gi")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("keep")).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
  const int64_t r1 = cp_.AssignmentsSince("h1", 0)->revision;
  // More departures than the model keeps per host.
  const int n = static_cast<int>(ClusterModel::kMaxDepartures) + 1;
  for (int i = 0; i < n; ++i) {
    const std::string name = "t" + std::to_string(i);
    ASSERT_TRUE(cp_.CreateWorkload(Spec(name)).ok());
    ASSERT_EQ(*cp_.ScheduleOnce(), 1);
    StatusReport done{.generation = 1, .state = WorkloadState::kStopped, .reason = "exit 0"};
    ASSERT_TRUE(cp_.ReportStatus("h1", name, done).ok());
  }
  auto old = cp_.AssignmentsSince("h1", r1);
  ASSERT_TRUE(old.ok());
  EXPECT_TRUE(old->full);
  ASSERT_EQ(old->items.size(), 1u);
  EXPECT_EQ(old->items[0].spec.name, "keep");
  // A recent revision still gets a change.
  auto recent = cp_.AssignmentsSince("h1", old->revision);
  ASSERT_TRUE(recent.ok());
  EXPECT_FALSE(recent->full);
}

// A host's own name reaches the scheduler as the request's host names, not as a label: hosts
// alike in all else stay one group (a label per host made each its own, and every placement
// scored every host apart).
TEST(SchedulerHostSpecTest, HostsAlikeStayOneGroupAndNameConstraintsBecomeHostNames) {
  sched::Cluster cluster;
  for (const char* name : {"a", "b", "c"}) {
    core::Host h;
    h.name = name;
    h.inventory = Inventory();
    h.inventory.labels = {{"zone", "z1"}, {std::string(core::kHostNameLabel), "forged"}};
    ASSERT_TRUE(cluster.AddHost(SchedulerHostSpec(h)).ok());
  }
  EXPECT_EQ(cluster.num_groups(), 1);
  core::Workload w;
  w.spec.name = "pinned";
  w.spec.constraints = {
      {.label = std::string(core::kHostNameLabel),
       .op = core::LabelConstraint::Op::kIn,
       .values = {"a", "b"}},
      {.label = std::string(core::kHostNameLabel),
       .op = core::LabelConstraint::Op::kEquals,
       .values = {"b"}},
      {.label = std::string(core::kHostNameLabel),
       .op = core::LabelConstraint::Op::kNotIn,
       .values = {"c"}},
      {.label = "zone", .op = core::LabelConstraint::Op::kEquals, .values = {"z1"}}};
  sched::Request r = WorkloadRequest(w);
  EXPECT_EQ(r.only_hosts, std::vector<std::string>{"b"});
  EXPECT_EQ(r.not_hosts, std::vector<std::string>{"c"});
  ASSERT_EQ(r.host_selector.size(), 1u);
  EXPECT_EQ(r.host_selector[0].key, "zone");
}

TEST_F(ControlPlaneTest, DefaultPolicyPlacesAndABadPolicyPlacesNothing) {
  ControlPlaneOptions o = Options();
  o.policy = ControlPlaneOptions{}.policy;
  EXPECT_EQ(o.policy, sched::kDefaultPolicy);
  ControlPlane fgd(&store_, o);
  ASSERT_TRUE(fgd.RegisterHost("h1", Inventory("1", "1Gi")).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(fgd.CreateWorkload(Spec("w" + std::to_string(i))).ok());
  EXPECT_EQ(*fgd.ScheduleOnce(), 2);

  o.policy = "nosuch:1";
  ControlPlane bad(&store_, o);
  ASSERT_TRUE(bad.CreateWorkload(Spec("x")).ok());
  const int64_t rev = *store_.Revision();
  EXPECT_EQ(bad.ScheduleOnce().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*store_.Revision(), rev);
}

TEST_F(ControlPlaneTest, ConcurrentPassesNeverOverAllocate) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("2", "1Gi")).ok());
  ASSERT_TRUE(cp_.RegisterHost("h2", Inventory("2", "1Gi")).ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(cp_.CreateWorkload(Spec("w" + std::to_string(i))).ok());
  ControlPlane other(&store_, Options());
  std::thread t1([&] {
    for (int i = 0; i < 10; ++i) (void)cp_.ScheduleOnce();
  });
  std::thread t2([&] {
    for (int i = 0; i < 10; ++i) (void)other.ScheduleOnce();
  });
  t1.join();
  t2.join();
  std::map<std::string, int64_t> cpu;
  const std::vector<core::Workload> ws = *cp_.ListWorkloads();
  for (const auto& w : ws) {
    if (!w.status.host.empty()) cpu[w.status.host] += w.spec.resources.cpu.value();
  }
  EXPECT_EQ(cpu["h1"], 2000);
  EXPECT_EQ(cpu["h2"], 2000);
}

TEST_F(ControlPlaneTest, LifecycleReportsAndStaleGenerations) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  StatusReport running{.generation = 1, .state = WorkloadState::kRunning};
  ASSERT_TRUE(cp_.ReportStatus("h1", "a", running).ok());
  EXPECT_EQ(cp_.GetWorkload("a")->status.state, WorkloadState::kRunning);
  StatusReport stale{.generation = 7, .state = WorkloadState::kFailed};
  EXPECT_EQ(cp_.ReportStatus("h1", "a", stale).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cp_.ReportStatus("h2", "a", running).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(cp_.Act("a", Action::kPause).ok());
  EXPECT_EQ(cp_.GetWorkload("a")->status.desired, core::DesiredState::kPaused);
  ASSERT_TRUE(cp_.Act("a", Action::kResume).ok());
  EXPECT_EQ(cp_.GetWorkload("a")->status.desired, core::DesiredState::kRunning);
  StatusReport exited{.generation = 1, .state = WorkloadState::kFailed, .exit_code = 3};
  ASSERT_TRUE(cp_.ReportStatus("h1", "a", exited).ok());
  auto w = *cp_.GetWorkload("a");
  EXPECT_EQ(w.status.state, WorkloadState::kFailed);
  EXPECT_EQ(*w.status.exit_code, 3);
  EXPECT_TRUE(cp_.Assignments("h1")->empty());
  // Start again: back to pending, then placed with a new generation.
  ASSERT_TRUE(cp_.Act("a", Action::kStart).ok());
  EXPECT_EQ(cp_.GetWorkload("a")->status.state, WorkloadState::kPending);
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload("a")->status.generation, 2);
}

TEST_F(ControlPlaneTest, DeleteWaitsForTheAgentWhenRunning) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a")).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("b", "64")).ok());  // never fits
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  bool deleted = false;
  ASSERT_TRUE(cp_.DeleteWorkload("b", &deleted).ok());
  EXPECT_TRUE(deleted);
  EXPECT_EQ(cp_.GetWorkload("b").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(cp_.DeleteWorkload("a", &deleted).ok());
  EXPECT_FALSE(deleted);
  EXPECT_EQ(cp_.GetWorkload("a")->status.desired, core::DesiredState::kDeleted);
  StatusReport stopped{.generation = 1, .state = WorkloadState::kStopped};
  ASSERT_TRUE(cp_.ReportStatus("h1", "a", stopped).ok());
  EXPECT_EQ(cp_.GetWorkload("a").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ControlPlaneTest, HostWithoutHeartbeatsGoesDownAndFailsItsWorkloads) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(cp_.Heartbeat("h1").ok());
  clock_.Advance(absl::Seconds(9));
  EXPECT_EQ(*cp_.CheckHostsOnce(), 0);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(*cp_.CheckHostsOnce(), 1);
  EXPECT_EQ(cp_.GetHost("h1")->state, core::HostState::kDown);
  auto w = *cp_.GetWorkload("a");
  EXPECT_EQ(w.status.state, WorkloadState::kFailed);
  EXPECT_NE(w.status.reason.find("down"), std::string::npos);
  ASSERT_TRUE(cp_.Heartbeat("h1").ok());
  EXPECT_EQ(cp_.GetHost("h1")->state, core::HostState::kReady);
}

// A store that, like etcd with its default --max-txn-ops, refuses a transaction with more than
// 128 compares or more than 128 operations in a branch.
class OpLimitedStore : public state::Store {
 public:
  explicit OpLimitedStore(state::Store* inner) : inner_(inner) {}
  absl::StatusOr<state::GetResponse> Get(std::string_view key) override { return inner_->Get(key); }
  absl::StatusOr<state::ListResponse> List(std::string_view prefix,
                                           const state::ListOptions& options) override {
    return inner_->List(prefix, options);
  }
  absl::StatusOr<int64_t> Revision() override { return inner_->Revision(); }
  absl::StatusOr<state::TxnResponse> Txn(const state::TxnRequest& request) override {
    if (request.compares.size() > kLimit || request.then_ops.size() > kLimit ||
        request.else_ops.size() > kLimit) {
      ++refused;
      return absl::InvalidArgumentError("too many operations in txn request");
    }
    return inner_->Txn(request);
  }
  absl::StatusOr<std::unique_ptr<state::WatchHandle>> Watch(
      std::string_view prefix, int64_t start_revision, state::WatchCallback callback) override {
    return inner_->Watch(prefix, start_revision, std::move(callback));
  }
  absl::Status Compact(int64_t revision) override { return inner_->Compact(revision); }
  absl::StatusOr<int64_t> CompactedRevision() override { return inner_->CompactedRevision(); }
  absl::StatusOr<state::LeaseId> Grant(absl::Duration ttl) override { return inner_->Grant(ttl); }
  absl::Status KeepAlive(state::LeaseId id) override { return inner_->KeepAlive(id); }
  absl::Status Revoke(state::LeaseId id) override { return inner_->Revoke(id); }
  absl::StatusOr<state::LeaseInfo> GetLease(state::LeaseId id) override {
    return inner_->GetLease(id);
  }
  absl::StatusOr<int> ExpireLeases() override { return inner_->ExpireLeases(); }
  size_t MaxTxnOps() const override { return kLimit; }
  int refused = 0;

 private:
  static constexpr size_t kLimit = 128;
  state::Store* inner_;
};

TEST_F(ControlPlaneTest, AHostWithManyWorkloadsGoesDownInTransactionsAnyStoreTakes) {
  OpLimitedStore limited(&store_);
  ControlPlane cp(&limited, Options());
  ASSERT_TRUE(cp.RegisterHost("h1", Inventory("200", "64Gi")).ok());
  constexpr int kWorkloads = 150;  // two operations each would make 300 in one transaction
  for (int i = 0; i < kWorkloads; ++i) {
    ASSERT_TRUE(cp.CreateWorkload(Spec("w" + std::to_string(i), "1", "64Mi")).ok());
  }
  ASSERT_EQ(*cp.ScheduleOnce(), kWorkloads);
  ASSERT_TRUE(store_.Get(HostAllocKey("h1"))->kv.has_value());
  clock_.Advance(absl::Seconds(11));
  absl::StatusOr<int> down = cp.CheckHostsOnce();
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(*down, 1);
  EXPECT_EQ(limited.refused, 0);
  const std::vector<core::Workload> ws = *cp.ListWorkloads();
  for (const auto& w : ws) {
    EXPECT_EQ(w.status.state, WorkloadState::kFailed) << w.spec.name;
  }
  EXPECT_TRUE(cp.Assignments("h1")->empty());
  EXPECT_FALSE(store_.Get(HostAllocKey("h1"))->kv.has_value());
}

// A host already marked down whose workloads were not failed (the server stopped between the
// host's transaction and its workloads'): the next pass fails them and drops the record.
TEST_F(ControlPlaneTest, APassFinishesFailingTheWorkloadsOfADownHost) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  core::Host h = *cp_.GetHost("h1");
  h.state = core::HostState::kDown;
  state::TxnRequest txn;
  txn.then_ops.push_back(state::Op::Put(HostKey("h1"), core::EncodeHost(h).dump()));
  ASSERT_TRUE(store_.Txn(txn).ok());
  EXPECT_EQ(cp_.GetWorkload("a")->status.state, WorkloadState::kScheduled);

  EXPECT_EQ(*cp_.CheckHostsOnce(), 0);  // no host newly down
  auto w = *cp_.GetWorkload("a");
  EXPECT_EQ(w.status.state, WorkloadState::kFailed);
  EXPECT_EQ(w.status.reason, "host h1 is down");
  EXPECT_FALSE(store_.Get(HostAllocKey("h1"))->kv.has_value());
  // Nothing left to do: a further pass writes nothing.
  auto rev = *store_.Revision();
  EXPECT_EQ(*cp_.CheckHostsOnce(), 0);
  EXPECT_EQ(*store_.Revision(), rev);
}

// An allocation record that does not decode keeps its host out of placement (what it holds is
// unknown) instead of making the host look empty.
TEST_F(ControlPlaneTest, AHostWithADamagedAllocationRecordTakesNothingNew) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  state::TxnRequest txn;
  txn.then_ops.push_back(state::Op::Put(HostAllocKey("h1"), "{\"workloads\": 7}"));
  ASSERT_TRUE(store_.Txn(txn).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a")).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 0);
  EXPECT_EQ(cp_.GetWorkload("a")->status.state, WorkloadState::kPending);
  ASSERT_TRUE(cp_.RegisterHost("h2", Inventory()).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload("a")->status.host, "h2");
}

TEST_F(ControlPlaneTest, EventsRecordTransitionsInOrder) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  auto events = *cp_.ListEvents(0, 100);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, "registered");
  EXPECT_EQ(events[1].type, "created");
  EXPECT_EQ(events[2].type, "scheduled");
  EXPECT_LT(events[1].revision, events[2].revision);
  EXPECT_EQ(cp_.ListEvents(events[1].revision, 100)->size(), 1u);
}

TEST_F(ControlPlaneTest, PreemptsLowerPriorityOnly) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("1", "1Gi")).ok());
  auto low = Spec("low", "1");
  low.priority = 1;
  ASSERT_TRUE(cp_.CreateWorkload(low).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  auto same = Spec("same", "1");
  same.priority = 1;
  ASSERT_TRUE(cp_.CreateWorkload(same).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 0);
  auto high = Spec("high", "1");
  high.priority = 10;
  ASSERT_TRUE(cp_.CreateWorkload(high).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload("high")->status.host, "h1");
  auto victim = *cp_.GetWorkload("low");
  EXPECT_EQ(victim.status.state, WorkloadState::kPending);
  EXPECT_NE(victim.status.reason.find("preempted"), std::string::npos);
}

}  // namespace
}  // namespace berth::control

namespace berth::control {
namespace {

TEST_F(ControlPlaneTest, PreemptionTakesTheVictimWhoseLastCheckpointIsNewest) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("1", "1Gi")).ok());
  ASSERT_TRUE(cp_.RegisterHost("h2", Inventory("1", "1Gi")).ok());
  for (const char* name : {"early", "late"}) {
    auto spec = Spec(name, "1");
    spec.priority = 1;
    ASSERT_TRUE(cp_.CreateWorkload(spec).ok());
    ASSERT_EQ(*cp_.ScheduleOnce(), 1);
    const core::Workload w = *cp_.GetWorkload(name);
    ASSERT_TRUE(
        cp_.ReportStatus(w.status.host, name,
                         {.generation = w.status.generation, .state = WorkloadState::kRunning})
            .ok());
    clock_.Advance(absl::Minutes(1));
  }
  // "late" started a minute after "early", so without checkpoints it would lose less; but
  // "early" wrote a checkpoint since, so evicting it loses least.
  clock_.Advance(absl::Minutes(4));
  const core::Workload early = *cp_.GetWorkload("early");
  ASSERT_LT(early.status.started_at, cp_.GetWorkload("late")->status.started_at);
  core::HostUsage usage;
  usage.workloads.push_back({.name = "early",
                             .cpu = core::MilliCpu(900),
                             .memory = core::MemoryMiB(100),
                             .checkpoint_at = clock_.Now()});
  ASSERT_TRUE(cp_.Heartbeat(early.status.host, usage).ok());
  clock_.Advance(absl::Minutes(10));
  auto high = Spec("high", "1");
  high.priority = 10;
  ASSERT_TRUE(cp_.CreateWorkload(high).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload("high")->status.host, early.status.host);
  EXPECT_EQ(cp_.GetWorkload("early")->status.state, WorkloadState::kPending);
  EXPECT_EQ(cp_.GetWorkload("late")->status.state, WorkloadState::kRunning);
}

TEST_F(ControlPlaneTest, QuotasHoldWorkloadsPendingAndReportUse) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("8", "8Gi")).ok());
  auto bad = cp_.SetQuota("team-a", core::Json{{"cpu", "-1"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(bad.status().message()).find("quota \"team-a\": cpu"), std::string::npos);
  EXPECT_FALSE(cp_.SetQuota("team-a", core::Json{{"cpus", "1"}}).ok());
  ASSERT_TRUE(cp_.SetQuota("team-a", core::Json{{"cpu", "1"}, {"gpu", "2"}}).ok());
  for (const char* name : {"a1", "a2", "a3"}) {
    auto spec = Spec(name);
    spec.tenant = "team-a";
    ASSERT_TRUE(cp_.CreateWorkload(spec).ok());
  }
  EXPECT_EQ(*cp_.ScheduleOnce(), 2);  // 2 x 500m fill the 1-CPU quota; the host has room for more
  auto pending = *cp_.GetWorkload("a3");
  EXPECT_EQ(pending.status.state, WorkloadState::kPending);
  EXPECT_NE(pending.status.explanation.find("quota"), std::string::npos)
      << pending.status.explanation;
  auto tenants = *cp_.Tenants();
  ASSERT_EQ(tenants.size(), 1u);
  EXPECT_EQ(tenants[0]["name"], "team-a");
  EXPECT_EQ(tenants[0]["used"]["cpu"], "1");
  EXPECT_EQ(tenants[0]["quota"]["cpu"], "1");
  EXPECT_EQ(tenants[0]["quota"]["gpu"], "2");
  ASSERT_TRUE(cp_.DeleteQuota("team-a").ok());
  EXPECT_EQ(cp_.DeleteQuota("team-a").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
}

TEST_F(ControlPlaneTest, DevicesOfAClassArePlacedCountedInQuotasAndUnhealthyOnesLeftOut) {
  core::HostInventory inv = Inventory("8", "8Gi");
  inv.devices = {{.cls = "xilinx.com/fpga", .id = "u250-0"},
                 {.cls = "xilinx.com/fpga", .id = "u250-1"},
                 {.cls = "xilinx.com/fpga", .id = "u250-2", .healthy = false, .health = "gone"}};
  ASSERT_TRUE(cp_.RegisterHost("h1", inv).ok());
  ASSERT_TRUE(cp_.SetQuota("team-a", core::Json{{"devices", {{"xilinx.com/fpga", 1}}}}).ok());
  auto fpga = [](const std::string& name, const std::string& tenant) {
    core::WorkloadSpec spec = Spec(name);
    spec.tenant = tenant;
    spec.devices = {{.cls = "xilinx.com/fpga", .count = 1}};
    return spec;
  };
  for (const auto& [name, tenant] : {std::pair{"a1", "team-a"}, std::pair{"a2", "team-a"},
                                     std::pair{"b1", "team-b"}, std::pair{"b2", "team-b"}}) {
    ASSERT_TRUE(cp_.CreateWorkload(fpga(name, tenant)).ok());
  }
  // One for team-a (its quota), one for team-b; the unhealthy third device takes nothing.
  EXPECT_EQ(*cp_.ScheduleOnce(), 2);
  std::set<std::string> held;
  for (const char* name : {"a1", "b1"}) {
    auto w = *cp_.GetWorkload(name);
    EXPECT_EQ(w.status.state, WorkloadState::kScheduled) << name << ": " << w.status.explanation;
    ASSERT_EQ(w.status.devices.size(), 1u) << name;
    held.insert(w.status.devices[0].id);
  }
  EXPECT_EQ(held, (std::set<std::string>{"u250-0", "u250-1"}));
  EXPECT_NE(cp_.GetWorkload("a2")->status.explanation.find("quota"), std::string::npos)
      << cp_.GetWorkload("a2")->status.explanation;
  EXPECT_NE(cp_.GetWorkload("b2")->status.explanation.find("insufficient devices"),
            std::string::npos)
      << cp_.GetWorkload("b2")->status.explanation;
  auto tenants = *cp_.Tenants();
  for (const core::Json& t : tenants) {
    if (t["name"] != "team-a") continue;
    EXPECT_EQ(t["used"]["devices"]["xilinx.com/fpga"], 1);
    EXPECT_EQ(t["quota"]["devices"]["xilinx.com/fpga"], 1);
  }
  auto allocations = *cp_.HostAllocations();
  ASSERT_EQ(allocations["h1"].devices.size(), 2u);
}

TEST_F(ControlPlaneTest, UsageHistoryKeepsOneSamplePerResolutionForAnHour) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  core::HostUsage u;
  for (int i = 0; i < 800; ++i) {  // a heartbeat every 5 s for 4000 s
    u.cpu = core::MilliCpu(i);
    ASSERT_TRUE(cp_.Heartbeat("h1", u).ok());
    clock_.Advance(absl::Seconds(5));
  }
  auto history = cp_.UsageHistory("h1");
  ASSERT_TRUE(history.ok()) << history.status();
  // One sample per 10 s over the last hour.
  EXPECT_GE(history->size(), 359u);
  EXPECT_LE(history->size(), 361u);
  for (size_t i = 1; i < history->size(); ++i) {
    EXPECT_GE((*history)[i].time - (*history)[i - 1].time, absl::Seconds(10));
  }
  EXPECT_LE(clock_.Now() - history->front().time, absl::Hours(1));
  EXPECT_EQ(cp_.HostUsages()["h1"].cpu, core::MilliCpu(799));
  EXPECT_EQ(cp_.UsageHistory("nope").status().code(), absl::StatusCode::kNotFound);
  // A heartbeat without usage keeps the last report.
  ASSERT_TRUE(cp_.Heartbeat("h1").ok());
  EXPECT_EQ(cp_.HostUsages()["h1"].cpu, core::MilliCpu(799));
}

// Batching: a pass commits its placements in one transaction where the store sets no limit,
// and in as few as its limit allows where it does.
TEST_F(ControlPlaneTest, APassCommitsItsPlacementsInAsFewTransactionsAsTheStoreTakes) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory("200", "64Gi")).ok());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(cp_.CreateWorkload(Spec("w" + std::to_string(i), "1", "64Mi")).ok());
  }
  int64_t before = *store_.Revision();
  ASSERT_EQ(*cp_.ScheduleOnce(), 100);
  EXPECT_EQ(*store_.Revision(), before + 1);

  // 63 placements fit in 128 operations (a write and an event each, and the host's record).
  OpLimitedStore limited(&store_);
  ControlPlane cp(&limited, Options());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(cp.CreateWorkload(Spec("v" + std::to_string(i), "1", "64Mi")).ok());
  }
  before = *store_.Revision();
  ASSERT_EQ(*cp.ScheduleOnce(), 100);
  EXPECT_EQ(*store_.Revision(), before + 2);
  EXPECT_EQ(limited.refused, 0);
}

// A pass stops at its batch of decisions, and cuts its placements into transactions of at most
// placements_per_txn; the next pass goes on where it stopped.
TEST_F(ControlPlaneTest, APassTakesABatchAndCommitsItInTransactionsOfBoundedSize) {
  ControlPlaneOptions o = Options();
  o.schedule_batch = 10;
  o.placements_per_txn = 4;
  ControlPlane cp(&store_, o);
  ASSERT_TRUE(cp.RegisterHost("h1", Inventory("200", "64Gi")).ok());
  for (int i = 0; i < 25; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(cp.CreateWorkload(Spec("w" + std::to_string(i), "1", "64Mi")).ok());
  }
  int64_t before = *store_.Revision();
  EXPECT_EQ(*cp.ScheduleOnce(), 10);
  EXPECT_EQ(*store_.Revision(), before + 3);
  // Oldest first: the first batch took the first ten created.
  EXPECT_EQ(cp.GetWorkload("w9")->status.state, WorkloadState::kScheduled);
  EXPECT_EQ(cp.GetWorkload("w10")->status.state, WorkloadState::kPending);
  before = *store_.Revision();
  EXPECT_EQ(*cp.ScheduleOnce(), 10);
  EXPECT_EQ(*store_.Revision(), before + 3);
  before = *store_.Revision();
  EXPECT_EQ(*cp.ScheduleOnce(), 5);
  EXPECT_EQ(*store_.Revision(), before + 2);
  EXPECT_EQ(*cp.ScheduleOnce(), 0);
}

// A heartbeat of a live host stays in memory; only one that brings a host back writes.
TEST_F(ControlPlaneTest, HeartbeatsOfALiveHostDoNotWriteTheStore) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  const int64_t rev = *store_.Revision();
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(absl::Seconds(5));
    ASSERT_TRUE(cp_.Heartbeat("h1").ok());
    EXPECT_EQ(*cp_.CheckHostsOnce(), 0);
  }
  EXPECT_EQ(*store_.Revision(), rev);
  EXPECT_EQ(cp_.Heartbeat("nope").code(), absl::StatusCode::kNotFound);
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(*cp_.CheckHostsOnce(), 1);
  ASSERT_TRUE(cp_.Heartbeat("h1").ok());  // the host marked down an instant ago comes back
  EXPECT_EQ(cp_.GetHost("h1")->state, core::HostState::kReady);
}

// Liveness from leases indexed by time: across many hosts heartbeating at different times, each
// check marks down exactly the hosts silent for longer than the TTL, each once, and a host that
// comes back is watched again.
TEST_F(ControlPlaneTest, EachCheckMarksDownExactlyTheHostsWhoseLeaseRanOut) {
  constexpr int kHosts = 40;
  auto name = [](int i) { return "h" + std::to_string(i); };
  for (int i = 0; i < kHosts; ++i) ASSERT_TRUE(cp_.RegisterHost(name(i), Inventory()).ok());
  std::map<std::string, absl::Time> last;
  for (int i = 0; i < kHosts; ++i) last[name(i)] = clock_.Now();
  std::mt19937 rng(7);
  std::set<std::string> down;
  int marked = 0;
  for (int second = 0; second < 120; ++second) {
    clock_.Advance(absl::Seconds(1));
    // Each host beats with its own rhythm: some often, some rarely, some stop for a while.
    for (int i = 0; i < kHosts; ++i) {
      if (rng() % (1 + i % 16) != 0) continue;
      ASSERT_TRUE(cp_.Heartbeat(name(i)).ok());
      last[name(i)] = clock_.Now();
      down.erase(name(i));  // a heartbeat brings a down host back
    }
    std::set<std::string> want;
    for (const auto& [n, t] : last) {
      if (clock_.Now() - t > absl::Seconds(10) && !down.contains(n)) want.insert(n);
    }
    absl::StatusOr<int> went = cp_.CheckHostsOnce();
    ASSERT_TRUE(went.ok()) << went.status();
    EXPECT_EQ(*went, static_cast<int>(want.size())) << "second " << second;
    down.insert(want.begin(), want.end());
    marked += *went;
    for (const core::Host& h : *cp_.ListHosts()) {
      EXPECT_EQ(h.state == core::HostState::kDown, down.contains(h.name))
          << h.name << " at second " << second;
    }
  }
  EXPECT_GT(marked, 10);  // the rhythms above made hosts go down and come back
}

// A host another server registered has no lease here yet: it gets a full TTL from when this
// server started leading, not an instant expiry; and so does every host after a new term.
TEST_F(ControlPlaneTest, AHostWithoutALeaseHereGetsAFullTtl) {
  ControlPlane other(&store_, Options());
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(cp_.RegisterHost("h0", Inventory()).ok());
  EXPECT_EQ(*cp_.CheckHostsOnce(), 0);
  ASSERT_TRUE(other.RegisterHost("h1", Inventory()).ok());
  cp_.Start();
  cp_.Stop();  // a new term: every host gets a full TTL from now
  const absl::Time term = clock_.Now();
  clock_.Advance(absl::Seconds(9));
  EXPECT_EQ(*cp_.CheckHostsOnce(), 0);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(*cp_.CheckHostsOnce(), 2);
  for (const char* h : {"h0", "h1"}) {
    EXPECT_EQ(cp_.GetHost(h)->state, core::HostState::kDown) << h;
    EXPECT_EQ(cp_.GetHost(h)->last_heartbeat, term) << h;
  }
}

// A page of hosts comes from the cluster model with what is allocated on each and its usage,
// the same figures the whole map gives, and pages resume after the last name.
TEST_F(ControlPlaneTest, HostPagesCarryTheirAllocationsAndUsage) {
  for (int i = 0; i < 7; ++i) {
    ASSERT_TRUE(cp_.RegisterHost("h" + std::to_string(i), Inventory("2", "1Gi")).ok());
  }
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(cp_.CreateWorkload(Spec("w" + std::to_string(i))).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 5);
  core::HostUsage usage;
  usage.cpu = core::MilliCpu(700);
  ASSERT_TRUE(cp_.Heartbeat("h3", usage).ok());
  const std::map<std::string, core::HostAllocation> all = *cp_.HostAllocations();
  std::vector<std::string> seen;
  ListOptions options{.limit = 3};
  for (int page_no = 0; page_no < 5; ++page_no) {
    ListPage page;
    absl::StatusOr<std::vector<HostListing>> hosts = cp_.ListHostDetails(options, &page);
    ASSERT_TRUE(hosts.ok()) << hosts.status();
    EXPECT_LE(hosts->size(), 3u);
    EXPECT_GT(page.revision, 0);
    for (const HostListing& l : *hosts) {
      seen.push_back(l.host.name);
      EXPECT_EQ(core::EncodeHostAllocation(l.allocated),
                core::EncodeHostAllocation(all.at(l.host.name)))
          << l.host.name;
      EXPECT_EQ(l.used.has_value(), l.host.name == "h3") << l.host.name;
    }
    if (page.next.empty()) break;
    EXPECT_EQ(page.next, hosts->back().host.name);
    options.after = page.next;
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"h0", "h1", "h2", "h3", "h4", "h5", "h6"}));
  int placed = 0;
  for (const auto& [name, a] : all) placed += a.workloads;
  EXPECT_EQ(placed, 5);
  // Filtered: only the down hosts, and a page that ends where nothing more passes.
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(cp_.Heartbeat("h2").ok());
  ASSERT_TRUE(cp_.Heartbeat("h5").ok());
  clock_.Advance(absl::Seconds(6));
  ASSERT_EQ(*cp_.CheckHostsOnce(), 5);
  ListPage page;
  ListOptions ready{.filter = {.host_state = core::HostState::kReady}, .limit = 2};
  std::vector<HostListing> up = *cp_.ListHostDetails(ready, &page);
  ASSERT_EQ(up.size(), 2u);
  EXPECT_EQ(up[0].host.name, "h2");
  EXPECT_EQ(up[1].host.name, "h5");
  EXPECT_EQ(up[0].host.last_heartbeat, clock_.Now() - absl::Seconds(6));
  EXPECT_TRUE(page.next.empty());
  // The plain host list reads the same model.
  EXPECT_EQ(cp_.ListHosts()->size(), 7u);
}

// The model follows what another server writes to the same store: its hosts, placements and
// releases show in this server's assignments and passes.
TEST_F(ControlPlaneTest, TheModelFollowsWritesOfAnotherServer) {
  ControlPlane other(&store_, Options());
  EXPECT_TRUE(cp_.Assignments("h1")->empty());  // the model is loaded before the writes below
  ASSERT_TRUE(other.RegisterHost("h1", Inventory("1", "1Gi")).ok());
  ASSERT_TRUE(other.CreateWorkload(Spec("a", "1")).ok());
  ASSERT_EQ(*other.ScheduleOnce(), 1);
  int64_t rev = 0;
  std::vector<core::Workload> on_h1 = *cp_.Assignments("h1", &rev);
  ASSERT_EQ(on_h1.size(), 1u);
  EXPECT_EQ(on_h1[0].spec.name, "a");
  EXPECT_EQ(on_h1[0].status.generation, 1);
  EXPECT_GE(rev, on_h1[0].revision);
  // What the other server placed is taken: this server finds the host full.
  ASSERT_TRUE(cp_.CreateWorkload(Spec("b", "1")).ok());
  EXPECT_EQ(*cp_.ScheduleOnce(), 0);
  EXPECT_EQ(cp_.GetWorkload("b")->status.state, WorkloadState::kPending);
  StatusReport stopped{.generation = 1, .state = WorkloadState::kStopped};
  ASSERT_TRUE(other.ReportStatus("h1", "a", stopped).ok());
  EXPECT_TRUE(cp_.Assignments("h1")->empty());
  EXPECT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload("b")->status.host, "h1");
}

// A watch that stops delivering (as an etcd watch ends when the revision it must resume from was
// compacted) is noticed by Sync, which lists the store again.
class SilencingStore : public OpLimitedStore {
 public:
  using OpLimitedStore::OpLimitedStore;
  absl::StatusOr<std::unique_ptr<state::WatchHandle>> Watch(
      std::string_view prefix, int64_t start_revision, state::WatchCallback callback) override {
    return OpLimitedStore::Watch(prefix, start_revision,
                                 [this, callback = std::move(callback)](const state::Event& e) {
                                   if (!silent.load()) callback(e);
                                 });
  }
  std::atomic<bool> silent{false};
};

TEST_F(ControlPlaneTest, TheModelListsAgainWhenItsWatchFallsSilent) {
  SilencingStore silencing(&store_);
  ClusterModel model(&silencing, absl::Milliseconds(50));
  ASSERT_TRUE(model.Sync().ok());
  EXPECT_EQ(model.Stats().reloads, 1);
  silencing.silent = true;
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  ASSERT_TRUE(cp_.CreateWorkload(Spec("a")).ok());
  ASSERT_TRUE(model.Sync().ok());
  silencing.silent = false;
  EXPECT_EQ(model.Stats().reloads, 2);
  EXPECT_TRUE(model.FindHost("h1").has_value());
  EXPECT_EQ(model.Stats().workloads, 1u);
  EXPECT_EQ(model.Stats().pending, 1u);
  // The fresh watch carries on.
  ASSERT_TRUE(cp_.CreateWorkload(Spec("b")).ok());
  ASSERT_TRUE(model.Sync().ok());
  EXPECT_EQ(model.Stats().workloads, 2u);
  EXPECT_EQ(model.Stats().reloads, 2);
}

// Property: batched passes of two servers racing with deletes, agents' reports and hosts that
// go down and come back never give a placement twice nor over-allocate a host, and every
// allocation record matches the workloads it lists.
TEST_F(ControlPlaneTest, BatchesRacingWithDeletesAndHostLossKeepTheRecordsExact) {
  constexpr int kHosts = 6;
  constexpr int kWorkloads = 240;
  for (int h = 0; h < kHosts; ++h) {
    ASSERT_TRUE(cp_.RegisterHost("h" + std::to_string(h), Inventory("4", "4Gi")).ok());
  }
  for (int i = 0; i < kWorkloads; ++i) {
    ASSERT_TRUE(cp_.CreateWorkload(Spec("w" + std::to_string(i), "500m")).ok());
  }
  ControlPlane other(&store_, Options());
  std::atomic<bool> done{false};
  auto passes = [&](ControlPlane* cp) {
    while (!done.load()) {
      absl::StatusOr<int> placed = cp->ScheduleOnce();
      EXPECT_TRUE(placed.ok()) << placed.status();
    }
  };
  std::thread s1(passes, &cp_);
  std::thread s2(passes, &other);
  std::atomic<int> deleted{0}, went_down{0};
  std::thread deleter([&] {
    std::mt19937 rng(7);
    for (int round = 0; round < 400; ++round) {
      const std::string name = "w" + std::to_string(rng() % kWorkloads);
      absl::StatusOr<core::Workload> w = cp_.GetWorkload(name);
      if (!w.ok()) continue;
      if (rng() % 3 == 0) {
        deleted += cp_.DeleteWorkload(name).ok() ? 1 : 0;
      } else if (!w->status.host.empty() && !core::IsTerminal(w->status.state)) {
        // Its agent reports it stopped: the placement is released.
        (void)cp_.ReportStatus(
            w->status.host, name,
            {.generation = w->status.generation, .state = WorkloadState::kStopped});
        (void)cp_.Act(name, Action::kStart);
      }
    }
  });
  std::thread liveness([&] {
    for (int round = 0; round < 40; ++round) {
      // Hosts 0..2 keep beating; the others go down and come back.
      for (int h = 0; h < kHosts; ++h) {
        if (h < 3 || round % 4 == 3) (void)cp_.Heartbeat("h" + std::to_string(h));
      }
      clock_.Advance(absl::Seconds(4));
      absl::StatusOr<int> down = cp_.CheckHostsOnce();
      EXPECT_TRUE(down.ok()) << down.status();
      went_down += down.value_or(0);
    }
    done = true;
  });
  liveness.join();
  deleter.join();
  s1.join();
  s2.join();

  std::map<std::string, core::Workload> by_name;
  std::vector<core::Workload> workloads = *cp_.ListWorkloads();
  for (core::Workload& w : workloads) by_name[w.spec.name] = std::move(w);
  std::map<std::string, int64_t> scheduled_events;
  const std::vector<core::Event> events = *cp_.ListEvents(0, 0);
  for (const core::Event& e : events) {
    if (e.type == "scheduled") ++scheduled_events[e.object];
  }
  std::set<std::string> recorded;
  state::ListResponse allocs = *store_.List(kHostAllocPrefix);
  for (const state::KeyValue& kv : allocs.kvs) {
    const std::string host = kv.key.substr(kHostAllocPrefix.size());
    HostAlloc alloc = *HostAllocCodec::Decode(core::Json::parse(kv.value));
    int64_t cpu = 0;
    for (const auto& [name, generation] : alloc.workloads) {
      EXPECT_TRUE(recorded.insert(name).second) << name << " recorded on two hosts";
      auto it = by_name.find(name);
      ASSERT_NE(it, by_name.end()) << name << " recorded on " << host << " but gone";
      EXPECT_EQ(it->second.status.host, host) << name;
      EXPECT_EQ(it->second.status.generation, generation) << name;
      cpu += it->second.spec.resources.cpu.value();
    }
    EXPECT_LE(cpu, 4000) << host;
  }
  for (const auto& [name, w] : by_name) {
    // Live on a host means recorded there; each placement has one event and one generation.
    if (!w.status.host.empty() && !core::IsTerminal(w.status.state)) {
      EXPECT_TRUE(recorded.contains(name)) << name;
    }
    EXPECT_EQ(scheduled_events[name], w.status.generation) << name;
  }
  // The race was run: placements, deletes and hosts lost all happened.
  EXPECT_GT(deleted.load(), 0);
  EXPECT_GT(went_down.load(), 0);
  EXPECT_GT(events.size(), size_t{kWorkloads});
}

// Writes service `name` as the service controller keeps it: its template's current revision
// and the warm state its status names (none when `warm_key` is empty).
void PutService(state::Store& store, const std::string& name, int64_t revision,
                const std::string& warm_key) {
  core::Service svc;
  svc.spec = *core::DecodeServiceSpec({{"name", name},
                                       {"kind", "service"},
                                       {"template",
                                        {{"kind", "process"},
                                         {"command", {"/bin/true"}},
                                         {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}}}}});
  svc.status.rollout.revision = revision;
  svc.status.rollout.next_revision = revision + 1;
  if (!warm_key.empty()) {
    svc.status.warm = core::WarmStateStatus{
        .revision = core::ParseWarmStateKey(warm_key)->revision, .key = warm_key, .host = "h2"};
  }
  state::TxnRequest txn;
  txn.then_ops.push_back(
      state::Op::Put(core::Cat(kServicePrefix, name), core::EncodeService(svc).dump()));
  ASSERT_TRUE(store.Txn(txn).ok());
}

// A replica labelled with a warm state, as the service controller makes it.
core::WorkloadSpec Replica(const std::string& name, const std::string& warm_key) {
  core::WorkloadSpec spec = Spec(name);
  spec.labels[std::string(core::kServiceLabel)] = "web";
  spec.labels[std::string(core::kWarmStateLabel)] = warm_key;
  return spec;
}

TEST_F(ControlPlaneTest, AReplicaIsPlacedWhereItsHostReportedItsWarmState) {
  for (const char* h : {"h1", "h2", "h3"}) ASSERT_TRUE(cp_.RegisterHost(h, Inventory()).ok());
  PutService(store_, "web", 1, "web.r1");
  ASSERT_TRUE(cp_.Heartbeat("h3").ok());
  EXPECT_TRUE(cp_.ReportWarmStates("h3", {"web.r1", "not a key"}).empty());
  EXPECT_EQ(cp_.WarmStates(),
            (std::map<std::string, std::set<std::string>, std::less<>>{{"h3", {"web.r1"}}}));
  // binpack fills h1 first; a replica naming a state no host holds follows it there.
  ASSERT_TRUE(cp_.CreateWorkload(Spec("filler")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  ASSERT_EQ(cp_.GetWorkload("filler")->status.host, "h1");
  ASSERT_TRUE(cp_.CreateWorkload(Replica("web-9", "web.r9")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload("web-9")->status.host, "h1");
  // The next replica spreads to h2 or h3, which run none; it goes to h3, which holds its state.
  ASSERT_TRUE(cp_.CreateWorkload(Replica("web-0", "web.r1")).ok());
  ASSERT_EQ(*cp_.ScheduleOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload("web-0")->status.host, "h3");
  // A host that reports none forgets what it reported; one removed is forgotten too.
  EXPECT_TRUE(cp_.ReportWarmStates("h3", {}).empty());
  EXPECT_TRUE(cp_.WarmStates().empty());
  ASSERT_TRUE(cp_.ReportWarmStates("h2", {"web.r1"}).empty());
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(cp_.Heartbeat("h1").ok());
  ASSERT_TRUE(cp_.Heartbeat("h3").ok());
  ASSERT_EQ(*cp_.CheckHostsOnce(), 1);
  ASSERT_TRUE(cp_.RemoveHost("h2").ok());
  EXPECT_TRUE(cp_.WarmStates().empty());
}

TEST_F(ControlPlaneTest, WarmStatesNoServiceWantsAreNamedForTheAgentToDelete) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
  // web runs revision 3 and its status names the state of revision 2: a save of revision 3 may
  // have ended before the status says so. api wants its own; gone was deleted.
  PutService(store_, "web", 3, "web.r2");
  PutService(store_, "api", 4, "api.r4");
  const std::vector<std::string> held = {"api.r4", "gone.r1", "web.r1", "web.r2", "web.r3"};
  EXPECT_EQ(cp_.ReportWarmStates("h1", held), (std::vector<std::string>{"gone.r1", "web.r1"}));
  // The scheduler no longer counts them.
  EXPECT_EQ(cp_.WarmStates().at("h1"), (std::set<std::string>{"api.r4", "web.r2", "web.r3"}));
  // Checked once a minute: until then nothing is named.
  PutService(store_, "web", 4, "web.r4");
  EXPECT_TRUE(cp_.ReportWarmStates("h1", held).empty());
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(cp_.ReportWarmStates("h1", held),
            (std::vector<std::string>{"gone.r1", "web.r1", "web.r2", "web.r3"}));
}

// A store whose reads of services fail while `failing` is set.
class ServiceReadFailingStore : public OpLimitedStore {
 public:
  using OpLimitedStore::OpLimitedStore;
  absl::StatusOr<state::GetResponse> Get(std::string_view key) override {
    if (failing && key.rfind(kServicePrefix, 0) == 0) {
      return absl::UnavailableError("store unreachable");
    }
    return OpLimitedStore::Get(key);
  }
  bool failing = true;
};

TEST_F(ControlPlaneTest, NoWarmStateIsNamedWhileTheServicesCannotBeRead) {
  ServiceReadFailingStore failing(&store_);
  ControlPlane cp(&failing, Options());
  ASSERT_TRUE(cp.RegisterHost("h1", Inventory()).ok());
  EXPECT_TRUE(cp.ReportWarmStates("h1", {"gone.r1"}).empty());
  EXPECT_EQ(cp.WarmStates().at("h1"), (std::set<std::string>{"gone.r1"}));
  // A service that does not decode keeps its states; the others are judged.
  failing.failing = false;
  state::TxnRequest txn;
  txn.then_ops.push_back(state::Op::Put(core::Cat(kServicePrefix, "broken"), "{\"spec\": 1}"));
  ASSERT_TRUE(store_.Txn(txn).ok());
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(cp.ReportWarmStates("h1", {"broken.r1", "gone.r1"}),
            std::vector<std::string>{"gone.r1"});
}

}  // namespace
}  // namespace berth::control
