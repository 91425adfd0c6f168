#include "state/copy.h"

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/strings.h"

namespace berth::state {
namespace {

constexpr int64_t kPage = 500;

// Calls `each` for every key of `store`, in key order, a page at a time.
absl::Status ForEachKey(Store& store, const std::function<absl::Status(KeyValue&)>& each) {
  ListOptions options{.limit = kPage};
  for (;;) {
    BERTH_ASSIGN_OR_RETURN(ListResponse page, store.List("", options));
    if (page.kvs.empty()) return absl::OkStatus();
    // Taken before `each`, which may move the keys out.
    std::string last = page.kvs.back().key;
    for (KeyValue& kv : page.kvs) BERTH_RETURN_IF_ERROR(each(kv));
    if (!page.more) return absl::OkStatus();
    options.start_after = std::move(last);
  }
}

}  // namespace

absl::StatusOr<CopyResult> CopyStore(Store& from, Store& to, const CopyOptions& options) {
  CopyResult result;
  BERTH_ASSIGN_OR_RETURN(ListResponse existing, to.List("", ListOptions{.limit = 1}));
  if (!existing.kvs.empty()) {
    if (!options.force) {
      return absl::FailedPreconditionError(core::Cat(
          "migrate: the target store is not empty (it holds \"", existing.kvs.front().key,
          "\" and maybe more); give an empty one, or pass --force to replace what it holds"));
    }
    BERTH_ASSIGN_OR_RETURN(result.replaced, to.DeletePrefix(""));
  }
  BERTH_ASSIGN_OR_RETURN(result.source_revision, from.Revision());

  // Count first, so progress has a total.
  int64_t total = 0;
  BERTH_RETURN_IF_ERROR(ForEachKey(from, [&](KeyValue& kv) {
    if (kv.lease == 0) ++total;
    return absl::OkStatus();
  }));

  TxnRequest batch;
  int64_t batch_bytes = 0;
  auto flush = [&]() -> absl::Status {
    if (batch.then_ops.empty()) return absl::OkStatus();
    BERTH_ASSIGN_OR_RETURN(TxnResponse response, to.Txn(batch));
    if (!response.succeeded) return absl::InternalError("migrate: a batch without compares failed");
    result.keys += static_cast<int64_t>(batch.then_ops.size());
    batch.then_ops.clear();
    batch_bytes = 0;
    if (options.progress) options.progress(result.keys, total);
    return absl::OkStatus();
  };
  BERTH_RETURN_IF_ERROR(ForEachKey(from, [&](KeyValue& kv) -> absl::Status {
    if (kv.lease != 0) {
      ++result.skipped_leased;
      return absl::OkStatus();
    }
    const int64_t size = static_cast<int64_t>(kv.key.size() + kv.value.size());
    if (!batch.then_ops.empty() && (static_cast<int>(batch.then_ops.size()) >= options.batch_keys ||
                                    batch_bytes + size > options.batch_bytes)) {
      BERTH_RETURN_IF_ERROR(flush());
    }
    result.bytes += size;
    batch_bytes += size;
    batch.then_ops.push_back(Op::Put(std::move(kv.key), std::move(kv.value)));
    return absl::OkStatus();
  }));
  BERTH_RETURN_IF_ERROR(flush());
  if (result.keys == 0 && options.progress) options.progress(0, total);

  // Read both back in key order and compare, key by key.
  std::vector<std::pair<std::string, std::string>> copied;
  copied.reserve(static_cast<size_t>(result.keys));
  BERTH_RETURN_IF_ERROR(ForEachKey(from, [&](KeyValue& kv) {
    if (kv.lease == 0) copied.emplace_back(std::move(kv.key), std::move(kv.value));
    return absl::OkStatus();
  }));
  size_t next = 0;
  BERTH_RETURN_IF_ERROR(ForEachKey(to, [&](KeyValue& kv) -> absl::Status {
    if (next >= copied.size()) {
      return absl::DataLossError(
          core::Cat("migrate: the target holds \"", kv.key, "\", which the source does not"));
    }
    if (kv.key != copied[next].first) {
      return absl::DataLossError(core::Cat("migrate: the target lacks \"", copied[next].first,
                                           "\" (next there is \"", kv.key, "\")"));
    }
    if (kv.value != copied[next].second) {
      return absl::DataLossError(
          core::Cat("migrate: \"", kv.key, "\" differs between the source and the target"));
    }
    ++next;
    return absl::OkStatus();
  }));
  if (next != copied.size() || static_cast<int64_t>(copied.size()) != result.keys) {
    return absl::DataLossError(core::Cat("migrate: copied ", result.keys,
                                         " keys but the target holds ", next, " of the source's ",
                                         copied.size()));
  }
  BERTH_ASSIGN_OR_RETURN(result.target_revision, to.Revision());
  return result;
}

}  // namespace berth::state
