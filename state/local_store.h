// LocalStore: the Store engine for stores that live in this process. It keeps the whole key
// space, the change history and the leases in memory, evaluates transactions there, and hands
// each commit to Persist() before making it visible, so a subclass decides durability:
// MemoryStore persists nothing, SqliteStore writes every commit to an SQLite file. Reads never
// touch the disk.
//
// Group commit: transactions are evaluated one at a time (under commit_mu_) against the
// committed state plus the commits still on their way to disk, then queued; one writer at a time
// persists everything queued in a single Persist() call (one fsync for many writers) and makes
// it visible. Readers see only persisted state and are never blocked by disk writes. Lease and
// compaction changes drain the queue and commit alone.
//
// Thread-safety: all public methods are thread-safe. Subclasses must call StopBackground() first
// thing in their destructor, because the lease ticker calls Persist().
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "core/clock.h"
#include "state/store.h"
#include "state/watch_hub.h"

namespace berth::state {

class LocalStore : public Store {
 public:
  ~LocalStore() override;

  absl::StatusOr<GetResponse> Get(std::string_view key) override;
  absl::StatusOr<ListResponse> List(std::string_view prefix,
                                    const ListOptions& options = {}) override;
  absl::StatusOr<int64_t> Revision() override;
  absl::StatusOr<TxnResponse> Txn(const TxnRequest& request) override;
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(std::string_view prefix, int64_t from_revision,
                                                     WatchCallback callback) override;
  absl::Status Compact(int64_t revision) override;
  absl::StatusOr<int64_t> CompactedRevision() override;
  absl::StatusOr<LeaseId> Grant(absl::Duration ttl) override;
  absl::Status KeepAlive(LeaseId id) override;
  absl::Status Revoke(LeaseId id) override;
  absl::StatusOr<LeaseInfo> GetLease(LeaseId id) override;
  absl::StatusOr<int> ExpireLeases() override;

 protected:
  struct LeaseRecord {
    LeaseId id = 0;
    absl::Duration ttl;
  };

  // One atomic change, as Persist() must write it.
  struct Commit {
    int64_t revision = 0;  // the store revision after the commit
    std::vector<Event> events;
    // The final state of every key the commit touched; nullopt: deleted.
    std::map<std::string, std::optional<KeyValue>> kvs;
    std::vector<LeaseRecord> granted;
    std::vector<LeaseId> revoked;
    int64_t next_lease_id = 0;
    int64_t compacted_revision = 0;  // after the commit
    bool compaction_moved = false;   // history at and below compacted_revision is to be dropped
  };

  // Everything a durable store reads back when it opens.
  struct Snapshot {
    std::vector<KeyValue> kvs;
    std::vector<Event> history;  // revision > compacted_revision, in order
    std::vector<LeaseRecord> leases;
    int64_t revision = 0;
    int64_t compacted_revision = 0;
    int64_t next_lease_id = 1;
  };

  explicit LocalStore(const StoreOptions& options);

  // Replaces the state; for use before StartBackground(). Leases restart their ttl from now, so
  // holders get a full ttl to reconnect after the store was down.
  void Load(Snapshot snapshot);
  void StartBackground();
  // Stops the lease ticker and watch delivery; idempotent.
  void StopBackground();

  // The revision the next transaction builds on, persisted or not; for tests of the pipeline.
  int64_t PendingRevision() {
    absl::MutexLock lock(&commit_mu_);
    return pending_revision_;
  }

  // Makes `commits` (in order) durable together, or fails leaving the durable state as it was.
  virtual absl::Status Persist(const std::vector<const Commit*>& commits) = 0;

 private:
  struct Lease {
    absl::Duration ttl;
    absl::Time deadline;
    std::set<std::string> keys;
  };
  // A queued transaction and, once done, its outcome.
  struct Queued {
    Commit commit;
    bool done = false;
    absl::Status status;
  };
  // A key's latest state among commits not yet persisted, and the revision that wrote it.
  struct PendingKv {
    int64_t revision = 0;
    std::optional<KeyValue> kv;
  };
  class Staging;

  // Waits for the queue to drain, so the caller may commit alone while holding commit_mu_.
  void DrainQueue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // Returns once `queued` is persisted (or failed), persisting the queue itself when no other
  // writer is doing so.
  absl::Status AwaitQueued(const std::shared_ptr<Queued>& queued)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  void FlushQueue() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // Waits until revision `target` is persisted; Unavailable if the commits it depends on failed.
  absl::Status AwaitDurable(int64_t target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  absl::Status RevokeLocked(LeaseId id, bool only_if_expired, bool* revoked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // Adds automatic compaction to a commit that moves the revision.
  void MaybeCompact(Commit& commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // Persists and applies one commit alone; the queue must be empty.
  absl::Status PersistAndApply(Commit& commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  void Apply(const Commit& commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TickerLoop();

  const StoreOptions options_;
  core::Clock* const clock_;
  const std::shared_ptr<WatchHub> hub_;

  absl::Mutex commit_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // The state as seen by the next transaction: committed state plus these not-yet-persisted
  // changes.
  std::map<std::string, PendingKv> pending_kvs_ ABSL_GUARDED_BY(commit_mu_);
  int64_t pending_revision_ ABSL_GUARDED_BY(commit_mu_) = 0;
  int64_t pending_compacted_ ABSL_GUARDED_BY(commit_mu_) = 0;
  int64_t durable_revision_ ABSL_GUARDED_BY(commit_mu_) = 0;
  std::deque<std::shared_ptr<Queued>> queue_ ABSL_GUARDED_BY(commit_mu_);
  bool flushing_ ABSL_GUARDED_BY(commit_mu_) = false;
  int draining_ ABSL_GUARDED_BY(commit_mu_) = 0;  // callers waiting in DrainQueue()
  // Bumped when a persist fails and the pending state is thrown away.
  int64_t epoch_ ABSL_GUARDED_BY(commit_mu_) = 0;

  absl::Mutex mu_;
  std::map<std::string, KeyValue, std::less<>> kvs_ ABSL_GUARDED_BY(mu_);
  std::deque<Event> history_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t compacted_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<LeaseId, Lease> leases_ ABSL_GUARDED_BY(mu_);
  int64_t next_lease_id_ ABSL_GUARDED_BY(mu_) = 1;

  absl::Mutex ticker_mu_;
  bool stopping_ ABSL_GUARDED_BY(ticker_mu_) = false;
  std::thread ticker_;
};

}  // namespace berth::state
