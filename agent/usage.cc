#include "agent/usage.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/log.h"
#include "core/strings.h"

namespace berth::agent {

using core::Cat;

namespace {

// `text` cut at every `sep`; empty pieces kept unless `skip_empty`.
std::vector<std::string_view> Split(std::string_view text, char sep, bool skip_empty) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view piece = text.substr(start, end - start);
    if (!skip_empty || !piece.empty()) out.push_back(piece);
    start = end + 1;
  }
  return out;
}

std::string_view Strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

bool ToInt(std::string_view s, int64_t* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

}  // namespace

absl::StatusOr<CpuTimes> ParseProcStat(std::string_view text) {
  CpuTimes t;
  bool found = false;
  for (std::string_view line : Split(text, '\n', true)) {
    if (line.substr(0, 4) == "cpu ") {
      std::vector<std::string_view> f = Split(line, ' ', true);
      // cpu user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
      // already counted in user.
      if (f.size() < 5)
        return absl::InvalidArgumentError(Cat("/proc/stat: short line \"", line, "\""));
      for (size_t i = 1; i < f.size() && i <= 8; ++i) {
        int64_t v = 0;
        if (!ToInt(f[i], &v) || v < 0) {
          return absl::InvalidArgumentError(Cat("/proc/stat: bad field \"", f[i], "\""));
        }
        t.total += v;
        if (i != 4 && i != 5) t.busy += v;  // idle and iowait are not busy
      }
      found = true;
    } else if (line.substr(0, 3) == "cpu") {
      t.cpus++;
    }
  }
  if (!found) return absl::InvalidArgumentError("/proc/stat: no aggregate cpu line");
  return t;
}

absl::StatusOr<int64_t> ParseMemInfoUsedMiB(std::string_view text) {
  int64_t total = -1, available = -1;
  for (std::string_view line : Split(text, '\n', true)) {
    std::vector<std::string_view> f = Split(line, ' ', true);
    if (f.size() < 2) continue;
    int64_t kb = 0;
    if (!ToInt(f[1], &kb)) continue;
    if (f[0] == "MemTotal:") total = kb;
    if (f[0] == "MemAvailable:") available = kb;
  }
  if (total < 0 || available < 0) {
    return absl::InvalidArgumentError("/proc/meminfo: MemTotal or MemAvailable missing");
  }
  return std::max<int64_t>(0, total - available) / 1024;
}

absl::StatusOr<std::vector<core::GpuDeviceUsage>> ParseNvidiaSmiUsage(std::string_view csv) {
  std::vector<core::GpuDeviceUsage> out;
  for (std::string_view raw : Split(csv, '\n', true)) {
    std::string_view line = Strip(raw);
    if (line.empty()) continue;
    std::vector<std::string_view> f;
    for (std::string_view part : Split(line, ',', false)) f.push_back(Strip(part));
    if (f.size() != 3) {
      return absl::InvalidArgumentError(Cat("nvidia-smi: unexpected line \"", line, "\""));
    }
    int64_t index = 0, util = 0, mem = 0;
    if (!ToInt(f[0], &index) || index < 0) {
      return absl::InvalidArgumentError(Cat("nvidia-smi: bad index \"", f[0], "\""));
    }
    if (!ToInt(f[1], &util) || !ToInt(f[2], &mem)) continue;  // "[N/A]"
    if (util < 0 || util > 100 || mem < 0) {
      return absl::InvalidArgumentError(Cat("nvidia-smi: bad figures in \"", line, "\""));
    }
    out.push_back({.index = int(index), .utilization_percent = int(util), .memory_used_mib = mem});
    if (out.size() >= core::kMaxUsageGpus) break;
  }
  return out;
}

namespace {

std::optional<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::string> RunNvidiaSmiUsage() {
  if (access("/usr/bin/nvidia-smi", X_OK) != 0 && access("/usr/local/bin/nvidia-smi", X_OK) != 0) {
    return std::nullopt;
  }
  FILE* p = popen(
      "nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits "
      "2>/dev/null",
      "r");
  if (!p) return std::nullopt;
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0 && out.size() < (1 << 20)) out.append(buf, n);
  if (pclose(p) != 0) return std::nullopt;
  return out;
}

}  // namespace

std::optional<core::HostUsage> HostUsageSampler::Sample() {
  std::optional<std::string> stat = ReadAll(proc_root_ + "/stat");
  std::optional<std::string> meminfo = ReadAll(proc_root_ + "/meminfo");
  if (!stat || !meminfo) return std::nullopt;
  absl::StatusOr<CpuTimes> now = ParseProcStat(*stat);
  absl::StatusOr<int64_t> used = ParseMemInfoUsedMiB(*meminfo);
  if (!core::OkOrReport("agent.usage", "read /proc/stat", now.status()) ||
      !core::OkOrReport("agent.usage", "read /proc/meminfo", used.status())) {
    return std::nullopt;
  }
  core::HostUsage u;
  u.memory = core::MemoryMiB(*used);
  if (last_ && now->total > last_->total && now->busy >= last_->busy) {
    __int128 busy = now->busy - last_->busy, total = now->total - last_->total;
    u.cpu = core::MilliCpu(int64_t(busy * std::max(1, now->cpus) * 1000 / total));
  }
  last_ = *now;
  if (std::optional<std::string> smi = RunNvidiaSmiUsage()) {
    absl::StatusOr<std::vector<core::GpuDeviceUsage>> gpus = ParseNvidiaSmiUsage(*smi);
    if (core::OkOrReport("agent.usage", "read nvidia-smi", gpus.status())) u.gpus = *gpus;
  }
  return u;
}

}  // namespace berth::agent
