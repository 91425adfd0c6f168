// Snapshots of a whole store, for backing up and restoring the control plane. A snapshot is the
// store's own format, so the usual tools read it: an SQLite database for SqliteStore (taken with
// SQLite's online backup API), etcd's snapshot for EtcdStore (what `etcdctl snapshot save`
// writes). DetectSnapshotFormat tells them apart by their first bytes.
//
// Thread-safety: Snapshotter implementations are thread-safe; the free functions share no state.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::state {

enum class SnapshotFormat { kSqlite, kEtcd };

// "sqlite" or "etcd".
std::string_view SnapshotFormatName(SnapshotFormat format);

// What a snapshot holds.
struct SnapshotInfo {
  SnapshotFormat format = SnapshotFormat::kSqlite;
  int64_t bytes = 0;
  int64_t revision = 0;  // the store revision it was taken at
  int64_t keys = 0;      // keys it holds
};

// Reports bytes copied so far out of `total` (0 when not known yet).
using SnapshotProgress = std::function<void(int64_t done, int64_t total)>;

// A store that can copy itself, consistently, while it serves.
class Snapshotter {
 public:
  virtual ~Snapshotter() = default;

  // Writes a consistent copy of the whole store (every key as of one revision) to `path`,
  // atomically: a temporary file beside it, synced, renamed over `path`, the directory synced.
  // On failure `path` is untouched and the temporary file removed. Writers keep being served.
  [[nodiscard]] virtual absl::StatusOr<SnapshotInfo> SaveSnapshot(
      const std::string& path, const SnapshotProgress& progress = {}) = 0;
};

// The format of the snapshot file at `path`, from its first bytes. NotFound when it does not
// exist; InvalidArgument naming the file when it is neither an SQLite database nor an etcd
// snapshot.
[[nodiscard]] absl::StatusOr<SnapshotFormat> DetectSnapshotFormat(const std::string& path);

// Makes the finished file `tmp` durable and moves it to `path`: fsync, rename, fsync of the
// directory. Removes `tmp` on failure.
[[nodiscard]] absl::Status CommitFile(const std::string& tmp, const std::string& path);

// A temporary name beside `path` ("DIR/.NAME.tmp-PID-N"), unique within this process.
std::string TempPathBeside(const std::string& path);

}  // namespace berth::state
