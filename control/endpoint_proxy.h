// EndpointProxy: a service's endpoint, one TCP listener on a stable host port that forwards each
// client connection to one of the service's ready replicas, the one with the fewest open
// connections. A connection whose replica fails before answering (refused, reset, or closed
// without sending a byte) is sent again, with the bytes the client has sent so far, to another
// replica; so a replica that dies loses no request it had not begun to answer. While no replica
// is ready a new connection is held (up to wait_for_backend) for one, and on_wait is called so
// that a service scaled to zero gets a replica started (the activator); an HTTP request still
// held at the end is answered 503 with a JSON error body, any other connection is closed.
//
// It measures the load for the autoscaler: connections accepted, open (held ones included) and
// held now, and the integral of open connections over time, from which the average concurrency
// of any interval follows.
//
// Replicas leave by SetBackends without them: no new connection goes to them, and Active() says
// how many of their connections are still open, so the caller stops a replica once it drained.
//
// Ownership: owns its listener and connection threads; Stop() (or the destructor) ends every
// connection and joins the threads.
// Thread-safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace berth::control {

struct EndpointBackend {
  std::string address;  // numeric IPv4 or IPv6
  int port = 0;
  std::string Key() const;
  bool operator==(const EndpointBackend&) const = default;
};

// What an endpoint measured since it opened.
struct EndpointStats {
  int64_t accepted = 0;     // client connections accepted
  int open = 0;             // client connections open now
  int waiting = 0;          // of them, held for lack of a ready replica
  double busy_seconds = 0;  // the integral over time of `open`
  bool operator==(const EndpointStats&) const = default;
};

struct EndpointProxyOptions {
  std::string name;  // the service's, for error answers; empty: "this endpoint"
  std::string listen_address = "127.0.0.1";
  int port = 0;  // 0: any free port (tests)
  absl::Duration connect_timeout = absl::Seconds(2);
  // How long a client connection waits for a ready replica (none ready, or all refusing).
  absl::Duration wait_for_backend = absl::Seconds(30);
  int max_attempts = 4;                // replicas tried per connection before giving up
  size_t max_replay_bytes = 64 << 10;  // a request longer than this is not sent again
  int max_connections = 1024;          // open client connections; more are closed at once
  // Called (on the connection's thread, without locks held) when a connection starts waiting
  // for a ready replica.
  std::function<void()> on_wait;
};

class EndpointProxy {
 public:
  // Binds and listens. Errors: Unavailable naming the address (in use, not permitted).
  static absl::StatusOr<std::unique_ptr<EndpointProxy>> Start(EndpointProxyOptions options);
  ~EndpointProxy();
  EndpointProxy(const EndpointProxy&) = delete;
  EndpointProxy& operator=(const EndpointProxy&) = delete;

  uint16_t port() const { return port_; }
  // The replicas new connections may go to.
  void SetBackends(std::vector<EndpointBackend> backends);
  // Connections open to `backend` now (0 for one never used).
  int Active(const EndpointBackend& backend);
  EndpointStats Stats();
  // How long connections that start from now on wait for a ready replica.
  void SetWaitForBackend(absl::Duration wait);
  // Connections accepted since start, and those that ended without any replica taking them.
  int64_t accepted() const { return accepted_.load(); }
  int64_t failed() const { return failed_.load(); }
  void Stop();

 private:
  EndpointProxy(EndpointProxyOptions options, int listen_fd, int wake_fd, uint16_t port);
  void AcceptLoop();
  void Serve(int client_fd);
  // Picks the ready backend with the fewest open connections that is not in `tried`; counts the
  // connection on it. False when there is none.
  bool Pick(const std::set<std::string>& tried, EndpointBackend* out);
  void Release(const EndpointBackend& backend);
  // Counts a client connection opening (+1) or closing (-1), and one starting or ending a wait.
  void CountOpen(int delta);
  void CountWaiting(int delta);
  // Answers a held HTTP request 503 with why; closes quietly what does not look like HTTP.
  void Unavailable(int client_fd, absl::Duration waited);

  const EndpointProxyOptions options_;
  const int listen_fd_;
  const int wake_fd_;  // an eventfd that wakes the accept loop and the connections to stop
  const uint16_t port_;
  std::atomic<int64_t> accepted_{0};
  std::atomic<int64_t> failed_{0};

  absl::Mutex mu_;
  std::vector<EndpointBackend> backends_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> active_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;  // where the next pick starts looking
  absl::Duration wait_for_backend_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
  double busy_seconds_ ABSL_GUARDED_BY(mu_) = 0;  // up to open_changed_
  absl::Time open_changed_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread accept_thread_;
  // One per client connection; the accept loop's alone until it ends, then Stop's.
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::list<Connection> connections_;
};

// The endpoints of many services, each known by its service's name. The service controller
// opens one per service that asks for it, keeps its backends to the ready replicas, and asks how
// many connections a leaving replica still has before stopping it. An interface so that the
// controller's tests need no sockets.
// Thread-safety: implementations are thread-safe.
class Endpoints {
 public:
  virtual ~Endpoints() = default;
  // Listens on `port` for `service`, holding a connection up to `wait` for a ready replica.
  // Opening what is open on that port only sets `wait`; open on another port, the old listener
  // is closed first. Errors: Unavailable naming the address (in use, not permitted).
  virtual absl::Status Open(const std::string& service, int port, absl::Duration wait) = 0;
  virtual void Close(const std::string& service) = 0;
  // The services with an open endpoint.
  virtual std::vector<std::string> List() = 0;
  // Where `service`'s endpoint listens ("127.0.0.1:18080"); empty when it is not open.
  virtual std::string Address(const std::string& service) = 0;
  virtual void SetBackends(const std::string& service, std::vector<EndpointBackend> backends) = 0;
  // Connections open through `service`'s endpoint to `backend`.
  virtual int Active(const std::string& service, const EndpointBackend& backend) = 0;
  // What `service`'s endpoint measured since it opened (zeros when it is not open).
  virtual EndpointStats Stats(const std::string& service) = 0;
  // Called with the service's name when a connection starts waiting for a ready replica; null
  // stops the calls. Once this returns, the previous hook is no longer running or called.
  virtual void SetDemandHook(std::function<void(const std::string& service)> hook) = 0;
};

// Endpoints as EndpointProxy listeners on `listen_address`.
std::unique_ptr<Endpoints> NewProxyEndpoints(std::string listen_address);

}  // namespace berth::control
