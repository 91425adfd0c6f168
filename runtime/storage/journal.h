// The operation journal that makes multi-step storage operations crash safe. An operation builds
// its result in temporary files, then commits by renaming them into place. Before the first step
// it writes a record listing every temporary file and every commit rename; it marks the record
// committed just before the renames and removes it after. Recovery after a crash deletes the
// temporaries of uncommitted records (roll back) and finishes the renames of committed ones
// (roll forward), so no orphan or half-made file survives either way.
//
// Thread-safety: a Journal is immutable after construction; distinct records may be written
// concurrently. One record is owned by one operation.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::runtime::storage {

struct JournalRecord {
  std::string id;         // unique per operation; names the record file
  std::string operation;  // "create", "clone", "backup", "restore": for people reading it
  std::string volume;
  std::vector<std::string> temp_paths;                       // deleted on roll back
  std::vector<std::pair<std::string, std::string>> renames;  // from -> to, at commit
  bool committed = false;
};

class Journal {
 public:
  // `directory` holds one record file per operation in flight; created when missing.
  explicit Journal(std::string directory) : directory_(std::move(directory)) {}

  // Durably writes (or rewrites) the record: temp file, fsync, rename, fsync of the directory.
  absl::Status Write(const JournalRecord& record) const;
  absl::Status Remove(const JournalRecord& record) const;
  absl::StatusOr<std::vector<JournalRecord>> Pending() const;

  // Rolls back or finishes one record and removes it.
  absl::Status Resolve(const JournalRecord& record) const;

  const std::string& directory() const { return directory_; }

 private:
  std::string PathOf(const JournalRecord& record) const;

  std::string directory_;
};

}  // namespace berth::runtime::storage
