#include "control/leader.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/cord.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

using core::Cat;
using core::Json;

namespace {

std::string EncodeServer(const ServerInfo& s, std::string_view time_field) {
  return Json{
      {"id", s.id},
      {"address", s.address},
      {std::string(time_field), absl::FormatTime(absl::RFC3339_full, s.since, absl::UTCTimeZone())}}
      .dump();
}

std::optional<ServerInfo> DecodeServer(std::string_view value, std::string_view time_field) {
  Json j = Json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("id") || !j["id"].is_string()) return std::nullopt;
  ServerInfo s;
  s.id = j["id"].get<std::string>();
  if (j.contains("address") && j["address"].is_string())
    s.address = j["address"].get<std::string>();
  std::string err;
  if (j.contains(std::string(time_field)) && j[std::string(time_field)].is_string()) {
    absl::ParseTime(absl::RFC3339_full, j[std::string(time_field)].get<std::string>(), &s.since,
                    &err);
  }
  return s;
}

// Whether `c` holds for the key as `kv` shows it (nullopt: absent), as the store would judge.
bool Holds(const state::Compare& c, const std::optional<state::KeyValue>& kv) {
  switch (c.target) {
    case state::Compare::Target::kModRevision:
      return (kv ? kv->mod_revision : 0) == c.number;
    case state::Compare::Target::kCreateRevision:
      return (kv ? kv->create_revision : 0) == c.number;
    case state::Compare::Target::kVersion:
      return (kv ? kv->version : 0) == c.number;
    case state::Compare::Target::kValue:
      return kv.has_value() && kv->value == c.value;
  }
  return false;
}

}  // namespace

absl::Status NotLeaderError(std::string_view why) {
  absl::Status s = absl::UnavailableError(
      Cat(why,
          ": the write was not applied; retry (the next leader takes over within the "
          "lease's ttl)"));
  s.SetPayload(kUnappliedPayload, absl::Cord("1"));
  return s;
}

LeaderElection::LeaderElection(state::Store* store, ServerInfo self, LeaderElectionOptions options)
    : store_(store),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : &core::SystemClock::Get()),
      self_(std::move(self)) {
  if (self_.since == absl::Time()) self_.since = clock_->Now();
}

LeaderElection::~LeaderElection() { Stop(); }

std::string LeaderElection::MemberKey() const { return Cat(kMemberPrefix, self().id); }

ServerInfo LeaderElection::self() const {
  absl::MutexLock lock(&mu_);
  return self_;
}

void LeaderElection::SetAddress(std::string address) {
  absl::MutexLock lock(&mu_);
  self_.address = std::move(address);
}

bool LeaderElection::IsLeader() const { return token() != 0; }

int64_t LeaderElection::token() const {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  // A step stuck in a store call that does not answer cannot step down in time; the fence
  // stops trusting the term anyway once the lease may have lapsed.
  if (token_ != 0 && LeaseMayHaveLapsed(now)) return 0;
  return token_;
}

bool LeaderElection::LeaseMayHaveLapsed(absl::Time now) const {
  // The store may expire the lease once lease_ttl passed since the last renewal it got, which
  // came after this server sent it; giving up a step earlier means two servers never both
  // believe they lead.
  return now - renewed_at_ >= options_.lease_ttl - options_.interval;
}

std::optional<ServerInfo> LeaderElection::leader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

absl::StatusOr<std::optional<ServerInfo>> LeaderElection::ReadLeader() {
  BERTH_ASSIGN_OR_RETURN(state::GetResponse got, store_->Get(kLeaderKey));
  if (!got.kv) return std::optional<ServerInfo>();
  std::optional<ServerInfo> leader = DecodeServer(got.kv->value, "since");
  if (leader) leader->term = got.kv->create_revision;
  return leader;
}

absl::StatusOr<std::vector<ServerInfo>> LeaderElection::ReadMembers() {
  BERTH_ASSIGN_OR_RETURN(state::ListResponse list, store_->List(kMemberPrefix));
  std::vector<ServerInfo> out;
  for (const auto& kv : list.kvs) {
    if (auto s = DecodeServer(kv.value, "started_at")) out.push_back(std::move(*s));
  }
  return out;
}

