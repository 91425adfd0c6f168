// Store: the versioned key/value store that holds Berth's cluster state (workloads, hosts,
// assignments, leases). It is shaped like etcd v3 so an etcd backend can sit behind the same
// interface: one global revision that grows with every committed transaction, per-key
// create/mod revisions and versions, compare-and-set transactions, ordered watches with history,
// and leases whose expiry deletes the keys attached to them.
//
// Thread-safety: every Store implementation is safe to call from any number of threads at once.
// Watch callbacks run on a thread owned by the store, one at a time, never while the store holds
// a lock, so a callback may call back into the store (but must not destroy it).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/clock.h"

namespace berth::state {

// 0 means "no lease".
using LeaseId = int64_t;

// One key as stored. Revisions are store revisions; version counts puts since the key was last
// created (1 after the first put) and drops to 0 when the key is deleted.
struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  LeaseId lease = 0;

  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

// A committed change. For a delete, kv holds the key and mod_revision is the revision of the
// delete; value, create_revision, version and lease are empty.
struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;
  // Set by a watch when the event it delivers next belongs to the same revision: the
  // transaction is not complete yet for this watcher. Not part of the change (== ignores it).
  bool more_in_revision = false;

  int64_t revision() const { return kv.mod_revision; }
  friend bool operator==(const Event& a, const Event& b) {
    return a.type == b.type && a.kv == b.kv;
  }
};

// A transaction guard on one key. Only equality is offered; a create_revision of 0 means the
// key is absent.
struct Compare {
  enum class Target { kModRevision, kCreateRevision, kVersion, kValue };
  std::string key;
  Target target = Target::kModRevision;
  int64_t number = 0;  // revision or version, for every target except kValue
  std::string value;   // for kValue; an absent key never equals any value

  static Compare ModRevision(std::string key, int64_t revision);
  static Compare CreateRevision(std::string key, int64_t revision);
  static Compare Version(std::string key, int64_t version);
  static Compare Value(std::string key, std::string value);
  // The key does not exist (create_revision == 0).
  static Compare Absent(std::string key);
};

struct PutOptions {
  LeaseId lease = 0;  // attach the key to this lease; it is deleted when the lease ends
};

// A mutation inside a transaction. Ops apply in order, all at the same new revision.
struct Op {
  enum class Type { kPut, kDelete, kDeletePrefix };
  Type type = Type::kPut;
  std::string key;  // the prefix for kDeletePrefix
  std::string value;
  PutOptions put_options;

  static Op Put(std::string key, std::string value, PutOptions options = {});
  static Op Delete(std::string key);
  static Op DeletePrefix(std::string prefix);
};

// If every compare holds, then_ops run, otherwise else_ops; atomically either way.
struct TxnRequest {
  std::vector<Compare> compares;
  std::vector<Op> then_ops;
  std::vector<Op> else_ops;
};

// What one op found before it ran: the previous value for a put (empty when the key was new),
// the deleted keys for a delete.
struct OpResponse {
  std::vector<KeyValue> prev_kvs;
};

struct TxnResponse {
  bool succeeded = false;
  // The store revision after the transaction: new if anything changed, else the current one.
  int64_t revision = 0;
  std::vector<OpResponse> responses;  // one per op of the branch that ran
};

struct GetResponse {
  std::optional<KeyValue> kv;
  int64_t revision = 0;  // the store revision the read saw
};

struct ListOptions {
  int64_t limit = 0;        // at most this many entries; 0 means no limit
  std::string start_after;  // resume a paged listing after this key
  // When > 0, entries last modified before this revision are left out (etcd's
  // min_mod_revision): a tail of a long prefix without copying all of it. With a `limit` a page
  // may hold fewer entries than the limit (etcd counts the limit before it filters); `more`
  // still says whether keys follow.
  int64_t min_mod_revision = 0;
};

struct ListResponse {
  std::vector<KeyValue> kvs;  // in key order
  int64_t revision = 0;
  bool more = false;  // the limit cut the listing short
};

struct LeaseInfo {
  LeaseId id = 0;
  absl::Duration ttl;
  absl::Duration remaining;
  std::vector<std::string> keys;
};

// Construction options shared by the store implementations that run in this process.
struct StoreOptions {
  // Drives lease expiry. Not owned; must outlive the store. Null means SystemClock.
  core::Clock* clock = nullptr;
  // How often a store-owned thread calls ExpireLeases(). Zero: no thread; the owner (a test
  // with a ManualClock) calls ExpireLeases() itself.
  absl::Duration lease_tick_interval = absl::Seconds(1);
  // Revisions of change history kept for watches; older history is compacted automatically.
  int64_t history_limit = 10000;
};

