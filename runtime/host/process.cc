#include "runtime/host/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/time/clock.h"
#include "core/strings.h"
#include "runtime/host/child.h"
#include "runtime/host/file.h"
#include "runtime/host/proc_stat.h"

extern char** environ;

namespace berth::runtime::host {
namespace {

using core::Cat;

int MillisLeft(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

using internal::Fd;

int PidfdSendSignal(int pidfd, int sig) {
#ifdef SYS_pidfd_send_signal
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace

int OpenPidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  errno = ENOSYS;
  return -1;
#endif
}

std::optional<ProcessIdentity> IdentifyProcess(pid_t pid) {
  std::optional<ProcStat> st = ReadProcStat(pid);
  if (!st || st->gone()) return std::nullopt;
  return ProcessIdentity{.pid = pid, .start_ticks = st->start_ticks};
}

bool IsRunning(const ProcessIdentity& id) {
  if (id.pid <= 0) return false;
  if (id.start_ticks != 0) return ProcessAlive(id.pid, id.start_ticks);
  std::optional<ProcStat> st = ReadProcStat(id.pid);
  return st.has_value() && !st->gone();
}

absl::Status SignalProcessIf(pid_t pid, int sig, const std::function<bool(pid_t)>& is_ours) {
  if (pid <= 0) return absl::NotFoundError(Cat("process ", pid, ": no such process"));
  // The pidfd pins the process: from here on `pid` cannot come to name another one for it.
  Fd pidfd(OpenPidfd(pid));
  if (pidfd.get() < 0 && errno == ESRCH) {
    return absl::NotFoundError(Cat("process ", pid, ": no such process"));
  }
  if (!is_ours(pid)) {
    return absl::NotFoundError(Cat("process ", pid, " is not the one started; not signalled"));
  }
  int rc = pidfd.get() >= 0 ? PidfdSendSignal(pidfd.get(), sig) : -1;
  // Without pidfds (old kernels) the window between check and kill is unavoidable.
  if (pidfd.get() < 0 || (rc != 0 && errno == ENOSYS)) rc = kill(pid, sig);
  if (rc != 0) {
    if (errno == ESRCH) return absl::NotFoundError(Cat("process ", pid, " has exited"));
    return absl::InternalError(
        Cat("signal ", sig, " to process ", pid, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status SignalProcess(const ProcessIdentity& id, int sig) {
  if (id.start_ticks == 0) {
    return absl::InvalidArgumentError(
        Cat("process ", id.pid, ": no start time recorded; refusing to signal a bare pid"));
  }
  return SignalProcessIf(id.pid, sig,
                         [&id](pid_t pid) { return ProcessAlive(pid, id.start_ticks); });
}

absl::Status SignalProcessGroup(const ProcessIdentity& leader, int sig) {
  if (leader.start_ticks == 0) {
    return absl::InvalidArgumentError(
        Cat("process group ", leader.pid, ": no start time recorded; refusing to signal it"));
  }
  Fd pidfd(OpenPidfd(leader.pid));
  if (!ProcessAlive(leader.pid, leader.start_ticks)) {
    return absl::NotFoundError(Cat("process group ", leader.pid, ": its leader has exited"));
  }
  if (kill(-leader.pid, sig) != 0) {
    if (errno == ESRCH) return absl::NotFoundError(Cat("process group ", leader.pid, " is gone"));
    return absl::InternalError(
        Cat("signal ", sig, " to process group ", leader.pid, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

bool WaitForProcessExit(const ProcessIdentity& id, absl::Duration timeout) {
  Fd pidfd(OpenPidfd(id.pid));
  if (!IsRunning(id)) return true;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (pidfd.get() >= 0) {
      pollfd p{pidfd.get(), POLLIN, 0};
      if (poll(&p, 1, MillisLeft(deadline)) > 0) return true;
    } else {
      usleep(10000);  // no pidfd on this kernel: poll /proc
    }
    if (!IsRunning(id)) return true;
    if (absl::Now() >= deadline) return false;
  }
}

std::vector<std::string> ProcessCmdline(pid_t pid) {
  std::vector<std::string> out;
  absl::StatusOr<std::string> text = ReadFile(Cat("/proc/", pid, "/cmdline"));
  if (!text.ok()) return out;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\0', start);
    if (end == std::string::npos) end = text->size();
    out.push_back(text->substr(start, end - start));
    start = end + 1;
  }
  return out;
}

absl::StatusOr<ProcessIdentity> SpawnDetached(const std::vector<std::string>& argv,
                                              const SpawnOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("spawn: argv must not be empty");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(
      &actions, 1, options.stdout_path.empty() ? "/dev/null" : options.stdout_path.c_str(),
      O_WRONLY | O_CREAT | O_APPEND, 0640);
  posix_spawn_file_actions_addopen(
      &actions, 2, options.stderr_path.empty() ? "/dev/null" : options.stderr_path.c_str(),
      O_WRONLY | O_CREAT | O_APPEND, 0640);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.new_session) {
    flags |= POSIX_SPAWN_SETSID;
  } else {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attr, 0);
  }
  posix_spawnattr_setflags(&attr, flags);
  std::vector<char*> args = internal::CStrings(argv);
  std::vector<char*> env;
  if (options.env) env = internal::CStrings(*options.env);
  pid_t pid = 0;
  int rc =
      posix_spawnp(&pid, args[0], &actions, &attr, args.data(), options.env ? env.data() : environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::NotFoundError(Cat("spawn ", argv[0], ": ", std::strerror(rc)));
  std::optional<ProcStat> st = ReadProcStat(pid);
  // A child that already exited is a zombie with a start time still: identify it anyway.
  return ProcessIdentity{.pid = pid, .start_ticks = st ? st->start_ticks : 0};
}

absl::StatusOr<int> ReapChild(pid_t pid, absl::Duration timeout) {
  int ws = 0;
  pid_t r = waitpid(pid, &ws, WNOHANG);
  if (r == pid) return ws;
  if (r < 0) return absl::NotFoundError(Cat("waitpid ", pid, ": ", std::strerror(errno)));
  Fd pidfd(OpenPidfd(pid));
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (pidfd.get() >= 0) {
      pollfd p{pidfd.get(), POLLIN, 0};
      poll(&p, 1, MillisLeft(deadline));
    } else {
      usleep(5000);  // no pidfd on this kernel
    }
    r = waitpid(pid, &ws, WNOHANG);
    if (r == pid) return ws;
    if (r < 0) return absl::NotFoundError(Cat("waitpid ", pid, ": ", std::strerror(errno)));
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(Cat("process ", pid, " still running"));
    }
  }
}

}  // namespace berth::runtime::host
