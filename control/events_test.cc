#include "control/events.h"

#include <set>

#include "control/control_plane.h"
#include "control/object_store.h"
#include "control/storage_service.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

// Makes every volume it is asked for; nothing else is needed here.
class VolumeMaker final : public StorageHost {
 public:
  absl::Status Prepare() override { return absl::OkStatus(); }
  absl::StatusOr<HostVolume> Create(const HostVolumeSpec& spec) override {
    return HostVolume{.format = spec.format, .size_mib = spec.size_mib, .path = spec.name};
  }
  absl::StatusOr<HostVolume> Get(std::string_view) override { return Unsupported(); }
  absl::StatusOr<HostVolume> Resize(std::string_view, int64_t, std::string_view) override {
    return Unsupported();
  }
  absl::Status Snapshot(std::string_view, std::string_view) override { return Unsupported(); }
  absl::Status Revert(std::string_view, std::string_view, std::string_view) override {
    return Unsupported();
  }
  absl::Status DeleteSnapshot(std::string_view, std::string_view) override { return Unsupported(); }
  absl::StatusOr<HostVolume> Clone(std::string_view, std::string_view, std::string_view,
                                   std::string_view) override {
    return Unsupported();
  }
  absl::StatusOr<HostBackup> Backup(std::string_view, const std::string&,
                                    const Progress&) override {
    return Unsupported();
  }
  absl::StatusOr<HostVolume> Restore(const std::string&, std::string_view, std::string_view,
                                     const Progress&) override {
    return Unsupported();
  }
  absl::Status Delete(std::string_view, std::string_view) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<HostPool>> Pools() override { return Unsupported(); }

 private:
  static absl::Status Unsupported() { return absl::UnimplementedError("not in this test"); }
};

core::WorkloadSpec Spec(const std::string& name) {
  core::Json j = {{"name", name},
                  {"kind", "process"},
                  {"command", {"/bin/true"}},
                  {"resources", {{"cpu", "100m"}, {"memory", "16Mi"}}}};
  return *core::DecodeWorkloadSpec(j);
}

class EventLogTest : public ::testing::Test {
 protected:
  // The clock never moves: every event carries the same time, so only the sequence keeps
  // their keys apart.
  core::ManualClock clock_;
  state::MemoryStore store_{
      state::StoreOptions{.clock = &clock_, .lease_tick_interval = absl::ZeroDuration()}};
};

TEST_F(EventLogTest, DisksAndWorkloadsShareOneSequenceWithoutCollisions) {
  ControlPlane cp(&store_, ControlPlaneOptions{.clock = &clock_});
  // A second control plane over the same store (a standby, a test's second server) writes
  // through the same sequence.
  ControlPlane other(&store_, ControlPlaneOptions{.clock = &clock_});
  VolumeMaker host;
  StorageService disks(&store_, &clock_, &host);
  constexpr int kRounds = 5;
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_TRUE(cp.CreateWorkload(Spec(core::Cat("w", i))).ok());
    ASSERT_TRUE(disks.Create({.name = core::Cat("d", i), .size = "1Gi"}).ok());
    ASSERT_TRUE(other.CreateWorkload(Spec(core::Cat("x", i))).ok());
  }
  ASSERT_TRUE(disks.Delete("d0").ok());

  auto keys = store_.List(kEventPrefix);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->kvs.size(), 3u * kRounds + 1) << "an event overwrote another";

  auto events = cp.ListEvents(0, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 3u * kRounds + 1);
  std::set<int64_t> revisions;
  for (size_t i = 0; i < events->size(); ++i) {
    const core::Event& e = (*events)[i];
    revisions.insert(e.revision);
    if (i == events->size() - 1) {
      EXPECT_EQ(e.kind, "disk");
      EXPECT_EQ(e.type, "deleted");
      continue;
    }
    // Written in the order of the calls, each in the transaction of its change.
    const char* kinds[] = {"workload", "disk", "workload"};
    EXPECT_EQ(e.kind, kinds[i % 3]) << i;
    EXPECT_EQ(e.type, "created") << i;
    const char* prefixes[] = {"w", "d", "x"};
    EXPECT_EQ(e.object, core::Cat(prefixes[i % 3], i / 3)) << i;
    if (i > 0) EXPECT_LT((*events)[i - 1].revision, e.revision);
  }
  EXPECT_EQ(revisions.size(), events->size());
}

TEST_F(EventLogTest, KeysSortByTimeThenSequence) {
  EXPECT_LT(EventKey(absl::FromUnixSeconds(1), 99), EventKey(absl::FromUnixSeconds(2), 0));
  EXPECT_LT(EventKey(absl::FromUnixSeconds(1), 1), EventKey(absl::FromUnixSeconds(1), 2));
  EXPECT_EQ(EventKey(absl::FromUnixNanos(5), 7), "/events/00000000000000000005-00000007");
}

TEST_F(EventLogTest, AnEventCommitsOnlyWithItsChange) {
  EventLog log(&store_, &clock_);
  state::TxnRequest txn;
  txn.compares.push_back(state::Compare::ModRevision("/disks/nope", 42));
  log.Add(&txn.then_ops, "disk", "nope", "resized", "never happened");
  ASSERT_TRUE(store_.Txn(txn).ok());
  EXPECT_TRUE(log.List(0, 0)->empty());
}

TEST_F(EventLogTest, TrimKeepsTheNewest) {
  EventLog log(&store_, &clock_);
  for (int i = 0; i < 5; ++i) {
    state::TxnRequest txn;
    log.Add(&txn.then_ops, "host", "h1", "up", core::Cat("beat ", i));
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(store_.Txn(txn).ok());
  }
  ASSERT_TRUE(log.Trim(2).ok());
  auto left = log.List(0, 0);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ((*left)[0].message, "beat 3");
  EXPECT_EQ((*left)[1].message, "beat 4");
  // `limit` keeps the newest too.
  auto last = log.List(0, 1);
  ASSERT_EQ(last->size(), 1u);
  EXPECT_EQ((*last)[0].message, "beat 4");
}

// etcd refuses transactions of more than 128 operations, so a long trim goes in batches of 100:
// each batch is one transaction, one store revision.
TEST_F(EventLogTest, ALongTrimGoesInBatchesOfAHundred) {
  EventLog log(&store_, &clock_);
  state::TxnRequest txn;
  for (int i = 0; i < 260; ++i) log.Add(&txn.then_ops, "host", "h1", "up", core::Cat("beat ", i));
  ASSERT_TRUE(store_.Txn(txn).ok());
  int64_t before = *store_.Revision();
  ASSERT_TRUE(log.Trim(10).ok());
  EXPECT_EQ(*store_.Revision() - before, 3);  // 250 deletes: 100 + 100 + 50
  auto left = log.List(0, 0);
  ASSERT_TRUE(left.ok());
  ASSERT_EQ(left->size(), 10u);
  EXPECT_EQ((*left)[0].message, "beat 250");
  EXPECT_EQ((*left)[9].message, "beat 259");
}

}  // namespace
}  // namespace berth::control
