#include "runtime/net/netns_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <future>
#include <random>

#include "core/log.h"
#include "core/strings.h"
#include "runtime/host/run.h"

namespace berth::runtime::net::testing {
namespace {

using core::Cat;

bool EnterNetns(const std::string& netns) {
  int fd = open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  return ok;
}

}  // namespace

TestNamespaces::TestNamespaces(const std::vector<std::string>& suffixes) {
  std::random_device rd;
  std::string tag = Cat(static_cast<int>(rd() % 900000 + 100000));
  for (const auto& s : suffixes) {
    std::string name = Cat("berth-t-", tag, "-", s);
    auto r = host::RunCommand({"ip", "netns", "add", name});
    if (!r.ok() || !r->ok()) ok_ = false;
    names_.emplace_back(s, name);
    RunIn(name, {"ip", "link", "set", "lo", "up"});
  }
}

TestNamespaces::~TestNamespaces() {
  for (const auto& [_, name] : names_) {
    // Processes a test left behind would keep the namespace alive.
    auto pids = host::RunCommand({"ip", "netns", "pids", name});
    if (pids.ok()) {
      std::string out = pids->out;
      size_t pos = 0;
      while (pos < out.size()) {
        size_t nl = out.find('\n', pos);
        std::string pid = out.substr(pos, nl - pos);
        if (!pid.empty()) kill(std::stoi(pid), SIGKILL);
        if (nl == std::string::npos) break;
        pos = nl + 1;
      }
    }
    core::ReportError("net.test", Cat("namespace ", name, ": delete"),
                      host::ResultStatus({"ip", "netns", "del", name},
                                         host::RunCommand({"ip", "netns", "del", name})));
  }
}

const std::string& TestNamespaces::Name(const std::string& suffix) const {
  for (const auto& [s, name] : names_) {
    if (s == suffix) return name;
  }
  static const std::string kNone;
  return kNone;
}

int RunIn(const std::string& netns, const std::vector<std::string>& argv, std::string* out) {
  host::RunOptions opts;
  opts.netns = netns;
  auto r = host::RunCommand(argv, opts);
  if (!r.ok()) return -1;
  if (out != nullptr) *out = r->out + r->err;
  return r->ShellCode();
}

TcpServer::TcpServer(const std::string& netns) {
  std::promise<int> ready;
  auto port_future = ready.get_future();
  thread_ = std::thread([this, netns, ready = std::move(ready)]() mutable {
    if (!EnterNetns(netns)) {
      ready.set_value(-1);
      return;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t len = sizeof addr;
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd, 16) != 0 || getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ready.set_value(-1);
      if (fd >= 0) close(fd);
      return;
    }
    ready.set_value(ntohs(addr.sin_port));
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;  // wakes up to notice stop_
      int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      (void)!write(c, "ok", 2);
      close(c);
    }
    close(fd);
  });
  port_ = port_future.get();
}

TcpServer::~TcpServer() {
  stop_ = true;
  thread_.join();
}

bool TcpReachable(const std::string& netns, const std::string& address, int port,
                  absl::Duration timeout) {
  auto result = std::async(std::launch::async, [&]() -> bool {
    if (!EnterNetns(netns)) return false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, address.c_str(), &addr.sin_addr);
    int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
    bool ok = false;
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 || errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      if (poll(&p, 1, ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
          err == 0) {
        pollfd r{fd, POLLIN, 0};
        char buf[2] = {};
        ok = poll(&r, 1, ms) == 1 && read(fd, buf, 2) == 2 && buf[0] == 'o' && buf[1] == 'k';
      }
    }
    close(fd);
    return ok;
  });
  return result.get();
}

int FreePort(const std::string& netns) {
  auto result = std::async(std::launch::async, [&]() -> int {
    if (!EnterNetns(netns)) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    socklen_t len = sizeof addr;
    int port = -1;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  });
  return result.get();
}

}  // namespace berth::runtime::net::testing
