// What a child process does between fork and exec, shared by Run (one-shot commands) and
// SpawnSupervised (workloads): join cgroups, enter a directory, set resource limits, switch ids
// and shed privileges. The steps themselves live in child.cc and stay async-signal-safe.
//
// Thread-safety: plain values.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace berth::runtime::host {

// The ids a spawned program runs as.
struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  bool operator==(const Credentials&) const = default;
};

struct ChildSetup {
  // Entered before the ids change, so it may sit below directories the new user cannot search.
  std::string working_dir;
  std::vector<std::pair<int, rlim_t>> rlimits;  // (RLIMIT_*, soft and hard value)
  // Files the child writes "0" to first, joining cgroups (TaskCgroup::ProcsFiles).
  std::vector<std::string> cgroup_procs;
  // Set: the child switches to these ids (groups, gid, then uid) before exec. For a uid other
  // than 0 it first empties the capability bounding set, so no set-uid or file-capability
  // program it runs can regain a privilege.
  std::optional<Credentials> credentials;
  // The child sets PR_SET_NO_NEW_PRIVS and clears its ambient capabilities; when it does not run
  // as uid 0 it also clears its permitted, effective and inheritable sets.
  bool restrict_privileges = false;
  // Set (to the caller's getpid()): the child is killed when the thread that started it ends,
  // e.g. a probe whose caller was killed, so that a hung child is not left behind.
  pid_t parent_pid = 0;
};

}  // namespace berth::runtime::host
