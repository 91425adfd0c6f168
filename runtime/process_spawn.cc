#include "runtime/process_spawn.h"

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

namespace berth::runtime {
namespace {

// Stages reported by the child when it cannot reach exec.
enum Stage : int32_t {
  kOk = 0,
  kFork = 1,
  kChdir = 2,
  kRlimit = 3,
  kExec = 4,
  kCgroup = 5,
  kCredentials = 6,
  kCapabilities = 7,
};

const char* StageName(int32_t stage) {
  switch (stage) {
    case kFork:
      return "fork";
    case kChdir:
      return "chdir";
    case kRlimit:
      return "setrlimit";
    case kExec:
      return "exec";
    case kCgroup:
      return "joining the cgroup for";
    case kCredentials:
      return "switching user for";
    case kCapabilities:
      return "dropping capabilities for";
  }
  return "start";
}

// What the supervisor tells the agent once the workload has exec'd (or failed to).
struct Report {
  int32_t supervisor_pid;
  int32_t workload_pid;
  int32_t stage;
  int32_t err;
};

struct ChildError {
  int32_t stage;
  int32_t err;
};

// Signals the supervisor ignores; the workload gets them back to default.
constexpr int kIgnoredBySupervisor[] = {SIGHUP,  SIGINT,  SIGTERM, SIGQUIT,
                                        SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};

// --- async-signal-safe pieces, used between fork and exec ---

void WriteAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
}

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

void UnblockAllSignals() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Writes "0" (the writer itself) to each cgroup.procs file; 0 or the errno of the first failure.
int JoinCgroups(const std::vector<std::string>& procs_files) {
  for (const std::string& file : procs_files) {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n = write(fd, "0", 1);
    int err = errno;
    close(fd);
    if (n != 1) return n < 0 ? err : EIO;
  }
  return 0;
}

// Empties the bounding set: needs CAP_SETPCAP, so it runs before the uid changes. Capabilities
// the kernel does not know answer EINVAL and end the walk.
int DropBoundingSet() {
  for (int cap = 0; cap < 64; ++cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      if (errno == EINVAL) return 0;
      return errno;
    }
  }
  return 0;
}

// Clears the permitted, effective and inheritable sets (the bounding set is separate).
int ClearCapabilitySets() {
  struct __user_cap_header_struct header {
    _LINUX_CAPABILITY_VERSION_3, 0
  };
  struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
  memset(data, 0, sizeof(data));
  return syscall(SYS_capset, &header, data) == 0 ? 0 : errno;
}

// Joins cgroups, enters the working directory, sets limits and drops privileges, in that order:
// the cgroup files and the directory may be reachable by the agent only. {kOk, 0} on success.
ChildError PrepareChild(const SpawnSpec& spec) {
  if (int err = JoinCgroups(spec.cgroup_procs); err != 0) return {kCgroup, err};
  if (!spec.working_dir.empty() && chdir(spec.working_dir.c_str()) != 0) return {kChdir, errno};
  for (const auto& [resource, value] : spec.rlimits) {
    struct rlimit rl {
      value, value
    };
    if (setrlimit(resource, &rl) != 0) return {kRlimit, errno};
  }
  if (spec.credentials) {
    const Credentials& c = *spec.credentials;
    if (c.uid != 0) {
      if (int err = DropBoundingSet(); err != 0) return {kCapabilities, err};
    }
    if (setgroups(c.groups.size(), c.groups.data()) != 0 || setresgid(c.gid, c.gid, c.gid) != 0 ||
        setresuid(c.uid, c.uid, c.uid) != 0) {
      return {kCredentials, errno};
    }
  }
  if (spec.restrict_privileges) {
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
      return {kCapabilities, errno};
    }
    if (geteuid() != 0) {
      if (int err = ClearCapabilitySets(); err != 0) return {kCapabilities, err};
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return {kCapabilities, errno};
  }
  return {kOk, 0};
}

// Prepares and execs the workload in a freshly forked child; never returns.
[[noreturn]] void ExecChild(const SpawnSpec& spec, char* const* argv, char* const* envp,
                            int error_fd) {
  for (int sig : kIgnoredBySupervisor) SetSignal(sig, SIG_DFL);
  UnblockAllSignals();
  ChildError e = PrepareChild(spec);
  if (e.stage == kOk) {
    execve(spec.executable.c_str(), argv, envp);
    e = {kExec, errno};
  }
  WriteAll(error_fd, &e, sizeof(e));
  _exit(127);
}

