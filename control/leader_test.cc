#include "control/leader.h"

#include "control/control_plane.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

// Two servers on one memory store with a paused clock: the store expires leases only when the
// test says so (ExpireLeases), and each election steps only when the test calls Step().
class LeaderElectionTest : public ::testing::Test {
 protected:
  LeaderElectionTest()
      : store_(state::StoreOptions{.clock = &clock_, .lease_tick_interval = absl::ZeroDuration()}),
        a_(&store_, {.id = "a", .address = "http://127.0.0.1:1"}, Options(&a_events_)),
        b_(&store_, {.id = "b", .address = "http://127.0.0.1:2"}, Options(&b_events_)) {}

  LeaderElectionOptions Options(std::vector<std::string>* events) {
    LeaderElectionOptions o;
    o.clock = &clock_;
    o.lease_ttl = absl::Seconds(3);
    o.interval = absl::Milliseconds(200);
    o.on_elected = [events](int64_t token) { events->push_back(core::Cat("elected ", token)); };
    o.on_lost = [events] { events->push_back("lost"); };
    return o;
  }

  // Advances the clock and lets the store expire the leases whose deadline passed.
  void Advance(absl::Duration d) {
    clock_.Advance(d);
    ASSERT_TRUE(store_.ExpireLeases().ok());
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  std::vector<std::string> a_events_, b_events_;
  LeaderElection a_, b_;
};

TEST_F(LeaderElectionTest, OneServerLeadsAndTheOtherSeesIt) {
  ASSERT_TRUE(a_.Step().ok());
  ASSERT_TRUE(b_.Step().ok());
  EXPECT_TRUE(a_.IsLeader());
  EXPECT_FALSE(b_.IsLeader());
  EXPECT_GT(a_.token(), 0);
  EXPECT_EQ(b_.token(), 0);
  ASSERT_TRUE(b_.leader().has_value());
  EXPECT_EQ(b_.leader()->id, "a");
  EXPECT_EQ(b_.leader()->address, "http://127.0.0.1:1");
  EXPECT_EQ(a_events_, std::vector<std::string>{core::Cat("elected ", a_.token())});
  EXPECT_TRUE(b_events_.empty());
  auto members = b_.ReadMembers();
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_EQ(members->size(), 2u);
  EXPECT_EQ((*members)[0].id, "a");
  EXPECT_EQ((*members)[1].id, "b");
  auto leader = b_.ReadLeader();
  ASSERT_TRUE(leader.ok() && leader->has_value());
  EXPECT_EQ((*leader)->id, "a");
}

TEST_F(LeaderElectionTest, ALeaderThatRenewsKeepsTheLead) {
  ASSERT_TRUE(a_.Step().ok());
  ASSERT_TRUE(b_.Step().ok());
  const int64_t term = a_.token();
  for (int i = 0; i < 50; ++i) {  // 10 s, far past the 3 s ttl
    Advance(absl::Milliseconds(200));
    ASSERT_TRUE(a_.Step().ok());
    ASSERT_TRUE(b_.Step().ok());
  }
  EXPECT_EQ(a_.token(), term);
  EXPECT_FALSE(b_.IsLeader());
}

TEST_F(LeaderElectionTest, AnotherServerTakesOverOnceTheLeasesLapse) {
  ASSERT_TRUE(a_.Step().ok());
  ASSERT_TRUE(b_.Step().ok());
  const int64_t first = a_.token();
  // `a` stops stepping (a partition, or a SIGKILL): its lease runs out; `b` keeps renewing.
  for (int i = 0; i < 10; ++i) {  // 2 s: the lease still holds, so `b` waits
    Advance(absl::Milliseconds(200));
    ASSERT_TRUE(b_.Step().ok());
    ASSERT_FALSE(b_.IsLeader()) << "took over after " << (i + 1) * 200 << "ms";
  }
  for (int i = 0; i < 10 && !b_.IsLeader(); ++i) {
    Advance(absl::Milliseconds(200));
    ASSERT_TRUE(b_.Step().ok());
  }
  ASSERT_TRUE(b_.IsLeader());
  EXPECT_GT(b_.token(), first);
  EXPECT_EQ(b_events_, std::vector<std::string>{core::Cat("elected ", b_.token())});
  // `a` comes back: its lease is gone, so it steps down and follows `b`.
  ASSERT_TRUE(a_.Step().ok());
  EXPECT_FALSE(a_.IsLeader());
  ASSERT_EQ(a_events_.size(), 2u);
  EXPECT_EQ(a_events_[1], "lost");
  ASSERT_TRUE(a_.leader().has_value());
  EXPECT_EQ(a_.leader()->id, "b");
}

// A store the test can cut off: every call fails with Unavailable while `cut` is set.
class CutStore final : public state::Store {
 public:
  explicit CutStore(state::Store* base) : base_(base) {}
  bool cut = false;

