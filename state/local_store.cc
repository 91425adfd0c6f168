#include "state/local_store.h"

#include <algorithm>
#include <utility>

#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::state {
namespace {

bool HasPrefix(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool Holds(const Compare& compare, const KeyValue* kv) {
  switch (compare.target) {
    case Compare::Target::kModRevision:
      return (kv ? kv->mod_revision : 0) == compare.number;
    case Compare::Target::kCreateRevision:
      return (kv ? kv->create_revision : 0) == compare.number;
    case Compare::Target::kVersion:
      return (kv ? kv->version : 0) == compare.number;
    case Compare::Target::kValue:
      return kv != nullptr && kv->value == compare.value;
  }
  return false;
}

absl::Status ValidateOp(const Op& op, std::string_view branch, size_t index) {
  if (op.type != Op::Type::kDeletePrefix && op.key.empty()) {
    return core::FieldError("txn", "", core::Cat(branch, "[", index, "].key"), "must not be empty");
  }
  return absl::OkStatus();
}

}  // namespace

// The key space as a transaction sees it while it runs: the committed map, overlaid with the
// commits still on their way to disk, overlaid with the transaction's own earlier ops.
class LocalStore::Staging {
 public:
  Staging(const std::map<std::string, KeyValue, std::less<>>& base,
          const std::map<std::string, PendingKv>& pending,
          std::map<std::string, std::optional<KeyValue>>& overlay)
      : base_(base), pending_(pending), overlay_(overlay) {}

  const KeyValue* Find(const std::string& key) const {
    if (auto it = overlay_.find(key); it != overlay_.end()) {
      return it->second.has_value() ? &*it->second : nullptr;
    }
    if (auto it = pending_.find(key); it != pending_.end()) {
      return it->second.kv.has_value() ? &*it->second.kv : nullptr;
    }
    auto it = base_.find(key);
    return it == base_.end() ? nullptr : &it->second;
  }

  std::vector<std::string> KeysWithPrefix(const std::string& prefix) const {
    std::set<std::string> keys;
    AddKeys(base_, prefix, keys);
    AddKeys(pending_, prefix, keys);
    AddKeys(overlay_, prefix, keys);
    std::vector<std::string> present;
    for (const std::string& key : keys) {
      if (Find(key) != nullptr) present.push_back(key);
    }
    return present;
  }

  void Set(const std::string& key, std::optional<KeyValue> kv) { overlay_[key] = std::move(kv); }

 private:
  template <typename Map>
  static void AddKeys(const Map& map, const std::string& prefix, std::set<std::string>& keys) {
    for (auto it = map.lower_bound(prefix); it != map.end() && HasPrefix(it->first, prefix); ++it) {
      keys.insert(it->first);
    }
  }

  const std::map<std::string, KeyValue, std::less<>>& base_;
  const std::map<std::string, PendingKv>& pending_;
  std::map<std::string, std::optional<KeyValue>>& overlay_;
};

LocalStore::LocalStore(const StoreOptions& options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : &core::SystemClock::Get()),
      hub_(WatchHub::Create()) {}

LocalStore::~LocalStore() { StopBackground(); }

void LocalStore::Load(Snapshot snapshot) {
  absl::MutexLock commit_lock(&commit_mu_);
  absl::MutexLock lock(&mu_);
  kvs_.clear();
  leases_.clear();
  absl::Time now = clock_->Now();
  for (const LeaseRecord& lease : snapshot.leases) {
    leases_[lease.id] = Lease{.ttl = lease.ttl, .deadline = now + lease.ttl, .keys = {}};
  }
  for (KeyValue& kv : snapshot.kvs) {
    if (kv.lease != 0) {
      if (auto it = leases_.find(kv.lease); it != leases_.end()) it->second.keys.insert(kv.key);
    }
    std::string key = kv.key;
    kvs_.emplace(std::move(key), std::move(kv));
  }
  history_.assign(std::make_move_iterator(snapshot.history.begin()),
                  std::make_move_iterator(snapshot.history.end()));
  revision_ = snapshot.revision;
  compacted_revision_ = snapshot.compacted_revision;
  next_lease_id_ = snapshot.next_lease_id;
  pending_kvs_.clear();
  pending_revision_ = durable_revision_ = revision_;
  pending_compacted_ = compacted_revision_;
}

void LocalStore::StartBackground() {
  if (options_.lease_tick_interval <= absl::ZeroDuration()) return;
  ticker_ = std::thread([this] { TickerLoop(); });
}

void LocalStore::StopBackground() {
  {
    absl::MutexLock lock(&ticker_mu_);
    stopping_ = true;
  }
  if (ticker_.joinable()) ticker_.join();
  hub_->Shutdown();
}

void LocalStore::TickerLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&ticker_mu_);
      if (ticker_mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.lease_tick_interval)) {
        return;
      }
    }
    // A failed expiry (say, a full disk) is retried on the next tick.
    core::OkOrReport("store", "expire leases", ExpireLeases().status());
  }
}

