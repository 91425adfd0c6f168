// CopyStore: copies every key of one Store into another, for moving a deployment from one store
// to another (`berth admin migrate`, SQLite to etcd). Keys and values are copied; revisions are
// not (the target numbers its own), and neither is change history.
//
// Keys attached to a lease are not copied: a lease stands for a live process (a server, an
// agent's session) and ends with it, and the copy runs with the source's servers stopped, so
// those keys are stale; their owners write them again, with leases of the new store, when they
// start on it. The result counts them.
//
// The source must not change during the copy (stop its servers; an SqliteStore is held
// exclusively by whoever opened it). Thread-safety: a free function; the stores are thread-safe.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/statusor.h"
#include "state/store.h"

namespace berth::state {

struct CopyOptions {
  // Replace what the target holds. Without it a target with any key is refused.
  bool force = false;
  // Keys per transaction, and bytes of keys and values per transaction (etcd refuses requests
  // over 1.5 MiB and transactions over 128 ops by default).
  int batch_keys = 100;
  int64_t batch_bytes = 512 << 10;
  // Called after each batch with the keys copied so far and the number to copy.
  std::function<void(int64_t copied, int64_t total)> progress;
};

struct CopyResult {
  int64_t keys = 0;            // copied, and found equal in the target afterwards
  int64_t skipped_leased = 0;  // attached to a lease, not copied
  int64_t bytes = 0;           // of keys and values copied
  int64_t source_revision = 0;
  int64_t target_revision = 0;  // after the copy
  int64_t replaced = 0;         // keys the target held before (with force)
};

// Copies, then reads the target back and checks that it holds exactly the copied keys with their
// values (DataLoss naming the first difference otherwise). FailedPrecondition when the target is
// not empty and !force.
[[nodiscard]] absl::StatusOr<CopyResult> CopyStore(Store& from, Store& to,
                                                   const CopyOptions& options = {});

}  // namespace berth::state
