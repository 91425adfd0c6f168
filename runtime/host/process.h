// Long-lived host processes: starting one detached from the caller, naming it so a recycled pid
// is never mistaken for it (pid + start time from /proc/PID/stat), signalling it only after that
// check (through a pidfd where the kernel has one, so the check and the signal name the same
// process), and waiting for it.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace berth::runtime::host {

// A process as Berth remembers it: the pid alone may name another process once it is reused.
struct ProcessIdentity {
  pid_t pid = 0;
  uint64_t start_ticks = 0;  // field 22 of /proc/PID/stat
  bool operator==(const ProcessIdentity&) const = default;
};

// The identity of the live process `pid` now; nullopt when there is none (or a zombie).
std::optional<ProcessIdentity> IdentifyProcess(pid_t pid);

// True while the process named by `id` runs (not a zombie). An identity without a start time
// (a pid that was never identified) matches whatever process has that pid now.
bool IsRunning(const ProcessIdentity& id);

// Sends `sig` to `pid` if `is_ours(pid)` holds. With a pidfd the check and the signal are bound
// to one process, so a pid reused in between is never signalled. NotFound when there is no such
// process or it is not ours.
absl::Status SignalProcessIf(pid_t pid, int sig, const std::function<bool(pid_t)>& is_ours);

// Sends `sig` to the process named by `id` if it is still that process (see SignalProcessIf).
// InvalidArgument for an identity without a start time.
absl::Status SignalProcess(const ProcessIdentity& id, int sig);

// Sends `sig` to the process group led by `leader` if the leader is still that process. The
// leader must not have been reaped (its pid is the group's id); its supervisor keeps it so.
absl::Status SignalProcessGroup(const ProcessIdentity& leader, int sig);

// Blocks until the process named by `id` has exited (a zombie counts), or `timeout` passes;
// true when it exited. Wakes at once through a pidfd where there is one.
bool WaitForProcessExit(const ProcessIdentity& id, absl::Duration timeout);

// The arguments `pid` was started with (/proc/PID/cmdline); empty when gone.
std::vector<std::string> ProcessCmdline(pid_t pid);

// A pidfd for `pid` (close-on-exec), or -1 with errno set (ENOSYS on old kernels, ESRCH).
int OpenPidfd(pid_t pid);

struct SpawnOptions {
  std::string stdout_path;  // appended to; empty = /dev/null
  std::string stderr_path;  // appended to; empty = /dev/null
  // setsid(), so the process outlives the caller's session and its terminal's signals; it also
  // leads a new process group. False: only a new process group.
  bool new_session = true;
  // nullopt: the caller's environment. Set: exactly these "KEY=value" entries.
  std::optional<std::vector<std::string>> env;
};

// Starts argv (argv[0] looked up in PATH) with stdin /dev/null and output to the given files,
// and returns its identity. The process is the caller's child: reap it with ReapChild.
// NotFound when the program cannot be started.
absl::StatusOr<ProcessIdentity> SpawnDetached(const std::vector<std::string>& argv,
                                              const SpawnOptions& options);

// Waits for the caller's own child `pid` to exit and returns its raw wait status.
// DeadlineExceeded when it still runs after `timeout`.
absl::StatusOr<int> ReapChild(pid_t pid, absl::Duration timeout);

}  // namespace berth::runtime::host
