#include "state/sqlite_store.h"

#include <sqlite3.h>

#include <utility>

#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::state {
namespace {

constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv(
  key BLOB PRIMARY KEY,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  mod_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changelog(
  revision INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  type INTEGER NOT NULL,
  key BLOB NOT NULL,
  value BLOB NOT NULL,
  create_revision INTEGER NOT NULL,
  version INTEGER NOT NULL,
  lease INTEGER NOT NULL,
  PRIMARY KEY(revision, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases(
  id INTEGER PRIMARY KEY,
  ttl_ms INTEGER NOT NULL);
)sql";

// Event types as stored in changelog.type.
constexpr int kPutType = 0;
constexpr int kDeleteType = 1;

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_IOERR:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

std::string Blob(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  int size = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || size == 0) return {};
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

void BindBlob(sqlite3_stmt* stmt, int index, const std::string& value) {
  // A zero-length blob with a null pointer binds NULL, which NOT NULL columns refuse.
  sqlite3_bind_blob64(stmt, index, value.empty() ? "" : value.data(), value.size(), SQLITE_STATIC);
}

}  // namespace

SqliteStore::Statement::~Statement() { sqlite3_finalize(stmt); }

SqliteStore::SqliteStore(std::string path, const StoreOptions& options)
    : LocalStore(options), path_(std::move(path)) {}

SqliteStore::~SqliteStore() {
  StopBackground();
  absl::MutexLock lock(&db_mu_);
  // close_v2 defers the close until the cached statements are finalized by their destructors.
  sqlite3_close_v2(db_);
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                               const StoreOptions& options) {
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, options));
  Snapshot snapshot;
  {
    absl::MutexLock lock(&store->db_mu_);
    BERTH_RETURN_IF_ERROR(store->Init());
    BERTH_ASSIGN_OR_RETURN(snapshot, store->ReadSnapshot());
  }
  store->Load(std::move(snapshot));
  store->StartBackground();
  return store;
}

absl::Status SqliteStore::Error(std::string_view what, int rc) {
  std::string detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  if ((rc & 0xff) == SQLITE_BUSY) {
    detail += " (another process has the store open)";
  }
  return absl::Status(CodeFor(rc), core::Cat("sqlite store \"", path_, "\": ", what, ": ", detail));
}

absl::Status SqliteStore::Exec(const char* sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string detail = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  absl::Status status = Error(sql, rc);
  return absl::Status(status.code(),
                      core::Cat("sqlite store \"", path_, "\": ", sql, ": ", detail));
}

absl::Status SqliteStore::Prepare(Statement& statement, const char* sql) {
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &statement.stmt, nullptr);
  if (rc != SQLITE_OK) return Error(core::Cat("prepare ", sql), rc);
  return absl::OkStatus();
}

absl::Status SqliteStore::Init() {
  int rc =
      sqlite3_open_v2(path_.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return Error("open", rc);
  sqlite3_extended_result_codes(db_, 1);
  // EXCLUSIVE locking: this process alone owns the file while the store is open, which is what
  // lets reads be served from memory. It also keeps the WAL index in heap memory.
  BERTH_RETURN_IF_ERROR(Exec("PRAGMA locking_mode=EXCLUSIVE"));
  {
    Statement journal;
    BERTH_RETURN_IF_ERROR(Prepare(journal, "PRAGMA journal_mode=WAL"));
    rc = sqlite3_step(journal.stmt);
    if (rc != SQLITE_ROW) return Error("set journal_mode=WAL", rc);
    std::string mode = reinterpret_cast<const char*>(sqlite3_column_text(journal.stmt, 0));
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          core::Cat("sqlite store \"", path_, "\": journal_mode is \"", mode, "\", want \"wal\""));
    }
  }
  BERTH_RETURN_IF_ERROR(Exec("PRAGMA synchronous=FULL"));
  // Taking the write lock now makes a second opener fail here rather than on its first write.
  BERTH_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Status schema = Exec(kSchema);
  if (schema.ok()) {
    schema = Exec(core::Cat("PRAGMA user_version=", kSchemaVersion).c_str());
  }
  if (!schema.ok()) {
    core::OkOrReport("store", "sqlite schema rollback", Exec("ROLLBACK"));
    return schema;
  }
  BERTH_RETURN_IF_ERROR(Exec("COMMIT"));

  BERTH_RETURN_IF_ERROR(Prepare(begin_, "BEGIN"));
  BERTH_RETURN_IF_ERROR(Prepare(commit_, "COMMIT"));
  BERTH_RETURN_IF_ERROR(Prepare(rollback_, "ROLLBACK"));
  BERTH_RETURN_IF_ERROR(Prepare(upsert_kv_,
                                "INSERT OR REPLACE INTO kv(key, value, create_revision, "
                                "mod_revision, version, lease) VALUES(?, ?, ?, ?, ?, ?)"));
  BERTH_RETURN_IF_ERROR(Prepare(delete_kv_, "DELETE FROM kv WHERE key = ?"));
  BERTH_RETURN_IF_ERROR(Prepare(insert_event_,
                                "INSERT INTO changelog(revision, seq, type, key, value, "
                                "create_revision, version, lease) VALUES(?, ?, ?, ?, ?, ?, ?, ?)"));
  BERTH_RETURN_IF_ERROR(Prepare(compact_, "DELETE FROM changelog WHERE revision <= ?"));
  BERTH_RETURN_IF_ERROR(Prepare(insert_lease_, "INSERT INTO leases(id, ttl_ms) VALUES(?, ?)"));
  BERTH_RETURN_IF_ERROR(Prepare(delete_lease_, "DELETE FROM leases WHERE id = ?"));
  BERTH_RETURN_IF_ERROR(
      Prepare(set_meta_, "INSERT OR REPLACE INTO meta(name, value) VALUES(?, ?)"));
  return absl::OkStatus();
}

