// A client for QEMU's machine protocol (QMP) over a unix socket: reads the greeting, negotiates
// capabilities, sends commands tagged with ids and matches each response to its command, and
// delivers the asynchronous events (STOP, RESUME, SHUTDOWN, GUEST_PANICKED, ...) that QEMU
// interleaves with responses.
//
// Ownership: the client owns its socket and one reader thread. Destroying it closes the socket
// (QEMU keeps running) and joins the thread; commands still waiting fail with Unavailable.
// Thread-safety: Execute may be called from any number of threads at once. The event handler
// runs on the reader thread with no client lock held; it must not call Execute (it would wait on
// itself) and must be quick.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace berth::runtime {

struct QmpEvent {
  std::string name;  // "SHUTDOWN"
  nlohmann::json data = nlohmann::json::object();
  absl::Time time = absl::InfinitePast();  // QEMU's timestamp
};

struct QmpOptions {
  absl::Duration handshake_timeout = absl::Seconds(10);
  // Called for every event, in order, on the reader thread.
  std::function<void(const QmpEvent&)> on_event;
  // Called once when the connection ends (QEMU exited or the socket broke).
  std::function<void()> on_close;
};

class QmpClient {
 public:
  // Connects to QEMU's QMP socket and completes the handshake.
  static absl::StatusOr<std::unique_ptr<QmpClient>> Connect(const std::string& socket_path,
                                                            QmpOptions options);
  // Takes a connected stream socket (tests pass one end of a socketpair) and completes the
  // handshake.
  static absl::StatusOr<std::unique_ptr<QmpClient>> Adopt(int fd, QmpOptions options);

  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs `command` with `arguments` (an object, or null for none) and returns its "return"
  // value. A QMP error maps to FailedPrecondition (GenericError and most classes),
  // Unimplemented (CommandNotFound) or NotFound (DeviceNotFound), with QEMU's description;
  // Unavailable once the connection is closed; DeadlineExceeded after `timeout`.
  absl::StatusOr<nlohmann::json> Execute(std::string_view command,
                                         const nlohmann::json& arguments = nullptr,
                                         absl::Duration timeout = absl::Seconds(30));

  // True once the connection has ended.
  bool closed() const;
  // Blocks until the connection ends or `timeout` passes; true if it ended.
  bool WaitClosed(absl::Duration timeout);
  // QEMU's version from the greeting, "7.2.22".
  const std::string& version() const { return version_; }

 private:
  struct Pending {
    bool done = false;
    absl::StatusOr<nlohmann::json> result = absl::UnknownError("pending");
  };

  QmpClient(int fd, QmpOptions options);
  absl::Status Handshake();
  // Reads one line, from the buffer or the socket; used before the reader thread starts.
  absl::StatusOr<std::string> ReadLineBlocking(absl::Time deadline);
  void ReaderLoop();
  void Dispatch(const std::string& line);
  absl::Status WriteLine(const std::string& line);

  const int fd_;
  QmpOptions options_;
  std::string version_;
  std::string buffer_;  // bytes read but not yet split into lines; reader thread only

  absl::Mutex write_mu_;
  mutable absl::Mutex mu_;
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, Pending*> pending_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
};

}  // namespace berth::runtime
