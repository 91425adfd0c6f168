#include "runtime/host/proc_stat.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "core/strings.h"
#include "runtime/host/file.h"

namespace berth::runtime::host {
namespace {

std::optional<ProcStat> ReadStatFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok() || text->empty()) return std::nullopt;
  return ParseProcStat(*text);
}

}  // namespace

std::optional<ProcStat> ParseProcStat(const std::string& text) {
  // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
  size_t open = text.find('(');
  size_t close = text.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;
  ProcStat st;
  st.pid = static_cast<pid_t>(std::strtol(text.c_str(), nullptr, 10));
  std::istringstream rest(text.substr(close + 1));
  // Fields from 3 on, numbered as in proc(5).
  std::vector<std::string> f(3);
  std::string tok;
  while (rest >> tok) f.push_back(tok);
  if (f.size() <= 24) return std::nullopt;
  st.state = f[3].empty() ? '?' : f[3][0];
  st.ppid = static_cast<pid_t>(std::strtol(f[4].c_str(), nullptr, 10));
  st.pgrp = static_cast<pid_t>(std::strtol(f[5].c_str(), nullptr, 10));
  st.utime_ticks = std::strtoull(f[14].c_str(), nullptr, 10);
  st.stime_ticks = std::strtoull(f[15].c_str(), nullptr, 10);
  st.threads = std::strtoll(f[20].c_str(), nullptr, 10);
  st.start_ticks = std::strtoull(f[22].c_str(), nullptr, 10);
  st.rss_pages = std::strtoll(f[24].c_str(), nullptr, 10);
  return st;
}

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  if (pid <= 0) return std::nullopt;
  return ReadStatFile(core::Cat("/proc/", pid, "/stat"));
}

std::optional<ProcStat> ReadThreadStat(pid_t pid, pid_t tid) {
  if (pid <= 0 || tid <= 0) return std::nullopt;
  return ReadStatFile(core::Cat("/proc/", pid, "/task/", tid, "/stat"));
}

bool ProcessAlive(pid_t pid, uint64_t start_ticks) {
  std::optional<ProcStat> st = ReadProcStat(pid);
  return st.has_value() && !st->gone() && st->start_ticks == start_ticks;
}

std::vector<ProcStat> ProcessGroupMembers(pid_t pgrp) {
  std::vector<ProcStat> out;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    std::optional<ProcStat> st = ReadProcStat(static_cast<pid_t>(pid));
    if (st && st->pgrp == pgrp && !st->gone()) out.push_back(*st);
  }
  closedir(dir);
  return out;
}

absl::Duration TicksToDuration(uint64_t ticks) {
  static const int64_t hz = sysconf(_SC_CLK_TCK);
  return absl::Milliseconds(static_cast<int64_t>(ticks) * 1000 / (hz > 0 ? hz : 100));
}

std::optional<ProcessUsage> ReadProcessUsage(pid_t pid) {
  std::optional<ProcStat> st = ReadProcStat(pid);
  if (!st) return std::nullopt;
  static const int64_t page_size = sysconf(_SC_PAGESIZE);
  return ProcessUsage{.user = TicksToDuration(st->utime_ticks),
                      .system = TicksToDuration(st->stime_ticks),
                      .rss_bytes = st->rss_pages * page_size,
                      .threads = st->threads};
}

std::string BootId() {
  absl::StatusOr<std::string> id = ReadFile("/proc/sys/kernel/random/boot_id");
  if (!id.ok()) return "";
  while (!id->empty() && (id->back() == '\n' || id->back() == ' ')) id->pop_back();
  return *id;
}

}  // namespace berth::runtime::host
