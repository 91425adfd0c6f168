// The socket HealthProber: one non-blocking connect, then for HTTP one GET, each step bounded by
// what is left of the check's timeout.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "control/service_controller.h"
#include "core/strings.h"

namespace berth::control {
namespace {

using core::Cat;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Milliseconds left until `deadline`, at least 0.
int MillisLeft(absl::Time deadline) {
  return static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
}

// Waits for `events` on fd until the deadline; DeadlineExceeded naming `what` when it passes.
absl::Status WaitFor(int fd, short events, absl::Time deadline, std::string_view what) {
  while (true) {
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, MillisLeft(deadline));
    if (n > 0) return absl::OkStatus();
    if (n == 0) return absl::DeadlineExceededError(Cat(what, ": timed out"));
    if (errno != EINTR) return absl::UnavailableError(Cat(what, ": ", strerror(errno)));
  }
}

class SocketProber final : public HealthProber {
 public:
  absl::Status Probe(const std::string& address, int port,
                     const core::HealthCheck& check) override {
    // The deadline is the real clock's: a probe waits on a real socket.
    const absl::Time deadline = absl::Now() + check.timeout;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = Cat(port);
    if (int rc = getaddrinfo(address.c_str(), service.c_str(), &hints, &found); rc != 0) {
      return absl::UnavailableError(Cat("resolve ", address, ": ", gai_strerror(rc)));
    }
    Fd fd(socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
      freeaddrinfo(found);
      return absl::UnavailableError(Cat("socket: ", strerror(errno)));
    }
    int rc = connect(fd.get(), found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    const std::string where = Cat(address, ":", port);
    if (rc != 0 && errno != EINPROGRESS) {
      return absl::UnavailableError(Cat("connect ", where, ": ", strerror(errno)));
    }
    if (rc != 0) {
      absl::Status waited = WaitFor(fd.get(), POLLOUT, deadline, Cat("connect ", where));
      if (!waited.ok()) return waited;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return absl::UnavailableError(Cat("connect ", where, ": ", strerror(err)));
    }
    if (check.type != core::HealthCheck::Type::kHttp) return absl::OkStatus();

    const std::string request = Cat("GET ", check.http_path, " HTTP/1.1\r\nHost: ", where,
                                    "\r\nUser-Agent: berth-health\r\nConnection: close\r\n\r\n");
    size_t sent = 0;
    while (sent < request.size()) {
      absl::Status waited = WaitFor(fd.get(), POLLOUT, deadline, Cat("GET ", where));
      if (!waited.ok()) return waited;
      ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n < 0) return absl::UnavailableError(Cat("GET ", where, ": ", strerror(errno)));
      sent += static_cast<size_t>(n);
    }
    // Only the status line matters: "HTTP/1.x NNN ...".
    std::string head;
    while (head.find("\r\n") == std::string::npos && head.size() < 1024) {
      absl::Status waited = WaitFor(fd.get(), POLLIN, deadline, Cat("GET ", where));
      if (!waited.ok()) return waited;
      char buf[512];
      ssize_t n = recv(fd.get(), buf, sizeof buf, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n < 0) return absl::UnavailableError(Cat("GET ", where, ": ", strerror(errno)));
      if (n == 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    if (head.size() < 12 || head.compare(0, 5, "HTTP/") != 0) {
      return absl::UnavailableError(Cat("GET ", where, check.http_path, ": no HTTP answer"));
    }
    const size_t space = head.find(' ');
    const int code = space == std::string::npos ? 0 : std::atoi(head.c_str() + space + 1);
    if (code < 200 || code >= 400) {
      return absl::UnavailableError(Cat("GET ", where, check.http_path, ": status ", code));
    }
    return absl::OkStatus();
  }
};

}  // namespace

std::unique_ptr<HealthProber> NewSocketProber() { return std::make_unique<SocketProber>(); }

}  // namespace berth::control
