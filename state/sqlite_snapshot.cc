// Snapshots of SqliteStore: saved with SQLite's online backup API from the store's own
// connection (the store holds its file exclusively, so no other connection could read it),
// inspected and restored with connections of their own.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/time/clock.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"
#include "state/sqlite_store.h"

namespace berth::state {
namespace {

// Pages copied per backup step: about 1 MiB with SQLite's default 4 KiB pages, so a writer
// waits for a millisecond or so at most.
constexpr int kPagesPerStep = 256;

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, CloseDb>;

absl::Status DbError(sqlite3* db, std::string_view what, const std::string& path, int rc) {
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  absl::StatusCode code = absl::StatusCode::kInternal;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      code = absl::StatusCode::kFailedPrecondition;
      detail += " (another process has it open: stop the server that uses it first)";
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case SQLITE_FULL:
      code = absl::StatusCode::kResourceExhausted;
      break;
    default:
      break;
  }
  return absl::Status(code, core::Cat(path, ": ", what, ": ", detail));
}

absl::StatusOr<Db> OpenDb(const std::string& path, int flags) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) return DbError(raw, "open", path, rc);
  sqlite3_extended_result_codes(raw, 1);
  return db;
}

absl::Status ExecSql(sqlite3* db, const std::string& path, const char* sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  absl::Status status = DbError(db, sql, path, rc);
  return absl::Status(status.code(), core::Cat(status.message(), " (", detail, ")"));
}

// The first column of the first row of `sql` as an integer, or as text in `text`.
absl::StatusOr<int64_t> QueryInt(sqlite3* db, const std::string& path, const char* sql,
                                 std::string* text = nullptr) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
  if (rc != SQLITE_OK) return DbError(db, sql, path, rc);
  int64_t value = 0;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    value = sqlite3_column_int64(stmt, 0);
    if (text != nullptr) {
      const unsigned char* t = sqlite3_column_text(stmt, 0);
      *text = t != nullptr ? reinterpret_cast<const char*>(t) : "";
    }
    rc = SQLITE_DONE;
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return DbError(db, sql, path, rc);
  return value;
}

// The revision and key count of a Berth store database, after checking it is one.
absl::Status ReadStoreFacts(sqlite3* db, const std::string& path, SnapshotInfo& info) {
  auto invalid = [&path](std::string_view why) {
    return absl::InvalidArgumentError(core::Cat("snapshot ", path, ": ", why));
  };
  std::string check;
  absl::StatusOr<int64_t> checked = QueryInt(db, path, "PRAGMA quick_check", &check);
  if (!checked.ok() || check != "ok") {
    return invalid(core::Cat("damaged: SQLite's quick_check says ",
                             checked.ok() ? check : std::string(checked.status().message())));
  }
  BERTH_ASSIGN_OR_RETURN(
      int64_t tables,
      QueryInt(db, path,
               "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
               "('meta', 'kv', 'changelog', 'leases')"));
  if (tables != 4) {
    return invalid(
        "not a Berth store snapshot: an SQLite database without the store's tables (meta, kv, "
        "changelog, leases)");
  }
  BERTH_ASSIGN_OR_RETURN(int64_t version, QueryInt(db, path, "PRAGMA user_version"));
  if (version != 1) {
    return invalid(core::Cat("store schema version ", version,
                             " is not the one this berth reads (1); restore it with the berth "
                             "that saved it"));
  }
  BERTH_ASSIGN_OR_RETURN(info.keys, QueryInt(db, path, "SELECT count(*) FROM kv"));
  BERTH_ASSIGN_OR_RETURN(
      info.revision,
      QueryInt(db, path, "SELECT coalesce(max(value), 0) FROM meta WHERE name = 'revision'"));
  return absl::OkStatus();
}

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

void RemoveTemp(const std::string& tmp) {
  std::remove(tmp.c_str());
  std::remove((tmp + "-journal").c_str());
}

}  // namespace

