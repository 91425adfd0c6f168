// ApiServer: Berth's REST API under /v1, served by the asynchronous HTTP transport. It parses
// and validates requests, checks bearer tokens, maps errors to HTTP codes, and delegates every
// decision to the ControlPlane. Lists and gets accept blocking queries (`?index=N&wait=30s`):
// the answer is parked, without a thread, until something under the resource changes past
// revision N or the wait ends.
//
// Thread-safety: the server runs on its own I/O threads; Start/Stop from one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "api/http/metrics.h"
#include "api/http/router.h"
#include "api/http/server.h"
#include "control/control_plane.h"

namespace berth::api {

// Where workload logs live, for the hosts whose files this process can read (dev mode: the
// local agent). Returns NotFound when it has no log for that workload.
class LogSource {
 public:
  virtual ~LogSource() = default;
  virtual absl::StatusOr<std::string> LogPath(std::string_view workload,
                                              std::string_view stream) = 0;
};

struct ApiServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int threads = 2;
  std::string admin_token;                // full access
  std::vector<std::string> agent_tokens;  // join tokens: host registration and agent calls
  size_t max_body_bytes = 1 << 20;
  absl::Duration max_wait = absl::Minutes(5);  // cap on ?wait=
};

class ApiServer {
 public:
  ApiServer(ApiServerOptions options, control::ControlPlane* control, LogSource* logs);
  ~ApiServer();
  absl::StatusOr<uint16_t> Start();
  void Stop();
  uint16_t port() const;
  MetricsRegistry& metrics() { return metrics_; }

 private:
  struct Role;
  void Routes();
  // Answers now, or parks the request until `prefix` changes past ?index= or ?wait= ends.
  void Blocking(const HttpRequest& request, Responder responder, std::string prefix,
                std::function<HttpResponse()> answer);
  HttpResponse Metrics();

  ApiServerOptions options_;
  control::ControlPlane* control_;
  LogSource* logs_;
  MetricsRegistry metrics_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
};

}  // namespace berth::api