  absl::StatusOr<state::GetResponse> Get(std::string_view key) override {
    if (cut) return Down();
    return base_->Get(key);
  }
  absl::StatusOr<state::ListResponse> List(std::string_view prefix,
                                           const state::ListOptions& options) override {
    if (cut) return Down();
    return base_->List(prefix, options);
  }
  absl::StatusOr<int64_t> Revision() override {
    if (cut) return Down();
    return base_->Revision();
  }
  absl::StatusOr<state::TxnResponse> Txn(const state::TxnRequest& request) override {
    if (cut) return Down();
    return base_->Txn(request);
  }
  absl::StatusOr<std::unique_ptr<state::WatchHandle>> Watch(std::string_view prefix, int64_t from,
                                                            state::WatchCallback cb) override {
    if (cut) return Down();
    return base_->Watch(prefix, from, std::move(cb));
  }
  absl::Status Compact(int64_t revision) override {
    if (cut) return Down();
    return base_->Compact(revision);
  }
  absl::StatusOr<int64_t> CompactedRevision() override {
    if (cut) return Down();
    return base_->CompactedRevision();
  }
  absl::StatusOr<state::LeaseId> Grant(absl::Duration ttl) override {
    if (cut) return Down();
    return base_->Grant(ttl);
  }
  absl::Status KeepAlive(state::LeaseId id) override {
    if (cut) return Down();
    return base_->KeepAlive(id);
  }
  absl::Status Revoke(state::LeaseId id) override {
    if (cut) return Down();
    return base_->Revoke(id);
  }
  absl::StatusOr<state::LeaseInfo> GetLease(state::LeaseId id) override {
    if (cut) return Down();
    return base_->GetLease(id);
  }
  absl::StatusOr<int> ExpireLeases() override {
    if (cut) return Down();
    return base_->ExpireLeases();
  }

 private:
  static absl::Status Down() { return absl::UnavailableError("partitioned from the store"); }
  state::Store* base_;
};

TEST_F(LeaderElectionTest, APartitionedLeaderStepsDownBeforeItsLeaseCanLapse) {
  CutStore link(&store_);
  std::vector<std::string> events;
  LeaderElection c(&link, {.id = "c", .address = "http://127.0.0.1:3"}, Options(&events));
  ASSERT_TRUE(c.Step().ok());
  ASSERT_TRUE(c.IsLeader());
  ASSERT_TRUE(b_.Step().ok());
  link.cut = true;
  absl::Duration stepped_down_after = absl::ZeroDuration();
  absl::Duration b_took_over_after = absl::ZeroDuration();
  for (absl::Duration t = absl::Milliseconds(200); t <= absl::Seconds(6);
       t += absl::Milliseconds(200)) {
    Advance(absl::Milliseconds(200));
    EXPECT_FALSE(c.Step().ok());  // the store is out of reach
    if (!c.IsLeader() && stepped_down_after == absl::ZeroDuration()) stepped_down_after = t;
    ASSERT_TRUE(b_.Step().ok());
    if (b_.IsLeader() && b_took_over_after == absl::ZeroDuration()) b_took_over_after = t;
    // Never two leaders at once.
    EXPECT_FALSE(c.IsLeader() && b_.IsLeader()) << "at " << t;
  }
  EXPECT_GT(stepped_down_after, absl::ZeroDuration());
  EXPECT_LT(stepped_down_after, absl::Seconds(3));
  EXPECT_GE(b_took_over_after, absl::Seconds(3));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back(), "lost");
  link.cut = false;
  ASSERT_TRUE(c.Step().ok());
  EXPECT_FALSE(c.IsLeader());
  ASSERT_TRUE(c.leader().has_value());
  EXPECT_EQ(c.leader()->id, "b");
}

TEST_F(LeaderElectionTest, StopHandsTheLeadOverAtOnce) {
  ASSERT_TRUE(a_.Step().ok());
  ASSERT_TRUE(b_.Step().ok());
  ASSERT_TRUE(a_.IsLeader());
  a_.Stop();
  EXPECT_EQ(a_events_.back(), "lost");
  ASSERT_TRUE(b_.Step().ok());  // no time passed
  EXPECT_TRUE(b_.IsLeader());
}

TEST_F(LeaderElectionTest, ARestartedServerEndsItsOwnDeadRunsLeadAtOnce) {
  ASSERT_TRUE(a_.Step().ok());
  ASSERT_TRUE(b_.Step().ok());
  const int64_t first = a_.token();
  // `a` dies without a word and starts again with the same id (its data directory).
  std::vector<std::string> events;
  LeaderElection again(&store_, {.id = "a", .address = "http://127.0.0.1:9"}, Options(&events));
  ASSERT_TRUE(again.Step().ok());
  EXPECT_TRUE(again.IsLeader());
  EXPECT_GT(again.token(), first);
  EXPECT_EQ(again.leader()->address, "http://127.0.0.1:9");
  // The dead run's fence no longer holds.
  FencedStore dead(&store_, [&] { return first; });
  EXPECT_TRUE(absl::IsUnavailable(dead.Put("/k", "v").status()));
}