absl::StatusOr<LocalStore::Snapshot> SqliteStore::ReadSnapshot() {
  Snapshot snapshot;
  {
    Statement meta;
    BERTH_RETURN_IF_ERROR(Prepare(meta, "SELECT name, value FROM meta"));
    int rc;
    while ((rc = sqlite3_step(meta.stmt)) == SQLITE_ROW) {
      std::string name = reinterpret_cast<const char*>(sqlite3_column_text(meta.stmt, 0));
      int64_t value = sqlite3_column_int64(meta.stmt, 1);
      if (name == "revision") snapshot.revision = value;
      if (name == "compacted_revision") snapshot.compacted_revision = value;
      if (name == "next_lease_id") snapshot.next_lease_id = value;
    }
    if (rc != SQLITE_DONE) return Error("read meta", rc);
  }
  {
    Statement kv;
    BERTH_RETURN_IF_ERROR(
        Prepare(kv, "SELECT key, value, create_revision, mod_revision, version, lease FROM kv"));
    int rc;
    while ((rc = sqlite3_step(kv.stmt)) == SQLITE_ROW) {
      snapshot.kvs.push_back(KeyValue{.key = Blob(kv.stmt, 0),
                                      .value = Blob(kv.stmt, 1),
                                      .create_revision = sqlite3_column_int64(kv.stmt, 2),
                                      .mod_revision = sqlite3_column_int64(kv.stmt, 3),
                                      .version = sqlite3_column_int64(kv.stmt, 4),
                                      .lease = sqlite3_column_int64(kv.stmt, 5)});
    }
    if (rc != SQLITE_DONE) return Error("read kv", rc);
  }
  {
    Statement changelog;
    BERTH_RETURN_IF_ERROR(
        Prepare(changelog,
                "SELECT revision, type, key, value, create_revision, version, "
                "lease FROM changelog WHERE revision > ? ORDER BY revision, seq"));
    sqlite3_bind_int64(changelog.stmt, 1, snapshot.compacted_revision);
    int rc;
    while ((rc = sqlite3_step(changelog.stmt)) == SQLITE_ROW) {
      Event event;
      event.type = sqlite3_column_int(changelog.stmt, 1) == kDeleteType ? Event::Type::kDelete
                                                                        : Event::Type::kPut;
      event.kv = KeyValue{.key = Blob(changelog.stmt, 2),
                          .value = Blob(changelog.stmt, 3),
                          .create_revision = sqlite3_column_int64(changelog.stmt, 4),
                          .mod_revision = sqlite3_column_int64(changelog.stmt, 0),
                          .version = sqlite3_column_int64(changelog.stmt, 5),
                          .lease = sqlite3_column_int64(changelog.stmt, 6)};
      snapshot.history.push_back(std::move(event));
    }
    if (rc != SQLITE_DONE) return Error("read changelog", rc);
  }
  {
    Statement leases;
    BERTH_RETURN_IF_ERROR(Prepare(leases, "SELECT id, ttl_ms FROM leases"));
    int rc;
    while ((rc = sqlite3_step(leases.stmt)) == SQLITE_ROW) {
      snapshot.leases.push_back(
          LeaseRecord{.id = sqlite3_column_int64(leases.stmt, 0),
                      .ttl = absl::Milliseconds(sqlite3_column_int64(leases.stmt, 1))});
    }
    if (rc != SQLITE_DONE) return Error("read leases", rc);
  }
  return snapshot;
}

