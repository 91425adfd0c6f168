#include "runtime/storage/confined_path.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/escaping.h"
#include "core/strings.h"

namespace berth::runtime::storage {
namespace {

using core::Cat;

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// The name as it may appear in a message: quoted, with control and non-ASCII bytes escaped.
std::string Quoted(std::string_view name) {
  return Cat("\"", absl::CHexEscape(absl::string_view(name.data(), name.size())), "\"");
}

long OpenAt2(int dirfd, const std::string& path, int flags) {
  struct open_how how {};
  // openat2 refuses flags that make no sense with O_PATH, O_NOCTTY among them.
  if ((flags & O_PATH) == 0) flags |= O_NOCTTY;
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd;
  int tries = 0;
  // EAGAIN: a rename elsewhere in the filesystem raced with the lookup; the kernel asks us to
  // try again rather than risk an unchecked result.
  do {
    fd = syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
  } while ((fd < 0 && (errno == EINTR || errno == EAGAIN)) && ++tries < 16);
  return fd;
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = other.Release();
  }
  return *this;
}

void UniqueFd::Reset() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

std::string FdPath(int fd) { return Cat("/proc/", static_cast<int>(getpid()), "/fd/", fd); }

absl::StatusOr<ConfinedDir> ConfinedDir::Open(std::string root, std::string description) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (root.empty() || root[0] != '/') {
    return absl::FailedPreconditionError(
        Cat(description, " must be an absolute path, got ", Quoted(root)));
  }
  int fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        Cat(description, " ", root, " cannot be opened: ", std::strerror(errno)));
  }
  return ConfinedDir(std::move(root), std::move(description), UniqueFd(fd));
}

absl::Status ConfinedDir::Refuse(std::string_view name, std::string_view why) const {
  return absl::InvalidArgumentError(
      Cat("must be a name inside ", description_, " ", root_, why, ", got ", Quoted(name)));
}

absl::StatusOr<std::string> ConfinedDir::Relative(std::string_view name) const {
  if (name.empty()) return Refuse(name, "");
  if (name.size() >= PATH_MAX) return Refuse(name.substr(0, 64), " shorter than PATH_MAX");
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return Refuse(name, " without control characters");
    }
  }
  if (!IsUtf8(name)) return Refuse(name, " in UTF-8");
  std::string_view rest = name;
  if (rest[0] == '/') {
    const std::string prefix = root_ == "/" ? "/" : root_ + "/";
    if (!rest.starts_with(prefix) || rest.size() == prefix.size()) return Refuse(name, "");
    rest.remove_prefix(prefix.size());
  }
  for (std::string_view left = rest; true;) {
    size_t slash = left.find('/');
    std::string_view part = left.substr(0, slash);
    if (part.empty() || part == "." || part == "..") {
      return Refuse(name, " without \".\", \"..\" or empty components");
    }
    if (slash == std::string_view::npos) break;
    left.remove_prefix(slash + 1);
  }
  return std::string(rest);
}

absl::StatusOr<UniqueFd> ConfinedDir::OpenBeneath(std::string_view name,
                                                  const std::string& relative, int flags) const {
  long fd = OpenAt2(fd_.get(), relative, flags);
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
  const int err = errno;
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(
          Cat(Quoted(name), " does not exist in ", description_, " ", root_));
    case ELOOP:
    case EXDEV:
      return Refuse(name, " without symbolic links on the way");
    case ENOTDIR:
      return Refuse(name, " whose components are directories");
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOSYS:
      return absl::InternalError(Cat("open ", root_, "/", relative, ": ", std::strerror(err)));
    default:
      return Refuse(name, Cat(" that can be opened (", std::strerror(err), ")"));
  }
}

absl::StatusOr<UniqueFd> ConfinedDir::OpenFile(std::string_view name) const {
  auto relative = Relative(name);
  if (!relative.ok()) return relative.status();
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  auto fd = OpenBeneath(name, *relative, O_RDONLY | O_NONBLOCK);
  if (!fd.ok()) return fd.status();
  struct stat st;
  if (fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Refuse(name, " naming a regular file");
  }
  int fl = fcntl(fd->get(), F_GETFL);
  if (fl >= 0) fcntl(fd->get(), F_SETFL, fl & ~O_NONBLOCK);
  return fd;
}

absl::StatusOr<ConfinedDir::Parent> ConfinedDir::OpenParent(std::string_view name) const {
  auto relative = Relative(name);
  if (!relative.ok()) return relative.status();
  size_t slash = relative->rfind('/');
  Parent p;
  p.leaf = slash == std::string::npos ? *relative : relative->substr(slash + 1);
  p.path = Cat(root_ == "/" ? "" : root_, "/", *relative);
  const std::string dir = slash == std::string::npos ? "." : relative->substr(0, slash);
  auto fd = OpenBeneath(name, dir, O_PATH | O_DIRECTORY);
  if (!fd.ok()) {
    if (absl::IsNotFound(fd.status())) {
      return Refuse(name, Cat(" in an existing directory (", Quoted(dir), " does not exist)"));
    }
    return fd.status();
  }
  // A link where the file is to be made would take a careless create elsewhere.
  struct stat st;
  if (fstatat(fd->get(), p.leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    return Refuse(name, " without symbolic links on the way");
  }
  p.dir = *std::move(fd);
  return p;
}

}  // namespace berth::runtime::storage