absl::StatusOr<GetResponse> LocalStore::Get(std::string_view key) {
  absl::ReaderMutexLock lock(&mu_);
  GetResponse response;
  response.revision = revision_;
  if (auto it = kvs_.find(key); it != kvs_.end()) response.kv = it->second;
  return response;
}

absl::StatusOr<ListResponse> LocalStore::List(std::string_view prefix, const ListOptions& options) {
  if (options.limit < 0) {
    return core::FieldError("list", "", "limit", core::Cat("must be >= 0, got ", options.limit));
  }
  absl::ReaderMutexLock lock(&mu_);
  ListResponse response;
  response.revision = revision_;
  auto it = kvs_.lower_bound(prefix);
  if (!options.start_after.empty() && options.start_after >= prefix) {
    it = kvs_.upper_bound(options.start_after);
  }
  for (; it != kvs_.end() && HasPrefix(it->first, prefix); ++it) {
    if (it->second.mod_revision < options.min_mod_revision) continue;
    if (options.limit > 0 && static_cast<int64_t>(response.kvs.size()) == options.limit) {
      response.more = true;
      break;
    }
    response.kvs.push_back(it->second);
  }
  return response;
}

absl::StatusOr<int64_t> LocalStore::Revision() {
  absl::ReaderMutexLock lock(&mu_);
  return revision_;
}

absl::StatusOr<TxnResponse> LocalStore::Txn(const TxnRequest& request) {
  for (size_t i = 0; i < request.compares.size(); ++i) {
    if (request.compares[i].key.empty()) {
      return core::FieldError("txn", "", core::Cat("compares[", i, "].key"), "must not be empty");
    }
  }
  for (size_t i = 0; i < request.then_ops.size(); ++i) {
    BERTH_RETURN_IF_ERROR(ValidateOp(request.then_ops[i], "then_ops", i));
  }
  for (size_t i = 0; i < request.else_ops.size(); ++i) {
    BERTH_RETURN_IF_ERROR(ValidateOp(request.else_ops[i], "else_ops", i));
  }

  auto queued = std::make_shared<Queued>();
  Commit& commit = queued->commit;
  TxnResponse response;
  absl::MutexLock commit_lock(&commit_mu_);
  auto not_draining = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_) { return draining_ == 0; };
  commit_mu_.Await(absl::Condition(&not_draining));
  {
    absl::ReaderMutexLock lock(&mu_);
    Staging staging(kvs_, pending_kvs_, commit.kvs);
    response.succeeded = std::all_of(
        request.compares.begin(), request.compares.end(),
        [&](const Compare& compare) { return Holds(compare, staging.Find(compare.key)); });
    const std::vector<Op>& ops = response.succeeded ? request.then_ops : request.else_ops;
    const int64_t revision = pending_revision_ + 1;
    auto remove = [&](const std::string& key, OpResponse& op_response) {
      const KeyValue* prev = staging.Find(key);
      if (prev == nullptr) return;
      op_response.prev_kvs.push_back(*prev);
      commit.events.push_back(Event{.type = Event::Type::kDelete,
                                    .kv = KeyValue{.key = key, .mod_revision = revision}});
      staging.Set(key, std::nullopt);
    };
    for (const Op& op : ops) {
      OpResponse& op_response = response.responses.emplace_back();
      switch (op.type) {
        case Op::Type::kPut: {
          // Grants and revokes drain the queue first, so leases_ is current here.
          LeaseId lease = op.put_options.lease;
          if (lease != 0 && !leases_.contains(lease)) {
            return absl::NotFoundError(core::Cat("key \"", op.key, "\": lease ", lease,
                                                 " not found (expired or revoked)"));
          }
          const KeyValue* prev = staging.Find(op.key);
          KeyValue kv{.key = op.key,
                      .value = op.value,
                      .create_revision = prev ? prev->create_revision : revision,
                      .mod_revision = revision,
                      .version = prev ? prev->version + 1 : 1,
                      .lease = lease};
          if (prev != nullptr) op_response.prev_kvs.push_back(*prev);
          commit.events.push_back(Event{.type = Event::Type::kPut, .kv = kv});
          staging.Set(op.key, std::move(kv));
          break;
        }
        case Op::Type::kDelete:
          remove(op.key, op_response);
          break;
        case Op::Type::kDeletePrefix:
          for (const std::string& key : staging.KeysWithPrefix(op.key)) remove(key, op_response);
          break;
      }
    }
    commit.next_lease_id = next_lease_id_;
  }
  if (commit.events.empty()) {
    // What this transaction read may still be on its way to disk; answer only once it is there.
    response.revision = pending_revision_;
    BERTH_RETURN_IF_ERROR(AwaitDurable(pending_revision_));
    return response;
  }
  commit.revision = pending_revision_ + 1;
  commit.compacted_revision = pending_compacted_;
  MaybeCompact(commit);
  for (const auto& [key, kv] : commit.kvs) {
    pending_kvs_[key] = PendingKv{.revision = commit.revision, .kv = kv};
  }
  pending_revision_ = commit.revision;
  pending_compacted_ = commit.compacted_revision;
  response.revision = commit.revision;
  queue_.push_back(queued);
  BERTH_RETURN_IF_ERROR(AwaitQueued(queued));
  return response;
}