absl::Status SqliteStore::Run(Statement& statement, std::string_view what) {
  int rc = sqlite3_step(statement.stmt);
  sqlite3_reset(statement.stmt);
  if (rc != SQLITE_DONE) return Error(what, rc);
  return absl::OkStatus();
}

absl::Status SqliteStore::SetMeta(const char* name, int64_t value) {
  sqlite3_bind_text(set_meta_.stmt, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(set_meta_.stmt, 2, value);
  return Run(set_meta_, "write meta");
}

absl::Status SqliteStore::WriteCommit(const Commit& commit) {
  for (const auto& [key, kv] : commit.kvs) {
    if (kv.has_value()) {
      BindBlob(upsert_kv_.stmt, 1, key);
      BindBlob(upsert_kv_.stmt, 2, kv->value);
      sqlite3_bind_int64(upsert_kv_.stmt, 3, kv->create_revision);
      sqlite3_bind_int64(upsert_kv_.stmt, 4, kv->mod_revision);
      sqlite3_bind_int64(upsert_kv_.stmt, 5, kv->version);
      sqlite3_bind_int64(upsert_kv_.stmt, 6, kv->lease);
      BERTH_RETURN_IF_ERROR(Run(upsert_kv_, "write kv"));
    } else {
      BindBlob(delete_kv_.stmt, 1, key);
      BERTH_RETURN_IF_ERROR(Run(delete_kv_, "delete kv"));
    }
  }
  for (size_t i = 0; i < commit.events.size(); ++i) {
    const Event& event = commit.events[i];
    sqlite3_bind_int64(insert_event_.stmt, 1, event.kv.mod_revision);
    sqlite3_bind_int64(insert_event_.stmt, 2, static_cast<int64_t>(i));
    sqlite3_bind_int(insert_event_.stmt, 3,
                     event.type == Event::Type::kDelete ? kDeleteType : kPutType);
    BindBlob(insert_event_.stmt, 4, event.kv.key);
    BindBlob(insert_event_.stmt, 5, event.kv.value);
    sqlite3_bind_int64(insert_event_.stmt, 6, event.kv.create_revision);
    sqlite3_bind_int64(insert_event_.stmt, 7, event.kv.version);
    sqlite3_bind_int64(insert_event_.stmt, 8, event.kv.lease);
    BERTH_RETURN_IF_ERROR(Run(insert_event_, "write changelog"));
  }
  for (const LeaseRecord& lease : commit.granted) {
    sqlite3_bind_int64(insert_lease_.stmt, 1, lease.id);
    sqlite3_bind_int64(insert_lease_.stmt, 2, absl::ToInt64Milliseconds(lease.ttl));
    BERTH_RETURN_IF_ERROR(Run(insert_lease_, "write lease"));
  }
  for (LeaseId id : commit.revoked) {
    sqlite3_bind_int64(delete_lease_.stmt, 1, id);
    BERTH_RETURN_IF_ERROR(Run(delete_lease_, "delete lease"));
  }
  if (commit.compaction_moved) {
    sqlite3_bind_int64(compact_.stmt, 1, commit.compacted_revision);
    BERTH_RETURN_IF_ERROR(Run(compact_, "compact changelog"));
    BERTH_RETURN_IF_ERROR(SetMeta("compacted_revision", commit.compacted_revision));
  }
  if (!commit.events.empty()) BERTH_RETURN_IF_ERROR(SetMeta("revision", commit.revision));
  if (!commit.granted.empty())
    BERTH_RETURN_IF_ERROR(SetMeta("next_lease_id", commit.next_lease_id));
  return absl::OkStatus();
}

absl::Status SqliteStore::Persist(const std::vector<const Commit*>& commits) {
  absl::MutexLock lock(&db_mu_);
  BERTH_RETURN_IF_ERROR(Run(begin_, "begin"));
  // One SQLite transaction, and so one sync, for the whole group.
  absl::Status status;
  for (const Commit* commit : commits) {
    status = WriteCommit(*commit);
    if (!status.ok()) break;
  }
  if (status.ok()) status = Run(commit_, "commit");
  if (!status.ok()) {
    // The in-memory state is applied only after a successful commit, so rolling back here keeps
    // file and memory in step.
    core::OkOrReport("store", "sqlite rollback after a failed commit", Run(rollback_, "rollback"));
  }
  return status;
}

}  // namespace berth::state
