// Running a host tool (qemu-img, runc, ip, nft, mkfs, ...) to completion: argv in, never through
// a shell; exit cause and captured output out. The one implementation behind every command the
// agent runs; Executor (executor.h) puts it behind an interface so callers can be tested with a
// fake.
//
// The child runs in a process group of its own. On timeout the whole group is killed. Output is
// read from pipes until the child itself exits; a daemon it leaves behind (dnsmasq) that keeps
// the pipes open does not hold the call.
//
// Thread-safety: Run may be called concurrently from any thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/host/child_setup.h"

namespace berth::runtime::host {

struct RunOptions {
  absl::Duration timeout = absl::InfiniteDuration();  // then the process group is killed
  // A network namespace to run in: a name under /run/netns, or a path (one holding '/'), e.g.
  // /proc/PID/ns/net. The child enters it with setns before exec.
  std::string netns;
  std::string stdin_data;  // written to standard input, which is then closed
  // nullopt: the caller's environment. Set: exactly these "KEY=value" entries.
  std::optional<std::vector<std::string>> env;
  // The program to exec; empty: argv[0], looked up in the caller's PATH.
  std::string executable;
  ChildSetup setup;  // working directory, limits, cgroups, ids
  // At most this many bytes of each of stdout and stderr are kept; the rest is read and dropped
  // (the *_truncated flags say so), so a chatty tool can neither stall nor exhaust memory.
  size_t output_limit = size_t{64} << 20;
  // When set, standard output is handed over in chunks as it arrives (progress reports); the
  // chunks are kept in RunResult::out too.
  std::function<void(std::string_view chunk)> on_output;
};

// How a command ended.
enum class ExitCause {
  kExited,       // exit_code holds its status
  kSignaled,     // signal holds the signal that killed it
  kTimedOut,     // it outlived RunOptions::timeout; its process group was killed
  kStartFailed,  // it never ran: start_error holds the errno, start_stage the step
};

struct RunResult {
  ExitCause cause = ExitCause::kExited;
  int exit_code = 0;
  int signal = 0;
  int start_error = 0;
  std::string start_stage;  // "exec", "chdir", "entering the network namespace for", ...
  absl::Duration timeout;   // the limit, for kTimedOut messages
  std::string out;
  std::string err;
  bool out_truncated = false;
  bool err_truncated = false;

  bool ok() const { return cause == ExitCause::kExited && exit_code == 0; }
  // The shell's convention: the exit code, or 128 + signal; -1 for timeouts and start failures.
  int ShellCode() const;
};

// Runs argv and waits for it. The returned status fails only when argv is empty or the caller's
// own resources (pipes, fork) fail; everything about the command is in the result.
[[nodiscard]] absl::StatusOr<RunResult> RunCommand(const std::vector<std::string>& argv,
                                                   const RunOptions& options = {});

// "exited with code 3", "killed by signal 9 (Killed)", "timed out after 5s and was killed",
// "could not start: exec: No such file or directory".
std::string DescribeExit(const RunResult& result);

// argv joined with spaces (the first `max_args` words) for messages.
std::string FormatArgv(const std::vector<std::string>& argv, size_t max_args = 8);

// OK for a successful result. Otherwise an error that names the command, says how it ended and
// quotes the end of its stderr (bounded): DeadlineExceeded for a timeout, NotFound when the
// program does not exist, FailedPrecondition for another start failure, Internal for a failed
// exit or a signal.
[[nodiscard]] absl::Status ResultStatus(const std::vector<std::string>& argv,
                                        const RunResult& result);
[[nodiscard]] absl::Status ResultStatus(const std::vector<std::string>& argv,
                                        const absl::StatusOr<RunResult>& result);

}  // namespace berth::runtime::host
