// `berth admin`: the control plane's disaster recovery. `snapshot save` writes a consistent
// snapshot of a live server's store (through its API, or straight from a store URL),
// `snapshot restore` turns one into a new server's store (SQLite) or an etcd member's data
// directory, and `migrate` copies every key of an SQLite store into etcd. Also the
// `serve --snapshot-*` flags and the scheduled snapshots they start.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "control/snapshot_schedule.h"
#include "core/clock.h"
#include "core/flags.h"
#include "state/store.h"

namespace berth {

core::Command AdminCommand();

// --snapshot-every, --snapshot-keep and --snapshot-dir, for `berth serve`.
std::vector<core::FlagDef> SnapshotScheduleFlags();

// Starts the scheduled snapshots the flags ask for (nullptr when --snapshot-every is not given),
// taken only while `active` says so (the server leads). FailedPrecondition when the store
// cannot take snapshots.
[[nodiscard]] absl::StatusOr<std::unique_ptr<control::SnapshotSchedule>> StartSnapshotSchedule(
    const core::Invocation& flags, state::Store* store, const std::string& data_dir,
    core::Clock* clock, std::function<bool()> active);

}  // namespace berth
