#include "agent/usage.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/log.h"
#include "core/strings.h"
#include "runtime/host/executor.h"
#include "runtime/host/proc_stat.h"
#include "runtime/host/run.h"

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
  if (std::optional<std::string> smi = RunNvidiaSmi(
          {"--query-gpu=index,utilization.gpu,memory.used", "--format=csv,noheader,nounits"})) {
    absl::StatusOr<std::vector<core::GpuDeviceUsage>> gpus = ParseNvidiaSmiUsage(*smi);
    if (core::OkOrReport("agent.usage", "read nvidia-smi", gpus.status())) u.gpus = *gpus;
  }
  return u;
}

std::vector<GpuProcess> HostUsageSampler::GpuProcesses() {
  if (smi_failing_) return {};  // the device query just failed: do not wait on it twice
  std::optional<std::string> smi = RunNvidiaSmi(
      {"--query-compute-apps=pid,used_memory,gpu_uuid", "--format=csv,noheader,nounits"});
  if (!smi) return {};
  absl::StatusOr<std::vector<GpuProcess>> apps = ParseNvidiaSmiComputeApps(*smi);
  if (!core::OkOrReport("agent.usage", "read nvidia-smi compute apps", apps.status())) return {};
  return *std::move(apps);
}

std::optional<std::string> HostUsageSampler::RunNvidiaSmi(std::vector<std::string> args) {
  if (nvidia_smi_.empty()) return std::nullopt;
  args.insert(args.begin(), nvidia_smi_);
  // Short: the heartbeat waits for it, and a hung driver must not make the host look down.
  absl::StatusOr<runtime::host::RunResult> r =
      runtime::host::RunTool(runtime::host::RealExecutor(), args,
                             {.timeout = absl::Seconds(2), .output_limit = size_t{1} << 20});
  absl::Status failed = !r.ok() ? r.status()
                        : !r->ok()
                            ? absl::UnavailableError(Cat(runtime::host::FormatArgv(args), " ",
                                                         runtime::host::DescribeExit(*r)))
                            : absl::OkStatus();
  // Reported when it starts failing, not at every heartbeat; the GPUs' health says the rest.
  if (!failed.ok() && !smi_failing_) core::ReportError("agent.usage", "run nvidia-smi", failed);
  smi_failing_ = !failed.ok();
  if (!failed.ok()) return std::nullopt;
  return std::move(r->out);
}

absl::StatusOr<std::vector<GpuProcess>> ParseNvidiaSmiComputeApps(std::string_view csv) {
  std::vector<GpuProcess> out;
  for (std::string_view raw : Split(csv, '\n', true)) {
    std::string_view line = Strip(raw);
    if (line.empty() || line.substr(0, 3) == "No ") continue;  // "No running processes found"
    std::vector<std::string_view> f;
    for (std::string_view part : Split(line, ',', false)) f.push_back(Strip(part));
    if (f.size() != 3) {
      return absl::InvalidArgumentError(Cat("nvidia-smi: unexpected line \"", line, "\""));
    }
    GpuProcess p;
    if (!ToInt(f[0], &p.pid) || p.pid <= 0) {
      return absl::InvalidArgumentError(Cat("nvidia-smi: bad pid \"", f[0], "\""));
    }
    // MIG devices and some drivers print "[N/A]" for the memory.
    if (ToInt(f[1], &p.memory_used_mib) && p.memory_used_mib < 0) {
      return absl::InvalidArgumentError(Cat("nvidia-smi: bad memory \"", f[1], "\""));
    }
    p.gpu_uuid = std::string(f[2]);
    out.push_back(std::move(p));
    if (out.size() >= 65536) break;
  }
  return out;
}

std::map<std::string, int64_t> GpuMemoryByWorkload(
    const std::vector<GpuProcess>& processes, const std::map<int64_t, std::string>& task_pids,
    const std::function<int64_t(int64_t)>& parent_of) {
  std::map<std::string, int64_t> out;
  if (task_pids.empty()) return out;
  std::map<int64_t, const std::string*> owner_of;  // pids already traced, nullptr = no task's
  for (const GpuProcess& p : processes) {
    std::vector<int64_t> path;
    const std::string* owner = nullptr;
    int64_t pid = p.pid;
    for (int depth = 0; depth < 64 && pid > 1; ++depth) {
      if (auto known = owner_of.find(pid); known != owner_of.end()) {
        owner = known->second;
        break;
      }
      path.push_back(pid);
      if (auto task = task_pids.find(pid); task != task_pids.end()) {
        owner = &task->second;
        break;
      }
      pid = parent_of(pid);
    }
    for (int64_t traced : path) owner_of[traced] = owner;
    if (owner != nullptr) out[*owner] += p.memory_used_mib;
  }
  return out;
}

int64_t ProcParent(int64_t pid) {
  std::optional<runtime::host::ProcStat> st = runtime::host::ReadProcStat(static_cast<pid_t>(pid));
  return st && !st->gone() ? st->ppid : 0;
}

}  // namespace berth::agent