absl::Status LocalStore::AwaitQueued(const std::shared_ptr<Queued>& queued) {
  while (!queued->done) {
    if (!flushing_) {
      FlushQueue();
      continue;
    }
    auto ready = [this, &queued]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_) {
      return queued->done || !flushing_;
    };
    commit_mu_.Await(absl::Condition(&ready));
  }
  return queued->status;
}

void LocalStore::FlushQueue() {
  flushing_ = true;
  std::vector<std::shared_ptr<Queued>> batch(queue_.begin(), queue_.end());
  queue_.clear();
  std::vector<const Commit*> commits;
  commits.reserve(batch.size());
  for (const auto& queued : batch) commits.push_back(&queued->commit);
  // Others keep evaluating and queueing behind this batch while it is written.
  commit_mu_.Unlock();
  absl::Status status = Persist(commits);
  if (status.ok()) {
    absl::MutexLock lock(&mu_);
    for (const Commit* commit : commits) Apply(*commit);
  }
  commit_mu_.Lock();
  flushing_ = false;
  for (const auto& queued : batch) {
    queued->done = true;
    queued->status = status;
  }
  if (status.ok()) {
    durable_revision_ = commits.back()->revision;
    for (auto it = pending_kvs_.begin(); it != pending_kvs_.end();) {
      it = it->second.revision <= durable_revision_ ? pending_kvs_.erase(it) : std::next(it);
    }
    return;
  }
  // Everything queued since was evaluated on top of the failed batch: fail it too and start
  // over from the persisted state.
  for (const auto& queued : queue_) {
    queued->done = true;
    queued->status = absl::UnavailableError(
        core::Cat("txn: an earlier transaction it depended on failed to commit (", status.message(),
                  "); retry"));
  }
  queue_.clear();
  pending_kvs_.clear();
  absl::ReaderMutexLock lock(&mu_);
  pending_revision_ = durable_revision_ = revision_;
  pending_compacted_ = compacted_revision_;
  ++epoch_;
}

absl::Status LocalStore::AwaitDurable(int64_t target) {
  const int64_t epoch = epoch_;
  auto ready = [this, target, epoch]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_) {
    return durable_revision_ >= target || epoch_ != epoch;
  };
  commit_mu_.Await(absl::Condition(&ready));
  if (epoch_ != epoch) {
    return absl::UnavailableError(
        "txn: a transaction whose result this one read failed to commit; retry");
  }
  return absl::OkStatus();
}

