// Reading task log files (stdout.log, stderr.log in a task directory) from an offset, and
// following them as they grow, for `berth workload logs NAME [--tail N] [-f]`. Offsets are byte
// offsets, so a client can resume where it stopped; a file that shrank (truncated or replaced)
// is read again from the start and the chunk says so.
//
// Thread-safety: the free functions keep no state. A LogFollower is used by one reading thread;
// Cancel() may be called from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace berth::runtime {

struct LogChunk {
  std::string data;
  int64_t next_offset = 0;  // where the next read should start
  bool restarted = false;   // the file was shorter than the requested offset; read from 0
};

// Up to `max_bytes` from `path` starting at `offset` (>= 0). NotFound when the file is missing,
// InvalidArgument for a negative offset or max_bytes.
absl::StatusOr<LogChunk> ReadLogChunk(const std::string& path, int64_t offset, int64_t max_bytes);

// The offset at which the last `lines` lines of `path` begin (0 when it has fewer). A final line
// without a newline counts as a line. NotFound when the file is missing.
absl::StatusOr<int64_t> TailOffset(const std::string& path, int64_t lines);

struct LogFollowerOptions {
  absl::Duration poll_interval = absl::Milliseconds(100);
  int64_t max_chunk_bytes = 64 * 1024;
};

class LogFollower {
 public:
  LogFollower(std::string path, int64_t offset, LogFollowerOptions options = {});

  // Data appended since the previous call, waiting up to `wait` for some to appear (a missing
  // file counts as empty until it appears). Empty on timeout. Cancelled after Cancel().
  absl::StatusOr<std::string> Next(absl::Duration wait);
  void Cancel();
  int64_t offset() const { return offset_; }

 private:
  const std::string path_;
  const LogFollowerOptions options_;
  int64_t offset_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace berth::runtime
