// The LocalStore commit pipeline, driven through a store whose Persist() a test can hold and
// fail: group commit batches queued writers, readers see only persisted state, and a failed
// persist changes nothing and fails the transactions that built on it.
#include "state/local_store.h"

#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace berth::state {
namespace {

class GatedStore final : public LocalStore {
 public:
  GatedStore() : LocalStore(StoreOptions{.lease_tick_interval = absl::ZeroDuration()}) {
    StartBackground();
  }
  ~GatedStore() override { StopBackground(); }

  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }
  void FailNext(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_ = std::move(status);
  }
  // Waits until a Persist() call is blocked in the gate.
  void AwaitBlocked() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&blocked_));
  }
  std::vector<size_t> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  int64_t pending_revision() { return PendingRevision(); }

 protected:
  absl::Status Persist(const std::vector<const Commit*>& commits) override {
    absl::MutexLock lock(&mu_);
    blocked_ = true;
    auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !held_; };
    mu_.Await(absl::Condition(&open));
    blocked_ = false;
    batches_.push_back(commits.size());
    absl::Status status = fail_;
    fail_ = absl::OkStatus();
    return status;
  }

 private:
  absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool blocked_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fail_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> batches_ ABSL_GUARDED_BY(mu_);
};

// Waits (generously) until `n` transactions are queued on top of the committed revision.
void AwaitPending(GatedStore& store, int64_t revision) {
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (store.pending_revision() < revision && absl::Now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_EQ(store.pending_revision(), revision);
}

TEST(LocalStoreTest, QueuedWritersShareOnePersistAndStayInvisibleUntilThen) {
  GatedStore store;
  ASSERT_TRUE(store.Put("/n", "0").ok());  // revision 1
  store.Hold();
  // The first writer's commit blocks in Persist; three more CAS on top of it, in a chain.
  std::thread first([&] { EXPECT_EQ(store.CompareAndSwap("/n", 1, "1").value(), 2); });
  store.AwaitBlocked();
  std::vector<std::thread> chained;
  for (int i = 2; i <= 4; ++i) {
    AwaitPending(store, i);
    chained.emplace_back([&store, i] {
      EXPECT_EQ(store.CompareAndSwap("/n", i, std::to_string(i)).value(), i + 1);
    });
  }
  AwaitPending(store, 5);
  // Readers see only what is persisted.
  EXPECT_EQ(store.Get("/n").value().kv->value, "0");
  EXPECT_EQ(store.Revision().value(), 1);

  store.Release();
  first.join();
  for (std::thread& t : chained) t.join();
  EXPECT_EQ(store.Get("/n").value().kv->value, "4");
  EXPECT_EQ(store.Revision().value(), 5);
  // One persist for the first write, one for the three queued behind it.
  EXPECT_EQ(store.batches(), (std::vector<size_t>{1, 1, 3}));
}

TEST(LocalStoreTest, FailedPersistChangesNothingAndFailsDependents) {
  GatedStore store;
  ASSERT_TRUE(store.Put("/n", "0").ok());  // revision 1
  store.Hold();
  store.FailNext(absl::ResourceExhaustedError("disk full"));
  std::thread first([&] {
    EXPECT_EQ(store.Put("/n", "lost").status().code(), absl::StatusCode::kResourceExhausted);
  });
  store.AwaitBlocked();
  AwaitPending(store, 2);
  std::thread dependent([&] {
    // Reads the failed write (mod_revision 2) and so must fail with it.
    EXPECT_EQ(store.CompareAndSwap("/n", 2, "x").status().code(), absl::StatusCode::kUnavailable);
  });
  AwaitPending(store, 3);
  store.Release();
  first.join();
  dependent.join();

  EXPECT_EQ(store.Get("/n").value().kv->value, "0");
  EXPECT_EQ(store.Revision().value(), 1);
  EXPECT_EQ(store.pending_revision(), 1);
  // The store carries on from the persisted state.
  EXPECT_EQ(store.CompareAndSwap("/n", 1, "1").value(), 2);
  EXPECT_EQ(store.Get("/n").value().kv->value, "1");
}

TEST(LocalStoreTest, LeaseChangesWaitForQueuedWrites) {
  GatedStore store;
  LeaseId lease = store.Grant(absl::Seconds(10)).value();
  store.Hold();
  std::thread writer([&] { EXPECT_TRUE(store.Put("/k", "v", PutOptions{.lease = lease}).ok()); });
  store.AwaitBlocked();
  std::thread revoker([&] { EXPECT_TRUE(store.Revoke(lease).ok()); });
  store.Release();
  writer.join();
  revoker.join();
  // The revoke ran after the put persisted, so it deleted the key.
  EXPECT_EQ(store.Get("/k").value().kv, std::nullopt);
  EXPECT_EQ(store.Revision().value(), 2);
}

}  // namespace
}  // namespace berth::state