void LocalStore::DrainQueue() {
  // Holding new transactions back keeps a steady stream of writers from starving the drain.
  ++draining_;
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_) {
    return queue_.empty() && !flushing_;
  };
  commit_mu_.Await(absl::Condition(&idle));
  --draining_;
}

void LocalStore::MaybeCompact(Commit& commit) {
  const int64_t limit = options_.history_limit;
  if (limit <= 0) return;
  // Compacting in steps of a quarter of the limit keeps the per-commit cost small.
  if (commit.revision - commit.compacted_revision > limit + std::max<int64_t>(limit / 4, 1)) {
    commit.compacted_revision = commit.revision - limit;
    commit.compaction_moved = true;
  }
}

absl::Status LocalStore::PersistAndApply(Commit& commit) {
  BERTH_RETURN_IF_ERROR(Persist({&commit}));
  absl::MutexLock lock(&mu_);
  Apply(commit);
  pending_revision_ = durable_revision_ = revision_;
  pending_compacted_ = compacted_revision_;
  return absl::OkStatus();
}

void LocalStore::Apply(const Commit& commit) {
  for (const auto& [key, kv] : commit.kvs) {
    auto it = kvs_.find(key);
    if (it != kvs_.end() && it->second.lease != 0) {
      if (auto lease = leases_.find(it->second.lease); lease != leases_.end()) {
        lease->second.keys.erase(key);
      }
    }
    if (!kv.has_value()) {
      if (it != kvs_.end()) kvs_.erase(it);
      continue;
    }
    if (kv->lease != 0) {
      if (auto lease = leases_.find(kv->lease); lease != leases_.end()) {
        lease->second.keys.insert(key);
      }
    }
    if (it != kvs_.end()) {
      it->second = *kv;
    } else {
      kvs_.emplace(key, *kv);
    }
  }
  absl::Time now = clock_->Now();
  for (const LeaseRecord& lease : commit.granted) {
    leases_[lease.id] = Lease{.ttl = lease.ttl, .deadline = now + lease.ttl, .keys = {}};
  }
  for (LeaseId id : commit.revoked) leases_.erase(id);
  next_lease_id_ = std::max(next_lease_id_, commit.next_lease_id);
  if (commit.revision > revision_) revision_ = commit.revision;
  history_.insert(history_.end(), commit.events.begin(), commit.events.end());
  if (commit.compaction_moved) {
    compacted_revision_ = commit.compacted_revision;
    while (!history_.empty() && history_.front().revision() <= compacted_revision_) {
      history_.pop_front();
    }
  }
  // Under mu_, so a watch registering concurrently sees these events either in its backlog or
  // in its queue, never both and never neither.
  hub_->Publish(commit.events);
}

absl::StatusOr<std::unique_ptr<WatchHandle>> LocalStore::Watch(std::string_view prefix,
                                                               int64_t from_revision,
                                                               WatchCallback callback) {
  if (from_revision < 0) {
    return core::FieldError("watch", "", "from_revision",
                            core::Cat("must be >= 0, got ", from_revision));
  }
  if (!callback) return core::FieldError("watch", "", "callback", "must be set");
  absl::ReaderMutexLock lock(&mu_);
  if (from_revision == 0) from_revision = revision_ + 1;
  if (from_revision <= compacted_revision_) {
    return CompactedError(from_revision, compacted_revision_);
  }
  std::vector<Event> backlog;
  auto it = std::lower_bound(
      history_.begin(), history_.end(), from_revision,
      [](const Event& event, int64_t revision) { return event.revision() < revision; });
  for (; it != history_.end(); ++it) {
    if (HasPrefix(it->kv.key, prefix)) backlog.push_back(*it);
  }
  return hub_->Add(std::string(prefix), std::move(backlog), std::move(callback));
}

absl::Status LocalStore::Compact(int64_t revision) {
  absl::MutexLock commit_lock(&commit_mu_);
  DrainQueue();
  Commit commit;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (revision > revision_) {
      return absl::OutOfRangeError(
          core::Cat("compact: revision ", revision, " is beyond the current revision ", revision_));
    }
    if (revision <= compacted_revision_) return absl::OkStatus();
    commit.revision = revision_;
    commit.next_lease_id = next_lease_id_;
    commit.compacted_revision = revision;
    commit.compaction_moved = true;
  }
  return PersistAndApply(commit);
}

