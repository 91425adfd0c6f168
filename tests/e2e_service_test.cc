// Services in the real binary (dev mode): a service of two process replicas, each serving HTTP
// on the host port the server gave it (PORT), both healthy; killing one replica's process gets
// it replaced by a new healthy one; the service's endpoint balances across the replicas and loses
// no request of a stream while a replica is killed; a replica removed by scaling down drains its
// open requests before it stops; a rolling update replaces every replica while the endpoint
// loses no request; deleting the service removes every replica; an autoscaled service idle for
// idle_to_zero runs no replica, and the next request through its endpoint starts one and is
// answered (the time it took is printed); one that never gets a ready replica answers 503; the
// example model server (examples/serve/, PyTorch) answers predictions through its endpoint.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

constexpr char kPython[] = "/usr/bin/python3";

// A replica: answers /healthz with "ok" and any other path with its pid, each answer in one
// write (so a replica killed mid-request never sends half an answer). /slow first leaves a file
// slow-PID-N in $MARK_DIR, then waits until $MARK_DIR/release exists.
constexpr char kServer[] = R"PY(
import os, socketserver, time
mark = os.environ.get("MARK_DIR", "")
class H(socketserver.BaseRequestHandler):
    def handle(self):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            data += chunk
        path = data.split(b" ", 2)[1]
        if path == b"/slow":
            open(os.path.join(mark, "slow-%d-%d" % (os.getpid(), time.monotonic_ns())), "w").close()
            while not os.path.exists(os.path.join(mark, "release")):
                time.sleep(0.02)
        body = b"ok" if path == b"/healthz" else str(os.getpid()).encode()
        self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128
S(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
)PY";

