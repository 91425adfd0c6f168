#include "state/store.h"

#include <string>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/synchronization/mutex.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::state {
namespace {

constexpr char kCompactedPayload[] = "berth.state/compacted_revision";

}  // namespace

Compare Compare::ModRevision(std::string key, int64_t revision) {
  return Compare{.key = std::move(key), .target = Target::kModRevision, .number = revision};
}
Compare Compare::CreateRevision(std::string key, int64_t revision) {
  return Compare{.key = std::move(key), .target = Target::kCreateRevision, .number = revision};
}
Compare Compare::Version(std::string key, int64_t version) {
  return Compare{.key = std::move(key), .target = Target::kVersion, .number = version};
}
Compare Compare::Value(std::string key, std::string value) {
  return Compare{.key = std::move(key), .target = Target::kValue, .value = std::move(value)};
}
Compare Compare::Absent(std::string key) { return CreateRevision(std::move(key), 0); }

Op Op::Put(std::string key, std::string value, PutOptions options) {
  return Op{
      .type = Type::kPut, .key = std::move(key), .value = std::move(value), .put_options = options};
}
Op Op::Delete(std::string key) { return Op{.type = Type::kDelete, .key = std::move(key)}; }
Op Op::DeletePrefix(std::string prefix) {
  return Op{.type = Type::kDeletePrefix, .key = std::move(prefix)};
}

absl::Status CompactedError(int64_t requested, int64_t compacted_revision) {
  absl::Status status = absl::OutOfRangeError(
      core::Cat("watch: from_revision ", requested, " is compacted (compacted revision ",
                compacted_revision, "); list again and watch from the listing's revision + 1"));
  status.SetPayload(kCompactedPayload, absl::Cord(std::to_string(compacted_revision)));
  return status;
}

std::optional<int64_t> CompactedRevision(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kOutOfRange) return std::nullopt;
  absl::optional<absl::Cord> payload = status.GetPayload(kCompactedPayload);
  if (!payload.has_value()) return std::nullopt;
  try {
    return std::stoll(std::string(*payload));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

absl::StatusOr<int64_t> Store::Put(std::string_view key, std::string_view value,
                                   const PutOptions& options) {
  TxnRequest request;
  request.then_ops.push_back(Op::Put(std::string(key), std::string(value), options));
  BERTH_ASSIGN_OR_RETURN(TxnResponse response, Txn(request));
  return response.revision;
}

absl::StatusOr<bool> Store::Delete(std::string_view key) {
  TxnRequest request;
  request.then_ops.push_back(Op::Delete(std::string(key)));
  BERTH_ASSIGN_OR_RETURN(TxnResponse response, Txn(request));
  return !response.responses.at(0).prev_kvs.empty();
}

absl::StatusOr<int64_t> Store::DeletePrefix(std::string_view prefix) {
  TxnRequest request;
  request.then_ops.push_back(Op::DeletePrefix(std::string(prefix)));
  BERTH_ASSIGN_OR_RETURN(TxnResponse response, Txn(request));
  return static_cast<int64_t>(response.responses.at(0).prev_kvs.size());
}

absl::StatusOr<int64_t> Store::CreateIfAbsent(std::string_view key, std::string_view value,
                                              const PutOptions& options) {
  TxnRequest request;
  request.compares.push_back(Compare::Absent(std::string(key)));
  request.then_ops.push_back(Op::Put(std::string(key), std::string(value), options));
  BERTH_ASSIGN_OR_RETURN(TxnResponse response, Txn(request));
  if (!response.succeeded) {
    return absl::AlreadyExistsError(core::Cat("key \"", key, "\": already exists"));
  }
  return response.revision;
}

absl::StatusOr<int64_t> Store::CompareAndSwap(std::string_view key, int64_t expected_mod_revision,
                                              std::string_view value, const PutOptions& options) {
  TxnRequest request;
  request.compares.push_back(expected_mod_revision == 0
                                 ? Compare::Absent(std::string(key))
                                 : Compare::ModRevision(std::string(key), expected_mod_revision));
  request.then_ops.push_back(Op::Put(std::string(key), std::string(value), options));
  BERTH_ASSIGN_OR_RETURN(TxnResponse response, Txn(request));
  if (!response.succeeded) {
    return absl::AbortedError(core::Cat("key \"", key, "\": mod_revision is no longer ",
                                        expected_mod_revision, "; read it again and retry"));
  }
  return response.revision;
}

absl::Status Store::CompareAndDelete(std::string_view key, int64_t expected_mod_revision) {
  TxnRequest request;
  request.compares.push_back(Compare::ModRevision(std::string(key), expected_mod_revision));
  request.then_ops.push_back(Op::Delete(std::string(key)));
  BERTH_ASSIGN_OR_RETURN(TxnResponse response, Txn(request));
  if (response.succeeded) return absl::OkStatus();
  BERTH_ASSIGN_OR_RETURN(GetResponse current, Get(key));
  if (!current.kv.has_value()) {
    return absl::NotFoundError(core::Cat("key \"", key, "\": not found"));
  }
  return absl::AbortedError(core::Cat("key \"", key, "\": mod_revision is ",
                                      current.kv->mod_revision, ", not ", expected_mod_revision,
                                      "; read it again and retry"));
}

absl::StatusOr<int64_t> Store::WaitForChange(std::string_view prefix, int64_t after_revision,
                                             absl::Duration timeout) {
  // Shared with the callback, which may still be queued when this function returns.
  struct Seen {
    absl::Mutex mu;
    int64_t revision ABSL_GUARDED_BY(mu) = 0;
  };
  auto seen = std::make_shared<Seen>();
  BERTH_ASSIGN_OR_RETURN(std::unique_ptr<WatchHandle> handle,
                         Watch(prefix, after_revision + 1, [seen](const Event& event) {
                           absl::MutexLock lock(&seen->mu);
                           if (seen->revision == 0) seen->revision = event.revision();
                         }));
  int64_t revision = 0;
  {
    absl::MutexLock lock(&seen->mu);
    auto changed = [&seen]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(seen->mu) { return seen->revision != 0; };
    seen->mu.AwaitWithTimeout(absl::Condition(&changed), timeout);
    revision = seen->revision;
  }
  // Outside the lock: ending the watch waits for a running callback, which takes the lock.
  handle.reset();
  if (revision == 0) {
    return absl::DeadlineExceededError(core::Cat("prefix \"", prefix,
                                                 "\": no change after revision ", after_revision,
                                                 " within ", absl::FormatDuration(timeout)));
  }
  return revision;
}

}  // namespace berth::state
