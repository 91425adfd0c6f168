// Confinement of client-named files to a directory the operator configured (a backup directory,
// an image catalog, a storage pool). A name is checked twice: lexically (Relative: no "..", no
// absolute path elsewhere, no control bytes or invalid UTF-8) and then by the kernel, which opens
// it with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) relative to a
// descriptor of the root taken once. No component may be a symbolic link, so neither a link
// inside the root pointing out nor one swapped in halfway through the lookup can take the open
// elsewhere.
//
// What comes back is an open descriptor, not a path: callers work on that descriptor (or hand
// tools the path FdPath gives, which names the very file opened), so nothing is looked up again
// by name after the check.
//
// Thread-safety: a ConfinedDir is immutable after Open; its methods may be called concurrently.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::runtime::storage {

// An owned file descriptor, closed on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset();

 private:
  int fd_ = -1;
};

// A path that names the open file itself for this process and for the tools it starts:
// "/proc/<pid>/fd/<fd>". Opening it reaches the same inode without looking any name up again
// (the tools do not inherit our close-on-exec descriptors, so /proc/self would not do).
std::string FdPath(int fd);

class ConfinedDir {
 public:
  // `root` must be an absolute path to an existing directory; `description` says what it is in
  // messages ("the backup directory"). FailedPrecondition when it cannot be opened.
  static absl::StatusOr<ConfinedDir> Open(std::string root, std::string description);

  const std::string& root() const { return root_; }
  const std::string& description() const { return description_; }

  // The client's name as a path relative to the root: a relative name, or an absolute path that
  // lies beneath the root (the root's prefix is dropped). InvalidArgument, with a reason that
  // names the root, for anything else: empty, too long, control bytes (NUL included), invalid
  // UTF-8, "." or ".." or empty components, an absolute path elsewhere, the root itself.
  absl::StatusOr<std::string> Relative(std::string_view name) const;

  // Opens an existing regular file beneath the root for reading. InvalidArgument when the name
  // is refused, a symbolic link lies on the way, or it is not a regular file (a FIFO does not
  // block the open); NotFound when there is no such file.
  absl::StatusOr<UniqueFd> OpenFile(std::string_view name) const;

  // Opens the existing directory beneath the root that holds `name` (the root itself for a name
  // without '/'), for creating the last component there with *at() calls. The leaf may exist
  // or not (that is the caller's to judge), but a symbolic link there is refused.
  struct Parent {
    UniqueFd dir;      // O_PATH | O_DIRECTORY
    std::string leaf;  // the last component
    std::string path;  // root + "/" + the relative name, for messages and replies
  };
  absl::StatusOr<Parent> OpenParent(std::string_view name) const;

 private:
  ConfinedDir(std::string root, std::string description, UniqueFd fd)
      : root_(std::move(root)), description_(std::move(description)), fd_(std::move(fd)) {}
  // Opens `relative` (already checked by Relative) beneath the root.
  absl::StatusOr<UniqueFd> OpenBeneath(std::string_view name, const std::string& relative,
                                       int flags) const;
  absl::Status Refuse(std::string_view name, std::string_view why) const;

  std::string root_;
  std::string description_;
  UniqueFd fd_;  // O_PATH | O_DIRECTORY descriptor of the root
};

}  // namespace berth::runtime::storage