// An HTTP/1.0 request to 127.0.0.1:port on a connection of its own: the whole answer, status
// line and headers included; empty when there was no connection or no answer.
std::string Exchange(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv{.tv_sec = 60, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return answer;
}

// GET `path` from 127.0.0.1:port: the body of a 200 answer, or nullopt (no connection, no
// answer, another status).
std::optional<std::string> Get(int port, const std::string& path) {
  const std::string answer = Exchange(port, "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n");
  if (answer.rfind("HTTP/1.0 200 ", 0) != 0) return std::nullopt;
  const size_t body = answer.find("\r\n\r\n");
  if (body == std::string::npos) return std::nullopt;
  return answer.substr(body + 4);
}

// POST `body` (JSON) to `path` on 127.0.0.1:port: the status code and the body of the answer;
// {0, ""} when there was none.
std::pair<int, std::string> Post(int port, const std::string& path, const std::string& body) {
  const std::string answer = Exchange(
      port, "POST " + path + " HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/json\r\n" +
                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  const size_t space = answer.find(' ');
  const size_t end = answer.find("\r\n\r\n");
  if (answer.rfind("HTTP/1.", 0) != 0 || space == std::string::npos || end == std::string::npos) {
    return {0, ""};
  }
  return {std::atoi(answer.c_str() + space + 1), answer.substr(end + 4)};
}

// A socket listening on a free loopback port, and the port; -1 when there is none.
int ListenOnLoopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 1) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

class ServiceE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kPython)) {
      GTEST_SKIP() << "needs " << kPython << " for the replicas' HTTP server";
    }
    dir_ = TempDir("e2e-service");
    // Process replicas run as an unprivileged user: their marks go where it may write.
    marks_ = TempDir("e2e-service-marks");
    ASSERT_EQ(chmod(marks_.c_str(), 0777), 0);
    server_ = std::make_unique<DevServer>(dir_);
    ASSERT_TRUE(server_->Start()) << ReadFile(dir_ + "/serve.log");
    ASSERT_TRUE(Eventually([&] {
      auto hosts = server_->client().ListHosts();
      return hosts.ok() && !hosts->items.empty();
    })) << ReadFile(dir_ + "/serve.log");
  }
  void TearDown() override {
    if (server_ && server_->pid() > 0) {
      for (const char* name : {"web", "model"}) {
        auto d = server_->client().DeleteService(name);
        if (!d.ok() && !absl::IsNotFound(d.status())) ADD_FAILURE() << d.status();
        EXPECT_TRUE(Eventually([&] {
          return absl::IsNotFound(server_->client().GetService(name).status());
        })) << "the replicas of service "
            << name << " were not removed";
      }
      DeleteAllWorkloads(*server_);
    }
    server_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
    if (!marks_.empty()) std::filesystem::remove_all(marks_);
  }
  std::string ServiceYaml(int replicas, int endpoint_port = 0, const std::string& version = "1") {
    nlohmann::json command = {kPython, "-c", kServer};
    std::string yaml = "name: web\nkind: service\nreplicas: " + std::to_string(replicas) +
                       "\nport: 8080\n" +
                       "health: {http: /healthz, interval: 500ms, timeout: 400ms, "
                       "failure_threshold: 3}\n" +
                       "template:\n  kind: process\n  command: " + command.dump() +
                       "\n  env: {MARK_DIR: " + nlohmann::json(marks_).dump() + ", VERSION: \"" +
                       version + "\"}\n  resources: {cpu: 100m, memory: 64Mi}\n";
    if (endpoint_port != 0) {
      yaml += "endpoint: {host_port: " + std::to_string(endpoint_port) + ", drain_timeout: 2m}\n";
    }
    return yaml;
  }
  // A service that scales on the endpoint's load, to zero after 3 s without a request.
  std::string AutoscaledYaml(int endpoint_port, const std::string& wait_timeout = "60s",
                             nlohmann::json command = {kPython, "-c", kServer}) {
    return "name: web\nkind: service\nport: 8080\n"
           "health: {http: /healthz, interval: 500ms, timeout: 400ms, failure_threshold: 3}\n"
           "endpoint: {host_port: " +
           std::to_string(endpoint_port) + ", wait_timeout: " + wait_timeout +
           "}\n"
           "autoscale: {min: 0, max: 2, metric: concurrency, target: 10, stable_window: 6s, "
           "panic_window: 6s, idle_to_zero: 3s}\n"
           "template:\n  kind: process\n  command: " +
           command.dump() + "\n  env: {MARK_DIR: " + nlohmann::json(marks_).dump() +
           "}\n  resources: {cpu: 100m, memory: 64Mi}\n";
  }
  // The ready replicas as {workload, port}.
  std::map<std::string, int> Ready() {
    std::map<std::string, int> out;
    auto s = server_->client().GetService("web");
    if (!s.ok()) return out;
    for (const auto& r : s->status.replicas) {
      if (r.ready) out[r.workload] = r.port;
    }
    return out;
  }
  // GET / of the replica on `port`: its pid, or 0.
  pid_t PidOn(int port) {
    std::optional<std::string> body = Get(port, "/");
    return body ? static_cast<pid_t>(std::atoi(body->c_str())) : 0;
  }
  // Two ready replicas, and an endpoint forwarding to both.
  bool ServingOnTwo() {
    auto s = server_->client().GetService("web");
    return s.ok() && s->status.ready == 2 && s->status.endpoint.serving &&
           s->status.endpoint.backends == 2;
  }
  std::string Dump() {
    api::Raw raw;
    const std::string service = server_->client().GetService("web", &raw).ok()
                                    ? raw.body.dump()
                                    : std::string("(service not readable)");
    return service + "\n" + ReadFile(dir_ + "/serve.log");
  }
  size_t SlowStarted() {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(marks_)) {
      n += e.path().filename().string().rfind("slow-", 0) == 0 ? 1 : 0;
    }
    return n;
  }

  std::string dir_;
  std::string marks_;
  std::unique_ptr<DevServer> server_;
};

