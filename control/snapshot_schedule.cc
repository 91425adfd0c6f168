#include "control/snapshot_schedule.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/time/civil_time.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/strings.h"

namespace berth::control {

namespace fs = std::filesystem;

namespace {

constexpr char kPrefix[] = "berth-";
constexpr char kSuffix[] = ".snapshot";
constexpr char kTimeFormat[] = "%Y%m%dT%H%M%SZ";
constexpr char kWhere[] = "snapshot";

// The time in a snapshot's file name, or nullopt when the name is not one of ours.
std::optional<absl::Time> TimeOf(const std::string& name) {
  const std::string prefix = kPrefix, suffix = kSuffix;
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  std::string stamp = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  // Fixed widths: absl::ParseTime's %Y would take every digit of "20231114" as the year.
  int year, month, day, hour, minute, second;
  char t_mark, z_mark;
  if (stamp.size() != 16 || std::sscanf(stamp.c_str(), "%4d%2d%2d%c%2d%2d%2d%c", &year, &month,
                                        &day, &t_mark, &hour, &minute, &second, &z_mark) != 8) {
    return std::nullopt;
  }
  absl::Time t = absl::FromCivil(absl::CivilSecond(year, month, day, hour, minute, second),
                                 absl::UTCTimeZone());
  // Only a name this schedule would write (which also refuses a month 13 or a 25th hour).
  if (SnapshotSchedule::FileName(t) != name) return std::nullopt;
  return t;
}

}  // namespace

SnapshotSchedule::SnapshotSchedule(state::Snapshotter* source, SnapshotScheduleOptions options)
    : source_(source),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &core::SystemClock::Get()) {}

SnapshotSchedule::~SnapshotSchedule() { Stop(); }

std::string SnapshotSchedule::FileName(absl::Time t) {
  return core::Cat(kPrefix, absl::FormatTime(kTimeFormat, t, absl::UTCTimeZone()), kSuffix);
}

absl::Status SnapshotSchedule::Start() {
  std::error_code ec;
  fs::create_directories(options_.dir, ec);
  if (ec) {
    return absl::InternalError(
        core::Cat("snapshot directory ", options_.dir, ": cannot create it: ", ec.message()));
  }
  thread_ = std::thread([this] {
    core::OkOrReport(kWhere, "snapshot schedule",
                     core::RunGuarded("snapshot schedule", [this] { Loop(); }));
  });
  return absl::OkStatus();
}

void SnapshotSchedule::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SnapshotSchedule::Loop() {
  for (;;) {
    absl::StatusOr<std::optional<std::string>> ran = RunDue();
    if (!ran.ok()) core::ReportError(kWhere, "scheduled snapshot", ran.status());
    absl::MutexLock lock(&stop_mu_);
    auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(stop_mu_) { return stopping_; };
    if (stop_mu_.AwaitWithTimeout(absl::Condition(&stopping), options_.poll)) return;
  }
}

std::vector<std::string> SnapshotSchedule::List() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (TimeOf(name).has_value()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  std::vector<std::string> paths;
  for (const std::string& name : names) paths.push_back(core::Cat(options_.dir, "/", name));
  return paths;
}

absl::StatusOr<std::optional<std::string>> SnapshotSchedule::RunDue() {
  absl::MutexLock lock(&run_mu_);
  if (options_.active && !options_.active()) return std::nullopt;
  const absl::Time now = clock_->Now();
  if (!next_due_.has_value()) {
    // The first snapshot is due `every` after the newest one kept, or at once when none is.
    std::vector<std::string> kept = List();
    next_due_ = now;
    if (!kept.empty()) {
      if (auto t = TimeOf(fs::path(kept.back()).filename().string())) {
        next_due_ = *t + options_.every;
      }
    }
  }
  if (now < *next_due_) return std::nullopt;
  const std::string path = core::Cat(options_.dir, "/", FileName(now));
  absl::StatusOr<state::SnapshotInfo> saved = source_->SaveSnapshot(path);
  if (!saved.ok()) {
    next_due_ = now + std::min(options_.every, absl::Minutes(1));
    return saved.status();
  }
  next_due_ = now + options_.every;
  core::LogInfo("snapshot %s: %d keys at revision %d, %d bytes", path, saved->keys, saved->revision,
                saved->bytes);
  absl::Status pruned = PruneLocked();
  if (!pruned.ok()) core::ReportError(kWhere, "prune snapshots", pruned);
  return std::optional<std::string>(path);
}

absl::Status SnapshotSchedule::Prune() {
  absl::MutexLock lock(&run_mu_);
  return PruneLocked();
}

absl::Status SnapshotSchedule::PruneLocked() {
  std::vector<std::string> kept = List();
  absl::Status first;
  const size_t keep = static_cast<size_t>(std::max(options_.keep, 1));
  for (size_t i = 0; i + keep < kept.size(); ++i) {
    std::error_code ec;
    fs::remove(kept[i], ec);
    if (ec && first.ok()) {
      first = absl::InternalError(core::Cat("delete old snapshot ", kept[i], ": ", ec.message()));
    }
  }
  // Temporary files of snapshots a crash interrupted: ".berth-...snapshot.tmp-PID-N".
  std::error_code ec;
  for (fs::directory_iterator it(options_.dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.starts_with(core::Cat(".", kPrefix)) &&
        name.find(core::Cat(kSuffix, ".tmp-")) != std::string::npos) {
      std::error_code remove_ec;
      fs::remove(it->path(), remove_ec);
    }
  }
  return first;
}

}  // namespace berth::control
