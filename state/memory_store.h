// MemoryStore: the in-memory Store, for tests and for `berth sim`. Same semantics as
// SqliteStore (the same contract tests run against both) with nothing written to disk.
// Thread-safety: thread-safe, as every Store.
#pragma once

#include "state/local_store.h"

namespace berth::state {

class MemoryStore final : public LocalStore {
 public:
  explicit MemoryStore(const StoreOptions& options = {});
  ~MemoryStore() override;

 protected:
  absl::Status Persist(const std::vector<const Commit*>& commits) override;
};

}  // namespace berth::state
