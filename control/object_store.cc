#include "control/object_store.h"

#include "core/status.h"
#include "core/strings.h"

namespace berth::control {

absl::StatusOr<int64_t> CommitChange(state::Store* store, const state::TxnRequest& txn,
                                     std::string_view kind, std::string_view object) {
  BERTH_ASSIGN_OR_RETURN(state::TxnResponse response, store->Txn(txn));
  if (!response.succeeded) {
    return absl::AbortedError(
        core::Cat(kind, " \"", object, "\": changed by another request at the same time; retry"));
  }
  return response.revision;
}

}  // namespace berth::control
