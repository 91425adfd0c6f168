// Services in the real binary (dev mode): a service of two process replicas, each serving HTTP
// on the host port the server gave it (PORT), both healthy; killing one replica's process gets
// it replaced by a new healthy one; deleting the service removes every replica.
#include <csignal>
#include <set>

#include "api/http/client.h"
#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

constexpr char kPython[] = "/usr/bin/python3";

// A replica: answers /healthz with 200 and / with its pid, on $PORT.
constexpr char kServer[] = R"PY(
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (b"ok" if self.path == "/healthz" else str(os.getpid()).encode())
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
)PY";

std::string ServiceYaml() {
  nlohmann::json command = {kPython, "-c", kServer};
  return std::string("name: web\nkind: service\nreplicas: 2\nport: 8080\n") +
         "health: {http: /healthz, interval: 500ms, timeout: 400ms, failure_threshold: 3}\n" +
         "template:\n  kind: process\n  command: " + command.dump() +
         "\n  resources: {cpu: 100m, memory: 64Mi}\n";
}

class ServiceE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kPython)) {
      GTEST_SKIP() << "needs " << kPython << " for the replicas' HTTP server";
    }
    dir_ = TempDir("e2e-service");
    server_ = std::make_unique<DevServer>(dir_);
    ASSERT_TRUE(server_->Start()) << ReadFile(dir_ + "/serve.log");
    ASSERT_TRUE(Eventually([&] {
      auto hosts = server_->client().ListHosts();
      return hosts.ok() && !hosts->items.empty();
    })) << ReadFile(dir_ + "/serve.log");
  }
  void TearDown() override {
    if (server_ && server_->pid() > 0) {
      auto d = server_->client().DeleteService("web");
      if (!d.ok() && !absl::IsNotFound(d.status())) ADD_FAILURE() << d.status();
      EXPECT_TRUE(Eventually([&] {
        return absl::IsNotFound(server_->client().GetService("web").status());
      })) << "the service's replicas were not removed";
      DeleteAllWorkloads(*server_);
    }
    server_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
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
    api::HttpClient http("http://127.0.0.1:" + std::to_string(port),
                         api::HttpClient::Options{.timeout = absl::Seconds(5)});
    auto r = http.Get("/");
    if (!r.ok() || r->status != 200) return 0;
    return static_cast<pid_t>(std::atoi(r->body.c_str()));
  }
  std::string Dump() {
    api::Raw raw;
    const std::string service = server_->client().GetService("web", &raw).ok()
                                    ? raw.body.dump()
                                    : std::string("(service not readable)");
    return service + "\n" + ReadFile(dir_ + "/serve.log");
  }

  std::string dir_;
  std::unique_ptr<DevServer> server_;
};

TEST_F(ServiceE2eTest, TwoHealthyReplicasAndAKilledOneIsReplaced) {
  Result created = e2e::Run(dir_, {"service", "create", "-f", "-"}, ServiceYaml());
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

}  // namespace
}  // namespace berth::e2e
