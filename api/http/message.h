// HTTP request and response values shared by HttpServer, Router and HttpClient, the JSON error
// body every Berth endpoint answers with, and the URL pieces (query strings, percent-encoding).
// Plain values: copyable, no internal synchronization.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace berth::api {

// Set on a 503 answer whose request was applied nowhere (a follower found no leader to send it
// to): the client may send it again, to this server or another.
inline constexpr std::string_view kUnappliedHeader = "X-Berth-Unapplied";

// Header fields in arrival order. Names compare case-insensitively; values are kept as sent.
class HttpHeaders {
 public:
  using Entry = std::pair<std::string, std::string>;

  // Appends a field, keeping any earlier ones with the same name.
  void Add(std::string name, std::string value);
  // Replaces every field named `name` with one holding `value`.
  void Set(std::string name, std::string value);
  void Remove(std::string_view name);
  // The first field named `name`, if any.
  std::optional<std::string> Get(std::string_view name) const;
  bool Has(std::string_view name) const { return Get(name).has_value(); }

  const std::vector<Entry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

 private:
  std::vector<Entry> entries_;
};

// One request as the server hands it to a handler. The server fills the transport fields; the
// Router fills `route` and `params`; before-routing middleware may add `attributes` (for example
// the authenticated principal).
struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string target;  // raw request target, e.g. "/v1/workloads?index=5&wait=30s"
  std::string path;    // target before '?', still percent-encoded (the Router decodes segments)
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  HttpHeaders headers;
  std::string body;
  std::string remote_address;  // peer IP, e.g. "127.0.0.1"
  uint16_t remote_port = 0;
  int version = 11;  // 10 for HTTP/1.0, 11 for HTTP/1.1

  std::string route;                          // matched pattern, e.g. "/v1/workloads/{name}"
  std::map<std::string, std::string> params;  // path parameters, decoded
  std::map<std::string, std::string> attributes;

  // The first query parameter named `name`, decoded.
  std::optional<std::string> Query(std::string_view name) const;
  // The path parameter `name`, or "" when the route has none by that name.
  std::string Param(std::string_view name) const;
  std::optional<std::string> Header(std::string_view name) const { return headers.Get(name); }
};

// A complete response: status, header fields (Content-Type among them) and body. The server
// writes the framing fields (Content-Length, Transfer-Encoding, Connection) itself and ignores
// any the handler sets.
struct HttpResponse {
  int status = 200;
  HttpHeaders headers;
  std::string body;

  static HttpResponse Json(int status, std::string json_body);
  static HttpResponse Text(int status, std::string text_body);
  // `{"error": {"code": "<code>", "message": "<message>"}}` with the given status.
  static HttpResponse Error(int status, std::string_view code, std::string_view message);
  // The JSON error for a non-OK status, with the HTTP status HttpStatusFor(status) gives.
  static HttpResponse FromStatus(const absl::Status& status);

  std::optional<std::string> Header(std::string_view name) const { return headers.Get(name); }
};

// The HTTP status for a canonical error code (InvalidArgument 400, NotFound 404, AlreadyExists
// 409, FailedPrecondition 409, Aborted 409, Unauthenticated 401, PermissionDenied 403,
// ResourceExhausted 429, Unimplemented 501, Unavailable 503, DeadlineExceeded 504, others 500).
int HttpStatusFor(absl::StatusCode code);
// The snake_case error code for a canonical status code, e.g. "not_found".
std::string ErrorCodeName(absl::StatusCode code);
// The error code used in bodies for HTTP statuses that no absl code names: 404 "not_found",
// 405 "method_not_allowed", 413 "payload_too_large", 400 "bad_request" and so on.
std::string ErrorCodeForHttpStatus(int http_status);
// Reads a response back into a Status: OK for 1xx-3xx; otherwise the canonical code named by the
// JSON error body's "code" (or derived from the HTTP status) with its "message".
absl::Status StatusFromResponse(int http_status, std::string_view body);

// Decodes %XX escapes (and '+' as a space when `plus_is_space`). Fails on a malformed escape.
absl::StatusOr<std::string> PercentDecode(std::string_view in, bool plus_is_space = false);
// Escapes everything but unreserved characters (ALPHA / DIGIT / "-._~").
std::string PercentEncode(std::string_view in);
// Splits "a=1&b=x%20y&flag" into decoded pairs ({"flag", ""} for a bare key).
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query);

}  // namespace berth::api
