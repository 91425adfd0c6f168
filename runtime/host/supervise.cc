#include "runtime/host/supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/time/clock.h"
#include "core/strings.h"
#include "core/workload.h"
#include "runtime/host/child.h"
#include "runtime/host/file.h"
#include "runtime/host/proc_stat.h"

namespace berth::runtime::host {
namespace {

using internal::ChildError;
using internal::kExec;
using internal::kFork;
using internal::kOk;
using internal::StageName;
using internal::WriteAll;

// Signals the supervisor ignores; the workload gets them back to default (ResetSignals).
constexpr int kIgnoredBySupervisor[] = {SIGHUP,  SIGINT,  SIGTERM, SIGQUIT,
                                        SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};

// What the supervisor tells the agent once the workload has exec'd (or failed to).
struct Report {
  int32_t supervisor_pid;
  int32_t workload_pid;
  int32_t stage;
  int32_t err;
};

// --- async-signal-safe pieces, used between fork and exec ---

void AppendDecimal(char* buf, size_t& pos, int64_t v) {
  char tmp[24];
  int n = 0;
  bool neg = v < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-(v + 1)) + 1 : static_cast<uint64_t>(v);
  do {
    tmp[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u > 0);
  if (neg) buf[pos++] = '-';
  while (n > 0) buf[pos++] = tmp[--n];
}

void AppendText(char* buf, size_t& pos, const char* s) {
  while (*s) buf[pos++] = *s++;
}

void SetSignal(int sig, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

// Prepares and execs the workload in a freshly forked child; never returns.
[[noreturn]] void ExecChild(const SpawnSpec& spec, char* const* argv, char* const* envp,
                            int error_fd) {
  internal::ResetSignals();
  ChildError e = internal::PrepareChild(spec.setup);
  if (e.stage == kOk) {
    execve(spec.executable.c_str(), argv, envp);
    e = {kExec, errno};
  }
  WriteAll(error_fd, &e, sizeof(e));
  _exit(127);
}

// Writes the status file atomically and durably (the one atomic write of host/file.h, in its
// allocation-free form): the agent sees either nothing or the whole line.
void WriteStatusFile(const char* tmp_path, const char* final_path, const char* dir,
                     int wait_status) {
  char buf[160];
  size_t pos = 0;
  struct timespec now {};
  clock_gettime(CLOCK_REALTIME, &now);
  AppendText(buf, pos, "berth-exit 1 ");
  if (WIFSIGNALED(wait_status)) {
    AppendDecimal(buf, pos, 128 + WTERMSIG(wait_status));
    buf[pos++] = ' ';
    AppendDecimal(buf, pos, WTERMSIG(wait_status));
  } else {
    AppendDecimal(buf, pos, WEXITSTATUS(wait_status));
    AppendText(buf, pos, " 0");
  }
  buf[pos++] = ' ';
  AppendDecimal(buf, pos, now.tv_sec);
  buf[pos++] = ' ';
  AppendDecimal(buf, pos, now.tv_nsec);
  buf[pos++] = '\n';
  int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const char* step = "";
  if (internal::CommitFile(fd, tmp_path, final_path, dir, buf, pos, /*sync=*/true, &step) != 0) {
    // Nobody to tell: the agent finds no status file and reports the exit as unknown.
    unlink(tmp_path);
  }
}

// The supervisor: runs in its own session, detached from the agent. Never returns.
[[noreturn]] void Supervise(const SupervisedSpawnSpec& spec, char* const* argv, char* const* envp,
                            int null_fd, int out_fd, int err_fd, int report_fd,
                            const char* tmp_status_path, const char* status_dir) {
  for (int sig : kIgnoredBySupervisor) SetSignal(sig, SIG_IGN);
  SetSignal(SIGCHLD, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // Keep only what the workload needs (0-2) and the report pipe (3); drop every agent fd.
  dup2(null_fd, 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  dup2(report_fd, 3);
  if (close_range(4, ~0U, 0) != 0) {
    for (int fd = 4; fd < 4096; ++fd) close(fd);
  }
  if (chdir("/") != 0) {
    // Harmless: the supervisor only needs absolute paths.
  }
  Report report{getpid(), 0, kOk, 0};
  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) {
    report.stage = kFork;
    report.err = errno;
    WriteAll(3, &report, sizeof(report));
    _exit(1);
  }
  pid_t child = fork();
  if (child < 0) {
    report.stage = kFork;
    report.err = errno;
    WriteAll(3, &report, sizeof(report));
    _exit(1);
  }
  if (child == 0) {
    setpgid(0, 0);
    close(3);
    close(error_pipe[0]);
    ExecChild(spec.spawn, argv, envp, error_pipe[1]);
  }
  setpgid(child, child);
  close(error_pipe[1]);
  ChildError e{kOk, 0};
  ssize_t n;
  do {
    n = read(error_pipe[0], &e, sizeof(e));
  } while (n < 0 && errno == EINTR);
  close(error_pipe[0]);
  report.workload_pid = child;
  if (n == static_cast<ssize_t>(sizeof(e))) {
    report.stage = e.stage;
    report.err = e.err;
  }
  WriteAll(3, &report, sizeof(report));
  close(3);
  // Wait without reaping, so the pid (and with it the group id) cannot be reused while the rest
  // of the group is killed: the task ends with its main process.
  siginfo_t info;
  while (waitid(P_PID, child, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  kill(-child, SIGKILL);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(child, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (report.stage == kOk && r == child) {
    WriteStatusFile(tmp_status_path, spec.status_path.c_str(), status_dir, status);
  }
  _exit(0);
}

// Owns fds opened for a spawn until they are handed over.
struct FdCloser {
  std::vector<int> fds;
  ~FdCloser() {
    for (int fd : fds) {
      if (fd >= 0) close(fd);
    }
  }
};

// Opens `path` and returns an fd >= 3, so the supervisor's dup2 onto 0-3 cannot clobber it.
int OpenHigh(const char* path, int flags, mode_t mode) {
  int fd = open(path, flags | O_CLOEXEC, mode);
  if (fd >= 0 && fd < 3) {
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    fd = high;
  }
  return fd;
}

absl::Status ErrnoStatus(std::string_view what, int err) {
  return absl::InternalError(core::Cat(what, ": ", std::string(strerror(err))));
}

}  // namespace

absl::StatusOr<Credentials> ResolveCredentials(std::string_view user) {
  if (user.empty()) {
    return Credentials{.uid = core::kDefaultWorkloadUid, .gid = core::kDefaultWorkloadGid};
  }
  absl::StatusOr<core::UserSpec> spec = core::ParseUserSpec(user);
  if (!spec.ok()) {
    return absl::InvalidArgumentError(core::Cat("user ", std::string(spec.status().message())));
  }
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (spec->uid) {
    Credentials c{.uid = *spec->uid, .gid = *spec->uid};
    if (spec->gid) {
      c.gid = *spec->gid;
    } else if (getpwuid_r(c.uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
      c.gid = pw.pw_gid;
    }
    return c;
  }
  int err = getpwnam_r(spec->name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (err != 0 || found == nullptr) {
    return absl::FailedPreconditionError(
        core::Cat("user \"", spec->name, "\" does not exist on this host",
                  err != 0 ? core::Cat(" (", std::string(strerror(err)), ")") : ""));
  }
  Credentials c{.uid = pw.pw_uid, .gid = pw.pw_gid};
  if (spec->name != "root" && (c.uid == 0 || c.gid == 0)) {
    return absl::PermissionDeniedError(
        core::Cat("user \"", spec->name, "\" is uid ", c.uid, " gid ", c.gid,
                  " on this host; root workloads must ask for \"root\" by name"));
  }
  int count = 32;
  std::vector<gid_t> groups(count);
  while (getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &count) < 0) {
    groups.resize(static_cast<size_t>(count) + 32);
    count = static_cast<int>(groups.size());
  }
  groups.resize(static_cast<size_t>(count));
  if (spec->name != "root") {
    for (gid_t g : groups) {
      if (g == 0) {
        return absl::PermissionDeniedError(
            core::Cat("user \"", spec->name, "\" is in group 0 on this host; root workloads must ",
                      "ask for \"root\" by name"));
      }
    }
  }
  c.groups = std::move(groups);
  return c;
}

absl::StatusOr<std::string> ResolveExecutable(const std::string& command,
                                              const std::string& search_path) {
  if (command.find('/') != std::string::npos) return command;
  size_t start = 0;
  while (start <= search_path.size()) {
    size_t end = search_path.find(':', start);
    if (end == std::string::npos) end = search_path.size();
    std::string_view dir = std::string_view(search_path).substr(start, end - start);
    std::string candidate = core::Cat(dir.empty() ? std::string_view(".") : dir, "/", command);
    struct stat st {};
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return absl::NotFoundError(
      core::Cat("command \"", command, "\" not found in PATH ", search_path));
}

absl::StatusOr<SupervisedProcess> SpawnSupervised(const SupervisedSpawnSpec& spec) {
  std::vector<char*> argv = internal::CStrings(spec.spawn.argv);
  std::vector<char*> envp = internal::CStrings(spec.spawn.env);
  std::string tmp_status = spec.status_path + ".tmp";
  std::string status_dir = spec.status_path.substr(0, spec.status_path.rfind('/'));
  if (spec.status_path.find('/') == std::string::npos) status_dir = ".";
  if (status_dir.empty()) status_dir = "/";

  FdCloser fds;
  int null_fd = OpenHigh("/dev/null", O_RDONLY, 0);
  fds.fds.push_back(null_fd);
  int out_fd = OpenHigh(spec.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  fds.fds.push_back(out_fd);
  int err_fd = OpenHigh(spec.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  fds.fds.push_back(err_fd);
  if (null_fd < 0 || out_fd < 0 || err_fd < 0) {
    return ErrnoStatus(core::Cat("opening log files ", spec.stdout_path), errno);
  }
  int report_pipe[2];
  if (pipe2(report_pipe, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  for (int& fd : report_pipe) {
    if (fd < 3) {
      int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      close(fd);
      fd = high;
    }
  }
  fds.fds.push_back(report_pipe[0]);
  fds.fds.push_back(report_pipe[1]);

  pid_t intermediate = fork();
  if (intermediate < 0) return ErrnoStatus("fork", errno);
  if (intermediate == 0) {
    // The intermediate child only detaches: new session, fork the supervisor, exit, so the
    // supervisor is re-parented away from the agent and never becomes the agent's zombie.
    setsid();
    pid_t sup = fork();
    if (sup < 0) {
      Report r{0, 0, kFork, errno};
      WriteAll(report_pipe[1], &r, sizeof(r));
      _exit(1);
    }
    if (sup == 0) {
      Supervise(spec, argv.data(), envp.data(), null_fd, out_fd, err_fd, report_pipe[1],
                tmp_status.c_str(), status_dir.c_str());
    }
    _exit(0);
  }
  close(report_pipe[1]);
  fds.fds[4] = -1;
  int wstatus = 0;
  while (waitpid(intermediate, &wstatus, 0) < 0 && errno == EINTR) {
  }

  Report report{};
  size_t got = 0;
  absl::Time deadline = absl::Now() + spec.start_timeout;
  while (got < sizeof(report)) {
    int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) return absl::DeadlineExceededError("supervisor did not report in time");
    struct pollfd p {
      report_pipe[0], POLLIN, 0
    };
    int pr = poll(&p, 1, static_cast<int>(left_ms));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return ErrnoStatus("poll", errno);
    if (pr == 0) continue;
    ssize_t n = read(report_pipe[0], reinterpret_cast<char*>(&report) + got, sizeof(report) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError("supervisor exited before reporting");
    got += static_cast<size_t>(n);
  }
  if (report.stage != kOk) {
    return absl::FailedPreconditionError(core::Cat(StageName(report.stage), " ",
                                                   spec.spawn.executable, ": ",
                                                   std::string(strerror(report.err))));
  }
  SupervisedProcess out;
  out.supervisor.pid = report.supervisor_pid;
  if (std::optional<ProcStat> st = ReadProcStat(report.supervisor_pid)) {
    out.supervisor.start_ticks = st->start_ticks;
  }
  out.workload.pid = report.workload_pid;
  // The workload's identity counts only while it still leads its own group: before its setpgid
  // or after an exec'd program changed it, the pid alone names it.
  if (std::optional<ProcStat> st = ReadProcStat(report.workload_pid);
      st && st->pgrp == report.workload_pid) {
    out.workload.start_ticks = st->start_ticks;
  }
  return out;
}

absl::StatusOr<std::optional<SupervisedExit>> ReadExitStatusFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  // Unreadable counts as not written yet: the supervisor's rename makes it whole or absent.
  if (!text.ok()) return std::optional<SupervisedExit>();
  std::istringstream in(*text);
  std::string magic;
  int version = 0;
  int64_t code = 0, signal = 0, sec = 0, nsec = 0;
  if (!(in >> magic >> version >> code >> signal >> sec >> nsec) || magic != "berth-exit" ||
      version != 1) {
    return absl::DataLossError(core::Cat("exit status file ", path, " is malformed"));
  }
  SupervisedExit r;
  r.exit_code = static_cast<int>(code);
  r.signal = static_cast<int>(signal);
  r.finished_at = absl::FromUnixSeconds(sec) + absl::Nanoseconds(nsec);
  return std::optional<SupervisedExit>(r);
}

}  // namespace berth::runtime::host
