// The one reader of /proc/PID/stat: the fields Berth needs to recognise a process across agent
// restarts (its start time guards against pid reuse), to tell whether it is stopped or a
// zombie, and to account its CPU and memory.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace berth::runtime::host {

struct ProcStat {
  pid_t pid = 0;
  char state = '?';  // R, S, D, T (stopped), t, Z (zombie), X ...
  pid_t ppid = 0;
  pid_t pgrp = 0;
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t start_ticks = 0;  // clock ticks after boot; with the pid, names a process uniquely
  int64_t rss_pages = 0;
  int64_t threads = 0;

  bool gone() const { return state == 'Z' || state == 'X'; }
};

// nullopt when the process does not exist (or /proc cannot be read).
std::optional<ProcStat> ReadProcStat(pid_t pid);
// One thread of `pid` (/proc/PID/task/TID/stat).
std::optional<ProcStat> ReadThreadStat(pid_t pid, pid_t tid);
// Parses the text of /proc/PID/stat; nullopt when malformed.
std::optional<ProcStat> ParseProcStat(const std::string& text);

// True when `pid` exists, is not a zombie, and started at `start_ticks`.
bool ProcessAlive(pid_t pid, uint64_t start_ticks);

// Every live process whose process group is `pgrp`.
std::vector<ProcStat> ProcessGroupMembers(pid_t pgrp);

// Clock ticks (the unit of the *_ticks fields) as a duration.
absl::Duration TicksToDuration(uint64_t ticks);

// CPU time (user, system), resident set size and thread count of `pid`; nullopt when gone.
struct ProcessUsage {
  absl::Duration user = absl::ZeroDuration();
  absl::Duration system = absl::ZeroDuration();
  int64_t rss_bytes = 0;
  int64_t threads = 0;
};
std::optional<ProcessUsage> ReadProcessUsage(pid_t pid);

// This boot's id (/proc/sys/kernel/random/boot_id); empty when unreadable.
std::string BootId();

}  // namespace berth::runtime::host