absl::Status LeaderElection::Renew(absl::Time now) {
  if (lease_ != 0 && now - last_try_ < options_.lease_ttl / 3) return absl::OkStatus();
  last_try_ = now;
  if (lease_ != 0) {
    absl::Status kept = store_->KeepAlive(lease_);
    if (!kept.ok()) {
      last_try_ = absl::InfinitePast();          // try again at the next step
      if (!absl::IsNotFound(kept)) return kept;  // unreachable: the lease may still hold
      lease_ = 0;                                // it lapsed: whatever it held is gone
      member_written_ = false;
      StepDown("the lease lapsed");
    }
  }
  if (lease_ == 0) {
    absl::StatusOr<state::LeaseId> lease = store_->Grant(options_.lease_ttl);
    if (!lease.ok()) {
      last_try_ = absl::InfinitePast();
      return lease.status();
    }
    lease_ = *lease;
  }
  {
    absl::MutexLock lock(&mu_);
    renewed_at_ = now;
  }
  if (!member_written_) {
    BERTH_RETURN_IF_ERROR(
        store_->Put(MemberKey(), EncodeServer(self(), "started_at"), {.lease = lease_}).status());
    member_written_ = true;
  }
  return absl::OkStatus();
}

void LeaderElection::StepDown(std::string_view why) {
  {
    absl::MutexLock lock(&mu_);
    if (token_ == 0) return;
    token_ = 0;
    leader_.reset();
  }
  core::LogWarn("leader election: server %s steps down: %s", self().id, std::string(why));
  if (options_.on_lost) options_.on_lost();
}

absl::Status LeaderElection::Step() {
  const absl::Time now = clock_->Now();
  absl::Status renewed = Renew(now);
  bool lapsed = false;
  absl::Duration since_renewal;
  {
    absl::MutexLock lock(&mu_);
    lapsed = token_ != 0 && LeaseMayHaveLapsed(now);
    since_renewal = now - renewed_at_;
  }
  if (lapsed) {
    StepDown(Cat("the lease could not be renewed for ",
                 absl::FormatDuration(absl::Trunc(since_renewal, absl::Milliseconds(1)))));
  }
  if (!renewed.ok()) return renewed;
  BERTH_ASSIGN_OR_RETURN(state::GetResponse got, store_->Get(kLeaderKey));
  int64_t mine = 0;
  {
    absl::MutexLock lock(&mu_);
    mine = token_;
  }
  if (mine != 0) {
    if (!got.kv || got.kv->create_revision != mine) {
      StepDown("the leader key is no longer this server's");
    } else {
      return absl::OkStatus();
    }
  }
  ServerInfo me = self();
  if (got.kv) {
    std::optional<ServerInfo> seen = DecodeServer(got.kv->value, "since");
    if (seen) seen->term = got.kv->create_revision;
    if (seen && seen->id == me.id && got.kv->lease == lease_) {
      // This server stepped down when its renewals failed, yet the lease held and nobody took
      // over: the term is still its own.
      return Lead(*seen, "its lease held after all");
    }
    if (seen && seen->id == me.id) {
      // A previous run of this server (its data directory holds the id) led and died; its lease
      // is this server's to end, rather than waiting out the ttl.
      absl::Status revoked = store_->Revoke(got.kv->lease);
      if (!revoked.ok() && !absl::IsNotFound(revoked)) return revoked;
    } else {
      absl::MutexLock lock(&mu_);
      leader_ = seen;
      return absl::OkStatus();
    }
  }
  // No leader: campaign. Only one creator of the key wins; the key lives on this lease.
  me.since = now;
  state::TxnRequest txn;
  txn.compares.push_back(state::Compare::Absent(std::string(kLeaderKey)));
  txn.then_ops.push_back(
      state::Op::Put(std::string(kLeaderKey), EncodeServer(me, "since"), {.lease = lease_}));
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, store_->Txn(txn));
  if (!resp.succeeded) {
    absl::MutexLock lock(&mu_);
    leader_.reset();  // someone else won; the next step reads who
    return absl::OkStatus();
  }
  me.term = resp.revision;
  return Lead(me, "elected");
}

absl::Status LeaderElection::Lead(const ServerInfo& me, std::string_view why) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::OkStatus();  // Stop() revokes the lease, and with it the key
    token_ = me.term;
    leader_ = me;
  }
  core::LogInfo("leader election: server %s leads (term %d): %s", me.id, me.term, std::string(why));
  if (options_.on_elected) options_.on_elected(me.term);
  return absl::OkStatus();
}

void LeaderElection::Start() {
  thread_ = std::thread([this] {
    absl::Status last;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
        mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.interval);
        if (stopping_) return;
      }
      absl::Status s = core::RunGuarded("leader election", [&] {
        absl::Status step = Step();
        // Retried every interval: say each distinct failure once.
        if (!step.ok() && step.message() != last.message()) {
          core::ReportError("leader election", Cat("server ", self().id), step);
        }
        last = step;
      });
      if (!s.ok()) last = s;
    }
  });
}