TEST_F(ServiceE2eTest, TwoHealthyReplicasAndAKilledOneIsReplaced) {
  Result created = e2e::Run(dir_, {"service", "create", "-f", "-"}, ServiceYaml(2));
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(Eventually([&] { return Ready().size() == 2; })) << Dump();
  std::map<std::string, int> before = Ready();
  std::set<int> ports;
  std::map<std::string, pid_t> pids;
  for (const auto& [name, port] : before) {
    ports.insert(port);
    pids[name] = PidOn(port);
    EXPECT_GT(pids[name], 0) << name << " does not answer on its port " << port;
  }
  EXPECT_EQ(ports.size(), 2u) << "each replica has its own host port";
  // From the range the server was given (`serve --service-ports`, which DevServer passes).
  const std::string range = ServicePortsOfThisProcess();
  const int lo = std::stoi(range.substr(0, range.find('-')));
  for (int port : ports) {
    EXPECT_TRUE(port >= lo && port <= lo + 99) << port << " is outside " << range;
  }
  // The CLI shows both, ready.
  Result get = e2e::Run(dir_, {"service", "get", "web", "--json"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  auto body = nlohmann::json::parse(get.out, nullptr, false);
  EXPECT_EQ(body["status"]["ready"], 2) << get.out;

  const std::string victim = before.begin()->first;
  ASSERT_GT(pids[victim], 0);
  ASSERT_EQ(kill(pids[victim], SIGKILL), 0);
  ASSERT_TRUE(Eventually([&] {
    std::map<std::string, int> now = Ready();
    return now.size() == 2 && !now.contains(victim);
  })) << Dump();
  for (const auto& [name, port] : Ready()) {
    EXPECT_GT(PidOn(port), 0) << name;
  }
  auto events = server_->client().ListEvents({});
  ASSERT_TRUE(events.ok()) << events.status();
  bool replaced = false;
  for (const auto& e : events->items) {
    replaced |= e.kind == "service" && e.type == "replica-replaced" &&
                e.message.find(victim) != std::string::npos;
  }
  EXPECT_TRUE(replaced) << Dump();
}

TEST_F(ServiceE2eTest, TheEndpointLosesNoRequestWhileAReplicaIsKilled) {
  // A privileged port, and one something else listens on, are refused naming the field.
  {
    int used = 0;
    int holder = ListenOnLoopback(&used);
    ASSERT_GE(holder, 0);
    auto raw = server_->RawClient();
    for (int port : {80, used}) {
      auto r = raw->Request("POST", "/v1/services", ServiceYaml(2, port), "application/yaml");
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->status, 400) << r->body;
      EXPECT_NE(r->body.find("service \\\"web\\\": endpoint.host_port"), std::string::npos)
          << r->body;
    }
    close(holder);
    EXPECT_TRUE(absl::IsNotFound(server_->client().GetService("web").status()));
  }
  const int endpoint = FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  Result created = e2e::Run(dir_, {"service", "create", "-f", "-"}, ServiceYaml(2, endpoint));
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(Eventually([&] { return ServingOnTwo(); })) << Dump();
  std::map<std::string, int> before = Ready();
  const std::string victim = before.begin()->first;
  const pid_t victim_pid = PidOn(before.begin()->second);
  ASSERT_GT(victim_pid, 0);

  // Four clients share a stream of 1,000 requests; the victim is killed once 300 are answered.
  constexpr int kRequests = 1000;
  std::atomic<int> next{0}, answered{0}, lost{0};
  std::mutex mu;
  std::map<pid_t, int> by_pid;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      while (next.fetch_add(1) < kRequests) {
        std::optional<std::string> body = Get(endpoint, "/");
        if (!body) {
          ++lost;
          continue;
        }
        ++answered;
        std::lock_guard<std::mutex> lock(mu);
        by_pid[static_cast<pid_t>(std::atoi(body->c_str()))]++;
      }
    });
  }
  const bool reached = Eventually([&] { return answered.load() + lost.load() >= 300; });
  const int kill_result = kill(victim_pid, SIGKILL);
  const int at_kill = answered.load() + lost.load();
  for (std::thread& t : clients) t.join();
  ASSERT_TRUE(reached);
  ASSERT_EQ(kill_result, 0);
  EXPECT_LT(at_kill, kRequests) << "the replica was killed while the stream ran";
  EXPECT_EQ(lost.load(), 0) << Dump();
  EXPECT_EQ(answered.load(), kRequests);
  EXPECT_GT(by_pid[victim_pid], 0) << "the endpoint balances across both replicas";
  EXPECT_GE(by_pid.size(), 2u);

  // The victim is replaced, and the endpoint forwards to its replacement.
  ASSERT_TRUE(Eventually([&] { return ServingOnTwo() && !Ready().contains(victim); })) << Dump();
  std::set<pid_t> after;
  for (int i = 0; i < 40 && after.size() < 2; ++i) {
    std::optional<std::string> body = Get(endpoint, "/");
    ASSERT_TRUE(body.has_value());
    after.insert(static_cast<pid_t>(std::atoi(body->c_str())));
  }
  EXPECT_EQ(after.size(), 2u);
  EXPECT_FALSE(after.contains(victim_pid));
}

