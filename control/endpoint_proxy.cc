#include "control/endpoint_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/guard.h"
#include "core/json.h"
#include "core/log.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::control {
namespace {

using core::Cat;
using core::Json;

// A socket address for a numeric host and port.
bool Resolve(const std::string& host, int port, sockaddr_storage* out, socklen_t* len) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = Cat(port);
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found) != 0) {
    return false;
  }
  std::memcpy(out, found->ai_addr, found->ai_addrlen);
  *len = found->ai_addrlen;
  freeaddrinfo(found);
  return true;
}

void SetTimeouts(int fd) {
  timeval tv{.tv_sec = 30, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A connected blocking socket to `b`, or -1.
int ConnectTo(const EndpointBackend& b, absl::Duration timeout) {
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (!Resolve(b.address, b.port, &addr, &len)) return -1;
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    if (errno != EINPROGRESS) {
      close(fd);
      return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    int err = 0;
    socklen_t elen = sizeof err;
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0) {
      close(fd);
      return -1;
    }
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  SetTimeouts(fd);
  return fd;
}

bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

std::string EndpointBackend::Key() const { return Cat(address, ":", port); }

absl::StatusOr<std::unique_ptr<EndpointProxy>> EndpointProxy::Start(EndpointProxyOptions options) {
  const std::string where = Cat(options.listen_address, ":", options.port);
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (!Resolve(options.listen_address, options.port, &addr, &len)) {
    return absl::InvalidArgumentError(Cat("endpoint ", where, ": not a numeric address"));
  }
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(Cat("endpoint ", where, ": ", strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(fd, 512) != 0) {
    std::string why = strerror(errno);
    close(fd);
    return absl::UnavailableError(Cat("endpoint ", where, ": cannot listen: ", why));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  const uint16_t port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    close(fd);
    return absl::UnavailableError(Cat("endpoint ", where, ": eventfd: ", strerror(errno)));
  }
  std::unique_ptr<EndpointProxy> proxy(new EndpointProxy(std::move(options), fd, wake, port));
  proxy->accept_thread_ = std::thread([p = proxy.get()] {
    core::OkOrReport("endpoint", "accept loop",
                     core::RunGuarded("endpoint accept loop", [p] { p->AcceptLoop(); }));
  });
  return proxy;
}

EndpointProxy::EndpointProxy(EndpointProxyOptions options, int listen_fd, int wake_fd,
                             uint16_t port)
    : options_(std::move(options)), listen_fd_(listen_fd), wake_fd_(wake_fd), port_(port) {
  absl::MutexLock lock(&mu_);
  wait_for_backend_ = options_.wait_for_backend;
  open_changed_ = absl::Now();
}

EndpointProxy::~EndpointProxy() {
  Stop();
  close(listen_fd_);
  close(wake_fd_);
}

void EndpointProxy::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  uint64_t one = 1;
  // The eventfd stays readable once written: every poller sees it.
  if (write(wake_fd_, &one, sizeof one) != sizeof one) {
    core::LogError("endpoint :%d: cannot wake its threads: %s", port_, strerror(errno));
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  // The accept loop is over: its connections are this thread's to join.
  for (Connection& c : connections_) c.thread.join();
  connections_.clear();
}

void EndpointProxy::SetBackends(std::vector<EndpointBackend> backends) {
  absl::MutexLock lock(&mu_);
  backends_ = std::move(backends);
}

int EndpointProxy::Active(const EndpointBackend& backend) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(backend.Key());
  return it == active_.end() ? 0 : it->second;
}

EndpointStats EndpointProxy::Stats() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  return {.accepted = accepted_.load(),
          .open = open_,
          .waiting = waiting_,
          .busy_seconds = busy_seconds_ + open_ * absl::ToDoubleSeconds(now - open_changed_)};
}

void EndpointProxy::SetWaitForBackend(absl::Duration wait) {
  absl::MutexLock lock(&mu_);
  wait_for_backend_ = wait;
}

void EndpointProxy::CountOpen(int delta) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  busy_seconds_ += open_ * absl::ToDoubleSeconds(now - open_changed_);
  open_changed_ = now;
  open_ += delta;
}

void EndpointProxy::CountWaiting(int delta) {
  absl::MutexLock lock(&mu_);
  waiting_ += delta;
}

