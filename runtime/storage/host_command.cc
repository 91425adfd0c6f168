#include "runtime/storage/host_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/strings.h"

extern char** environ;

namespace berth::runtime::host {
namespace {

int NewMemFile(const char* name) { return memfd_create(name, MFD_CLOEXEC); }

std::string ReadAllFrom(int fd) {
  std::string out;
  lseek(fd, 0, SEEK_SET);
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out.push_back(' ');
    out.append(a);
  }
  return out;
}

absl::StatusOr<HostCommandResult> RunHostCommand(const std::vector<std::string>& argv_in,
                                                 const HostCommandOptions& options) {
  if (argv_in.empty()) return absl::InvalidArgumentError("command: argv must not be empty");
  std::vector<std::string> argv;
  if (!options.netns.empty()) argv = {"ip", "netns", "exec", options.netns};
  argv.insert(argv.end(), argv_in.begin(), argv_in.end());

  int in_fd = NewMemFile("berth-in");
  int out_fd = NewMemFile("berth-out");
  int err_fd = NewMemFile("berth-err");
  int pipe_fds[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {in_fd, out_fd, err_fd, pipe_fds[0], pipe_fds[1]}) {
      if (fd >= 0) close(fd);
    }
  };
  if (in_fd < 0 || out_fd < 0 || err_fd < 0 ||
      (options.on_output && pipe2(pipe_fds, O_CLOEXEC) != 0)) {
    close_all();
    return absl::InternalError(core::Cat("command ", argv[0], ": ", std::strerror(errno)));
  }
  if (!WriteAll(in_fd, options.stdin_data)) {
    close_all();
    return absl::InternalError(core::Cat("command ", argv[0], ": cannot stage stdin"));
  }
  lseek(in_fd, 0, SEEK_SET);

  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  pid_t pid = fork();
  if (pid < 0) {
    close_all();
    return absl::InternalError(core::Cat("command ", argv[0], ": fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    dup2(in_fd, 0);
    dup2(options.on_output ? pipe_fds[1] : out_fd, 1);
    dup2(err_fd, 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execvp(cargv[0], cargv.data());
    static const char kMsg[] = "exec failed\n";
    (void)!write(2, kMsg, sizeof kMsg - 1);
    _exit(127);
  }

  HostCommandResult result;
  if (options.on_output) {
    close(pipe_fds[1]);
    pipe_fds[1] = -1;
    char buf[4096];
    while (true) {
      ssize_t n = read(pipe_fds[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::string_view chunk(buf, static_cast<size_t>(n));
      result.out.append(chunk);
      options.on_output(chunk);
    }
  }
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0) {
    if (errno != EINTR) break;
  }
  if (WIFEXITED(wstatus)) {
    result.exit_code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    result.exit_code = 128 + WTERMSIG(wstatus);
  }
  if (!options.on_output) result.out = ReadAllFrom(out_fd);
  result.err = ReadAllFrom(err_fd);
  close_all();
  return result;
}

absl::StatusOr<std::string> RunHostCommandOk(const std::vector<std::string>& argv,
                                             const HostCommandOptions& options) {
  auto result = RunHostCommand(argv, options);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    std::string err = result->err.substr(0, 600);
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return absl::InternalError(
        core::Cat("command `", JoinArgv(argv), "` exited with ", result->exit_code, ": ", err));
  }
  return std::move(result->out);
}

}  // namespace berth::runtime::host
