// The Store contract: one typed suite run against every implementation. state_test runs it
// against the in-process stores; state_etcd_contract_test compiles this file again with
// BERTH_STORE_CONTRACT_ETCD to run it against EtcdStore on a real etcd.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"
#include "state/sqlite_store.h"
#include "state/store.h"
#include "state/store_test_util.h"
#ifdef BERTH_STORE_CONTRACT_ETCD
#include "state/etcd/etcd_store.h"
#include "state/etcd/etcd_test_util.h"
#endif

namespace berth::state {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Each factory says where its store differs from the in-process ones, as etcd forces it to:
//  kLeasesFollowTheStoreClock: leases expire by StoreOptions::clock through ExpireLeases().
//  kOneTxnMayWriteAKeyTwice: a later op of a transaction may rewrite a key an earlier one wrote.
class MemoryFactory {
 public:
  static constexpr bool kLeasesFollowTheStoreClock = true;
  static constexpr bool kOneTxnMayWriteAKeyTwice = true;
  std::unique_ptr<Store> Make(const StoreOptions& options) {
    return std::make_unique<MemoryStore>(options);
  }
};

class SqliteFactory {
 public:
  static constexpr bool kLeasesFollowTheStoreClock = true;
  static constexpr bool kOneTxnMayWriteAKeyTwice = true;
  std::unique_ptr<Store> Make(const StoreOptions& options) {
    auto store = SqliteStore::Open(dir_.path() + "/state.db", options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

 private:
  testing::ScratchDir dir_;
};

template <typename Factory>
class StoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = Make();
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<Store> Make(int64_t history_limit = 10000) {
    StoreOptions options;
    options.clock = &clock_;
    options.lease_tick_interval = absl::ZeroDuration();
    options.history_limit = history_limit;
    return factory_.Make(options);
  }

  std::optional<KeyValue> GetKv(std::string_view key) {
    absl::StatusOr<GetResponse> response = store_->Get(key);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->kv : std::nullopt;
  }

  int64_t Rev() {
    absl::StatusOr<int64_t> revision = store_->Revision();
    EXPECT_TRUE(revision.ok()) << revision.status();
    return revision.value_or(-1);
  }

  std::vector<std::string> Keys(const ListResponse& response) {
    std::vector<std::string> keys;
    for (const KeyValue& kv : response.kvs) keys.push_back(kv.key);
    return keys;
  }

  core::ManualClock clock_;
  Factory factory_;
  std::unique_ptr<Store> store_;
};

#ifdef BERTH_STORE_CONTRACT_ETCD
// A fresh single-member etcd per test, so that every test starts at revision 0.
class EtcdFactory {
 public:
  // etcd's leases expire by the cluster's clock (EtcdStoreTest covers them), and etcd refuses a
  // transaction that writes one key twice.
  static constexpr bool kLeasesFollowTheStoreClock = false;
  static constexpr bool kOneTxnMayWriteAKeyTwice = false;
  std::unique_ptr<Store> Make(const StoreOptions& options) {
    if (cluster_ == nullptr) {
      auto cluster = testing::EtcdCluster::Start(1);
      EXPECT_TRUE(cluster.ok()) << cluster.status();
      if (!cluster.ok()) return nullptr;
      cluster_ = std::move(*cluster);
    }
    auto store = EtcdStore::Open(cluster_->endpoints(), EtcdStoreOptions{.store = options});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

 private:
  std::unique_ptr<testing::EtcdCluster> cluster_;
};
using Implementations = ::testing::Types<EtcdFactory>;
#else
using Implementations = ::testing::Types<MemoryFactory, SqliteFactory>;
#endif
TYPED_TEST_SUITE(StoreContractTest, Implementations);

Event PutEvent(std::string key, std::string value, int64_t create, int64_t mod, int64_t version) {
  return Event{.type = Event::Type::kPut,
               .kv = KeyValue{.key = std::move(key),
                              .value = std::move(value),
                              .create_revision = create,
                              .mod_revision = mod,
                              .version = version}};
}

Event DeleteEvent(std::string key, int64_t revision) {
  return Event{.type = Event::Type::kDelete,
               .kv = KeyValue{.key = std::move(key), .mod_revision = revision}};
}

TYPED_TEST(StoreContractTest, EmptyStore) {
  EXPECT_EQ(this->Rev(), 0);
  EXPECT_EQ(this->GetKv("/a"), std::nullopt);
  absl::StatusOr<ListResponse> list = this->store_->List("");
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(list->kvs, IsEmpty());
  EXPECT_EQ(list->revision, 0);
}

TYPED_TEST(StoreContractTest, PutsMoveRevisionsAndVersions) {
  EXPECT_EQ(this->store_->Put("/a", "1").value(), 1);
  EXPECT_EQ(this->store_->Put("/a", "2").value(), 2);
  EXPECT_EQ(this->store_->Put("/b", "x").value(), 3);
  EXPECT_EQ(
      this->GetKv("/a"),
      (KeyValue{.key = "/a", .value = "2", .create_revision = 1, .mod_revision = 2, .version = 2}));
  EXPECT_EQ(this->GetKv("/b")->create_revision, 3);
  absl::StatusOr<GetResponse> get = this->store_->Get("/a");
  ASSERT_TRUE(get.ok());
  EXPECT_EQ(get->revision, 3);
}

TYPED_TEST(StoreContractTest, BinaryKeysAndValues) {
  std::string key("/bin/\0\xff", 7);
  std::string value("\0\x01\x02", 3);
  ASSERT_TRUE(this->store_->Put(key, value).ok());
  ASSERT_TRUE(this->store_->Put("/empty", "").ok());
  EXPECT_EQ(this->GetKv(key)->value, value);
  EXPECT_EQ(this->GetKv("/empty")->value, "");
}

TYPED_TEST(StoreContractTest, DeleteThenRecreateStartsOver) {
  ASSERT_TRUE(this->store_->Put("/a", "1").ok());
  ASSERT_TRUE(this->store_->Put("/a", "2").ok());
  EXPECT_EQ(this->store_->Delete("/a").value(), true);
  EXPECT_EQ(this->Rev(), 3);
  EXPECT_EQ(this->GetKv("/a"), std::nullopt);
  // Deleting what is absent changes nothing, not even the revision.
  EXPECT_EQ(this->store_->Delete("/a").value(), false);
  EXPECT_EQ(this->Rev(), 3);
  ASSERT_TRUE(this->store_->Put("/a", "3").ok());
  std::optional<KeyValue> kv = this->GetKv("/a");
  EXPECT_EQ(kv->create_revision, 4);
  EXPECT_EQ(kv->version, 1);
}

TYPED_TEST(StoreContractTest, CreateIfAbsent) {
  EXPECT_EQ(this->store_->CreateIfAbsent("/a", "1").value(), 1);
  absl::StatusOr<int64_t> again = this->store_->CreateIfAbsent("/a", "2");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(this->GetKv("/a")->value, "1");
  EXPECT_EQ(this->Rev(), 1);
}

TYPED_TEST(StoreContractTest, CompareAndSwap) {
  EXPECT_EQ(this->store_->CompareAndSwap("/a", 0, "1").value(), 1);
  EXPECT_EQ(this->store_->CompareAndSwap("/a", 0, "x").status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(this->store_->CompareAndSwap("/a", 1, "2").value(), 2);
  EXPECT_EQ(this->store_->CompareAndSwap("/a", 1, "3").status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(this->GetKv("/a")->value, "2");

  EXPECT_EQ(this->store_->CompareAndDelete("/a", 1).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(this->store_->CompareAndDelete("/a", 2).ok());
  EXPECT_EQ(this->store_->CompareAndDelete("/a", 2).code(), absl::StatusCode::kNotFound);
}

TYPED_TEST(StoreContractTest, TxnIsAllOrNothingAcrossKeys) {
  ASSERT_TRUE(this->store_->Put("/host/a", "free").ok());  // rev 1
  ASSERT_TRUE(this->store_->Put("/host/b", "free").ok());  // rev 2
  ASSERT_TRUE(this->store_->Put("/host/b", "busy").ok());  // rev 3

  // One stale compare makes the whole transaction take the else branch.
  TxnRequest stale{
      .compares = {Compare::ModRevision("/host/a", 1), Compare::ModRevision("/host/b", 2)},
      .then_ops = {Op::Put("/host/a", "taken"), Op::Put("/host/b", "taken"),
                   Op::Put("/plan", "p1")},
      .else_ops = {}};
  absl::StatusOr<TxnResponse> failed = this->store_->Txn(stale);
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_FALSE(failed->succeeded);
  EXPECT_EQ(failed->revision, 3);
  EXPECT_EQ(this->GetKv("/host/a")->value, "free");
  EXPECT_EQ(this->GetKv("/plan"), std::nullopt);

  TxnRequest fresh = stale;
  fresh.compares[1].number = 3;
  absl::StatusOr<TxnResponse> done = this->store_->Txn(fresh);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_TRUE(done->succeeded);
  EXPECT_EQ(done->revision, 4);
  ASSERT_EQ(done->responses.size(), 3u);
  EXPECT_EQ(done->responses[0].prev_kvs.at(0).value, "free");
  EXPECT_EQ(done->responses[1].prev_kvs.at(0).value, "busy");
  EXPECT_THAT(done->responses[2].prev_kvs, IsEmpty());
  // Every op of one transaction commits at the same revision.
  for (const char* key : {"/host/a", "/host/b", "/plan"}) {
    EXPECT_EQ(this->GetKv(key)->mod_revision, 4) << key;
    EXPECT_EQ(this->GetKv(key)->value, key == std::string("/plan") ? "p1" : "taken");
  }
}

TYPED_TEST(StoreContractTest, TxnCompareTargetsAndElseBranch) {
  ASSERT_TRUE(this->store_->Put("/k", "v1").ok());
  ASSERT_TRUE(this->store_->Put("/k", "v2").ok());
  auto check = [&](Compare compare) {
    TxnRequest request{
        .compares = {std::move(compare)}, .then_ops = {}, .else_ops = {Op::Put("/else", "ran")}};
    absl::StatusOr<TxnResponse> response = this->store_->Txn(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() && response->succeeded;
  };
  EXPECT_TRUE(check(Compare::Value("/k", "v2")));
  EXPECT_FALSE(check(Compare::Value("/k", "v1")));
  EXPECT_FALSE(check(Compare::Value("/missing", "")));
  EXPECT_TRUE(check(Compare::Version("/k", 2)));
  EXPECT_TRUE(check(Compare::CreateRevision("/k", 1)));
  EXPECT_TRUE(check(Compare::Absent("/missing")));
  EXPECT_FALSE(check(Compare::Absent("/k")));
  EXPECT_TRUE(check(Compare::Version("/missing", 0)));
  EXPECT_EQ(this->GetKv("/else")->version, 3);
}

TYPED_TEST(StoreContractTest, TxnOpsSeeEarlierOpsOfTheSameTxn) {
  ASSERT_TRUE(this->store_->Put("/d/1", "a").ok());
  ASSERT_TRUE(this->store_->Put("/d/2", "b").ok());
  TxnRequest request{
      .compares = {},
      .then_ops = {Op::Put("/d/3", "c"), Op::DeletePrefix("/d/"), Op::Put("/d/1", "again")},
      .else_ops = {}};
  if constexpr (!TypeParam::kOneTxnMayWriteAKeyTwice) {
    // Refused whole, naming the op, and nothing changes.
    absl::StatusOr<TxnResponse> refused = this->store_->Txn(request);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
    EXPECT_NE(refused.status().message().find("then_ops["), absl::string_view::npos);
    TxnRequest two_puts{
        .compares = {}, .then_ops = {}, .else_ops = {Op::Put("/e", "1"), Op::Put("/e", "2")}};
    EXPECT_EQ(this->store_->Txn(two_puts).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(this->Rev(), 2);
    // Deletes may overlap: the later one finds what the earlier one left.
    TxnRequest deletes{
        .compares = {}, .then_ops = {Op::Delete("/d/1"), Op::DeletePrefix("/d/")}, .else_ops = {}};
    absl::StatusOr<TxnResponse> deleted = this->store_->Txn(deletes);
    ASSERT_TRUE(deleted.ok()) << deleted.status();
    EXPECT_EQ(deleted->responses[0].prev_kvs.size(), 1u);
    EXPECT_EQ(deleted->responses[1].prev_kvs.size(), 1u);
    EXPECT_EQ(this->Rev(), 3);
    return;
  }
  absl::StatusOr<TxnResponse> response = this->store_->Txn(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->responses[1].prev_kvs.size(), 3u);
  absl::StatusOr<ListResponse> list = this->store_->List("/d/");
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(this->Keys(*list), ElementsAre("/d/1"));
  EXPECT_EQ(list->kvs[0].version, 1);
  EXPECT_EQ(list->kvs[0].create_revision, 3);
}

TYPED_TEST(StoreContractTest, BadTxnChangesNothing) {
  ASSERT_TRUE(this->store_->Put("/a", "1").ok());
  TxnRequest empty_key{.compares = {}, .then_ops = {Op::Put("", "x")}, .else_ops = {}};
  EXPECT_EQ(this->store_->Txn(empty_key).status().code(), absl::StatusCode::kInvalidArgument);
  TxnRequest bad_lease{
      .compares = {},
      .then_ops = {Op::Put("/a", "2"), Op::Put("/b", "x", PutOptions{.lease = 12345})},
      .else_ops = {}};
  EXPECT_EQ(this->store_->Txn(bad_lease).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->GetKv("/a")->value, "1");
  EXPECT_EQ(this->Rev(), 1);
}

TYPED_TEST(StoreContractTest, ListByPrefixWithLimitAndPaging) {
  for (const char* key : {"/w/c", "/w/a", "/x/a", "/w/b", "/w", "/wa"}) {
    ASSERT_TRUE(this->store_->Put(key, "v").ok());
  }
  absl::StatusOr<ListResponse> all = this->store_->List("/w/");
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(this->Keys(*all), ElementsAre("/w/a", "/w/b", "/w/c"));
  EXPECT_FALSE(all->more);
  EXPECT_EQ(all->revision, 6);

  absl::StatusOr<ListResponse> page = this->store_->List("/w/", ListOptions{.limit = 2});
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(this->Keys(*page), ElementsAre("/w/a", "/w/b"));
  EXPECT_TRUE(page->more);
  page = this->store_->List("/w/", ListOptions{.limit = 2, .start_after = "/w/b"});
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(this->Keys(*page), ElementsAre("/w/c"));
  EXPECT_FALSE(page->more);

  EXPECT_EQ(this->store_->List("/w/", ListOptions{.limit = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<ListResponse> everything = this->store_->List("");
  ASSERT_TRUE(everything.ok());
  EXPECT_EQ(everything->kvs.size(), 6u);
}

TYPED_TEST(StoreContractTest, ListLeavesOutWhatWasLastModifiedBeforeARevision) {
  for (const char* key : {"/w/a", "/w/b", "/w/c", "/w/d"}) {
    ASSERT_TRUE(this->store_->Put(key, "v").ok());  // revisions 1 to 4
  }
  ASSERT_TRUE(this->store_->Put("/w/a", "again").ok());  // 5
  absl::StatusOr<ListResponse> recent =
      this->store_->List("/w/", ListOptions{.min_mod_revision = 3});
  ASSERT_TRUE(recent.ok()) << recent.status();
  EXPECT_THAT(this->Keys(*recent), ElementsAre("/w/a", "/w/c", "/w/d"));
  EXPECT_EQ(recent->revision, 5);
  // With a limit: only entries modified at or after the revision, the first of them first.
  absl::StatusOr<ListResponse> page =
      this->store_->List("/w/", ListOptions{.limit = 1, .min_mod_revision = 4});
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_FALSE(page->kvs.empty());
  EXPECT_EQ(page->kvs[0].key, "/w/a");
  for (const KeyValue& kv : page->kvs) EXPECT_GE(kv.mod_revision, 4);
  absl::StatusOr<ListResponse> none = this->store_->List("/w/", ListOptions{.min_mod_revision = 6});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->kvs.empty());
}

TYPED_TEST(StoreContractTest, DeletePrefix) {
  for (const char* key : {"/w/a", "/w/b", "/wx"}) ASSERT_TRUE(this->store_->Put(key, "v").ok());
  EXPECT_EQ(this->store_->DeletePrefix("/w/").value(), 2);
  EXPECT_EQ(this->Rev(), 4);
  absl::StatusOr<ListResponse> list = this->store_->List("");
  ASSERT_TRUE(list.ok());
  EXPECT_THAT(this->Keys(*list), ElementsAre("/wx"));
  EXPECT_EQ(this->store_->DeletePrefix("/w/").value(), 0);
  EXPECT_EQ(this->Rev(), 4);
}

TYPED_TEST(StoreContractTest, WatchReplaysHistoryThenFollowsInOrder) {
  ASSERT_TRUE(this->store_->Put("/w/a", "1").ok());    // 1
  ASSERT_TRUE(this->store_->Put("/other", "x").ok());  // 2
  ASSERT_TRUE(this->store_->Put("/w/b", "1").ok());    // 3
  ASSERT_TRUE(this->store_->Put("/w/a", "2").ok());    // 4
  testing::EventLog log;
  absl::StatusOr<std::unique_ptr<WatchHandle>> watch =
      this->store_->Watch("/w/", 2, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  ASSERT_TRUE(this->store_->Delete("/w/b").ok());      // 5
  ASSERT_TRUE(this->store_->Put("/other", "y").ok());  // 6
  TxnRequest txn{
      .compares = {}, .then_ops = {Op::Put("/w/c", "1"), Op::Put("/w/d", "1")}, .else_ops = {}};
  ASSERT_TRUE(this->store_->Txn(txn).ok());  // 7
  EXPECT_THAT(log.WaitFor(5),
              ElementsAre(PutEvent("/w/b", "1", 3, 3, 1), PutEvent("/w/a", "2", 1, 4, 2),
                          DeleteEvent("/w/b", 5), PutEvent("/w/c", "1", 7, 7, 1),
                          PutEvent("/w/d", "1", 7, 7, 1)));
}

// A watcher learns when a transaction is complete for it: every event but the last of its
// revision (among the keys it watches) says more follow, live and when replayed from history.
TYPED_TEST(StoreContractTest, AWatchMarksEventsThatMoreOfTheirRevisionFollow) {
  testing::EventLog live;
  auto watch = this->store_->Watch("/m/", 0, live.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  TxnRequest txn{.compares = {},
                 .then_ops = {Op::Put("/m/a", "1"), Op::Put("/m/b", "1"), Op::Put("/other", "1"),
                              Op::Put("/m/c", "1")},
                 .else_ops = {}};
  ASSERT_TRUE(this->store_->Txn(txn).ok());            // 1
  ASSERT_TRUE(this->store_->Put("/m/d", "1").ok());    // 2
  ASSERT_TRUE(this->store_->Put("/other", "2").ok());  // 3
  ASSERT_TRUE(this->store_->Put("/m/a", "2").ok());    // 4
  auto flags = [](const std::vector<Event>& events) {
    std::vector<bool> out;
    for (const Event& e : events) out.push_back(e.more_in_revision);
    return out;
  };
  EXPECT_THAT(flags(live.WaitFor(5)), ElementsAre(true, true, false, false, false));
  testing::EventLog replayed;
  auto again = this->store_->Watch("/m/", 1, replayed.Callback());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_THAT(flags(replayed.WaitFor(5)), ElementsAre(true, true, false, false, false));
}

TYPED_TEST(StoreContractTest, WatchFromZeroSeesOnlyNewChanges) {
  ASSERT_TRUE(this->store_->Put("/a", "old").ok());
  testing::EventLog log;
  auto watch = this->store_->Watch("", 0, log.Callback());
  ASSERT_TRUE(watch.ok());
  ASSERT_TRUE(this->store_->Put("/a", "new").ok());
  EXPECT_THAT(log.WaitFor(1), ElementsAre(PutEvent("/a", "new", 1, 2, 2)));
}

TYPED_TEST(StoreContractTest, NoCallbackAfterHandleIsDestroyed) {
  std::atomic<int> calls{0};
  auto watch = this->store_->Watch("/k", 0, [&calls](const Event&) { ++calls; });
  ASSERT_TRUE(watch.ok());
  testing::EventLog sentinel;
  auto sentinel_watch = this->store_->Watch("/k", 0, sentinel.Callback());
  ASSERT_TRUE(sentinel_watch.ok());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(this->store_->Put("/k", "v").ok());
  watch->reset();
  int seen = calls.load();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(this->store_->Put("/k", "v").ok());
  ASSERT_EQ(sentinel.WaitFor(40).size(), 40u);
  EXPECT_EQ(calls.load(), seen);
}

TYPED_TEST(StoreContractTest, CallbackMayEndItsOwnWatchAndCallTheStore) {
  absl::Notification done;
  std::unique_ptr<WatchHandle> handle;
  absl::Mutex mu;
  std::optional<KeyValue> read;
  Store* store = this->store_.get();
  auto watch = store->Watch("/k", 0, [&](const Event& event) {
    absl::MutexLock lock(&mu);
    read = store->Get("/k").value().kv;
    handle.reset();
    if (!done.HasBeenNotified()) done.Notify();
  });
  ASSERT_TRUE(watch.ok());
  {
    absl::MutexLock lock(&mu);
    handle = std::move(*watch);
  }
  ASSERT_TRUE(store->Put("/k", "v").ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(60)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(handle, nullptr);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->value, "v");
}

TYPED_TEST(StoreContractTest, CompactedRevisionIsAnError) {
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(this->store_->Put("/k", std::to_string(i)).ok());
  ASSERT_TRUE(this->store_->Compact(3).ok());
  EXPECT_EQ(this->store_->CompactedRevision().value(), 3);
  auto watch = this->store_->Watch("/k", 3, [](const Event&) {});
  EXPECT_EQ(watch.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(CompactedRevision(watch.status()), 3);
  EXPECT_EQ(CompactedRevision(absl::OutOfRangeError("other")), std::nullopt);

  testing::EventLog log;
  auto from4 = this->store_->Watch("/k", 4, log.Callback());
  ASSERT_TRUE(from4.ok()) << from4.status();
  std::vector<Event> events = log.WaitFor(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].revision(), 4);
  EXPECT_EQ(events[1].revision(), 5);

  EXPECT_TRUE(this->store_->Compact(2).ok());  // already compacted: no change
  EXPECT_EQ(this->store_->CompactedRevision().value(), 3);
  EXPECT_EQ(this->store_->Compact(6).code(), absl::StatusCode::kOutOfRange);
}

TYPED_TEST(StoreContractTest, HistoryIsCompactedAutomatically) {
  this->store_.reset();  // a file-backed store has one owner at a time
  this->store_ = this->Make(/*history_limit=*/10);
  ASSERT_NE(this->store_, nullptr);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(this->store_->Put("/k", "v").ok());
  int64_t compacted = this->store_->CompactedRevision().value();
  EXPECT_GT(compacted, 0);
  EXPECT_LE(compacted, 30);
  EXPECT_EQ(this->store_->Watch("/k", 1, [](const Event&) {}).status().code(),
            absl::StatusCode::kOutOfRange);
  testing::EventLog log;
  auto watch = this->store_->Watch("/k", 31, log.Callback());
  ASSERT_TRUE(watch.ok()) << watch.status();
  EXPECT_EQ(log.WaitFor(10).size(), 10u);
}

TYPED_TEST(StoreContractTest, WaitForChange) {
  ASSERT_TRUE(this->store_->Put("/a/x", "1").ok());  // 1
  ASSERT_TRUE(this->store_->Put("/b/x", "1").ok());  // 2
  // Already in history: returns at once.
  EXPECT_EQ(this->store_->WaitForChange("/a/", 0, absl::Seconds(60)).value(), 1);
  EXPECT_EQ(this->store_->WaitForChange("/b/", 1, absl::Seconds(60)).value(), 2);
  // Nothing happens: times out.
  EXPECT_EQ(this->store_->WaitForChange("/a/", 1, absl::Milliseconds(1)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  // A change from another thread wakes the waiter.
  std::thread writer([&] {
    ASSERT_TRUE(this->store_->Put("/b/y", "1").ok());  // 3
    ASSERT_TRUE(this->store_->Put("/a/y", "1").ok());  // 4
  });
  EXPECT_EQ(this->store_->WaitForChange("/a/", 2, absl::Seconds(60)).value(), 4);
  writer.join();
}

TYPED_TEST(StoreContractTest, LeasesExpireByTheClock) {
  if constexpr (!TypeParam::kLeasesFollowTheStoreClock) {
    // Skipped on purpose: a ManualClock cannot drive an etcd cluster's lease clock.
    // EtcdStoreTest.LeasesExpireByTheClusterClock checks the same promises in real time.
    GTEST_SKIP() << "leases expire by the store's own clock";
  }
  absl::StatusOr<LeaseId> lease = this->store_->Grant(absl::Seconds(10));
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(this->store_->Put("/hosts/a", "up", PutOptions{.lease = *lease}).ok());  // 1
  ASSERT_TRUE(this->store_->Put("/hosts/b", "up", PutOptions{.lease = *lease}).ok());  // 2
  ASSERT_TRUE(this->store_->Put("/keep", "v").ok());                                   // 3
  EXPECT_EQ(this->GetKv("/hosts/a")->lease, *lease);

  this->clock_.Advance(absl::Seconds(6));
  EXPECT_EQ(this->store_->ExpireLeases().value(), 0);
  EXPECT_EQ(this->store_->GetLease(*lease)->remaining, absl::Seconds(4));
  ASSERT_TRUE(this->store_->KeepAlive(*lease).ok());
  this->clock_.Advance(absl::Seconds(9));
  EXPECT_EQ(this->store_->ExpireLeases().value(), 0);
  EXPECT_EQ(this->GetKv("/hosts/a")->value, "up");

  testing::EventLog log;
  auto watch = this->store_->Watch("/hosts/", 0, log.Callback());
  ASSERT_TRUE(watch.ok());
  this->clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(this->store_->ExpireLeases().value(), 1);
  EXPECT_EQ(this->GetKv("/hosts/a"), std::nullopt);
  EXPECT_EQ(this->GetKv("/hosts/b"), std::nullopt);
  EXPECT_EQ(this->GetKv("/keep")->value, "v");
  EXPECT_EQ(this->Rev(), 4);
  EXPECT_THAT(log.WaitFor(2), ElementsAre(DeleteEvent("/hosts/a", 4), DeleteEvent("/hosts/b", 4)));

  EXPECT_EQ(this->store_->KeepAlive(*lease).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store_->GetLease(*lease).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store_->Put("/hosts/a", "up", PutOptions{.lease = *lease}).status().code(),
            absl::StatusCode::kNotFound);
}

TYPED_TEST(StoreContractTest, RevokeDeletesOnlyKeysStillAttached) {
  LeaseId lease = this->store_->Grant(absl::Seconds(30)).value();
  LeaseId other = this->store_->Grant(absl::Seconds(30)).value();
  EXPECT_NE(lease, other);
  EXPECT_NE(lease, 0);
  ASSERT_TRUE(this->store_->Put("/a", "1", PutOptions{.lease = lease}).ok());
  ASSERT_TRUE(this->store_->Put("/b", "1", PutOptions{.lease = lease}).ok());
  ASSERT_TRUE(this->store_->Put("/b", "2").ok());  // detaches /b
  ASSERT_TRUE(this->store_->Put("/c", "1", PutOptions{.lease = other}).ok());
  EXPECT_THAT(this->store_->GetLease(lease)->keys, ElementsAre("/a"));

  ASSERT_TRUE(this->store_->Revoke(lease).ok());
  EXPECT_EQ(this->GetKv("/a"), std::nullopt);
  EXPECT_EQ(this->GetKv("/b")->value, "2");
  EXPECT_EQ(this->GetKv("/c")->value, "1");
  EXPECT_EQ(this->store_->Revoke(lease).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(this->store_->Grant(absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TYPED_TEST(StoreContractTest, ConcurrentCompareAndSwapNeverLosesAnUpdate) {
  constexpr int kThreads = 4;
  constexpr int kIncrements = 25;
  ASSERT_TRUE(this->store_->Put("/counter", "0").ok());
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements;) {
        absl::StatusOr<GetResponse> get = this->store_->Get("/counter");
        ASSERT_TRUE(get.ok());
        int value = std::stoi(get->kv->value);
        absl::StatusOr<int64_t> cas = this->store_->CompareAndSwap(
            "/counter", get->kv->mod_revision, std::to_string(value + 1));
        if (cas.ok()) {
          ++i;
        } else {
          ASSERT_EQ(cas.status().code(), absl::StatusCode::kAborted) << cas.status();
          ++conflicts;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(this->GetKv("/counter")->value, std::to_string(kThreads * kIncrements));
  EXPECT_EQ(this->GetKv("/counter")->version, kThreads * kIncrements + 1);
}

}  // namespace
}  // namespace berth::state
