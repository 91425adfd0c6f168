#include "runtime/host/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/strings.h"

namespace berth::runtime::host {
namespace internal {

int CommitFile(int fd, const char* tmp, const char* path, const char* dir, const char* data,
               size_t len, bool sync, const char** step) {
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = w < 0 ? errno : EIO;
      close(fd);
      *step = "write";
      return err;
    }
    off += static_cast<size_t>(w);
  }
  if (sync && fsync(fd) != 0) {
    int err = errno;
    close(fd);
    *step = "fsync";
    return err;
  }
  if (close(fd) != 0 && errno != EINTR) {
    *step = "close";
    return errno;
  }
  if (rename(tmp, path) != 0) {
    *step = "rename";
    return errno;
  }
  if (sync) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
      *step = "open directory";
      return errno;
    }
    int rc = fsync(dfd);
    int err = errno;
    close(dfd);
    if (rc != 0) {
      *step = "fsync directory";
      return err;
    }
  }
  return 0;
}

}  // namespace internal

namespace {

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, const std::string& data,
                                 const WriteFileOptions& options) {
  const std::string dir = DirOf(path);
  // A unique name: two writers of one path must not share (and truncate) one temporary file.
  std::string tmp = core::Cat(path, ".tmp.XXXXXX");
  int fd = mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(core::Cat("write ", path, ": create a temporary file in ", dir, ": ",
                                         std::strerror(errno)));
  }
  if (fchmod(fd, options.mode) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return absl::InternalError(core::Cat("write ", path, ": chmod: ", std::strerror(err)));
  }
  const char* step = "";
  int err = internal::CommitFile(fd, tmp.c_str(), path.c_str(), dir.c_str(), data.data(),
                                 data.size(), options.sync, &step);
  if (err != 0) {
    // Past the rename the temporary name is gone and the new content is in place, only not
    // known to be durable; before it the old content is untouched.
    if (std::strcmp(step, "open directory") != 0 && std::strcmp(step, "fsync directory") != 0) {
      unlink(tmp.c_str());
    }
    return absl::InternalError(core::Cat("write ", path, ": ", step, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return absl::NotFoundError(core::Cat(path, ": no such file"));
    return absl::InternalError(core::Cat("read ", path, ": ", std::strerror(err)));
  }
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = errno;
      close(fd);
      return absl::InternalError(core::Cat("read ", path, ": ", std::strerror(err)));
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  close(fd);
  return out;
}

}  // namespace berth::runtime::host