absl::StatusOr<SnapshotInfo> SqliteStore::SaveSnapshot(const std::string& path,
                                                       const SnapshotProgress& progress) {
  const std::string tmp = TempPathBeside(path);
  SnapshotInfo info{.format = SnapshotFormat::kSqlite};
  absl::Status status = [&]() -> absl::Status {
    BERTH_ASSIGN_OR_RETURN(Db dest, OpenDb(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
    sqlite3_backup* backup = nullptr;
    int64_t page_size = 4096;
    {
      absl::MutexLock lock(&db_mu_);
      backup = sqlite3_backup_init(dest.get(), "main", db_, "main");
      if (backup == nullptr) {
        return DbError(dest.get(), "start the backup", tmp, sqlite3_errcode(dest.get()));
      }
      absl::StatusOr<int64_t> size = QueryInt(db_, path_, "PRAGMA page_size");
      if (size.ok() && *size > 0) page_size = *size;
    }
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      int64_t remaining = 0, total = 0;
      {
        // The store writes through db_ under db_mu_; a backup step reads it, and the store's
        // writes between steps update the backup through the same connection.
        absl::MutexLock lock(&db_mu_);
        rc = sqlite3_backup_step(backup, kPagesPerStep);
        remaining = sqlite3_backup_remaining(backup);
        total = sqlite3_backup_pagecount(backup);
      }
      if (progress) progress((total - remaining) * page_size, total * page_size);
      if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) absl::SleepFor(absl::Milliseconds(5));
    }
    int finish;
    {
      absl::MutexLock lock(&db_mu_);
      finish = sqlite3_backup_finish(backup);
    }
    if (rc != SQLITE_DONE) return DbError(dest.get(), "backup step", tmp, rc);
    if (finish != SQLITE_OK) return DbError(dest.get(), "finish the backup", tmp, finish);
    // The copy carries the store's WAL header bytes; one file with no -wal beside it is what
    // a snapshot should be.
    BERTH_RETURN_IF_ERROR(ExecSql(dest.get(), tmp, "PRAGMA journal_mode=DELETE"));
    BERTH_RETURN_IF_ERROR(ReadStoreFacts(dest.get(), tmp, info));
    dest.reset();
    info.bytes = FileSize(tmp);
    return CommitFile(tmp, path);
  }();
  if (!status.ok()) {
    RemoveTemp(tmp);
    return absl::Status(status.code(), core::Cat("save snapshot of \"", path_, "\" to ", path, ": ",
                                                 status.message()));
  }
  return info;
}

absl::StatusOr<SnapshotInfo> InspectSqliteSnapshot(const std::string& path) {
  BERTH_ASSIGN_OR_RETURN(SnapshotFormat format, DetectSnapshotFormat(path));
  if (format != SnapshotFormat::kSqlite) {
    return absl::InvalidArgumentError(
        core::Cat("snapshot ", path, ": is an etcd snapshot, not an SQLite one"));
  }
  BERTH_ASSIGN_OR_RETURN(Db db, OpenDb(path, SQLITE_OPEN_READONLY));
  SnapshotInfo info{.format = SnapshotFormat::kSqlite, .bytes = FileSize(path)};
  BERTH_RETURN_IF_ERROR(ReadStoreFacts(db.get(), path, info));
  return info;
}

absl::StatusOr<SnapshotInfo> RestoreSqliteSnapshot(const std::string& snapshot,
                                                   const std::string& target,
                                                   const SqliteRestoreOptions& options) {
  BERTH_ASSIGN_OR_RETURN(SnapshotInfo info, InspectSqliteSnapshot(snapshot));
  std::error_code ec;
  if (std::filesystem::equivalent(snapshot, target, ec)) {
    return absl::InvalidArgumentError(
        core::Cat("restore: the snapshot ", snapshot, " and the target are the same file"));
  }
  const int64_t existing = FileSize(target);
  if (existing > 0 && !options.force) {
    return absl::FailedPreconditionError(
        core::Cat("restore: target ", target, " already holds data (", existing,
                  " bytes); restore into a new data directory, or pass --force to replace it"));
  }
  BERTH_ASSIGN_OR_RETURN(Db dest, OpenDb(target, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  // Take the file as the store does, exclusively: a running server holding it makes this fail
  // before anything is written.
  BERTH_RETURN_IF_ERROR(ExecSql(dest.get(), target, "PRAGMA locking_mode=EXCLUSIVE"));
  BERTH_RETURN_IF_ERROR(ExecSql(dest.get(), target, "BEGIN IMMEDIATE"));
  BERTH_RETURN_IF_ERROR(ExecSql(dest.get(), target, "COMMIT"));
  BERTH_ASSIGN_OR_RETURN(Db source, OpenDb(snapshot, SQLITE_OPEN_READONLY));
  sqlite3_backup* backup = sqlite3_backup_init(dest.get(), "main", source.get(), "main");
  if (backup == nullptr) {
    return DbError(dest.get(), "start the restore", target, sqlite3_errcode(dest.get()));
  }
  int rc = SQLITE_OK;
  const int64_t page_size = 4096;
  while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
    rc = sqlite3_backup_step(backup, kPagesPerStep);
    int64_t total = sqlite3_backup_pagecount(backup);
    if (options.progress) {
      options.progress((total - sqlite3_backup_remaining(backup)) * page_size, total * page_size);
    }
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) absl::SleepFor(absl::Milliseconds(5));
  }
  int finish = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) return DbError(dest.get(), "restore step", target, rc);
  if (finish != SQLITE_OK) return DbError(dest.get(), "finish the restore", target, finish);
  BERTH_RETURN_IF_ERROR(ExecSql(dest.get(), target, "PRAGMA journal_mode=WAL"));
  dest.reset();
  std::string dir = std::filesystem::path(target).parent_path().string();
  int fd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    if (fsync(fd) != 0) {
      core::ReportError("store", core::Cat("restore: sync directory ", dir),
                        absl::InternalError(strerror(errno)));
    }
    close(fd);
  }
  return info;
}

}  // namespace berth::state