void EndpointProxy::Unavailable(int client, absl::Duration waited) {
  // The request line, if the client sent one: only HTTP gets an HTTP answer.
  char head[16] = {};
  const ssize_t n = recv(client, head, sizeof head - 1, MSG_PEEK | MSG_DONTWAIT);
  if (n <= 0) return;
  const std::string_view line(head, static_cast<size_t>(n));
  bool http = false;
  for (std::string_view method :
       {"GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "PATCH ", "OPTIONS "}) {
    http |= line.substr(0, method.size()) == method;
  }
  if (!http) return;
  const std::string who =
      options_.name.empty() ? std::string("this endpoint") : Cat("service \"", options_.name, "\"");
  const std::string message =
      Cat(who, ": no replica became ready within ", absl::FormatDuration(waited),
          options_.name.empty() ? std::string()
                                : Cat("; `berth service get ", options_.name, "` says why"));
  const std::string body =
      Json{{"error", {{"code", "unavailable"}, {"message", message}}}}.dump() + "\n";
  std::string reply =
      Cat("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
          "Content-Length: ",
          body.size(), "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n");
  if (line.substr(0, 5) != "HEAD ") reply += body;
  if (!SendAll(client, reply.data(), reply.size())) {
    core::LogDebug("endpoint :%d: the client left before its 503", port_);
  }
}

bool EndpointProxy::Pick(const std::set<std::string>& tried, EndpointBackend* out) {
  absl::MutexLock lock(&mu_);
  const EndpointBackend* best = nullptr;
  int best_active = 0;
  // Ties go round the set, starting one further each time.
  const size_t count = backends_.size();
  const size_t start = count == 0 ? 0 : next_++ % count;
  for (size_t k = 0; k < count; ++k) {
    const EndpointBackend& b = backends_[(start + k) % count];
    const std::string key = b.Key();
    if (tried.contains(key)) continue;
    auto it = active_.find(key);
    const int n = it == active_.end() ? 0 : it->second;
    if (best == nullptr || n < best_active) {
      best = &b;
      best_active = n;
    }
  }
  if (best == nullptr) return false;
  *out = *best;
  active_[best->Key()]++;
  return true;
}

void EndpointProxy::Release(const EndpointBackend& backend) {
  absl::MutexLock lock(&mu_);
  auto it = active_.find(backend.Key());
  if (it == active_.end()) return;
  if (--it->second <= 0) active_.erase(it);
}

void EndpointProxy::AcceptLoop() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++accepted_;
    // Connections that ended are joined here, so the list holds only live ones.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    if (static_cast<int>(connections_.size()) >= options_.max_connections) {
      close(client);
      ++failed_;
      continue;
    }
    SetTimeouts(client);
    auto done = std::make_shared<std::atomic<bool>>(false);
    CountOpen(+1);
    connections_.push_back({std::thread([this, client, done] {
                              core::OkOrReport(
                                  "endpoint", "connection",
                                  core::RunGuarded("endpoint connection", [&] { Serve(client); }));
                              close(client);
                              CountOpen(-1);
                              done->store(true);
                            }),
                            done});
  }
}

void EndpointProxy::Serve(int client) {
  const absl::Time arrived = absl::Now();
  absl::Time give_up;
  {
    absl::MutexLock lock(&mu_);
    give_up = arrived + wait_for_backend_;
  }
  bool waiting = false;  // counted in waiting_
  bool waited_out = false;
  std::string replay;  // what the client sent while no reply came: sent again on a retry
  bool replayable = true;
  bool answered = false;
  std::set<std::string> tried;
  int attempts = 0;
  int backend = -1;
  EndpointBackend current;
  auto drop_backend = [&] {
    if (backend >= 0) close(backend);
    backend = -1;
    Release(current);
  };
  // Connects to the next replica and sends it what the client sent so far.
  auto connect_next = [&]() -> bool {
    while (attempts < options_.max_attempts) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return false;
      }
      EndpointBackend b;
      if (!Pick(tried, &b)) {
        if (absl::Now() >= give_up) {
          waited_out = true;
          return false;
        }
        if (!waiting) {
          waiting = true;
          CountWaiting(+1);
          if (options_.on_wait) options_.on_wait();
        }
        // None ready (or every one refused): wait a little, waking at once on Stop.
        tried.clear();
        pollfd p{wake_fd_, POLLIN, 0};
        poll(&p, 1, 50);
        continue;
      }
      ++attempts;
      tried.insert(b.Key());
      int fd = ConnectTo(b, options_.connect_timeout);
      if (fd < 0) {
        Release(b);
        continue;
      }
      if (!replay.empty() && !SendAll(fd, replay.data(), replay.size())) {
        close(fd);
        Release(b);
        continue;
      }
      backend = fd;
      current = b;
      return true;
    }
    return false;
  };
  const bool connected = connect_next();
  if (waiting) CountWaiting(-1);
  waiting = false;
  if (!connected) {
    ++failed_;
    if (waited_out) Unavailable(client, absl::Now() - arrived);
    return;
  }
  bool client_eof = false, backend_eof = false;
  char buf[16384];
  while (!(client_eof && backend_eof)) {
    pollfd fds[3] = {{client, static_cast<short>(client_eof ? 0 : POLLIN), 0},
                     {backend, static_cast<short>(backend_eof ? 0 : POLLIN), 0},
                     {wake_fd_, POLLIN, 0}};
    int n = poll(fds, 3, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[2].revents & POLLIN)) break;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = recv(client, buf, sizeof buf, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) break;  // the client reset: nothing more to do
      if (got == 0) {
        client_eof = true;
        shutdown(backend, SHUT_WR);
      } else {
        if (!answered && replayable) {
          if (replay.size() + static_cast<size_t>(got) > options_.max_replay_bytes) {
            replayable = false;
            replay.clear();
          } else {
            replay.append(buf, static_cast<size_t>(got));
          }
        }
        // A failed send shows as the backend's error or end on the next poll.
        if (!SendAll(backend, buf, static_cast<size_t>(got))) fds[1].revents |= POLLERR;
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t got = recv(backend, buf, sizeof buf, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got > 0) {
        answered = true;
        replay.clear();
        if (!SendAll(client, buf, static_cast<size_t>(got))) break;
        continue;
      }
      // The replica ended the connection. Before any answer it is another replica's turn.
      if (!answered && replayable && !backend_eof) {
        drop_backend();
        const bool again = connect_next();
        if (waiting) CountWaiting(-1);
        waiting = false;
        if (!again) {
          ++failed_;
          return;
        }
        if (client_eof) shutdown(backend, SHUT_WR);
        continue;
      }
      if (got < 0) break;
      backend_eof = true;
      shutdown(client, SHUT_WR);
    }
  }
  drop_backend();
}

