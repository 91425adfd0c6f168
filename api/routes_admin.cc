#include "api/routes_admin.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/time/clock.h"
#include "api/route_util.h"
#include "core/guard.h"
#include "core/log.h"
#include "core/strings.h"

namespace berth::api {

using core::Cat;

namespace {

// A snapshot is read from its staging file in pieces this big, and reading pauses while more
// than kMaxPending bytes wait for a slow client.
constexpr size_t kPiece = 1 << 20;
constexpr size_t kMaxPending = 8 << 20;

// Saves a snapshot into the scratch directory and streams the file, then removes it. Runs on a
// thread of its own: a save takes as long as the store is big.
void SendSnapshot(state::Snapshotter* snapshots, const std::string& scratch, Responder responder) {
  const std::string path = state::TempPathBeside(scratch + "/snapshot-download");
  absl::StatusOr<state::SnapshotInfo> info = snapshots->SaveSnapshot(path);
  if (!info.ok()) {
    responder.Send(HttpResponse::FromStatus(info.status()));
    return;
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    responder.Send(HttpResponse::FromStatus(
        absl::InternalError(Cat("snapshot: open ", path, ": ", strerror(errno)))));
    std::remove(path.c_str());
    return;
  }
  // Once open, the name is no longer needed: nothing is left behind if this thread dies.
  std::remove(path.c_str());
  HttpHeaders headers;
  headers.Set("Content-Type", "application/octet-stream");
  headers.Set("X-Berth-Snapshot-Format", std::string(state::SnapshotFormatName(info->format)));
  headers.Set("X-Berth-Snapshot-Bytes", std::to_string(info->bytes));
  headers.Set("X-Berth-Snapshot-Revision", std::to_string(info->revision));
  headers.Set("X-Berth-Snapshot-Keys", std::to_string(info->keys));
  ResponseStream out = responder.StartStream(200, headers);
  std::string piece(kPiece, '\0');
  for (;;) {
    ssize_t n = read(fd, piece.data(), piece.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      // The client sees a body shorter than X-Berth-Snapshot-Bytes and refuses it.
      core::ReportError("api.admin", "snapshot: read the staged file",
                        absl::InternalError(strerror(errno)));
      break;
    }
    if (n == 0) break;
    while (out.PendingBytes() > kMaxPending && !out.Cancelled()) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    if (!out.Write(std::string_view(piece.data(), static_cast<size_t>(n)))) break;
  }
  close(fd);
  out.Finish();
}

}  // namespace

void AddAdminRoutes(Router& router, state::Snapshotter* snapshots, std::string scratch_dir) {
  router.HandleAsync(
      "GET", "/v1/admin/snapshot",
      [snapshots, scratch = std::move(scratch_dir)](const HttpRequest& req, Responder responder) {
        auto role = req.attributes.find("role");
        if (role == req.attributes.end() || role->second != "admin") {
          responder.Send(HttpResponse::Error(403, "permission_denied",
                                             "a snapshot of the control plane needs the admin "
                                             "token"));
          return;
        }
        if (snapshots == nullptr) {
          responder.Send(HttpResponse::Error(501, "unimplemented",
                                             "this server's store cannot take snapshots"));
          return;
        }
        std::thread([snapshots, scratch, responder] {
          absl::Status guarded = core::RunGuarded(
              "snapshot download", [&] { SendSnapshot(snapshots, scratch, responder); });
          if (!guarded.ok()) responder.Send(HttpResponse::FromStatus(guarded));
        }).detach();
      });
}

}  // namespace berth::api
