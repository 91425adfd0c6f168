// A synchronous HTTP/1.1 client on Boost.Beast for the CLI, the agent and tests. It keeps one
// connection alive between requests and reconnects when the server dropped it; a streaming GET
// hands body pieces to a callback as they arrive (for `logs -f`, `events -f` and etcd watches),
// and another thread may end it early through a StreamCanceller.
//
// Thread-safety: calls on one client are serialized by an internal mutex; use one client per
// thread for parallel requests. Transport failures come back as Unavailable or DeadlineExceeded;
// HTTP error statuses come back as responses (see StatusFromResponse to turn them into Status).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/http/message.h"

namespace berth::api {

namespace http_internal {
class ClientConnection;
}  // namespace http_internal

// Ends a running (or the next) HttpClient::Stream call from another thread: the call closes its
// connection and returns Cancelled. Cancel() is idempotent and thread-safe; once cancelled, a
// canceller stays cancelled.
class StreamCanceller {
 public:
  void Cancel();
  bool cancelled();

 private:
  friend class HttpClient;
  // Set by Stream while it runs: interrupts the pending read.
  void SetInterrupt(std::function<void()> interrupt);

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> interrupt_ ABSL_GUARDED_BY(mu_);
};

struct HttpClientOptions {
  std::string bearer_token;  // sent as "Authorization: Bearer <token>" when not empty
  absl::Duration timeout = absl::Seconds(60);  // per request: connect, write and read
  // Longest wait to resolve the host and open a connection, within `timeout`; a server that
  // cannot be reached fails this fast.
  absl::Duration connect_timeout = absl::Seconds(10);
  size_t max_body_bytes = 256 << 20;  // longer responses fail with ResourceExhausted
};

// Whether a failed request never left this process: no connection could be made (the name did
// not resolve, or the connect failed), so sending it elsewhere cannot apply it twice.
bool RequestNotSent(const absl::Status& status);

class HttpClient {
 public:
  using Options = HttpClientOptions;

  // `base_url` is "http://HOST:PORT" with an optional path prefix ("http://h:8080/berth").
  // A malformed URL makes every request fail with InvalidArgument.
  explicit HttpClient(std::string base_url, Options options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends one request; `path_with_query` starts with '/' and is sent as is (already encoded).
  // A request on a reused connection that the server had closed is retried once on a new one.
  absl::StatusOr<HttpResponse> Request(std::string_view method, std::string_view path_with_query,
                                       std::string_view body = {},
                                       std::string_view content_type = "application/json",
                                       const HttpHeaders& extra_headers = {});
  absl::StatusOr<HttpResponse> Get(std::string_view path_with_query) {
    return Request("GET", path_with_query);
  }
  absl::StatusOr<HttpResponse> Post(std::string_view path_with_query, std::string_view body) {
    return Request("POST", path_with_query, body);
  }
  absl::StatusOr<HttpResponse> Put(std::string_view path_with_query, std::string_view body) {
    return Request("PUT", path_with_query, body);
  }
  absl::StatusOr<HttpResponse> Delete(std::string_view path_with_query) {
    return Request("DELETE", path_with_query);
  }

  struct StreamOptions {
    // Longest wait for the next piece of body; infinite by default (follow mode idles).
    absl::Duration idle_timeout = absl::InfiniteDuration();
    // The request: a GET by default; a POST with a JSON body for streaming RPCs (etcd's watch).
    std::string method = "GET";
    std::string body;
    // When set, its Cancel() ends the call from another thread. Not owned.
    StreamCanceller* canceller = nullptr;
    // When set, called once with the status line and headers (an empty body) as soon as they
    // are read, before any piece of the body: a relay can answer its own client at once.
    std::function<void(const HttpResponse& head)> on_head;
  };
  // Sends the request (see StreamOptions) and calls `on_chunk` with each piece of the body as it
  // arrives (piece boundaries need not match the server's chunks). `on_chunk` returns false to
  // stop early; the connection is then closed. Returns the status line and headers (an empty
  // body) once the body ended or the callback stopped; a non-2xx response's body is collected
  // into the result instead of being streamed. Cancelled once the canceller fired.
  absl::StatusOr<HttpResponse> Stream(std::string_view path_with_query,
                                      const std::function<bool(std::string_view chunk)>& on_chunk,
                                      const StreamOptions& stream_options);
  absl::StatusOr<HttpResponse> Stream(std::string_view path_with_query,
                                      const std::function<bool(std::string_view chunk)>& on_chunk) {
    return Stream(path_with_query, on_chunk, StreamOptions{});
  }

  // Closes the kept-alive connection, if any.
  void Close();

  // Replaces the bearer token sent with the next requests (empty: none).
  void SetBearerToken(std::string token);

  const std::string& base_url() const { return base_url_; }

 private:
  const std::string base_url_;
  const Options options_;
  absl::Mutex mu_;
  std::string bearer_token_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<http_internal::ClientConnection> conn_ ABSL_GUARDED_BY(mu_);
};

}  // namespace berth::api
