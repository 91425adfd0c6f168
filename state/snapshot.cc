#include "state/snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/strings.h"

namespace berth::state {

namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::InternalError(core::Cat(what, " ", path, ": ", strerror(errno)));
}

absl::Status SyncPath(const std::string& path, int flags) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  if (rc != 0) return Errno("fsync", path);
  return absl::OkStatus();
}

}  // namespace

std::string_view SnapshotFormatName(SnapshotFormat format) {
  return format == SnapshotFormat::kEtcd ? "etcd" : "sqlite";
}

absl::StatusOr<SnapshotFormat> DetectSnapshotFormat(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(core::Cat("snapshot ", path, ": no such file"));
    return Errno("open snapshot", path);
  }
  unsigned char head[32] = {};
  ssize_t n = pread(fd, head, sizeof head, 0);
  close(fd);
  if (n < 0) return Errno("read snapshot", path);
  // An SQLite database begins with this 16-byte string.
  static constexpr char kSqliteMagic[] = "SQLite format 3";
  if (n >= 16 && std::memcmp(head, kSqliteMagic, 16) == 0) return SnapshotFormat::kSqlite;
  // etcd's snapshot is its bbolt file: page 0 is a meta page (flags 0x04 at offset 8) whose
  // magic 0xED0CDAED (little endian) follows the 16-byte page header.
  if (n >= 24 && head[8] == 0x04 && head[16] == 0xED && head[17] == 0xDA && head[18] == 0x0C &&
      head[19] == 0xED) {
    return SnapshotFormat::kEtcd;
  }
  return absl::InvalidArgumentError(core::Cat(
      "snapshot ", path, ": not a snapshot: neither an SQLite database nor an etcd snapshot (",
      n == 0 ? "the file is empty" : "its first bytes are wrong",
      "); give a file written by `berth admin snapshot save`"));
}

absl::Status CommitFile(const std::string& tmp, const std::string& path) {
  absl::Status status = SyncPath(tmp, O_RDONLY);
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    status = Errno(core::Cat("rename ", tmp, " to"), path);
  }
  if (!status.ok()) {
    std::remove(tmp.c_str());
    return status;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return SyncPath(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
}

std::string TempPathBeside(const std::string& path) {
  static std::atomic<int64_t> counter{0};
  std::filesystem::path p(path);
  std::string dir = p.parent_path().string();
  return core::Cat(dir.empty() ? "." : dir, "/.", p.filename().string(), ".tmp-", getpid(), "-",
                   counter.fetch_add(1));
}

}  // namespace berth::state
