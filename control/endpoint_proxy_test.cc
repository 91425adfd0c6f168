#include "control/endpoint_proxy.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <thread>

#include "gtest/gtest.h"

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
