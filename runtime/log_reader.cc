#include "runtime/log_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/time/clock.h"
#include "core/strings.h"

namespace berth::runtime {
namespace {

// Closes an fd on scope exit.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

absl::Status OpenError(const std::string& path, int err) {
  if (err == ENOENT) return absl::NotFoundError(core::Cat("log file ", path, " does not exist"));
  return absl::InternalError(core::Cat("log file ", path, ": ", std::string(strerror(err))));
}

}  // namespace

absl::StatusOr<LogChunk> ReadLogChunk(const std::string& path, int64_t offset, int64_t max_bytes) {
  if (offset < 0) {
    return absl::InvalidArgumentError(
        core::Cat("log file ", path, ": offset must be >= 0, got ", offset));
  }
  if (max_bytes < 0) {
    return absl::InvalidArgumentError(
        core::Cat("log file ", path, ": max_bytes must be >= 0, got ", max_bytes));
  }
  Fd f{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return OpenError(path, errno);
  struct stat st {};
  if (fstat(f.fd, &st) != 0) return OpenError(path, errno);
  LogChunk chunk;
  if (offset > st.st_size) {
    offset = 0;
    chunk.restarted = true;
  }
  int64_t want = std::min<int64_t>(max_bytes, st.st_size - offset);
  chunk.data.resize(static_cast<size_t>(want));
  int64_t got = 0;
  while (got < want) {
    ssize_t n = pread(f.fd, chunk.data.data() + got, static_cast<size_t>(want - got), offset + got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return OpenError(path, errno);
    if (n == 0) break;
    got += n;
  }
  chunk.data.resize(static_cast<size_t>(got));
  chunk.next_offset = offset + got;
  return chunk;
}

absl::StatusOr<int64_t> TailOffset(const std::string& path, int64_t lines) {
  Fd f{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) return OpenError(path, errno);
  struct stat st {};
  if (fstat(f.fd, &st) != 0) return OpenError(path, errno);
  if (lines <= 0) return static_cast<int64_t>(st.st_size);
  int64_t end = st.st_size;
  // A trailing newline ends the last line; it does not start another.
  int64_t newlines_to_pass = lines;
  char buf[8192];
  int64_t pos = end;
  bool first = true;
  while (pos > 0) {
    int64_t start = std::max<int64_t>(0, pos - static_cast<int64_t>(sizeof(buf)));
    ssize_t n = pread(f.fd, buf, static_cast<size_t>(pos - start), start);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (int64_t i = n - 1; i >= 0; --i) {
      int64_t at = start + i;
      if (buf[i] != '\n') {
        first = false;
        continue;
      }
      if (first && at == end - 1) {
        first = false;
        continue;
      }
      if (--newlines_to_pass == 0) return at + 1;
    }
    pos = start;
  }
  return 0;
}

LogFollower::LogFollower(std::string path, int64_t offset, LogFollowerOptions options)
    : path_(std::move(path)), options_(options), offset_(offset < 0 ? 0 : offset) {}

void LogFollower::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

absl::StatusOr<std::string> LogFollower::Next(absl::Duration wait) {
  absl::Time deadline = absl::Now() + wait;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return absl::CancelledError(core::Cat("following ", path_, " cancelled"));
    }
    absl::StatusOr<LogChunk> chunk = ReadLogChunk(path_, offset_, options_.max_chunk_bytes);
    if (chunk.ok()) {
      offset_ = chunk->next_offset;
      if (!chunk->data.empty()) return std::move(chunk->data);
    } else if (!absl::IsNotFound(chunk.status())) {
      return chunk.status();
    }
    absl::Time now = absl::Now();
    if (now >= deadline) return std::string();
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&cancelled_),
                         std::min(options_.poll_interval, deadline - now));
  }
}

}  // namespace berth::runtime
