#include "runtime/qemu/qmp_client.h"

#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace berth::runtime {
namespace {

using nlohmann::json;

// Plays QEMU's side of a recorded conversation over a socketpair: sends the "S:" lines and
// checks that what the client sends matches each "C:" line.
class QmpReplayer {
 public:
  QmpReplayer(const std::string& name, int fd) : fd_(fd) {
    std::ifstream in(std::string(BERTH_QEMU_TESTDATA) + "/" + name);
    EXPECT_TRUE(in.good()) << name;
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("S: ", 0) == 0 || line.rfind("C: ", 0) == 0) script_.push_back(line);
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~QmpReplayer() {
    if (thread_.joinable()) thread_.join();
    close(fd_);
  }
  // Waits for the script to end; returns every mismatch.
  std::vector<std::string> Finish() {
    thread_.join();
    return mismatches_;
  }

 private:
  std::string ReadLine() {
    std::string line;
    char c;
    while (read(fd_, &c, 1) == 1) {
      if (c == '\n') return line;
      line.push_back(c);
    }
    return line;
  }
  void Run() {
    for (const std::string& step : script_) {
      std::string body = step.substr(3);
      if (step[0] == 'S') {
        body += "\n";
        if (write(fd_, body.data(), body.size()) != static_cast<ssize_t>(body.size())) {
          mismatches_.push_back("write failed");
          return;
        }
      } else {
        std::string got = ReadLine();
        json want = json::parse(body);
        json have = json::parse(got, nullptr, false);
        if (have != want) mismatches_.push_back("want " + want.dump() + " got " + got);
      }
    }
    shutdown(fd_, SHUT_RDWR);
  }

  int fd_;
  std::vector<std::string> script_;
  std::vector<std::string> mismatches_;
  std::thread thread_;
};

class EventLog {
 public:
  void Add(const QmpEvent& e) {
    absl::MutexLock lock(&mu_);
    events_.push_back(e);
  }
  std::vector<QmpEvent> Get() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::vector<QmpEvent> events_;
};

TEST(QmpClientTest, ReplaysPauseResumePowerdown) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  QmpReplayer qemu("pause_resume_powerdown.qmp", sv[1]);
  EventLog events;
  bool closed_seen = false;
  absl::Mutex closed_mu;
  auto client = QmpClient::Adopt(sv[0], {.on_event = [&](const QmpEvent& e) { events.Add(e); },
                                         .on_close =
                                             [&] {
                                               absl::MutexLock lock(&closed_mu);
                                               closed_seen = true;
                                             }});
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->version(), "7.2.22");

  auto status = (*client)->Execute("query-status");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*status)["status"], "running");

  ASSERT_TRUE((*client)->Execute("stop").ok());
  // The STOP event came before stop's reply, so it has been delivered by now.
  ASSERT_EQ(events.Get().size(), 1u);
  EXPECT_EQ(events.Get()[0].name, "STOP");
  EXPECT_EQ(events.Get()[0].time, absl::FromUnixSeconds(1795431433) + absl::Microseconds(433705));

  status = (*client)->Execute("query-status");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ((*status)["status"], "paused");
  ASSERT_TRUE((*client)->Execute("cont").ok());
  ASSERT_TRUE((*client)->Execute("system_powerdown").ok());
  ASSERT_TRUE((*client)->WaitClosed(absl::Seconds(30)));
  EXPECT_TRUE((*client)->closed());

  std::vector<QmpEvent> all = events.Get();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[1].name, "RESUME");
  EXPECT_EQ(all[2].name, "POWERDOWN");
  EXPECT_EQ(all[3].name, "SHUTDOWN");
  EXPECT_EQ(all[3].data["reason"], "guest-shutdown");
  {
    absl::MutexLock lock(&closed_mu);
    EXPECT_TRUE(closed_seen);
  }
  // Commands after the end fail cleanly.
  EXPECT_EQ((*client)->Execute("query-status").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(qemu.Finish().empty());
}

TEST(QmpClientTest, ReplaysErrorsAndGuestPanic) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  QmpReplayer qemu("errors_and_panic.qmp", sv[1]);
  EventLog events;
  auto client = QmpClient::Adopt(sv[0], {.on_event = [&](const QmpEvent& e) { events.Add(e); }});
  ASSERT_TRUE(client.ok()) << client.status();
  auto missing = (*client)->Execute("no-such-command");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnimplemented);
  auto bad = (*client)->Execute("migrate", {{"uri", "bogus:"}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(bad.status().message()).find("Migration requires a valid URI"),
            std::string::npos);
  auto status = (*client)->Execute("query-status");
  ASSERT_TRUE(status.ok());
  EXPECT_EQ((*status)["status"], "guest-panicked");
  ASSERT_EQ(events.Get().size(), 1u);
  EXPECT_EQ(events.Get()[0].name, "GUEST_PANICKED");
  EXPECT_EQ(events.Get()[0].data["action"], "pause");
  EXPECT_TRUE(qemu.Finish().empty());
}

TEST(QmpClientTest, MatchesRepliesById) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  // A server that answers the two commands after the handshake in reverse order.
  std::thread server([fd = sv[1]] {
    auto read_line = [fd] {
      std::string line;
      char c;
      while (read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
      return json::parse(line, nullptr, false);
    };
    auto send = [fd](const json& j) {
      std::string s = j.dump() + "\n";
      (void)!write(fd, s.data(), s.size());
    };
    send({{"QMP", {{"version", {{"qemu", {{"major", 7}, {"minor", 2}, {"micro", 0}}}}}}}});
    json caps = read_line();
    send({{"return", json::object()}, {"id", caps["id"]}});
    json first = read_line();
    json second = read_line();
    send({{"return", {{"cmd", second["execute"]}}}, {"id", second["id"]}});
    send({{"return", {{"cmd", first["execute"]}}}, {"id", first["id"]}});
    read_line();  // waits for the client to hang up
    close(fd);
  });
  auto client = QmpClient::Adopt(sv[0], {});
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<json> a, b;
  std::thread ta([&] { a = (*client)->Execute("query-status"); });
  std::thread tb([&] { b = (*client)->Execute("query-cpus-fast"); });
  ta.join();
  tb.join();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)["cmd"], "query-status");
  EXPECT_EQ((*b)["cmd"], "query-cpus-fast");
  client->reset();
  server.join();
}

TEST(QmpClientTest, BadGreetingFails) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  std::string junk = "{\"hello\": 1}\n";
  ASSERT_EQ(write(sv[1], junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  auto client = QmpClient::Adopt(sv[0], {});
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  close(sv[1]);
}

TEST(QmpClientTest, ConnectToMissingSocketIsUnavailable) {
  auto client = QmpClient::Connect("/nonexistent/qmp.sock", {});
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace berth::runtime
