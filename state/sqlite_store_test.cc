// SqliteStore beyond the shared contract: what survives a close and reopen, and how it fails.
#include "state/sqlite_store.h"

#include <fstream>

#include "core/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/store_test_util.h"

namespace berth::state {
namespace {

using ::testing::ElementsAre;

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteStore> Open() {
    StoreOptions options;
    options.clock = &clock_;
    options.lease_tick_interval = absl::ZeroDuration();
    auto store = SqliteStore::Open(path_, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  testing::ScratchDir dir_;
  std::string path_ = dir_.path() + "/state.db";
  core::ManualClock clock_;
};

TEST_F(SqliteStoreTest, ReopenKeepsEverything) {
  LeaseId lease;
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Put("/a", "1").ok());                    // 1
    ASSERT_TRUE(store->Put("/a", "2").ok());                    // 2
    ASSERT_TRUE(store->Put("/b", "x").ok());                    // 3
    ASSERT_TRUE(store->Delete("/b").ok());                      // 4
    ASSERT_TRUE(store->Put("/c", std::string("\0z", 2)).ok());  // 5
    lease = store->Grant(absl::Seconds(10)).value();
    ASSERT_TRUE(store->Put("/host", "up", PutOptions{.lease = lease}).ok());  // 6
    ASSERT_TRUE(store->Compact(1).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Revision().value(), 6);
  EXPECT_EQ(store->CompactedRevision().value(), 1);
  std::optional<KeyValue> a = store->Get("/a").value().kv;
  EXPECT_EQ(
      a,
      (KeyValue{.key = "/a", .value = "2", .create_revision = 1, .mod_revision = 2, .version = 2}));
  EXPECT_EQ(store->Get("/b").value().kv, std::nullopt);
  EXPECT_EQ(store->Get("/c").value().kv->value, std::string("\0z", 2));

  // History survives, compaction included.
  EXPECT_EQ(store->Watch("", 1, [](const Event&) {}).status().code(),
            absl::StatusCode::kOutOfRange);
  testing::EventLog log;
  auto watch = store->Watch("", 2, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  std::vector<Event> events = log.WaitFor(5);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].kv.value, "2");
  EXPECT_EQ(events[2].type, Event::Type::kDelete);
  EXPECT_EQ(events[2].kv.key, "/b");
  EXPECT_EQ(events[4].kv.lease, lease);

  // The lease survives with a fresh ttl, keeps its keys, and new leases get new ids.
  absl::StatusOr<LeaseInfo> info = store->GetLease(lease);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->ttl, absl::Seconds(10));
  EXPECT_EQ(info->remaining, absl::Seconds(10));
  EXPECT_THAT(info->keys, ElementsAre("/host"));
  EXPECT_NE(store->Grant(absl::Seconds(1)).value(), lease);
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(store->ExpireLeases().value(), 2);
  EXPECT_EQ(store->Get("/host").value().kv, std::nullopt);
  EXPECT_EQ(store->Put("/d", "1").value(), 8);
}

TEST_F(SqliteStoreTest, SecondOpenIsRefusedWhileTheFirstIsOpen) {
  auto first = Open();
  ASSERT_NE(first, nullptr);
  auto second = SqliteStore::Open(path_, StoreOptions{.lease_tick_interval = absl::ZeroDuration()});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  first.reset();
  auto third = SqliteStore::Open(path_, StoreOptions{.lease_tick_interval = absl::ZeroDuration()});
  EXPECT_TRUE(third.ok()) << third.status();
}

TEST_F(SqliteStoreTest, NotADatabase) {
  {
    std::ofstream out(path_);
    out << "this is not an sqlite database, just some text that is long enough to have a header";
  }
  auto store = SqliteStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(std::string(store.status().message()), ::testing::HasSubstr(path_));
}

TEST_F(SqliteStoreTest, MissingDirectory) {
  auto store = SqliteStore::Open(dir_.path() + "/no/such/dir/state.db");
  EXPECT_FALSE(store.ok());
}

TEST_F(SqliteStoreTest, LeaseTickerExpiresLeasesOnItsOwn) {
  StoreOptions options;
  options.clock = &clock_;
  options.lease_tick_interval = absl::Milliseconds(5);
  auto store = SqliteStore::Open(path_, options);
  ASSERT_TRUE(store.ok()) << store.status();
  LeaseId lease = (*store)->Grant(absl::Seconds(1)).value();
  ASSERT_TRUE((*store)->Put("/host", "up", PutOptions{.lease = lease}).ok());
  clock_.Advance(absl::Seconds(2));
  // The ticker runs on real time; poll with a generous deadline.
  EXPECT_EQ((*store)->WaitForChange("/host", 1, absl::Seconds(60)).value(), 2);
  EXPECT_EQ((*store)->Get("/host").value().kv, std::nullopt);
}

}  // namespace
}  // namespace berth::state
