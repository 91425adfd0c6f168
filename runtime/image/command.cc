#include "runtime/image/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "core/strings.h"

extern char** environ;

namespace berth::runtime {
namespace {

using core::Cat;

std::string Errno(int err) { return std::string(std::strerror(err)); }

int64_t MillisLeft(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return absl::ToInt64Milliseconds(left) + 1;
}

std::vector<char*> MakeArgv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  out.reserve(argv.size() + 1);
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const CommandOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("command: argv must not be empty");
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      pipe2(in_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(Cat("command ", argv[0], ": pipe: ", Errno(errno)));
  }
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]), err_r(err_pipe[0]), err_w(err_pipe[1]),
      in_r(in_pipe[0]), in_w(in_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  if (!options.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&actions, options.working_dir.c_str());
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  auto args = MakeArgv(argv);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::NotFoundError(Cat("command ", argv[0], ": cannot start: ", Errno(rc)));
  }
  in_r.reset();
  out_w.reset();
  err_w.reset();

  // Feed stdin and drain both outputs together so no pipe fills up and stalls the child.
  CommandResult result;
  const absl::Time deadline = absl::Now() + options.timeout;
  size_t in_off = 0;
  if (options.stdin_data.empty()) in_w.reset();
  fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  bool timed_out = false;
  while (out_r.get() >= 0 || err_r.get() >= 0) {
    pollfd fds[3];
    int n = 0;
    if (out_r.get() >= 0) fds[n++] = {out_r.get(), POLLIN, 0};
    if (err_r.get() >= 0) fds[n++] = {err_r.get(), POLLIN, 0};
    if (in_w.get() >= 0) fds[n++] = {in_w.get(), POLLOUT, 0};
    int64_t wait_ms = MillisLeft(deadline);
    if (wait_ms == 0) {
      timed_out = true;
      break;
    }
    int pr = poll(fds, n, static_cast<int>(std::min<int64_t>(wait_ms, 1 << 30)));
    if (pr < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_w.get()) {
        ssize_t w = write(in_w.get(), options.stdin_data.data() + in_off,
                          options.stdin_data.size() - in_off);
        if (w > 0) in_off += static_cast<size_t>(w);
        if (w < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();
        if (in_off >= options.stdin_data.size()) in_w.reset();
        continue;
      }
      char buf[8192];
      ssize_t r = read(fds[i].fd, buf, sizeof(buf));
      if (r > 0) {
        (fds[i].fd == out_r.get() ? result.stdout_data : result.stderr_data)
            .append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        if (fds[i].fd == out_r.get()) {
          out_r.reset();
        } else {
          err_r.reset();
        }
      }
    }
  }
  if (timed_out) kill(pid, SIGKILL);
  auto status = ReapChild(pid, timed_out                  ? absl::Seconds(10)
                               : MillisLeft(deadline) > 0 ? deadline - absl::Now()
                                                          : absl::Seconds(1));
  if (!status.ok()) {
    kill(pid, SIGKILL);
    status = ReapChild(pid, absl::Seconds(10));
    timed_out = true;
  }
  if (timed_out) {
    return absl::DeadlineExceededError(Cat("command ", argv[0], ": still running after ",
                                           absl::FormatDuration(options.timeout), "; killed"));
  }
  int ws = *status;
  if (WIFEXITED(ws)) {
    result.exit_code = WEXITSTATUS(ws);
  } else if (WIFSIGNALED(ws)) {
    result.signal = WTERMSIG(ws);
  }
  return result;
}

std::string DescribeFailure(const std::vector<std::string>& argv, const CommandResult& result) {
  std::string cmd;
  for (size_t i = 0; i < argv.size() && i < 4; ++i) {
    if (i) cmd += ' ';
    cmd += argv[i];
  }
  std::string err = result.stderr_data;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  if (err.size() > 600) err = err.substr(err.size() - 600);
  if (result.signal != 0) return Cat(cmd, ": killed by signal ", result.signal, ": ", err);
  return Cat(cmd, ": exit ", result.exit_code, ": ", err);
}

