#include "control/endpoint_proxy.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <thread>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::control {
namespace {

// A loopback server answering each connection's first read with `name` and closing it, or (with
// `hang_up`) closing it without a byte, or (with `hold`) keeping it open until released.
class Backend {
 public:
  enum class Mode { kAnswer, kHangUp, kHold };
  explicit Backend(std::string name, Mode mode = Mode::kAnswer)
      : name_(std::move(name)), mode_(mode) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 128), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~Backend() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    for (int c : held_) close(c);
    close(fd_);
  }
  EndpointBackend backend() const { return {"127.0.0.1", port_}; }
  int served() const { return served_.load(); }
  void ReleaseHeld() {
    for (int c : held_) {
      EXPECT_GT(send(c, name_.data(), name_.size(), MSG_NOSIGNAL), 0);
      close(c);
    }
    held_.clear();
  }
  int held() const { return held_count_.load(); }

 private:
  void Loop() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[1024];
      ssize_t n = recv(c, buf, sizeof buf, 0);
      if (mode_ == Mode::kHold) {
        held_.push_back(c);
        ++held_count_;
        continue;
      }
      if (n > 0 && mode_ == Mode::kAnswer) {
        EXPECT_GT(send(c, name_.data(), name_.size(), MSG_NOSIGNAL), 0);
        ++served_;
      }
      close(c);
    }
  }
  std::string name_;
  Mode mode_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  std::atomic<int> held_count_{0};
  std::vector<int> held_;  // touched by the loop, then by the test once the loop is idle
  std::thread thread_;
};

// Sends "ping" to the proxy and returns what comes back until it closes.
std::string Request(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "connect failed";
  }
  EXPECT_EQ(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
  std::string out;
  char buf[256];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 60000) != 1) break;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