TEST_F(ServiceE2eTest, AReplicaScaledAwayFinishesItsRequestsBeforeItStops) {
  const int endpoint = FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  Result created = e2e::Run(dir_, {"service", "create", "-f", "-"}, ServiceYaml(2, endpoint));
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(Eventually([&] { return ServingOnTwo(); })) << Dump();
  std::map<std::string, pid_t> pid_of;
  for (const auto& [name, port] : Ready()) pid_of[name] = PidOn(port);

  // Two slow requests: the endpoint gives each replica one (fewest connections first).
  std::optional<std::string> slow[2];
  std::thread requests[2];
  for (int i = 0; i < 2; ++i) {
    requests[i] = std::thread([&, i] { slow[i] = Get(endpoint, "/slow"); });
  }
  ASSERT_TRUE(Eventually([&] { return SlowStarted() == 2; })) << Dump();
  Result scaled = e2e::Run(dir_, {"service", "scale", "web", "1"});
  ASSERT_EQ(scaled.exit_code, 0) << scaled.err;
  std::string leaving;
  ASSERT_TRUE(Eventually([&] {
    auto s = server_->client().GetService("web");
    if (!s.ok()) return false;
    for (const auto& r : s->status.replicas) {
      if (r.draining) leaving = r.workload;
    }
    return !leaving.empty() && s->status.endpoint.backends == 1;
  })) << Dump();
  // Draining: still running, and no new request reaches it.
  EXPECT_EQ(server_->State(leaving), "running") << Dump();
  for (int i = 0; i < 20; ++i) {
    std::optional<std::string> body = Get(endpoint, "/");
    ASSERT_TRUE(body.has_value());
    EXPECT_NE(std::atoi(body->c_str()), pid_of[leaving]);
  }
  EXPECT_EQ(server_->State(leaving), "running") << Dump();

  // Its request finishes; then it stops.
  std::ofstream(marks_ + "/release").close();
  for (std::thread& t : requests) t.join();
  ASSERT_TRUE(slow[0].has_value());
  ASSERT_TRUE(slow[1].has_value());
  std::set<pid_t> served = {std::atoi(slow[0]->c_str()), std::atoi(slow[1]->c_str())};
  EXPECT_TRUE(served.contains(pid_of[leaving])) << "the leaving replica answered its request";
  EXPECT_EQ(served.size(), 2u);
  ASSERT_TRUE(Eventually([&] {
    auto w = server_->client().GetWorkload(leaving);
    return absl::IsNotFound(w.status());
  })) << Dump();
  auto s = server_->client().GetService("web");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->status.ready, 1);
}

