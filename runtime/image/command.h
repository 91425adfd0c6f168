// Host commands and host processes for the image catalog and the qemu/oci drivers: runs a tool
// (qemu-img, runc, tar) to completion with its output captured, spawns long-lived processes
// detached from the caller, and watches processes that are not our children (pidfd), with a
// start-time check so a recycled pid is never mistaken for the process we started.
//
// Thread-safety: every function is safe to call from any thread; none keeps state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace berth::runtime {

struct CommandOptions {
  absl::Duration timeout = absl::Seconds(60);  // the command is killed after this
  std::string stdin_data;                      // written to its stdin, then closed
  std::string working_dir;                     // empty = inherit
};

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string stdout_data;
  std::string stderr_data;
  bool ok() const { return exit_code == 0; }
};

// Runs argv[0] (looked up in PATH) and waits for it. A non-zero exit is not an error here: the
// caller reads CommandResult. Errors: NotFound when the program cannot be started,
// DeadlineExceeded when it ran past options.timeout (it is killed).
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const CommandOptions& options = {});

// "prog arg1 arg2: exit 3: <stderr>" for error messages.
std::string DescribeFailure(const std::vector<std::string>& argv, const CommandResult& result);

struct SpawnOptions {
  std::string stdout_path;  // appended to; empty = /dev/null
  std::string stderr_path;  // appended to; empty = /dev/null
  bool new_session = true;  // setsid(), so the process outlives the caller's session and signals
};

// Starts argv detached: stdin is /dev/null, output goes to the given files. The caller must
// eventually reap the returned child (ReapChild or WaitForExit on a child).
absl::StatusOr<pid_t> SpawnProcess(const std::vector<std::string>& argv,
                                   const SpawnOptions& options);

// Waits for our own child `pid` to exit and returns its raw wait status.
absl::StatusOr<int> ReapChild(pid_t pid, absl::Duration timeout);

// The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), or nullopt
// when no such process exists. Recorded with a pid to detect pid reuse.
std::optional<int64_t> ProcessStartTicks(pid_t pid);

// True when `pid` exists, is not a zombie and (when start_ticks != 0) started at start_ticks.
bool ProcessAlive(pid_t pid, int64_t start_ticks);

// Blocks until `pid` (any process, not only a child) has exited or `timeout` passes; true when
// it exited. Uses a pidfd, so it wakes at once.
bool WaitForProcessExit(pid_t pid, int64_t start_ticks, absl::Duration timeout);

// CPU time (user, system) and resident set size of `pid` from /proc; NotFound when gone.
struct ProcessUsage {
  absl::Duration user = absl::ZeroDuration();
  absl::Duration system = absl::ZeroDuration();
  int64_t rss_bytes = 0;
  int64_t threads = 0;
};
absl::StatusOr<ProcessUsage> ReadProcessUsage(pid_t pid);

struct WriteFileOptions {
  // fsync before the rename, so the file survives a host crash. Off for files that are rebuilt
  // on every use (an OCI bundle's config.json), where the sync only adds latency.
  bool sync = true;
};

// Writes `data` to `path` atomically (temporary file in the same directory, fsync, rename).
absl::Status WriteFileAtomically(const std::string& path, const std::string& data,
                                 const WriteFileOptions& options = {});
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace berth::runtime
