// Stored objects of the storage and network services: JSON documents under a key prefix, each
// written together with an event in one compare-and-set transaction, so a concurrent writer
// never overwrites a change it has not seen and the event log matches the objects.
//
// Thread-safety: plain functions over a thread-safe Store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/clock.h"
#include "core/json.h"
#include "state/store.h"

namespace berth::control {

struct StoredObject {
  std::string key;
  core::Json body;
  int64_t mod_revision = 0;
};

// The object at `key`, or nullopt when there is none.
absl::StatusOr<std::optional<StoredObject>> ReadObject(state::Store* store, const std::string& key);
// Every object under `prefix` (unreadable ones skipped); `revision` gets the store's revision.
absl::StatusOr<std::vector<StoredObject>> ListObjects(state::Store* store, std::string_view prefix,
                                                      int64_t* revision = nullptr);

// One write of a stored object with its event.
struct ObjectWrite {
  std::string key;
  int64_t expected_revision = 0;   // 0 = the key must be absent
  std::optional<core::Json> body;  // nullopt = delete
};

struct ObjectEvent {
  std::string kind;  // "disk", "network", ...
  std::string object;
  std::string type;  // "created", "resized", ...
  std::string message;
};

// Applies every write if each key still has its expected revision, adding the event. Returns the
// new store revision, or Aborted naming `what` when another writer got there first.
absl::StatusOr<int64_t> CommitObjects(state::Store* store, core::Clock* clock,
                                      const std::vector<ObjectWrite>& writes,
                                      const ObjectEvent& event);

// Stamps revision, created_at and updated_at on a stored object's body.
void StampObject(core::Json* body, int64_t revision, core::Clock* clock, bool created);

}  // namespace berth::control
