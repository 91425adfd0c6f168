#include "runtime/host/run.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/time/clock.h"
#include "core/strings.h"
#include "runtime/host/child.h"
#include "runtime/host/process.h"

extern char** environ;

namespace berth::runtime::host {
namespace {

using core::Cat;

using internal::Fd;

struct Pipe {
  Fd read, write;
  bool Open() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return false;
    read.reset(fds[0]);
    write.reset(fds[1]);
    return true;
  }
};

std::string NetnsPath(const std::string& netns) {
  return netns.find('/') == std::string::npos ? "/run/netns/" + netns : netns;
}

// Appends a chunk of output up to `limit` bytes; the rest is dropped and flagged.
void Keep(std::string& sink, bool& truncated, const char* data, size_t n, size_t limit) {
  size_t room = sink.size() < limit ? limit - sink.size() : 0;
  if (n > room) truncated = true;
  sink.append(data, std::min(n, room));
}

}  // namespace

int RunResult::ShellCode() const {
  switch (cause) {
    case ExitCause::kExited:
      return exit_code;
    case ExitCause::kSignaled:
      return 128 + signal;
    case ExitCause::kTimedOut:
    case ExitCause::kStartFailed:
      return -1;
  }
  return -1;
}

absl::StatusOr<RunResult> RunCommand(const std::vector<std::string>& argv,
                                     const RunOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("run: argv must not be empty");
  RunResult result;
  Fd netns;
  if (!options.netns.empty()) {
    netns.reset(open(NetnsPath(options.netns).c_str(), O_RDONLY | O_CLOEXEC));
    if (netns.get() < 0) {
      result.cause = ExitCause::kStartFailed;
      result.start_error = errno;
      result.start_stage = Cat(internal::StageName(internal::kNetns), " ", argv[0], " (",
                               NetnsPath(options.netns), ")");
      return result;
    }
  }
  Pipe in, out, err, report;
  if (!in.Open() || !out.Open() || !err.Open() || !report.Open()) {
    return absl::InternalError(Cat("run ", argv[0], ": pipe: ", std::strerror(errno)));
  }
  // Everything the child touches is built before fork: after it only async-signal-safe calls.
  std::vector<char*> cargv = internal::CStrings(argv);
  std::vector<char*> cenv;
  if (options.env) cenv = internal::CStrings(*options.env);
  char** envp = options.env ? cenv.data() : environ;
  const char* exe = options.executable.empty() ? nullptr : options.executable.c_str();
  const int null_in = options.stdin_data.empty() ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;

  pid_t pid = fork();
  if (pid < 0) {
    int e = errno;
    if (null_in >= 0) close(null_in);
    return absl::InternalError(Cat("run ", argv[0], ": fork: ", std::strerror(e)));
  }
  if (pid == 0) {
    setpgid(0, 0);
    internal::ResetSignals();
    dup2(null_in >= 0 ? null_in : in.read.get(), 0);
    dup2(out.write.get(), 1);
    dup2(err.write.get(), 2);
    internal::ChildError e{internal::kOk, 0};
    if (netns.get() >= 0 && setns(netns.get(), CLONE_NEWNET) != 0) {
      e = {internal::kNetns, errno};
    }
    if (e.stage == internal::kOk) e = internal::PrepareChild(options.setup);
    if (e.stage == internal::kOk) {
      if (exe != nullptr) {
        execve(exe, cargv.data(), envp);
      } else {
        execvpe(cargv[0], cargv.data(), envp);
      }
      e = {internal::kExec, errno};
    }
    internal::WriteAll(report.write.get(), &e, sizeof(e));
    _exit(127);
  }
  // Both sides set the group so a kill of the group cannot miss the child, whoever runs first.
  setpgid(pid, pid);
  if (null_in >= 0) close(null_in);
  in.read.reset();
  out.write.reset();
  err.write.reset();
  report.write.reset();
  if (options.stdin_data.empty()) in.write.reset();
  Fd pidfd(OpenPidfd(pid));
  for (int fd : {in.write.get(), out.read.get(), err.read.get()}) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }

  const absl::Time deadline = options.timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + options.timeout;
  size_t in_off = 0;
  bool exited = false, timed_out = false;
  int wait_status = 0;
  char buf[16384];
  // Reads what is there now from `fd`; false at end of file or on error.
  auto drain = [&](Fd& fd, bool is_out) {
    while (fd.get() >= 0) {
      ssize_t n = read(fd.get(), buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        fd.reset();
        return;
      }
      std::string_view chunk(buf, static_cast<size_t>(n));
      if (is_out) {
        Keep(result.out, result.out_truncated, buf, chunk.size(), options.output_limit);
        if (options.on_output) options.on_output(chunk);
      } else {
        Keep(result.err, result.err_truncated, buf, chunk.size(), options.output_limit);
      }
    }
  };
  while (!exited) {
    pollfd fds[4];
    int n = 0;
    if (out.read.get() >= 0) fds[n++] = {out.read.get(), POLLIN, 0};
    if (err.read.get() >= 0) fds[n++] = {err.read.get(), POLLIN, 0};
    if (in.write.get() >= 0) fds[n++] = {in.write.get(), POLLOUT, 0};
    if (pidfd.get() >= 0) fds[n++] = {pidfd.get(), POLLIN, 0};
    // Without a pidfd (old kernels) the child's exit is noticed by polling waitpid.
    int64_t wait_ms = pidfd.get() >= 0 ? -1 : 20;
    if (deadline != absl::InfiniteFuture()) {
      absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        timed_out = true;
        break;
      }
      int64_t left_ms = absl::ToInt64Milliseconds(left) + 1;
      wait_ms = wait_ms < 0 ? left_ms : std::min(wait_ms, left_ms);
    }
    int pr =
        poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::min<int64_t>(wait_ms, 1 << 30)));
    if (pr < 0 && errno != EINTR) {
      return absl::InternalError(Cat("run ", argv[0], ": poll: ", std::strerror(errno)));
    }
    if (in.write.get() >= 0) {
      ssize_t w = write(in.write.get(), options.stdin_data.data() + in_off,
                        options.stdin_data.size() - in_off);
      if (w > 0) in_off += static_cast<size_t>(w);
      // EPIPE: the command does not read its input; that is its business.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off >= options.stdin_data.size()) {
        in.write.reset();
      }
    }
    drain(out.read, true);
    drain(err.read, false);
    pid_t r = waitpid(pid, &wait_status, WNOHANG);
    if (r == pid) exited = true;
    if (r < 0 && errno != EINTR) {
      return absl::InternalError(Cat("run ", argv[0], ": waitpid: ", std::strerror(errno)));
    }
  }
  if (timed_out) {
    // The child is not reaped yet, so its pid (the group id) cannot have been reused.
    kill(-pid, SIGKILL);
    while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
    }
  }
  // What the child wrote before it exited is in the pipes; a leftover daemon's later output is
  // not waited for.
  drain(out.read, true);
  drain(err.read, false);

  internal::ChildError e{internal::kOk, 0};
  ssize_t got;
  do {
    got = read(report.read.get(), &e, sizeof(e));
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof(e)) && e.stage != internal::kOk) {
    result.cause = ExitCause::kStartFailed;
    result.start_error = e.err;
    result.start_stage = internal::StageName(e.stage);
  } else if (timed_out) {
    result.cause = ExitCause::kTimedOut;
    result.timeout = options.timeout;
    result.signal = SIGKILL;
  } else if (WIFSIGNALED(wait_status)) {
    result.cause = ExitCause::kSignaled;
    result.signal = WTERMSIG(wait_status);
  } else {
    result.cause = ExitCause::kExited;
    result.exit_code = WEXITSTATUS(wait_status);
  }
  return result;
}