TEST_F(LeaderElectionTest, FencingRefusesTheWritesOfADeposedLeader) {
  ASSERT_TRUE(a_.Step().ok());
  ASSERT_TRUE(b_.Step().ok());
  const int64_t old_term = a_.token();
  FencedStore a_store(&store_, [&] { return old_term; });  // a still believes it leads
  FencedStore b_store(&store_, [&] { return b_.token(); });
  ASSERT_TRUE(a_store.Put("/k", "from a").ok());
  // b is not the leader: its writes are refused and change nothing.
  auto refused = b_store.Put("/k", "from b");
  EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  // a stalls; its lease lapses and b takes over.
  for (int i = 0; i < 25 && !b_.IsLeader(); ++i) {
    Advance(absl::Milliseconds(200));
    ASSERT_TRUE(b_.Step().ok());
  }
  ASSERT_TRUE(b_.IsLeader());
  auto deposed = a_store.Put("/k", "late write from a");
  EXPECT_TRUE(absl::IsUnavailable(deposed.status())) << deposed.status();
  EXPECT_NE(deposed.status().message().find("not applied"), std::string::npos);
  // The else branch of a deposed leader's transaction does not run either.
  state::TxnRequest txn;
  txn.compares.push_back(state::Compare::Value("/k", "never"));
  txn.else_ops.push_back(state::Op::Put("/k", "else from a"));
  EXPECT_TRUE(absl::IsUnavailable(a_store.Txn(txn).status()));
  auto got = store_.Get("/k");
  ASSERT_TRUE(got.ok() && got->kv);
  EXPECT_EQ(got->kv->value, "from a");
  // The new leader writes.
  ASSERT_TRUE(b_store.Put("/k", "from b").ok());
  got = store_.Get("/k");
  EXPECT_EQ(got->kv->value, "from b");
}

TEST_F(LeaderElectionTest, AFencedTransactionKeepsItsOwnCompareAndElseSemantics) {
  ASSERT_TRUE(a_.Step().ok());
  FencedStore fenced(&store_, [&] { return a_.token(); });
  ASSERT_TRUE(store_.Put("/x", "1").ok());
  state::TxnRequest txn;
  txn.compares.push_back(state::Compare::Value("/x", "2"));
  txn.then_ops.push_back(state::Op::Put("/then", "ran"));
  txn.else_ops.push_back(state::Op::Put("/else", "ran"));
  auto resp = fenced.Txn(txn);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_FALSE(resp->succeeded);
  EXPECT_FALSE(store_.Get("/then")->kv.has_value());
  EXPECT_TRUE(store_.Get("/else")->kv.has_value());
  ASSERT_TRUE(store_.Put("/x", "2").ok());
  resp = fenced.Txn(txn);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_TRUE(resp->succeeded);
  EXPECT_TRUE(store_.Get("/then")->kv.has_value());
  // A lost compare without an else branch is reported as such, not as a fence failure.
  auto lost = fenced.CompareAndSwap("/x", 1, "3");
  EXPECT_TRUE(absl::IsAborted(lost.status())) << lost.status();
}

// The control plane of a server that loses the lead and wins it again runs its loop again.
TEST_F(LeaderElectionTest, TheControlPlaneRestartsWithTheLead) {
  ControlPlaneOptions o;
  o.clock = &clock_;
  o.policy = "binpack";
  FencedStore fenced(&store_, [&] { return a_.token(); });
  ControlPlane cp(&fenced, o);
  ASSERT_TRUE(a_.Step().ok());
  cp.Start();
  cp.Stop();
  cp.Start();
  cp.Stop();
  EXPECT_EQ(cp.loop_failures(), 0);
}

// A server that starts leading has seen none of the heartbeats (they went to the old leader):
// every host gets a full host_ttl before this server marks it down.
TEST_F(LeaderElectionTest, ANewLeaderGivesEveryHostAFullTtl) {
  ControlPlaneOptions o;
  o.clock = &clock_;
  o.policy = "binpack";
  o.host_ttl = absl::Seconds(10);
  FencedStore fenced(&store_, [&] { return a_.token(); });
  ControlPlane cp(&fenced, o);
  ASSERT_TRUE(a_.Step().ok());
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(1000);
  inv.capacity.memory = core::MemoryMiB(1024);
  ASSERT_TRUE(cp.RegisterHost("h1", inv).ok());
  clock_.Advance(absl::Minutes(5));  // long past the ttl since this server last heard of h1
  ASSERT_TRUE(a_.Step().ok());       // renews (the test store expires nothing by itself)
  ASSERT_TRUE(a_.IsLeader());
  cp.Start();
  auto down = cp.CheckHostsOnce();
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(*down, 0);
  EXPECT_EQ(cp.GetHost("h1")->state, core::HostState::kReady);
  cp.Stop();
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(a_.Step().ok());
  down = cp.CheckHostsOnce();
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(*down, 1);
}

}  // namespace
}  // namespace berth::control
