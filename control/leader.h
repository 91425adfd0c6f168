// Leader election among the servers that share one store, and the fence that keeps a deposed
// leader's writes out. Each server holds a lease and keeps a member key on it; the one that
// creates the leader key (attached to its lease) leads, and the leader key's create revision is
// its term's fencing token. FencedStore adds "the leader key still has that create revision" to
// every transaction the leader's control plane commits, so once another server has taken over
// (the old lease lapsed, the key was created again), the old leader's writes are refused by the
// store itself. A leader that cannot renew its lease steps down before the lease can lapse.
//
// It uses only the Store interface, so the same code elects the one server of a SQLite or memory
// store (it always wins) and one of several servers on etcd.
//
// Thread-safety: LeaderElection's accessors are thread-safe; Step() runs on one thread at a time
// (the election's own thread after Start(), or a test's). The callbacks run on that thread.
// FencedStore is as thread-safe as the store it wraps.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/json.h"
#include "state/store.h"

namespace berth::control {

// {"id", "address", "since"} of the leading server, on its lease.
inline constexpr std::string_view kLeaderKey = "/cluster/leader";
// One key per running server, {"id", "address", "started_at"}, on its lease.
inline constexpr std::string_view kMemberPrefix = "/cluster/members/";

// A server as the others see it: a stable id and the URL its API answers on.
struct ServerInfo {
  std::string id;
  std::string address;
  absl::Time since;  // leader: when it took over; member: when it started
  int64_t term = 0;  // leader: its fencing token (the leader key's create revision)
};

struct LeaderElectionOptions {
  core::Clock* clock = nullptr;  // defaults to the system clock
  // The lease's time to live: a leader that stops renewing loses the lead this long after its
  // last renewal, and another server takes over.
  absl::Duration lease_ttl = absl::Seconds(3);
  // How often the election's thread runs a step (renewals happen every lease_ttl / 3).
  absl::Duration interval = absl::Milliseconds(200);
  // Called on the election's thread when this server starts leading (with its fencing token),
  // and when it stops (lease lapsed or lost, leader key gone, Stop()).
  std::function<void(int64_t token)> on_elected;
  std::function<void()> on_lost;
};

class LeaderElection {
 public:
  // `store` is not owned and must outlive the election.
  LeaderElection(state::Store* store, ServerInfo self, LeaderElectionOptions options);
  ~LeaderElection();
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Runs Step() every interval on a thread of its own until Stop().
  void Start();
  // Ends the thread, steps down (on_lost) and revokes the lease, so a follower takes over at
  // once instead of after the lease's ttl.
  void Stop();

  // One round: renew (or take) the lease, step down when the lease may have lapsed or the leader
  // key is no longer this term's, and campaign when there is no leader. Store errors are
  // returned after the round did what it could; the next round tries again.
  absl::Status Step();

  bool IsLeader() const;
  // The fencing token of this server's term; 0 when it does not lead, or when its lease may have
  // lapsed (the renewals failed for nearly a ttl) even before a step noticed.
  int64_t token() const;
  ServerInfo self() const;
  // Sets the address this server's API answers on (known once it listens); before Start().
  void SetAddress(std::string address);
  // The leader as the last step saw it; nullopt when there was none.
  std::optional<ServerInfo> leader() const;

  // Read from the store now.
  absl::StatusOr<std::optional<ServerInfo>> ReadLeader();
  absl::StatusOr<std::vector<ServerInfo>> ReadMembers();

 private:
  absl::Status Renew(absl::Time now);
  bool LeaseMayHaveLapsed(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StepDown(std::string_view why);
  // Takes the lead for the term me.term.
  absl::Status Lead(const ServerInfo& me, std::string_view why);
  std::string MemberKey() const;

  state::Store* const store_;
  const LeaderElectionOptions options_;
  core::Clock* const clock_;

  // Only the stepping thread touches these.
  state::LeaseId lease_ = 0;
  bool member_written_ = false;  // the member key is on lease_
  absl::Time last_try_ = absl::InfinitePast();

  mutable absl::Mutex mu_;
  ServerInfo self_ ABSL_GUARDED_BY(mu_);
  // When the last successful renewal (or grant) was sent.
  absl::Time renewed_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t token_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<ServerInfo> leader_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// A Store whose transactions commit only while `token()` is this server's current term: each
// carries a compare that the leader key's create revision equals the token. A transaction
// refused by the fence changes nothing and fails with Unavailable; one refused by its own
// compares runs its else branch under the fence too. Reads, watches and leases pass through.
class FencedStore final : public state::Store {
 public:
  // `base` is not owned. `token` returns the fencing token to write under (0: refuse every
  // write, this server does not lead).
  FencedStore(state::Store* base, std::function<int64_t()> token);

  absl::StatusOr<state::GetResponse> Get(std::string_view key) override;
  absl::StatusOr<state::ListResponse> List(std::string_view prefix,
                                           const state::ListOptions& options) override;
  absl::StatusOr<int64_t> Revision() override;
  absl::StatusOr<state::TxnResponse> Txn(const state::TxnRequest& request) override;
  absl::StatusOr<std::unique_ptr<state::WatchHandle>> Watch(std::string_view prefix,
                                                            int64_t from_revision,
                                                            state::WatchCallback callback) override;
  absl::Status Compact(int64_t revision) override;
  absl::StatusOr<int64_t> CompactedRevision() override;
  absl::StatusOr<state::LeaseId> Grant(absl::Duration ttl) override;
  absl::Status KeepAlive(state::LeaseId id) override;
  absl::Status Revoke(state::LeaseId id) override;
  absl::StatusOr<state::LeaseInfo> GetLease(state::LeaseId id) override;
  absl::StatusOr<int> ExpireLeases() override;
  // The base's limit, less the fence's own compare.
  size_t MaxTxnOps() const override {
    size_t limit = base_->MaxTxnOps();
    return limit == 0 ? 0 : limit - 1;
  }

 private:
  state::Store* const base_;
  const std::function<int64_t()> token_;
};

// The error a fenced write fails with: Unavailable, nothing was applied, the caller may retry
// (on the current leader). It carries the payload kUnappliedPayload, which the API turns into
// the X-Berth-Unapplied header.
absl::Status NotLeaderError(std::string_view why);
inline constexpr absl::string_view kUnappliedPayload = "berth.control/unapplied";

}  // namespace berth::control