namespace {

class ProxyEndpoints final : public Endpoints {
 public:
  explicit ProxyEndpoints(std::string listen_address)
      : listen_address_(std::move(listen_address)) {}

  absl::Status Open(const std::string& service, int port, absl::Duration wait) override {
    std::unique_ptr<EndpointProxy> old;
    {
      absl::MutexLock lock(&mu_);
      auto it = proxies_.find(service);
      if (it != proxies_.end()) {
        if (it->second->port() == port) {
          it->second->SetWaitForBackend(wait);
          return absl::OkStatus();
        }
        old = std::move(it->second);
        proxies_.erase(it);
      }
    }
    old.reset();  // its port is free before the new one binds (it may be the same service's)
    BERTH_ASSIGN_OR_RETURN(std::unique_ptr<EndpointProxy> proxy,
                           EndpointProxy::Start({.name = service,
                                                 .listen_address = listen_address_,
                                                 .port = port,
                                                 .wait_for_backend = wait,
                                                 .on_wait = [this, service] { Demand(service); }}));
    absl::MutexLock lock(&mu_);
    proxies_[service] = std::move(proxy);
    return absl::OkStatus();
  }

  void Close(const std::string& service) override {
    std::unique_ptr<EndpointProxy> gone;
    {
      absl::MutexLock lock(&mu_);
      auto it = proxies_.find(service);
      if (it == proxies_.end()) return;
      gone = std::move(it->second);
      proxies_.erase(it);
    }
    // Stopping joins the proxy's connections: outside the lock, so others are not held up.
    gone.reset();
  }

  std::vector<std::string> List() override {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [name, proxy] : proxies_) out.push_back(name);
    return out;
  }

  std::string Address(const std::string& service) override {
    absl::MutexLock lock(&mu_);
    auto it = proxies_.find(service);
    if (it == proxies_.end()) return "";
    return listen_address_.find(':') != std::string::npos
               ? Cat("[", listen_address_, "]:", it->second->port())
               : Cat(listen_address_, ":", it->second->port());
  }

  void SetBackends(const std::string& service, std::vector<EndpointBackend> backends) override {
    absl::MutexLock lock(&mu_);
    auto it = proxies_.find(service);
    if (it != proxies_.end()) it->second->SetBackends(std::move(backends));
  }

  int Active(const std::string& service, const EndpointBackend& backend) override {
    absl::MutexLock lock(&mu_);
    auto it = proxies_.find(service);
    return it == proxies_.end() ? 0 : it->second->Active(backend);
  }

  EndpointStats Stats(const std::string& service) override {
    absl::MutexLock lock(&mu_);
    auto it = proxies_.find(service);
    return it == proxies_.end() ? EndpointStats{} : it->second->Stats();
  }

  void SetDemandHook(std::function<void(const std::string&)> hook) override {
    absl::MutexLock lock(&hook_mu_);
    hook_ = std::move(hook);
  }

 private:
  // The hook runs under hook_mu_, so that SetDemandHook(nullptr) waits for a call in flight.
  void Demand(const std::string& service) {
    absl::MutexLock lock(&hook_mu_);
    if (hook_) hook_(service);
  }

  const std::string listen_address_;
  absl::Mutex hook_mu_;
  std::function<void(const std::string&)> hook_ ABSL_GUARDED_BY(hook_mu_);
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<EndpointProxy>> proxies_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<Endpoints> NewProxyEndpoints(std::string listen_address) {
  return std::make_unique<ProxyEndpoints>(std::move(listen_address));
}

}  // namespace berth::control
