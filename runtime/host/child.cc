#include "runtime/host/child.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

namespace berth::runtime::host::internal {
namespace {

// Signals a supervisor or a daemonized agent may ignore; a child gets them back to default.
constexpr int kResetSignals[] = {SIGHUP,  SIGINT,  SIGTERM, SIGQUIT,
                                 SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};

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

}  // namespace

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
    case kNetns:
      return "entering the network namespace for";
    case kPrctl:
      return "tying to its parent";
  }
  return "start";
}

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

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

void ResetSignals() {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig : kResetSignals) sigaction(sig, &sa, nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

ChildError PrepareChild(const ChildSetup& setup) {
  if (setup.parent_pid > 0) {
    // SIGKILL when the thread that started it ends; a parent already gone meanwhile leaves a
    // child with another parent, which ends here instead.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return {kPrctl, errno};
    if (getppid() != setup.parent_pid) _exit(127);
  }
  if (int err = JoinCgroups(setup.cgroup_procs); err != 0) return {kCgroup, err};
  if (!setup.working_dir.empty() && chdir(setup.working_dir.c_str()) != 0) return {kChdir, errno};
  for (const auto& [resource, value] : setup.rlimits) {
    struct rlimit rl {
      value, value
    };
    if (setrlimit(resource, &rl) != 0) return {kRlimit, errno};
  }
  if (setup.credentials) {
    const Credentials& c = *setup.credentials;
    if (c.uid != 0) {
      if (int err = DropBoundingSet(); err != 0) return {kCapabilities, err};
    }
    if (setgroups(c.groups.size(), c.groups.data()) != 0 || setresgid(c.gid, c.gid, c.gid) != 0 ||
        setresuid(c.uid, c.uid, c.uid) != 0) {
      return {kCredentials, errno};
    }
  }
  if (setup.restrict_privileges) {
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

}  // namespace berth::runtime::host::internal