absl::StatusOr<pid_t> SpawnProcess(const std::vector<std::string>& argv,
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
  short flags = POSIX_SPAWN_SETSIGMASK;
  if (options.new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  auto args = MakeArgv(argv);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return absl::NotFoundError(Cat("spawn ", argv[0], ": ", Errno(rc)));
  return pid;
}

absl::StatusOr<int> ReapChild(pid_t pid, absl::Duration timeout) {
  int ws = 0;
  pid_t r = waitpid(pid, &ws, WNOHANG);
  if (r == pid) return ws;
  if (r < 0) return absl::NotFoundError(Cat("waitpid ", pid, ": ", Errno(errno)));
  Fd pidfd(PidfdOpen(pid));
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (pidfd.get() >= 0) {
      pollfd p{pidfd.get(), POLLIN, 0};
      int64_t ms = MillisLeft(deadline);
      poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    } else {
      usleep(5000);
    }
    r = waitpid(pid, &ws, WNOHANG);
    if (r == pid) return ws;
    if (r < 0) return absl::NotFoundError(Cat("waitpid ", pid, ": ", Errno(errno)));
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(Cat("process ", pid, " still running"));
    }
  }
}

std::optional<int64_t> ProcessStartTicks(pid_t pid) {
  auto stat = ReadFileToString(Cat("/proc/", pid, "/stat"));
  if (!stat.ok()) return std::nullopt;
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(stat->substr(close + 2));
  std::string field;
  // Field 3 (state) is the first after ')'; start time is field 22.
  for (int i = 3; i <= 22; ++i) {
    if (!(in >> field)) return std::nullopt;
    if (i == 3 && (field == "Z" || field == "X")) return std::nullopt;
  }
  return std::stoll(field);
}

bool ProcessAlive(pid_t pid, int64_t start_ticks) {
  if (pid <= 0) return false;
  auto ticks = ProcessStartTicks(pid);
  if (!ticks) return false;
  return start_ticks == 0 || *ticks == start_ticks;
}

bool WaitForProcessExit(pid_t pid, int64_t start_ticks, absl::Duration timeout) {
  Fd pidfd(PidfdOpen(pid));
  if (!ProcessAlive(pid, start_ticks)) return true;
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (pidfd.get() >= 0) {
      pollfd p{pidfd.get(), POLLIN, 0};
      int64_t ms = MillisLeft(deadline);
      int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
      if (r > 0) return true;
    } else {
      usleep(10000);
    }
    if (!ProcessAlive(pid, start_ticks)) return true;
    if (absl::Now() >= deadline) return false;
  }
}

absl::StatusOr<ProcessUsage> ReadProcessUsage(pid_t pid) {
  auto stat = ReadFileToString(Cat("/proc/", pid, "/stat"));
  if (!stat.ok()) return absl::NotFoundError(Cat("process ", pid, " not found"));
  size_t close = stat->rfind(')');
  if (close == std::string::npos) return absl::InternalError("malformed /proc stat");
  std::istringstream in(stat->substr(close + 2));
  std::vector<std::string> f(1);  // index 0 unused so f[i] is field i+2
  std::string tok;
  while (in >> tok) f.push_back(tok);
  // After ')': f[1]=state(3) ... utime=14, stime=15, num_threads=20, rss=24 (pages).
  auto field = [&](int n) -> int64_t {
    size_t idx = static_cast<size_t>(n - 2);
    return idx < f.size() ? std::stoll(f[idx]) : 0;
  };
  const int64_t hz = sysconf(_SC_CLK_TCK);
  ProcessUsage u;
  u.user = absl::Milliseconds(field(14) * 1000 / hz);
  u.system = absl::Milliseconds(field(15) * 1000 / hz);
  u.threads = field(20);
  u.rss_bytes = field(24) * sysconf(_SC_PAGESIZE);
  return u;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& data,
                                 const WriteFileOptions& options) {
  std::string tmp = Cat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(Cat("write ", tmp, ": ", Errno(errno)));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = write(fd, data.data() + off, data.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return absl::InternalError(Cat("write ", tmp, ": ", Errno(err)));
    }
    off += static_cast<size_t>(w);
  }
  if (options.sync) fsync(fd);
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return absl::InternalError(Cat("rename ", tmp, " to ", path, ": ", Errno(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return absl::NotFoundError(Cat(path, ": no such file"));
    return absl::InternalError(Cat("read ", path, ": ", Errno(err)));
  }
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  close(fd);
  return out;
}

}  // namespace berth::runtime
