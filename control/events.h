// EventLog: the one writer and reader of Berth's event log, the keys under /events/. Every change
// to a stored object (workload, host, disk, network, ...) puts its event in the transaction that
// makes the change, so the log never tells of a change that did not happen. Keys sort by the
// event's time, then by one process-wide sequence, so two events stamped with the same time
// (a paused test clock, a coarse system clock) never share a key whichever object they describe.
// Readers order events by the store revision they were written at.
//
// Ownership: borrows the store and clock, which must outlive it. Thread-safety: thread-safe; it
// holds no mutable state of its own (the sequence is atomic).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/host.h"
#include "state/store.h"

namespace berth::control {

inline constexpr std::string_view kEventPrefix = "/events/";

class EventLog {
 public:
  EventLog(state::Store* store, core::Clock* clock) : store_(store), clock_(clock) {}

  // Appends the put of one event, stamped with the clock's time, to `ops`: a transaction's
  // then_ops (or else_ops) that carry the change it describes. `kind` is the object's kind
  // ("workload", "disk", ...), `type` what happened ("created", "resized", ...).
  void Add(std::vector<state::Op>* ops, std::string_view kind, std::string_view object,
           std::string_view type, std::string_view message) const;

  // Events written after store revision `after`, oldest first; the newest `limit` when there
  // are more (0: all). `revision` gets the store revision the listing saw.
  [[nodiscard]] absl::StatusOr<std::vector<core::Event>> List(int64_t after, size_t limit,
                                                              int64_t* revision = nullptr) const;

  // Deletes the oldest events beyond the newest `keep`.
  [[nodiscard]] absl::Status Trim(size_t keep) const;

 private:
  state::Store* const store_;
  core::Clock* const clock_;
};

// The key of an event stamped `time` with sequence number `sequence`.
std::string EventKey(absl::Time time, int64_t sequence);

}  // namespace berth::control
