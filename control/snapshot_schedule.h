// SnapshotSchedule: the server's scheduled snapshots of its store (`berth serve --snapshot-every
// 1h --snapshot-keep 24`). Every `every` by the injected clock it saves a snapshot into `dir` as
// berth-YYYYMMDDTHHMMSSZ.snapshot (UTC; the names sort by time), written atomically, then deletes
// the oldest so that `keep` remain. The cadence survives restarts: the next snapshot is due
// `every` after the newest one in `dir`. A failed snapshot is logged and counted (snapshot) and
// tried again after a minute (or `every`, if shorter).
//
// Thread-safety: RunDue and Prune may be called from any thread (one snapshot runs at a time);
// Start/Stop from the owning thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "state/snapshot.h"

namespace berth::control {

struct SnapshotScheduleOptions {
  std::string dir;
  absl::Duration every = absl::Hours(1);
  int keep = 24;
  core::Clock* clock = nullptr;  // not owned; null: the system clock
  // How often the background thread asks the clock whether a snapshot is due (real time).
  absl::Duration poll = absl::Seconds(1);
  // Whether this server takes the snapshots now; unset: always. Several servers on one store
  // pass "I lead", so one series is taken whichever server leads.
  std::function<bool()> active;
};

class SnapshotSchedule {
 public:
  // `source` is not owned and must outlive the schedule.
  SnapshotSchedule(state::Snapshotter* source, SnapshotScheduleOptions options);
  ~SnapshotSchedule();  // Stops.
  SnapshotSchedule(const SnapshotSchedule&) = delete;
  SnapshotSchedule& operator=(const SnapshotSchedule&) = delete;

  // Creates the directory and starts the background thread.
  [[nodiscard]] absl::Status Start();
  void Stop();

  // Saves a snapshot and prunes if one is due by the clock and options.active allows; returns
  // its path, or nullopt when none was due or the server does not take them now.
  absl::StatusOr<std::optional<std::string>> RunDue();
  // Deletes all but the newest `keep` snapshots (and temporary files a crash left behind).
  absl::Status Prune();
  // The snapshots in the directory, oldest first (full paths).
  std::vector<std::string> List() const;

  // The file name of a snapshot taken at `t`.
  static std::string FileName(absl::Time t);

 private:
  void Loop();
  absl::Status PruneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(run_mu_);

  state::Snapshotter* const source_;
  const SnapshotScheduleOptions options_;
  core::Clock* const clock_;

  absl::Mutex run_mu_;  // one snapshot at a time
  std::optional<absl::Time> next_due_ ABSL_GUARDED_BY(run_mu_);

  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread thread_;
};

}  // namespace berth::control
