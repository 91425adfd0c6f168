// SqliteStore: the durable Store for a single server (`berth serve --dev` and small clusters).
// State lives in one SQLite file in WAL mode with synchronous=FULL, so a commit is on disk before
// the call that made it returns, and a store killed mid-write reopens with every acknowledged
// commit and nothing half-done. The whole key space is also held in memory (see LocalStore), so
// reads never touch the disk.
//
// Ownership: one process at a time owns the file; it holds an exclusive SQLite lock for as long
// as the store is open, and a second Open fails with FailedPrecondition.
// Thread-safety: thread-safe, as every Store. The one connection is used only under db_mu_.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "state/local_store.h"
#include "state/snapshot.h"

struct sqlite3;
struct sqlite3_stmt;

namespace berth::state {

class SqliteStore final : public LocalStore, public Snapshotter {
 public:
  // Opens the store at `path`, creating the file if needed.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const std::string& path, const StoreOptions& options = {});
  ~SqliteStore() override;

  const std::string& path() const { return path_; }

  // An SQLite database of the whole store (rollback-journal mode, so it is one self-contained
  // file), copied with SQLite's online backup API a few hundred pages at a time: writers wait
  // only for one step, and pages they change meanwhile are copied again, so the file holds the
  // store as of the last step. Defined in sqlite_snapshot.cc.
  absl::StatusOr<SnapshotInfo> SaveSnapshot(const std::string& path,
                                            const SnapshotProgress& progress = {}) override;

 protected:
  absl::Status Persist(const std::vector<const Commit*>& commits) override;

 private:
  // A prepared statement, finalized on destruction.
  struct Statement {
    sqlite3_stmt* stmt = nullptr;
    ~Statement();
  };

  SqliteStore(std::string path, const StoreOptions& options);
  absl::Status Init() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::StatusOr<Snapshot> ReadSnapshot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status Prepare(Statement& statement, const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status WriteCommit(const Commit& commit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status SetMeta(const char* name, int64_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  // Runs a bound statement to completion and resets it.
  absl::Status Run(Statement& statement, std::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);
  absl::Status Error(std::string_view what, int rc) ABSL_EXCLUSIVE_LOCKS_REQUIRED(db_mu_);

  const std::string path_;
  absl::Mutex db_mu_;
  sqlite3* db_ ABSL_GUARDED_BY(db_mu_) = nullptr;
  Statement begin_ ABSL_GUARDED_BY(db_mu_);
  Statement commit_ ABSL_GUARDED_BY(db_mu_);
  Statement rollback_ ABSL_GUARDED_BY(db_mu_);
  Statement upsert_kv_ ABSL_GUARDED_BY(db_mu_);
  Statement delete_kv_ ABSL_GUARDED_BY(db_mu_);
  Statement insert_event_ ABSL_GUARDED_BY(db_mu_);
  Statement compact_ ABSL_GUARDED_BY(db_mu_);
  Statement insert_lease_ ABSL_GUARDED_BY(db_mu_);
  Statement delete_lease_ ABSL_GUARDED_BY(db_mu_);
  Statement set_meta_ ABSL_GUARDED_BY(db_mu_);
};

struct SqliteRestoreOptions {
  bool force = false;  // replace a target that already holds data
  SnapshotProgress progress;
};

// Reads an SQLite snapshot and checks that it is whole (SQLite's quick_check) and a Berth store
// (its tables and schema version). InvalidArgument naming the file and what is wrong.
[[nodiscard]] absl::StatusOr<SnapshotInfo> InspectSqliteSnapshot(const std::string& path);

// Copies the snapshot at `snapshot` into the store file `target` (created if absent), after
// InspectSqliteSnapshot. FailedPrecondition when `target` holds data and !force, or when another
// process (a running server) has it open; the target is then untouched.
[[nodiscard]] absl::StatusOr<SnapshotInfo> RestoreSqliteSnapshot(
    const std::string& snapshot, const std::string& target, const SqliteRestoreOptions& options);

}  // namespace berth::state