// Ends a watch when destroyed: once the destructor returns, the callback never runs again. The
// destructor may run inside the watch's own callback.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

using WatchCallback = std::function<void(const Event&)>;

// The OutOfRange status Watch returns for a compacted revision. It carries the compacted
// revision; callers re-list and watch from the listing's revision + 1.
absl::Status CompactedError(int64_t requested, int64_t compacted_revision);
// The compacted revision carried by a CompactedError, or nullopt for any other status.
std::optional<int64_t> CompactedRevision(const absl::Status& status);

class Store {
 public:
  virtual ~Store() = default;

  // Reads. A missing key is not an error: GetResponse::kv is empty.
  [[nodiscard]] virtual absl::StatusOr<GetResponse> Get(std::string_view key) = 0;
  [[nodiscard]] virtual absl::StatusOr<ListResponse> List(std::string_view prefix,
                                                          const ListOptions& options = {}) = 0;
  // The current revision.
  [[nodiscard]] virtual absl::StatusOr<int64_t> Revision() = 0;

  // Evaluates the compares and runs one branch atomically. Fails without changing anything
  // (InvalidArgument for an empty key, NotFound for a put with an unknown lease).
  [[nodiscard]] virtual absl::StatusOr<TxnResponse> Txn(const TxnRequest& request) = 0;

  // Calls `callback` for every change to a key under `prefix` with revision >= from_revision,
  // in revision order, starting with the history the store still holds. from_revision 0 means
  // "changes after now". OutOfRange (see CompactedError) when from_revision is compacted.
  [[nodiscard]] virtual absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(
      std::string_view prefix, int64_t from_revision, WatchCallback callback) = 0;

  // Drops change history at and below `revision` (<= the current revision).
  [[nodiscard]] virtual absl::Status Compact(int64_t revision) = 0;
  [[nodiscard]] virtual absl::StatusOr<int64_t> CompactedRevision() = 0;

  // Leases: a key put with a lease is deleted when the lease is revoked or expires (its ttl
  // passes without a KeepAlive). NotFound for an unknown or ended lease.
  [[nodiscard]] virtual absl::StatusOr<LeaseId> Grant(absl::Duration ttl) = 0;
  [[nodiscard]] virtual absl::Status KeepAlive(LeaseId id) = 0;
  [[nodiscard]] virtual absl::Status Revoke(LeaseId id) = 0;
  [[nodiscard]] virtual absl::StatusOr<LeaseInfo> GetLease(LeaseId id) = 0;
  // Revokes every lease whose deadline has passed by the store's clock; returns how many.
  [[nodiscard]] virtual absl::StatusOr<int> ExpireLeases() = 0;

  // The most compares, and the most operations in one branch, a transaction may hold (etcd
  // refuses more, 128 by default); 0 means no limit. Batching writers size their transactions
  // by it.
  virtual size_t MaxTxnOps() const { return 0; }

  // Conveniences built on Txn and Watch.

  // Writes unconditionally; returns the new revision.
  [[nodiscard]] absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value,
                                            const PutOptions& options = {});
  // Returns whether the key existed.
  [[nodiscard]] absl::StatusOr<bool> Delete(std::string_view key);
  // Returns how many keys were deleted.
  [[nodiscard]] absl::StatusOr<int64_t> DeletePrefix(std::string_view prefix);
  // Writes only if the key is absent; AlreadyExists otherwise. Returns the new revision.
  [[nodiscard]] absl::StatusOr<int64_t> CreateIfAbsent(std::string_view key, std::string_view value,
                                                       const PutOptions& options = {});
  // Writes only if the key's mod_revision equals `expected_mod_revision` (0: the key is absent);
  // Aborted otherwise, so the caller re-reads and retries. Returns the new revision.
  [[nodiscard]] absl::StatusOr<int64_t> CompareAndSwap(std::string_view key,
                                                       int64_t expected_mod_revision,
                                                       std::string_view value,
                                                       const PutOptions& options = {});
  // Deletes only if the key's mod_revision equals `expected_mod_revision`; Aborted otherwise,
  // NotFound when the key is absent.
  [[nodiscard]] absl::Status CompareAndDelete(std::string_view key, int64_t expected_mod_revision);

  // Blocks until a key under `prefix` changes at a revision > after_revision and returns that
  // revision (at once if the change is already in history). DeadlineExceeded after `timeout`.
  [[nodiscard]] absl::StatusOr<int64_t> WaitForChange(std::string_view prefix,
                                                      int64_t after_revision,
                                                      absl::Duration timeout);
};

}  // namespace berth::state