absl::StatusOr<int64_t> LocalStore::CompactedRevision() {
  absl::ReaderMutexLock lock(&mu_);
  return compacted_revision_;
}

absl::StatusOr<LeaseId> LocalStore::Grant(absl::Duration ttl) {
  if (ttl <= absl::ZeroDuration()) {
    return core::FieldError("lease", "", "ttl",
                            core::Cat("must be positive, got ", absl::FormatDuration(ttl)));
  }
  absl::MutexLock commit_lock(&commit_mu_);
  DrainQueue();
  Commit commit;
  {
    absl::ReaderMutexLock lock(&mu_);
    commit.revision = revision_;
    commit.compacted_revision = compacted_revision_;
    commit.granted.push_back(LeaseRecord{.id = next_lease_id_, .ttl = ttl});
    commit.next_lease_id = next_lease_id_ + 1;
  }
  BERTH_RETURN_IF_ERROR(PersistAndApply(commit));
  return commit.granted[0].id;
}

absl::Status LocalStore::KeepAlive(LeaseId id) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) {
    return absl::NotFoundError(core::Cat("lease ", id, ": not found (expired or revoked)"));
  }
  // Deadlines are not persisted: a reopened store restarts every lease's ttl.
  it->second.deadline = clock_->Now() + it->second.ttl;
  return absl::OkStatus();
}

absl::Status LocalStore::Revoke(LeaseId id) {
  absl::MutexLock commit_lock(&commit_mu_);
  bool revoked = false;
  BERTH_RETURN_IF_ERROR(RevokeLocked(id, /*only_if_expired=*/false, &revoked));
  if (!revoked) {
    return absl::NotFoundError(core::Cat("lease ", id, ": not found (expired or revoked)"));
  }
  return absl::OkStatus();
}

absl::Status LocalStore::RevokeLocked(LeaseId id, bool only_if_expired, bool* revoked) {
  *revoked = false;
  DrainQueue();
  Commit commit;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = leases_.find(id);
    if (it == leases_.end()) return absl::OkStatus();
    // A KeepAlive may have landed since the caller looked.
    if (only_if_expired && it->second.deadline > clock_->Now()) return absl::OkStatus();
    commit.revision = it->second.keys.empty() ? revision_ : revision_ + 1;
    for (const std::string& key : it->second.keys) {
      commit.events.push_back(Event{.type = Event::Type::kDelete,
                                    .kv = KeyValue{.key = key, .mod_revision = commit.revision}});
      commit.kvs[key] = std::nullopt;
    }
    commit.revoked.push_back(id);
    commit.next_lease_id = next_lease_id_;
    commit.compacted_revision = compacted_revision_;
    if (!commit.events.empty()) MaybeCompact(commit);
  }
  BERTH_RETURN_IF_ERROR(PersistAndApply(commit));
  *revoked = true;
  return absl::OkStatus();
}

absl::StatusOr<LeaseInfo> LocalStore::GetLease(LeaseId id) {
  absl::ReaderMutexLock lock(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) {
    return absl::NotFoundError(core::Cat("lease ", id, ": not found (expired or revoked)"));
  }
  LeaseInfo info{.id = id,
                 .ttl = it->second.ttl,
                 .remaining = std::max(absl::ZeroDuration(), it->second.deadline - clock_->Now()),
                 .keys = {it->second.keys.begin(), it->second.keys.end()}};
  return info;
}

absl::StatusOr<int> LocalStore::ExpireLeases() {
  std::vector<LeaseId> expired;
  {
    absl::ReaderMutexLock lock(&mu_);
    absl::Time now = clock_->Now();
    for (const auto& [id, lease] : leases_) {
      if (lease.deadline <= now) expired.push_back(id);
    }
  }
  int count = 0;
  absl::MutexLock commit_lock(&commit_mu_);
  for (LeaseId id : expired) {
    bool revoked = false;
    BERTH_RETURN_IF_ERROR(RevokeLocked(id, /*only_if_expired=*/true, &revoked));
    if (revoked) ++count;
  }
  return count;
}

}  // namespace berth::state