TEST_F(ServiceE2eTest, ARollingUpdateReplacesEveryReplicaAndLosesNoRequest) {
  const int endpoint = FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  Result created = e2e::Run(dir_, {"service", "create", "-f", "-"}, ServiceYaml(2, endpoint));
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(Eventually([&] { return ServingOnTwo(); })) << Dump();
  std::set<std::string> before;
  for (const auto& [name, port] : Ready()) before.insert(name);

  // Two clients send requests through the endpoint for as long as the rollout takes.
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, lost{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 2; ++c) {
    clients.emplace_back([&] {
      while (!stop.load()) {
        (Get(endpoint, "/") ? answered : lost)++;
      }
    });
  }
  Result updated = e2e::Run(dir_, {"service", "update", "-f", "-"}, ServiceYaml(2, endpoint, "2"));
  ASSERT_EQ(updated.exit_code, 0) << updated.err;
  EXPECT_NE(updated.out.find("rolling out revision 2"), std::string::npos) << updated.out;
  const bool done = Eventually([&] {
    auto s = server_->client().GetService("web");
    if (!s.ok() || s->status.rollout.state != core::RolloutStatus::State::kComplete) return false;
    int of_two = 0;
    for (const auto& r : s->status.replicas) of_two += r.revision == 2 && r.ready && !r.draining;
    return of_two == 2 && s->status.replicas.size() == 2;
  });
  stop = true;
  for (std::thread& t : clients) t.join();
  ASSERT_TRUE(done) << Dump();
  EXPECT_EQ(lost.load(), 0) << Dump();
  EXPECT_GT(answered.load(), 0);
  for (const auto& [name, port] : Ready()) EXPECT_FALSE(before.contains(name)) << name;
  Result status = e2e::Run(dir_, {"service", "rollout", "status", "web", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  auto rollout = nlohmann::json::parse(status.out, nullptr, false);
  EXPECT_EQ(rollout["revision"], 2) << status.out;
  EXPECT_EQ(rollout["state"], "complete") << status.out;
  EXPECT_EQ(rollout["previous_revision"], 1) << status.out;
}

TEST_F(ServiceE2eTest, AnIdleServiceScalesToZeroAndTheNextRequestIsAnswered) {
  const int endpoint = FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  Result created = e2e::Run(dir_, {"service", "create", "-f", "-"}, AutoscaledYaml(endpoint));
  ASSERT_EQ(created.exit_code, 0) << created.err;
  // It starts with one replica (web-0); 3 s without a request, and no replica runs while the
  // endpoint still listens.
  ASSERT_TRUE(Eventually([&] { return server_->client().GetWorkload("web-0").ok(); })) << Dump();
  ASSERT_TRUE(Eventually([&] {
    auto s = server_->client().GetService("web");
    return s.ok() && s->status.autoscale && s->status.autoscale->desired == 0 &&
           s->status.replicas.empty();
  })) << Dump();
  EXPECT_TRUE(Eventually([&] {
    return absl::IsNotFound(server_->client().GetWorkload("web-0").status());
  })) << Dump();
  Result get = e2e::Run(dir_, {"service", "get", "web"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_NE(get.out.find("status:    scaled to zero"), std::string::npos) << get.out;
  EXPECT_NE(get.out.find("decision:  0 replicas: no request for idle_to_zero (3s)"),
            std::string::npos)
      << get.out;

  // The next request is held while a replica starts, then answered by it.
  const auto start = std::chrono::steady_clock::now();
  std::optional<std::string> woke = Get(endpoint, "/");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(woke.has_value()) << Dump();
  EXPECT_GT(std::atoi(woke->c_str()), 0) << *woke;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  std::cout << "scale from zero: the first request was answered after " << ms << " ms\n";
  RecordProperty("scale_from_zero_ms", static_cast<int>(ms));
  ASSERT_TRUE(Eventually([&] {
    auto s = server_->client().GetService("web");
    return s.ok() && s->status.autoscale && s->status.autoscale->activations == 1;
  })) << Dump();
  auto s = server_->client().GetService("web");
  ASSERT_TRUE(s.ok()) << s.status();
  std::cout << "scale from zero: the server counted "
            << absl::FormatDuration(s->status.autoscale->last_activation)
            << " from the held request to a ready replica\n";
  EXPECT_GT(s->status.autoscale->last_activation, absl::ZeroDuration());
  EXPECT_EQ(s->status.autoscale->desired, 1);
  bool woke_event = false;
  auto events = server_->client().ListEvents({});
  ASSERT_TRUE(events.ok()) << events.status();
  for (const auto& e : events->items) woke_event |= e.type == "scaled-from-zero";
  EXPECT_TRUE(woke_event);
}

TEST_F(ServiceE2eTest, ARequestNoReplicaAnswersInTimeGets503) {
  const int endpoint = FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  // Replicas that never listen, so never pass their health check: none becomes ready.
  Result created = e2e::Run(dir_, {"service", "create", "-f", "-"},
                            AutoscaledYaml(endpoint, "2s", {"/bin/sleep", "600"}));
  ASSERT_EQ(created.exit_code, 0) << created.err;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(endpoint));
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string request = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string answer;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) answer.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_EQ(answer.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << answer;
  EXPECT_NE(answer.find("\"code\":\"unavailable\""), std::string::npos) << answer;
  EXPECT_NE(answer.find("service \\\"web\\\": no replica became ready within 2"), std::string::npos)
      << answer;
}

// The example model server (examples/serve/, PyTorch) as its spec has it: two replicas behind
// one endpoint, each healthy once its model is trained, answering predictions through the
// endpoint from both replicas, and a malformed request with a 400 that says what is wrong.
TEST_F(ServiceE2eTest, TheExampleModelServerAnswersPredictionsThroughItsEndpoint) {
  if (std::system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "needs /usr/bin/python3 with PyTorch (python3-torch: scripts/setup.sh "
                    "installs it)";
  }
  namespace fs = std::filesystem;
  // The replicas run as nobody: the script goes where it can read it.
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const std::string examples = dir_ + "/examples";
  fs::create_directories(examples + "/serve");
  fs::copy_file("examples/serve/serve.py", examples + "/serve/serve.py");
  const int endpoint = FreeEndpointPort();
  ASSERT_GT(endpoint, 0);
  std::string yaml = ReadFile("examples/serve/service.yaml");
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"/srv/berth-examples", examples},
        {"host_port: 18090", "host_port: " + std::to_string(endpoint)}}) {
    ASSERT_NE(yaml.find(from), std::string::npos)
        << from << " is not in examples/serve/service.yaml";
    for (size_t at = yaml.find(from); at != std::string::npos; at = yaml.find(from, at)) {
      yaml.replace(at, from.size(), to);
      at += to.size();
    }
  }
  Result created = e2e::Run(dir_, {"service", "create", "-f", "-"}, yaml);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto serving = [&] {
    auto s = server_->client().GetService("model");
    return s.ok() && s->status.ready == 2 && s->status.endpoint.serving &&
           s->status.endpoint.backends == 2;
  };
  api::Raw raw;
  ASSERT_TRUE(Eventually(serving, 180))
      << (server_->client().GetService("model", &raw).ok() ? raw.body.dump() : "")
      << ReadFile(dir_ + "/serve.log");
  // Predictions through the endpoint, from both replicas in turn (it balances).
  std::set<int64_t> replicas;
  for (int i = 0; i < 20; ++i) {
    auto [status, body] =
        Post(endpoint, "/predict", R"({"inputs": [[1,1,1,1,1,1,1,1],[0,0,0,0,0,0,0,0]]})");
    ASSERT_EQ(status, 200) << body;
    auto j = nlohmann::json::parse(body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j["outputs"].is_array() && j["outputs"].size() == 2) << body;
    // The model learned y = sum(i/8 * x_i): 4.5 for all ones, 0 for all zeros.
    EXPECT_NEAR(j["outputs"][0].get<double>(), 4.5, 0.75) << body;
    EXPECT_NEAR(j["outputs"][1].get<double>(), 0.0, 0.75) << body;
    replicas.insert(j["replica"].get<int64_t>());
  }
  EXPECT_EQ(replicas.size(), 2u) << "the endpoint balances across both replicas";
  auto [status, body] = Post(endpoint, "/predict", R"({"inputs": [[1, 2]]})");
  EXPECT_EQ(status, 400);
  EXPECT_NE(body.find("inputs[0]: must be a list of 8 numbers"), std::string::npos) << body;
}

}  // namespace
}  // namespace berth::e2e
