// Workloads started under a small supervisor that is detached from the agent (double fork, new
// session), so the workload survives the agent being killed: the supervisor waits for the
// workload, kills what is left of its process group, and writes the exit status durably
// (host/file.h's atomic write) to a file, which a restarted agent reads to learn the real exit
// code. The workload runs in its own process group with its stdout/stderr appended to log files.
// Between fork and exec only async-signal-safe calls are made; the supervisor never execs and
// stays within them for its whole life. The child may join cgroups, switch to an unprivileged
// user and shed its capabilities before exec (ChildSetup); the supervisor keeps the agent's ids.
//
// Thread-safety: the functions keep no shared state and may be called from any thread.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/host/child_setup.h"
#include "runtime/host/process.h"

namespace berth::runtime::host {

struct SpawnSpec {
  std::string executable;         // path passed to execve; see ResolveExecutable
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "KEY=value"
  ChildSetup setup;
};

struct SupervisedSpawnSpec {
  SpawnSpec spawn;
  std::string stdout_path;  // opened O_APPEND|O_CREAT
  std::string stderr_path;
  std::string status_path;  // written by the supervisor when the workload ends
  absl::Duration start_timeout = absl::Seconds(30);
};

struct SupervisedProcess {
  ProcessIdentity supervisor;
  ProcessIdentity workload;  // the workload's pid is also its process group id
};

// Starts the workload. FailedPrecondition when it cannot be executed (the message carries the
// errno text and the stage: cgroup, chdir, setrlimit, credentials, capabilities, exec); Internal
// when fork/pipe fail. An identity's start time is 0 when the process ended before it was read.
absl::StatusOr<SupervisedProcess> SpawnSupervised(const SupervisedSpawnSpec& spec);

// How a supervised workload ended, as its supervisor recorded it.
struct SupervisedExit {
  int exit_code = 0;  // 128 + signal when killed by one
  int signal = 0;
  absl::Time finished_at = absl::InfinitePast();
};

// Reads an exit status file written by the supervisor. nullopt when the file does not exist yet;
// DataLoss when it exists but cannot be parsed.
absl::StatusOr<std::optional<SupervisedExit>> ReadExitStatusFile(const std::string& path);

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

}  // namespace berth::runtime::host
