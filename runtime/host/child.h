// Internal to runtime/host: the async-signal-safe steps a forked child takes before exec, and
// how it reports the step that failed to the parent (a fixed-size record on a close-on-exec
// pipe: nothing arrives when exec succeeds).
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/host/child_setup.h"

namespace berth::runtime::host::internal {

enum Stage : int32_t {
  kOk = 0,
  kFork = 1,
  kChdir = 2,
  kRlimit = 3,
  kExec = 4,
  kCgroup = 5,
  kCredentials = 6,
  kCapabilities = 7,
  kNetns = 8,
  kPrctl = 9,
};

// "exec", "chdir", "joining the cgroup for", ...
const char* StageName(int32_t stage);

struct ChildError {
  int32_t stage;
  int32_t err;
};

// Writes all of `data`, retrying on EINTR; gives up silently on other errors (the caller is a
// child with nobody to tell).
void WriteAll(int fd, const void* data, size_t len);

// Owns a file descriptor (closed on destruction).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// argv/envp for exec: pointers into `v`, null-terminated. Built before fork (it allocates).
std::vector<char*> CStrings(const std::vector<std::string>& v);

// Restores default dispositions for the signals a daemon parent may ignore and unblocks all.
void ResetSignals();

// Joins cgroups, enters the working directory, sets limits and drops privileges, in that order:
// the cgroup files and the directory may be reachable by the agent only. {kOk, 0} on success.
ChildError PrepareChild(const ChildSetup& setup);

}  // namespace berth::runtime::host::internal