std::unique_ptr<EndpointProxy> Proxy(absl::Duration wait = absl::Seconds(30)) {
  auto p = EndpointProxy::Start({.listen_address = "127.0.0.1", .wait_for_backend = wait});
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

TEST(EndpointProxyTest, BalancesAcrossReplicas) {
  Backend a("a"), b("b");
  auto proxy = Proxy();
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackends({a.backend(), b.backend()});
  std::map<std::string, int> answers;
  for (int i = 0; i < 40; ++i) answers[Request(proxy->port())]++;
  EXPECT_EQ(answers["a"] + answers["b"], 40) << answers.size();
  EXPECT_GT(answers["a"], 0);
  EXPECT_GT(answers["b"], 0);
  EXPECT_EQ(proxy->failed(), 0);
  EXPECT_EQ(proxy->accepted(), 40);
}

TEST(EndpointProxyTest, AReplicaThatRefusesOrHangsUpBeforeAnsweringLosesNoRequest) {
  Backend good("good");
  Backend hangs("hangs", Backend::Mode::kHangUp);
  int dead_port = 0;
  {
    Backend gone("gone");
    dead_port = gone.backend().port;
  }
  auto proxy = Proxy();
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackends({{"127.0.0.1", dead_port}, hangs.backend(), good.backend()});
  for (int i = 0; i < 30; ++i) EXPECT_EQ(Request(proxy->port()), "good") << i;
  EXPECT_EQ(good.served(), 30);
  EXPECT_EQ(proxy->failed(), 0);
}

TEST(EndpointProxyTest, AConnectionWaitsForAReplicaAndGivesUpAfterTheWait) {
  auto proxy = Proxy(absl::Seconds(60));
  ASSERT_NE(proxy, nullptr);
  Backend late("late");
  std::string answer;
  std::thread client([&] { answer = Request(proxy->port()); });
  // The connection is held while no replica is ready, then forwarded to the first one.
  for (int i = 0; i < 200 && proxy->accepted() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  proxy->SetBackends({late.backend()});
  client.join();
  EXPECT_EQ(answer, "late");

  auto impatient = Proxy(absl::Milliseconds(200));
  ASSERT_NE(impatient, nullptr);
  EXPECT_EQ(Request(impatient->port()), "");
  EXPECT_EQ(impatient->failed(), 1);
}

TEST(EndpointProxyTest, ActiveCountsOpenConnectionsForDraining) {
  Backend slow("slow", Backend::Mode::kHold);
  auto proxy = Proxy();
  ASSERT_NE(proxy, nullptr);
  proxy->SetBackends({slow.backend()});
  std::string answer;
  std::thread client([&] { answer = Request(proxy->port()); });
  for (int i = 0; i < 500 && slow.held() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(slow.held(), 1);
  EXPECT_EQ(proxy->Active(slow.backend()), 1);
  // Out of the set: no new connections, the open one goes on.
  proxy->SetBackends({});
  EXPECT_EQ(proxy->Active(slow.backend()), 1);
  slow.ReleaseHeld();
  client.join();
  EXPECT_EQ(answer, "slow");
  for (int i = 0; i < 500 && proxy->Active(slow.backend()) > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(proxy->Active(slow.backend()), 0);
}

// Sends `request` and returns everything that comes back until the proxy closes.
std::string Exchange(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "connect failed";
  }
  EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string out;
  char buf[1024];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 60000) != 1) break;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

TEST(EndpointProxyTest, AHeldHttpRequestIsAnswered503WhenNoReplicaBecomesReady) {
  std::atomic<int> waits{0};
  auto p = EndpointProxy::Start({.name = "web",
                                 .listen_address = "127.0.0.1",
                                 .wait_for_backend = absl::Milliseconds(300),
                                 .on_wait = [&] { ++waits; }});
  ASSERT_TRUE(p.ok()) << p.status();
  EndpointProxy& proxy = **p;
  const std::string answer = Exchange(proxy.port(), "GET /predict HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(answer.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("Content-Type: application/json\r\n"), std::string::npos) << answer;
  const size_t body_at = answer.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  const auto body = nlohmann::json::parse(answer.substr(body_at + 4), nullptr, false);
  ASSERT_TRUE(body.is_object()) << answer;
  EXPECT_EQ(body["error"]["code"], "unavailable");
  const std::string message = body["error"]["message"];
  EXPECT_EQ(message.rfind("service \"web\": no replica became ready within ", 0), 0u) << message;
  EXPECT_NE(message.find("`berth service get web` says why"), std::string::npos) << message;
  EXPECT_EQ(waits.load(), 1);  // the demand hook heard of the held connection once
  // HEAD gets the status without the body; what is not HTTP is closed without a byte.
  const std::string head = Exchange(proxy.port(), "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(head.rfind("HTTP/1.1 503 ", 0), 0u) << head;
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
  EXPECT_EQ(Exchange(proxy.port(), "ping"), "");
  EXPECT_EQ(waits.load(), 3);
  EXPECT_EQ(proxy.failed(), 3);
  // A longer wait set later holds new connections longer: one arriving replica still serves.
  proxy.SetWaitForBackend(absl::Seconds(60));
  Backend late("late");
  std::string served;
  std::thread client([&] { served = Exchange(proxy.port(), "GET / HTTP/1.1\r\n\r\n"); });
  for (int i = 0; i < 500 && proxy.Stats().waiting == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(proxy.Stats().waiting, 1);
  proxy.SetBackends({late.backend()});
  client.join();
  EXPECT_EQ(served, "late");
  EXPECT_EQ(proxy.Stats().waiting, 0);
}

TEST(EndpointProxyTest, StatsCountConnectionsAndTheTimeTheyAreOpen) {
  Backend slow("slow", Backend::Mode::kHold);
  auto proxy = Proxy();
  ASSERT_NE(proxy, nullptr);
  EXPECT_EQ(proxy->Stats(), EndpointStats{});
  proxy->SetBackends({slow.backend()});
  const absl::Time before = absl::Now();
  std::string answers[2];
  std::thread clients[2];
  for (int i = 0; i < 2; ++i) {
    clients[i] = std::thread([&, i] { answers[i] = Request(proxy->port()); });
  }
  for (int i = 0; i < 500 && slow.held() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(slow.held(), 2);
  EndpointStats open = proxy->Stats();
  EXPECT_EQ(open.accepted, 2);
  EXPECT_EQ(open.open, 2);
  EXPECT_EQ(open.waiting, 0);
  // Two connections open: the integral grows twice as fast as the clock, and no faster.
  EndpointStats later = open;
  for (int i = 0; i < 500 && later.busy_seconds < open.busy_seconds + 0.05; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    later = proxy->Stats();
  }
  EXPECT_GE(later.busy_seconds, open.busy_seconds + 0.05);
  EXPECT_LE(later.busy_seconds, 2 * absl::ToDoubleSeconds(absl::Now() - before));
  slow.ReleaseHeld();
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(answers[0], "slow");
  EndpointStats closed = proxy->Stats();
  for (int i = 0; i < 500 && closed.open > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    closed = proxy->Stats();
  }
  EXPECT_EQ(closed.open, 0);
  // Nothing open: the integral stands still.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(proxy->Stats().busy_seconds, closed.busy_seconds);
  EXPECT_EQ(proxy->Stats().accepted, 2);
}

TEST(EndpointProxyTest, APortInUseIsRefusedNamingIt) {
  auto first = Proxy();
  ASSERT_NE(first, nullptr);
  auto second = EndpointProxy::Start({.listen_address = "127.0.0.1", .port = first->port()});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(std::to_string(first->port())), std::string::npos);
  EXPECT_EQ(EndpointProxy::Start({.listen_address = "not-an-ip"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace berth::control