void LeaderElection::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  StepDown("the server is stopping");
  if (lease_ != 0) {
    // Revoking deletes the leader key (when held) and the member key, so a follower takes
    // over at its next step rather than after the ttl.
    // A lease that already lapsed took the keys with it.
    absl::Status revoked = store_->Revoke(lease_);
    if (!absl::IsNotFound(revoked)) {
      core::OkOrReport("leader election", Cat("server ", self().id, ": revoke its lease"), revoked);
    }
    lease_ = 0;
  }
}

FencedStore::FencedStore(state::Store* base, std::function<int64_t()> token)
    : base_(base), token_(std::move(token)) {}

absl::StatusOr<state::TxnResponse> FencedStore::Txn(const state::TxnRequest& request) {
  const std::string leader_key(kLeaderKey);
  // Bounded: each retry means a compared key changed between two reads.
  for (int attempt = 0; attempt < 16; ++attempt) {
    const int64_t token = token_();
    if (token == 0) return NotLeaderError("this server does not lead");
    const state::Compare fence = state::Compare::CreateRevision(leader_key, token);
    state::TxnRequest fenced;
    fenced.compares.push_back(fence);
    fenced.compares.insert(fenced.compares.end(), request.compares.begin(), request.compares.end());
    fenced.then_ops = request.then_ops;
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse resp, base_->Txn(fenced));
    if (resp.succeeded) return resp;
    // Either the fence or the request's own compares failed; the store does not say which.
    BERTH_ASSIGN_OR_RETURN(state::GetResponse leader, base_->Get(leader_key));
    if (!Holds(fence, leader.kv)) {
      return NotLeaderError(Cat("this server's term ", token, " has ended"));
    }
    if (request.else_ops.empty()) return resp;
    // The else branch runs under the fence too, guarded by the compared keys being as they were
    // read here, where the request's compares did not all hold.
    std::map<std::string, std::optional<state::KeyValue>> seen;
    for (const auto& c : request.compares) {
      if (seen.count(c.key)) continue;
      BERTH_ASSIGN_OR_RETURN(state::GetResponse got, base_->Get(c.key));
      seen[c.key] = got.kv;
    }
    const bool all_hold =
        std::all_of(request.compares.begin(), request.compares.end(),
                    [&](const state::Compare& c) { return Holds(c, seen[c.key]); });
    if (all_hold) continue;  // changed since the first try: run the whole request again
    state::TxnRequest otherwise;
    otherwise.compares.push_back(fence);
    for (const auto& [key, kv] : seen) {
      otherwise.compares.push_back(kv ? state::Compare::ModRevision(key, kv->mod_revision)
                                      : state::Compare::Absent(key));
    }
    otherwise.then_ops = request.else_ops;
    BERTH_ASSIGN_OR_RETURN(state::TxnResponse other, base_->Txn(otherwise));
    if (other.succeeded) {
      other.succeeded = false;  // the request's else branch is what ran
      return other;
    }
  }
  return absl::AbortedError("a fenced transaction kept racing with other writers; retry");
}

absl::StatusOr<state::GetResponse> FencedStore::Get(std::string_view key) {
  return base_->Get(key);
}
absl::StatusOr<state::ListResponse> FencedStore::List(std::string_view prefix,
                                                      const state::ListOptions& options) {
  return base_->List(prefix, options);
}
absl::StatusOr<int64_t> FencedStore::Revision() { return base_->Revision(); }
absl::StatusOr<std::unique_ptr<state::WatchHandle>> FencedStore::Watch(
    std::string_view prefix, int64_t from_revision, state::WatchCallback callback) {
  return base_->Watch(prefix, from_revision, std::move(callback));
}
absl::Status FencedStore::Compact(int64_t revision) { return base_->Compact(revision); }
absl::StatusOr<int64_t> FencedStore::CompactedRevision() { return base_->CompactedRevision(); }
absl::StatusOr<state::LeaseId> FencedStore::Grant(absl::Duration ttl) { return base_->Grant(ttl); }
absl::Status FencedStore::KeepAlive(state::LeaseId id) { return base_->KeepAlive(id); }
absl::Status FencedStore::Revoke(state::LeaseId id) { return base_->Revoke(id); }
absl::StatusOr<state::LeaseInfo> FencedStore::GetLease(state::LeaseId id) {
  return base_->GetLease(id);
}
absl::StatusOr<int> FencedStore::ExpireLeases() { return base_->ExpireLeases(); }

}  // namespace berth::control
