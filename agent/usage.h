// What the agent measures on its host for each heartbeat (core::HostUsage): CPU busy since the
// last sample from /proc/stat, memory in use from /proc/meminfo, per GPU device utilization and
// memory in use from nvidia-smi where it is installed, and the device memory each process holds
// (nvidia-smi's compute apps), which the agent adds up per workload. The parsers are pure and
// tested on their own; the sampler reads the files under a root that tests point elsewhere.
//
// Thread-safety: a HostUsageSampler is used by one thread (the heartbeat loop).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/host.h"

namespace berth::agent {

// The aggregate "cpu" line of /proc/stat: busy and total jiffies, and how many "cpuN" lines
// follow it.
struct CpuTimes {
  int64_t busy = 0;
  int64_t total = 0;
  int cpus = 0;
};
absl::StatusOr<CpuTimes> ParseProcStat(std::string_view text);
// MemTotal less MemAvailable, in MiB.
absl::StatusOr<int64_t> ParseMemInfoUsedMiB(std::string_view text);
// `nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader,nounits`.
// A device whose figures read "[N/A]" (MIG mode, some drivers) is left out.
absl::StatusOr<std::vector<core::GpuDeviceUsage>> ParseNvidiaSmiUsage(std::string_view csv);

// A process holding GPU memory: a row of `nvidia-smi --query-compute-apps=pid,used_memory,
// gpu_uuid --format=csv,noheader,nounits`. The pid is the host's (nvidia-smi runs there).
struct GpuProcess {
  int64_t pid = 0;
  int64_t memory_used_mib = 0;
  std::string gpu_uuid;
  bool operator==(const GpuProcess&) const = default;
};
// Rows whose memory reads "[N/A]" count as 0 MiB; "No running processes found" is no rows.
absl::StatusOr<std::vector<GpuProcess>> ParseNvidiaSmiComputeApps(std::string_view csv);

// The device memory each workload's processes hold, by workload: a process counts for the task
// whose main process (`task_pids`: pid -> workload) is it or one of its ancestors, found through
// `parent_of` (a pid's parent, 0 when unknown), at most 64 generations up. Processes of no task
// are left out.
std::map<std::string, int64_t> GpuMemoryByWorkload(
    const std::vector<GpuProcess>& processes, const std::map<int64_t, std::string>& task_pids,
    const std::function<int64_t(int64_t)>& parent_of);
// The parent of `pid` as /proc says; 0 when it is gone.
int64_t ProcParent(int64_t pid);

class HostUsageSampler {
 public:
  // `proc_root`: where stat and meminfo are read ("/proc"). `nvidia_smi`: the binary asked for
  // GPU figures; empty = none.
  explicit HostUsageSampler(std::string proc_root = "/proc", std::string nvidia_smi = "")
      : proc_root_(std::move(proc_root)), nvidia_smi_(std::move(nvidia_smi)) {}
  // The usage since the previous call (the first call measures no CPU: it has no interval).
  // nullopt when /proc cannot be read.
  std::optional<core::HostUsage> Sample();
  // The processes that hold GPU memory now; empty without nvidia-smi, when it fails (the
  // failure is reported once; the GPUs' health is the inventory's business), and when the last
  // Sample's query failed. Each query gives up after 2 seconds.
  std::vector<GpuProcess> GpuProcesses();

 private:
  // nvidia-smi's output for `args`, or nullopt (reported) when it fails; nullopt without one.
  std::optional<std::string> RunNvidiaSmi(std::vector<std::string> args);

  std::string proc_root_;
  std::string nvidia_smi_;
  std::optional<CpuTimes> last_;
  bool smi_failing_ = false;  // the last nvidia-smi call failed
};

}  // namespace berth::agent