std::string DescribeExit(const RunResult& result) {
  switch (result.cause) {
    case ExitCause::kExited:
      return Cat("exited with code ", result.exit_code);
    case ExitCause::kSignaled:
      return Cat("killed by signal ", result.signal, " (", strsignal(result.signal), ")");
    case ExitCause::kTimedOut:
      return Cat("timed out after ", absl::FormatDuration(result.timeout), " and was killed");
    case ExitCause::kStartFailed:
      return Cat("could not start: ", result.start_stage, ": ", std::strerror(result.start_error));
  }
  return "ended";
}

std::string FormatArgv(const std::vector<std::string>& argv, size_t max_args) {
  std::string out;
  for (size_t i = 0; i < argv.size() && i < max_args; ++i) {
    if (i > 0) out.push_back(' ');
    out.append(argv[i]);
  }
  if (argv.size() > max_args) out.append(" ...");
  return out;
}

absl::Status ResultStatus(const std::vector<std::string>& argv, const RunResult& result) {
  if (result.ok()) return absl::OkStatus();
  // The end of stderr is where tools say what went wrong.
  constexpr size_t kQuoted = 600;
  std::string err = result.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (err.size() > kQuoted) err = "..." + err.substr(err.size() - kQuoted);
  std::string message = Cat("command `", FormatArgv(argv), "` ", DescribeExit(result));
  if (!err.empty()) message = Cat(message, ": ", err);
  switch (result.cause) {
    case ExitCause::kTimedOut:
      return absl::DeadlineExceededError(message);
    case ExitCause::kStartFailed:
      return result.start_error == ENOENT ? absl::NotFoundError(message)
                                          : absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status ResultStatus(const std::vector<std::string>& argv,
                          const absl::StatusOr<RunResult>& result) {
  if (!result.ok()) return result.status();
  return ResultStatus(argv, *result);
}

}  // namespace berth::runtime::host
