// What the agent measures on its host for each heartbeat (core::HostUsage): CPU busy since the
// last sample from /proc/stat, memory in use from /proc/meminfo, and per GPU device utilization
// and memory in use from nvidia-smi where it is installed. The parsers are pure and tested on
// their own; the sampler reads the files under a root that tests point elsewhere.
//
// Thread-safety: a HostUsageSampler is used by one thread (the heartbeat loop).
#pragma once

#include <cstdint>
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

class HostUsageSampler {
 public:
  // `proc_root`: where stat and meminfo are read ("/proc").
  explicit HostUsageSampler(std::string proc_root = "/proc") : proc_root_(std::move(proc_root)) {}
  // The usage since the previous call (the first call measures no CPU: it has no interval).
  // nullopt when /proc cannot be read.
  std::optional<core::HostUsage> Sample();

 private:
  std::string proc_root_;
  std::optional<CpuTimes> last_;
};

}  // namespace berth::agent
