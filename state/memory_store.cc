#include "state/memory_store.h"

namespace berth::state {

MemoryStore::MemoryStore(const StoreOptions& options) : LocalStore(options) { StartBackground(); }

MemoryStore::~MemoryStore() { StopBackground(); }

absl::Status MemoryStore::Persist(const std::vector<const Commit*>& commits) {
  return absl::OkStatus();
}

}  // namespace berth::state
