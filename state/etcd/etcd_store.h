// EtcdStore: the Store over an etcd v3 cluster (3.4 or later), so that several Berth servers
// share one state and survive the loss of a minority of etcd members.
//
// Transport: etcd's JSON gateway (POST /v3/kv/range, /v3/kv/txn, /v3/kv/compaction, /v3/watch,
// /v3/lease/*; keys and values base64) over Berth's own HTTP client. The gateway is part of every
// etcd server, exposes the same RPCs as gRPC with the same semantics and error codes, and needs
// no code generation: gRPC's generated code and headers would cost minutes of compile time per
// change and a second RPC stack in the binary, for one client of one service. Watches are
// streamed responses (one line of JSON per WatchResponse) on a connection of their own.
//
// Mapping onto the Store contract:
//  * Store revision = etcd revision - 1: a new cluster stands at etcd revision 1, and a Store
//    starts at 0. Compare numbers (mod/create revision) translate the same way; 0 stays "absent".
//  * Compact(r) compacts etcd at r + 1 and CompactedRevision() reports etcd's compaction point
//    minus one; Watch refuses from_revision <= CompactedRevision() with CompactedError, like the
//    in-process stores. StoreOptions::history_limit compacts automatically, as they do.
//  * Leases are etcd leases: they expire by the cluster's clock, even when every Berth server is
//    gone. ExpireLeases() therefore revokes nothing and returns 0; StoreOptions::clock and
//    lease_tick_interval are unused. A ttl rounds up to whole seconds, and etcd raises it to its
//    minimum (1.5 election timeouts, 2s with etcd's defaults).
//  * One branch of a transaction may write a key once: etcd refuses a put and a delete (or two
//    puts) of one key in the same transaction, so Txn returns InvalidArgument naming the key
//    instead of letting a later op rewrite an earlier one's key. Two deletes may overlap.
//
// Failure behaviour: requests go to the endpoint that answered last; an endpoint that cannot be
// reached is skipped for the next. A read, or a write that never left this process, moves on to
// the next endpoint. A transaction whose outcome is unknown (its answer was lost, or etcd timed
// it out while a member went away or the leader changed) is resolved before Txn returns: a read
// shows whether its puts landed (read as of one revision newer than its compares, every put key
// held its value, written at that revision), and otherwise it is sent again, which its compares
// make safe. Txn returns Unavailable only when no answer is definite within request_timeout. A
// transaction that only deletes leaves no trace to read: sent again after it landed, its
// compares fail, as for any lost race. A watch reconnects (to the next endpoint) after its
// stream breaks and resumes after the last revision it delivered, so no event is lost or
// repeated; if that revision was compacted meanwhile the watch ends, and the error is logged and
// counted (store.etcd).
//
// Thread-safety: thread-safe, as every Store. Watch callbacks run one at a time on a thread the
// store owns; a handle may outlive the store (its callback then never runs again).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "state/snapshot.h"
#include "state/store.h"

namespace berth::state {

struct EtcdStoreOptions {
  // history_limit drives automatic compaction; the other fields are for in-process stores.
  StoreOptions store;
  // Per request (a watch's stream has none); etcd answers within its own 5s-7s when it is slow.
  absl::Duration request_timeout = absl::Seconds(30);
  absl::Duration connect_timeout = absl::Seconds(5);
  // The cluster's --max-txn-ops (etcd's default is 128): what MaxTxnOps() reports.
  size_t max_txn_ops = 128;
};

class EtcdStore final : public Store, public Snapshotter {
 public:
  // `endpoints` are etcd client addresses, "HOST:PORT" each. Fails (Unavailable) when none
  // answers, InvalidArgument when one is malformed.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(
      std::vector<std::string> endpoints, const EtcdStoreOptions& options = {});
  ~EtcdStore() override;

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
  size_t MaxTxnOps() const override { return max_txn_ops_; }

  // etcd's own snapshot of its whole database (the Maintenance.Snapshot stream, what `etcdctl
  // snapshot save` writes, its SHA-256 at the end), from the first endpoint that answers. etcd
  // takes it at one revision and keeps serving meanwhile. `etcdctl snapshot restore` turns it
  // into a member's data directory.
  absl::StatusOr<SnapshotInfo> SaveSnapshot(const std::string& path,
                                            const SnapshotProgress& progress = {}) override;

  const std::vector<std::string>& endpoints() const;

  class Core;  // shared with watch handles

 private:
  EtcdStore(std::shared_ptr<Core> core, size_t max_txn_ops);
  void MaybeCompact(int64_t revision);
  static absl::Status ValidateTxn(const TxnRequest& request);
  // One attempt at a transaction; Unavailable when its outcome is unknown.
  absl::StatusOr<TxnResponse> TxnOnce(const TxnRequest& request);
  // The response of `request`'s then-branch when a read shows that it has been applied; none
  // when the read cannot tell.
  absl::StatusOr<std::optional<TxnResponse>> Landed(const TxnRequest& request);

  std::shared_ptr<Core> core_;
  const size_t max_txn_ops_;
};

// Parses "etcd://HOST:PORT[,HOST:PORT...]" into "HOST:PORT" endpoints (an IPv6 host in
// brackets). InvalidArgument naming the part that is wrong.
[[nodiscard]] absl::StatusOr<std::vector<std::string>> ParseEtcdUrl(std::string_view url);

// Opens an EtcdStore from an etcd:// URL; what `berth serve --store etcd://...` calls.
[[nodiscard]] absl::StatusOr<std::unique_ptr<Store>> OpenEtcdStore(
    std::string_view url, const EtcdStoreOptions& options = {});

}  // namespace berth::state
