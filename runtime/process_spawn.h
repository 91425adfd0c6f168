// Process spawning for the process driver, kept apart from the driver's bookkeeping.
//
// SpawnSupervised starts a workload under a small supervisor that is detached from the agent
// (double fork, new session), so the workload survives the agent being killed: the supervisor
// waits for the workload, kills what is left of its process group, and writes the exit status
// atomically (write + rename) to a file, which a restarted agent reads to learn the real exit
// code. The workload runs in its own process group with its stdout/stderr appended to log files.
// Between fork and exec only async-signal-safe calls are made; the supervisor never execs and
// stays within them for its whole life. The child may join cgroups, switch to an unprivileged
// user and shed its capabilities before exec (SpawnSpec); the supervisor keeps the agent's ids.
//
// Thread-safety: the functions keep no shared state and may be called from any thread.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/compute_driver.h"

namespace berth::runtime {

// The ids a spawned program runs as.
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  bool operator==(const Credentials&) const = default;
};

struct SpawnSpec {
  std::string executable;         // path passed to execve; see ResolveExecutable
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "KEY=value"
  // Entered before the ids change, so it may sit below directories the new user cannot search.
  std::string working_dir;
  std::vector<std::pair<int, rlim_t>> rlimits;  // (RLIMIT_*, soft and hard value)
  // Files the child writes "0" to first, joining the task's cgroups (TaskCgroup::ProcsFiles).
  std::vector<std::string> cgroup_procs;
  // Set: the child switches to these ids (groups, gid, then uid) before exec. For a uid other
  // than 0 it first empties the capability bounding set, so no set-uid or file-capability
  // program it runs can regain a privilege.
  std::optional<Credentials> credentials;
  // The child sets PR_SET_NO_NEW_PRIVS and clears its ambient capabilities; when it does not run
  // as uid 0 it also clears its permitted, effective and inheritable sets.
  bool restrict_privileges = false;
};

struct SupervisedSpawnSpec {
  SpawnSpec spawn;
  std::string stdout_path;  // opened O_APPEND|O_CREAT
  std::string stderr_path;
  std::string status_path;  // written by the supervisor when the workload ends
  absl::Duration start_timeout = absl::Seconds(30);
};

struct SupervisedProcess {
  pid_t supervisor_pid = 0;
  pid_t workload_pid = 0;  // also the workload's process group id
};

// Starts the workload. FailedPrecondition when it cannot be executed (the message carries the
// errno text and the stage: cgroup, chdir, setrlimit, credentials, capabilities, exec); Internal
// when fork/pipe fail.
absl::StatusOr<SupervisedProcess> SpawnSupervised(const SupervisedSpawnSpec& spec);

// Reads an exit status file written by the supervisor. nullopt when the file does not exist yet;
// DataLoss when it exists but cannot be parsed.
absl::StatusOr<std::optional<ExitResult>> ReadExitStatusFile(const std::string& path);

// Runs a command to completion as a child of the caller, capturing stdout and stderr.
// DeadlineExceeded (after killing its process group) when it outlives `timeout`.
absl::StatusOr<ExecResult> RunAndCapture(const SpawnSpec& spec, absl::Duration timeout);

// The ids for a process workload's `user` field on this host: empty = nobody (65534:65534, no
// supplementary groups); a name = its passwd entry with the groups getgrouplist gives it; "uid"
// = that uid with its passwd entry's group (the same number when it has no entry); "uid:gid".
// InvalidArgument when malformed; FailedPrecondition for a name this host does not know;
// PermissionDenied for a name other than "root" that resolves to uid or gid 0, since the server
// allows root only to workloads that ask for it by name or number.
absl::StatusOr<Credentials> ResolveCredentials(std::string_view user);

// The path to exec for `command`: itself when it contains '/', else the first executable match in
// the ':'-separated `search_path`. NotFound otherwise.
absl::StatusOr<std::string> ResolveExecutable(const std::string& command,
                                              const std::string& search_path);

}  // namespace berth::runtime