// Writes the status file atomically: the agent sees either nothing or the whole line.
void WriteStatusFile(const char* tmp_path, const char* final_path, int wait_status) {
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
  WriteAll(fd, buf, pos);
  fsync(fd);
  close(fd);
  rename(tmp_path, final_path);
}

// The supervisor: runs in its own session, detached from the agent. Never returns.
[[noreturn]] void Supervise(const SupervisedSpawnSpec& spec, char* const* argv, char* const* envp,
                            int null_fd, int out_fd, int err_fd, int report_fd,
                            const char* tmp_status_path) {
  for (int sig : kIgnoredBySupervisor) SetSignal(sig, SIG_IGN);
  SetSignal(SIGCHLD, SIG_DFL);
  UnblockAllSignals();
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
    WriteStatusFile(tmp_status_path, spec.status_path.c_str(), status);
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

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
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
  std::vector<char*> argv = CStrings(spec.spawn.argv);
  std::vector<char*> envp = CStrings(spec.spawn.env);
  std::string tmp_status = spec.status_path + ".tmp";

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
                tmp_status.c_str());
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
  return SupervisedProcess{.supervisor_pid = report.supervisor_pid,
                           .workload_pid = report.workload_pid};
}

absl::StatusOr<std::optional<ExitResult>> ReadExitStatusFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::optional<ExitResult>();
    return std::optional<ExitResult>();
  }
  std::string magic;
  int version = 0;
  int64_t code = 0, signal = 0, sec = 0, nsec = 0;
  if (!(in >> magic >> version >> code >> signal >> sec >> nsec) || magic != "berth-exit" ||
      version != 1) {
    return absl::DataLossError(core::Cat("exit status file ", path, " is malformed"));
  }
  ExitResult r;
  r.exit_code = static_cast<int>(code);
  r.signal = static_cast<int>(signal);
  r.finished_at = absl::FromUnixSeconds(sec) + absl::Nanoseconds(nsec);
  return std::optional<ExitResult>(r);
}

absl::StatusOr<ExecResult> RunAndCapture(const SpawnSpec& spec, absl::Duration timeout) {
  std::vector<char*> argv = CStrings(spec.argv);
  std::vector<char*> envp = CStrings(spec.env);
  int out_pipe[2], err_pipe[2], error_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoStatus("pipe", errno);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return ErrnoStatus("pipe", errno);
  }
  if (pipe2(error_pipe, O_CLOEXEC) != 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    return ErrnoStatus("pipe", errno);
  }
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], error_pipe[0], error_pipe[1],
                   null_fd}) {
      close(fd);
    }
    return ErrnoStatus("fork", err);
  }
  if (pid == 0) {
    setpgid(0, 0);
    if (null_fd >= 0) dup2(null_fd, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    ExecChild(spec, argv.data(), envp.data(), error_pipe[1]);
  }
  setpgid(pid, pid);
  for (int fd : {out_pipe[1], err_pipe[1], error_pipe[1], null_fd}) close(fd);

  ExecResult result;
  std::string child_error;
  struct pollfd fds[3] = {
      {out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}, {error_pipe[0], POLLIN, 0}};
  std::string* sinks[3] = {&result.stdout_data, &result.stderr_data, &child_error};
  int open_count = 3;
  absl::Time deadline = absl::Now() + timeout;
  bool timed_out = false;
  char buf[4096];
  while (open_count > 0) {
    int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    int pr = poll(fds, 3, static_cast<int>(left_ms));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) break;
    for (int i = 0; i < 3; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_count;
      } else {
        sinks[i]->append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& p : fds) {
    if (p.fd >= 0) close(p.fd);
  }
  if (timed_out) kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return absl::DeadlineExceededError(core::Cat("exec ", spec.executable, " still running after ",
                                                 absl::FormatDuration(timeout)));
  }
  if (child_error.size() == sizeof(ChildError)) {
    ChildError e;
    memcpy(&e, child_error.data(), sizeof(e));
    return absl::FailedPreconditionError(
        core::Cat(StageName(e.stage), " ", spec.executable, ": ", std::string(strerror(e.err))));
  }
  result.exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  return result;
}

}  // namespace berth::runtime
