#include "runtime/proc_stat.h"

#include <dirent.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace berth::runtime {
namespace {

std::string ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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
  std::string text = ReadSmallFile("/proc/" + std::to_string(pid) + "/stat");
  if (text.empty()) return std::nullopt;
  return ParseProcStat(text);
}

bool ProcessAlive(pid_t pid, uint64_t start_ticks) {
  std::optional<ProcStat> st = ReadProcStat(pid);
  return st.has_value() && st->start_ticks == start_ticks && st->state != 'Z' && st->state != 'X';
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
    if (st && st->pgrp == pgrp && st->state != 'Z' && st->state != 'X') out.push_back(*st);
  }
  closedir(dir);
  return out;
}

std::string BootId() {
  std::string id = ReadSmallFile("/proc/sys/kernel/random/boot_id");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

}  // namespace berth::runtime
