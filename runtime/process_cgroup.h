// Cgroups for process workloads: one leaf per task that holds the task's CPU quota, memory limit
// and pid limit, counts the kernel's OOM kills (so an OOM-killed task is told apart from one that
// exited), and lists every process the task started, so nothing it leaves behind outlives it.
// Works on cgroup v1 (the memory, cpu and pids hierarchies, also as the v1 half of a hybrid
// layout) and on the v2 unified hierarchy.
//
// The workload joins its cgroup itself, between fork and exec, by writing "0" to each file of
// ProcsFiles(); the supervisor stays outside, so an OOM kill never takes it.
//
// Thread-safety: TaskCgroup is an immutable value; its methods touch only the kernel's files and
// may be called from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::runtime {

enum class CgroupMode { kNone, kV1, kV2 };
std::string_view CgroupModeName(CgroupMode mode);   // "none", "v1", "v2"
CgroupMode ParseCgroupMode(std::string_view text);  // kNone for anything unknown

// The hierarchy under `root` (normally /sys/fs/cgroup) this process can create task cgroups in:
// v1 when a writable memory controller is mounted at root/memory (v1 or hybrid), v2 when root is
// a writable unified hierarchy offering the memory controller, kNone otherwise (not root, no
// cgroup filesystem).
CgroupMode DetectCgroupMode(const std::string& root);

struct CgroupLimits {
  int64_t memory_bytes = 0;  // 0 = unlimited; swap is not allowed past it
  int64_t cpu_millis = 0;    // CFS quota in thousandths of a CPU; 0 = unlimited
  int64_t pids = 0;          // 0 = unlimited
};

class TaskCgroup {
 public:
  // Names the leaf `path` (absolute within the hierarchy, e.g. "/berth/process/train-g1") without
  // touching the filesystem; Recover uses this for a cgroup Create made earlier.
  TaskCgroup(std::string root, CgroupMode mode, std::string path);

  // Creates the leaf (and its parents) and writes `limits`. A leaf left by an earlier run is
  // reused after its processes are killed. Internal when the kernel refuses a directory or limit.
  static absl::StatusOr<TaskCgroup> Create(std::string root, CgroupMode mode, std::string path,
                                           const CgroupLimits& limits);

  // The cgroup.procs files a process writes "0" to in order to join (one per v1 hierarchy).
  std::vector<std::string> ProcsFiles() const;
  // OOM kills the kernel counted in this cgroup; 0 when it cannot be read.
  int64_t OomKills() const;
  // Processes in the cgroup now.
  std::vector<pid_t> Pids() const;
  // Reads memory.limit_in_bytes (v1) or memory.max (v2); -1 when unlimited or unreadable.
  int64_t MemoryLimit() const;
  // SIGKILLs every process still in the cgroup, waits (up to `wait_ms`) for them to leave and
  // removes the leaf. OK when it is already gone; Unavailable when processes stay.
  absl::Status Destroy(int wait_ms = 2000) const;
  // Removes the leaf only if no process is left in it; true when it is gone.
  bool RemoveIfEmpty() const;

  CgroupMode mode() const { return mode_; }
  const std::string& path() const { return path_; }

 private:
  // The leaf's directories: one per v1 controller, or the one v2 directory.
  std::vector<std::string> Dirs() const;
  std::string MemoryDir() const;

  std::string root_;
  CgroupMode mode_;
  std::string path_;
};

}  // namespace berth::runtime
