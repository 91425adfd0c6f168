// Files that must never be seen half-written: the one atomic write of Berth (a temporary file in
// the same directory, written, synced, renamed over the target, then the directory synced), and
// the matching read. Task records, credentials, image indexes and OCI bundles all go this way.
//
// Thread-safety: free functions without shared state. Concurrent writers of one path each
// produce a whole file; the last rename wins.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::runtime::host {

struct WriteFileOptions {
  // Sync the file before the rename and the directory after it, so the new content survives a
  // host crash. Off only for files that are rebuilt on every use (an OCI bundle's config.json),
  // where the syncs add latency and nothing else.
  bool sync = true;
  mode_t mode = 0644;  // applied even when `path` existed with other bits
};

// Replaces `path` with `data`. On any error `path` keeps its old content (or stays absent), the
// temporary file is removed, and the message names the path and the failing step.
[[nodiscard]] absl::Status WriteFileAtomically(const std::string& path, const std::string& data,
                                               const WriteFileOptions& options = {});

// The whole content of `path`. NotFound when it does not exist; Internal for other errors.
[[nodiscard]] absl::StatusOr<std::string> ReadFile(const std::string& path);

namespace internal {

// The async-signal-safe core of WriteFileAtomically, for a forked supervisor that may not
// allocate: writes `len` bytes to the open `fd` (a fresh file at `tmp`), syncs it when `sync`,
// closes it, renames `tmp` to `path` and syncs `dir`. 0, or the errno of the first failing step
// with `*step` naming it; the caller removes `tmp` on failure.
int CommitFile(int fd, const char* tmp, const char* path, const char* dir, const char* data,
               size_t len, bool sync, const char** step);

}  // namespace internal
}  // namespace berth::runtime::host
