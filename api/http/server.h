// An asynchronous HTTP/1.1 server on Boost.Beast: a fixed pool of I/O threads serves any number
// of keep-alive connections, and handlers answer through a Responder that may be kept and used
// later from any thread, so thousands of parked long-poll requests cost no thread each.
//
// Ownership: the server owns its io_context, threads, acceptor and connections. A Responder is a
// shared handle to one in-flight exchange; it stays safe to use (as a no-op) after the client
// left or the server stopped. Thread-safety: Start/Stop from one owning thread; RunAfter, Post
// and the counters from any thread; Responder and ResponseStream from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/http/message.h"

namespace berth::api {

class MetricsRegistry;

namespace http_internal {
class Exchange;
class Connection;
class ServerCore;
struct TimerState;
}  // namespace http_internal

class ResponseStream;

// The one-shot answer to one request. Copies share the exchange; the first Send (or
// StartStream) wins and later calls return false. If the client disconnects (or the server
// stops) before the response is complete, the exchange is cancelled: OnCancel callbacks run once,
// Cancelled() turns true and Send becomes a harmless no-op. Dropping every copy without
// answering sends a 500, so a request is never left hanging.
class Responder {
 public:
  // A Responder tied to no connection: the response goes to `sink` once complete (a streamed
  // one when it finishes; a dropped one as a 500). For driving handlers without sockets, as
  // tests and fuzzers do. `sink` runs on the thread that completes the response.
  static Responder ToSink(std::function<void(HttpResponse)> sink);

  // Queues `response` for writing. False if already answered or cancelled.
  bool Send(HttpResponse response) const;
  // Sends the JSON error body `{"error": {"code", "message"}}`.
  bool SendError(int status, std::string_view code, std::string_view message) const {
    return Send(HttpResponse::Error(status, code, message));
  }
  // Starts a chunked response (header now, body chunks later through the stream). `headers`
  // should carry Content-Type. Returns an inert stream if already answered or cancelled.
  ResponseStream StartStream(int status, HttpHeaders headers) const;

  // True once the client went away or the server stopped before the response completed.
  bool Cancelled() const;
  // True once a response was sent or streaming started (or the exchange was cancelled).
  bool Answered() const;
  // Runs `fn` once when the exchange is cancelled; at once (on the calling thread) if it already
  // was. Otherwise it runs on an I/O thread; it must not block.
  void OnCancel(std::function<void()> fn) const;
  // Runs `fn(status)` once when the exchange ends: the status written, or 499 when the client
  // went away first. Used by middleware and metrics. Runs on an I/O thread. Register it before
  // answering: one registered after the end never runs.
  void OnComplete(std::function<void(int status)> fn) const;

 private:
  friend class http_internal::Connection;
  friend class ResponseStream;
  explicit Responder(std::shared_ptr<http_internal::Exchange> exchange);
  std::shared_ptr<http_internal::Exchange> exchange_;
};

// The body of a chunked response started by Responder::StartStream. Copies share the stream.
// Writes are sent in the order they are made from any one thread; Finish ends the response (and
// happens on its own once every copy of the stream and of its Responder is dropped). Writes are
// queued without bound: a producer that may outrun a slow client watches PendingBytes.
class ResponseStream {
 public:
  ResponseStream() = default;
  // Queues one chunk. False once finished or cancelled (the client went away).
  bool Write(std::string_view chunk) const;
  // Writes the terminating chunk; later Writes return false.
  void Finish() const;
  bool Cancelled() const;
  void OnCancel(std::function<void()> fn) const;
  // Bytes queued but not yet written to the socket, to let producers slow down.
  size_t PendingBytes() const;

 private:
  friend class Responder;
  struct Handle;
  explicit ResponseStream(std::shared_ptr<Handle> handle) : handle_(std::move(handle)) {}
  std::shared_ptr<Handle> handle_;
};

// Called on an I/O thread for each request, in order per connection (the next pipelined request
// of a connection is dispatched only once this one is answered). It must not block for long:
// slow work should happen elsewhere and answer through the Responder.
using HttpHandler = std::function<void(HttpRequest& request, Responder responder)>;

// A pending RunAfter callback. Copies share it; an empty handle does nothing.
class TimerHandle {
 public:
  TimerHandle() = default;
  // Prevents the callback from running. True if this call stopped it; false if it already ran,
  // is running, or was cancelled before.
  bool Cancel() const;

 private:
  friend class HttpServer;
  explicit TimerHandle(std::shared_ptr<http_internal::TimerState> state)
      : state_(std::move(state)) {}
  std::shared_ptr<http_internal::TimerState> state_;
};

class HttpServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 0;  // 0 binds an ephemeral port; Start returns it
    int threads = 2;
    size_t max_body_bytes = 4 << 20;     // larger bodies get 413 and the connection closes
    size_t max_header_bytes = 64 << 10;  // request line plus header fields; larger get 431
    // A connection with no request in flight is closed after this long without a full request.
    absl::Duration idle_timeout = absl::Seconds(120);
    // Requests read ahead of the one being answered on a connection, before reading pauses.
    size_t max_pipelined = 16;
    // When set (not owned; must outlive the server), every exchange is recorded as
    // berth_http_requests_total{method,route,code} and
    // berth_http_request_duration_seconds{route}, plus berth_http_open_connections.
    MetricsRegistry* metrics = nullptr;
    // Raise RLIMIT_NOFILE to its hard limit at Start, so thousands of sockets fit.
    bool raise_fd_limit = true;
  };

  HttpServer(Options options, HttpHandler handler);
  ~HttpServer();  // Stops.
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds, listens and starts the I/O threads. Returns the bound port.
  absl::StatusOr<uint16_t> Start();
  // Closes the listener and every connection (cancelling parked exchanges), cancels timers and
  // joins the I/O threads. Idempotent.
  void Stop();

  uint16_t port() const { return port_; }

  // Runs `fn` on an I/O thread after `delay`, unless cancelled first. Never runs after Stop.
  TimerHandle RunAfter(absl::Duration delay, std::function<void()> fn);
  // Runs `fn` on an I/O thread soon.
  void Post(std::function<void()> fn);

  // Connections currently open, and exchanges dispatched but not yet complete.
  int64_t open_connections() const;
  int64_t in_flight() const;

 private:
  Options options_;
  std::shared_ptr<http_internal::ServerCore> core_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace berth::api
