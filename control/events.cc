#include "control/events.h"

#include <algorithm>
#include <atomic>

#include "absl/strings/str_format.h"
#include "core/json.h"
#include "core/status.h"

namespace berth::control {

namespace {

// One sequence for every writer in the process (control plane, storage, network), so keys
// stamped in the same nanosecond still differ.
int64_t NextSequence() {
  static std::atomic<int64_t> sequence{0};
  return sequence.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

std::string EventKey(absl::Time time, int64_t sequence) {
  return absl::StrFormat("%s%020d-%08d", std::string(kEventPrefix), absl::ToUnixNanos(time),
                         sequence % 100000000);
}

void EventLog::Add(std::vector<state::Op>* ops, std::string_view kind, std::string_view object,
                   std::string_view type, std::string_view message) const {
  core::Event e;
  e.time = clock_->Now();
  e.kind = std::string(kind);
  e.object = std::string(object);
  e.type = std::string(type);
  e.message = std::string(message);
  // Event text may quote what a client sent; replace invalid UTF-8 rather than throw.
  ops->push_back(state::Op::Put(
      EventKey(e.time, NextSequence()),
      core::EncodeEvent(e).dump(-1, ' ', false, core::Json::error_handler_t::replace)));
}

absl::StatusOr<std::vector<core::Event>> EventLog::List(int64_t after, size_t limit,
                                                        int64_t* revision) const {
  // Only the events written after `after` leave the store (a watcher asks for the few new ones
  // several times a second, of thousands kept).
  BERTH_ASSIGN_OR_RETURN(
      state::ListResponse list,
      store_->List(kEventPrefix, state::ListOptions{.min_mod_revision = after + 1}));
  std::vector<core::Event> out;
  for (const auto& kv : list.kvs) {
    if (kv.mod_revision <= after) continue;
    core::Event e = core::DecodeEvent(core::Json::parse(kv.value, nullptr, false));
    e.revision = kv.mod_revision;
    out.push_back(std::move(e));
  }
  std::stable_sort(out.begin(), out.end(), [](const core::Event& a, const core::Event& b) {
    return a.revision < b.revision;
  });
  if (limit > 0 && out.size() > limit) out.erase(out.begin(), out.end() - limit);
  if (revision) *revision = list.revision;
  return out;
}

absl::Status EventLog::Trim(size_t keep) const {
  BERTH_ASSIGN_OR_RETURN(state::ListResponse list, store_->List(kEventPrefix));
  if (list.kvs.size() <= keep) return absl::OkStatus();
  size_t excess = list.kvs.size() - keep;
  // In batches: etcd refuses a transaction of more than 128 operations by default. The oldest go
  // first, so a failure part way leaves a shorter log, never a gap.
  constexpr size_t kBatch = 100;
  for (size_t start = 0; start < excess; start += kBatch) {
    state::TxnRequest txn;
    for (size_t i = start; i < std::min(excess, start + kBatch); ++i) {
      txn.then_ops.push_back(state::Op::Delete(list.kvs[i].key));
    }
    BERTH_RETURN_IF_ERROR(store_->Txn(txn).status());
  }
  return absl::OkStatus();
}

}  // namespace berth::control
