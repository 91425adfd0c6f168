// Reading process facts from /proc: the fields of /proc/PID/stat the process driver needs to
// recognise a process across agent restarts (its start time guards against pid reuse), to tell
// whether it is stopped, and to account its CPU and memory.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace berth::runtime {

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
};

// nullopt when the process does not exist (or /proc cannot be read).
std::optional<ProcStat> ReadProcStat(pid_t pid);
// Parses the text of /proc/PID/stat; nullopt when malformed.
std::optional<ProcStat> ParseProcStat(const std::string& text);

// True when `pid` exists, is not a zombie, and started at `start_ticks`.
bool ProcessAlive(pid_t pid, uint64_t start_ticks);

// Every live process whose process group is `pgrp`.
std::vector<ProcStat> ProcessGroupMembers(pid_t pgrp);

// This boot's id (/proc/sys/kernel/random/boot_id); empty when unreadable.
std::string BootId();

}  // namespace berth::runtime
