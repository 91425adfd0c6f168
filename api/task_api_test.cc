// The agent's task API (api/task_api.h) over loopback: its bearer token and nothing else, the
// files, stats and exec it serves; and the API server relaying a workload's logs, stats, exec
// and follows to the task API its host reported with its heartbeat (api/task_proxy.h).
#include "api/task_api.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "api/api_server.h"
#include "api/client/client.h"
#include "api/cluster_routes.h"
#include "api/http/client.h"
#include "api/http/http_test_util.h"
#include "core/clock.h"
#include "core/quantity.h"
#include "core/service.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Json;
using testing::PollUntil;

// The tasks of one host: a log file per workload in a directory, an echoing exec and fixed
// stats; a workload named in `ended` has exited.
class FakeTasks : public agent::LocalHost {
 public:
  explicit FakeTasks(std::string dir) : dir_(std::move(dir)) {}
  std::string HostName() override { return "h1"; }
  absl::StatusOr<std::string> LogPath(std::string_view workload, std::string_view stream) override {
    std::string path = dir_ + "/" + std::string(workload) + "." + std::string(stream);
    if (!std::filesystem::exists(path)) {
      return absl::NotFoundError("workload \"" + std::string(workload) + "\": no log");
    }
    return path;
  }
  absl::StatusOr<std::string> ConsolePath(std::string_view workload) override {
    return absl::FailedPreconditionError("workload \"" + std::string(workload) +
                                         "\": only vm workloads have a serial console");
  }
  absl::StatusOr<wire::ExecReply> Exec(std::string_view, const wire::ExecRequest& r) override {
    std::string joined;
    for (const auto& a : r.argv) joined += a + " ";
    return wire::ExecReply{.exit_code = 3, .stdout_data = joined, .stderr_data = "e"};
  }
  absl::StatusOr<Json> Stats(std::string_view workload) override {
    Json j = {{"workload", std::string(workload)}, {"pid", 42}, {"cpu_user_ms", 7}};
    if (ended_.load()) j["exit_code"] = 0;
    return j;
  }
  absl::StatusOr<int64_t> SaveWarmState(std::string_view workload, std::string_view key) override {
    if (workload != "web") return absl::NotFoundError(core::Cat("no task for ", workload));
    saved_key = std::string(key);
    return 4096;
  }
  absl::StatusOr<std::string> WarmStateFile(std::string_view key) override {
    std::string path = dir_ + "/" + std::string(key) + ".state";
    if (!std::filesystem::exists(path)) {
      return absl::NotFoundError("warm state " + std::string(key) + ": host h1 keeps none");
    }
    return path;
  }
  void End() { ended_ = true; }
  std::string saved_key;

 private:
  std::string dir_;
  std::atomic<bool> ended_{false};
};

void Append(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::app);
  out << text;
}

class TaskApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("berth-task-api-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    Append(dir_ + "/web.stdout", "one\ntwo\n");
    auto token = NewTaskApiToken();
    ASSERT_TRUE(token.ok()) << token.status();
    token_ = *token;
    tasks_ = std::make_unique<FakeTasks>(dir_);
    server_ = std::make_unique<TaskApiServer>(
        TaskApiOptions{.host = "127.0.0.1", .port = 0, .token = token_}, tasks_.get());
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    url_ = "http://127.0.0.1:" + std::to_string(port_);
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }
  absl::StatusOr<HttpResponse> Call(const std::string& token, std::string_view method,
                                    std::string_view path, std::string_view body = {},
                                    const HttpHeaders& extra = {}) {
    HttpClient c(url_, HttpClient::Options{.bearer_token = token});
    return c.Request(method, path, body, "application/json", extra);
  }

  std::string dir_;
  std::string token_;
  std::unique_ptr<FakeTasks> tasks_;
  std::unique_ptr<TaskApiServer> server_;
  uint16_t port_ = 0;
  std::string url_;
};

TEST_F(TaskApiTest, TokensAreHexOfTheWireLengthAndDistinct) {
  auto other = NewTaskApiToken();
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(token_.size(), wire::kTaskApiTokenLength);
  EXPECT_NE(*other, token_);
  EXPECT_TRUE(wire::DecodeTaskApiReport("h1", Json{{"port", 1}, {"token", token_}}).ok());
}

TEST_F(TaskApiTest, TakesOnlyItsOwnToken) {
  const std::string wrong(wire::kTaskApiTokenLength, 'a');
  for (const std::string& path :
       {std::string("/v1/tasks/web/logs"), std::string("/v1/tasks/web/stats"),
        std::string("/v1/tasks/web/console"), std::string("/nothing")}) {
    for (const std::string& token : {std::string(), wrong, token_.substr(1), token_ + "0"}) {
      auto r = Call(token, "GET", path);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->status, 401) << path << " with \"" << token << "\": " << r->body;
    }
  }
  auto exec = Call(wrong, "POST", "/v1/tasks/web/exec", R"({"argv": ["id"]})");
  ASSERT_TRUE(exec.ok());
  EXPECT_EQ(exec->status, 401);
  // The right token sent twice, or not as a bearer token, is refused too.
  {
    boost::asio::io_context ioc;
    testing::RawConnection raw(ioc, port_);
    const std::string bearer = "Authorization: Bearer " + token_ + "\r\n";
    raw.Send(testing::Get("/v1/tasks/web/stats", bearer + bearer));
    EXPECT_EQ(raw.Read().result_int(), 401);
    raw.Send(testing::Get("/v1/tasks/web/stats", bearer));
    EXPECT_EQ(raw.Read().result_int(), 200);
  }
  HttpHeaders basic;
  basic.Add("Authorization", "Basic " + token_);
  auto not_bearer = Call("", "GET", "/v1/tasks/web/stats", {}, basic);
  ASSERT_TRUE(not_bearer.ok());
  EXPECT_EQ(not_bearer->status, 401);

  auto ok = Call(token_, "GET", "/v1/tasks/web/stats");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST_F(TaskApiTest, ServesLogsStatsAndExecWithTheServersSemantics) {
  auto logs = Call(token_, "GET", "/v1/tasks/web/logs");
  ASSERT_TRUE(logs.ok());
  EXPECT_EQ(logs->status, 200);
  EXPECT_EQ(logs->body, "one\ntwo\n");
  auto missing = Call(token_, "GET", "/v1/tasks/web/logs?stream=stderr");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404) << missing->body;
  auto bad_stream = Call(token_, "GET", "/v1/tasks/web/logs?stream=stdin");
  ASSERT_TRUE(bad_stream.ok());
  EXPECT_EQ(bad_stream->status, 400);
  EXPECT_NE(bad_stream->body.find("stream"), std::string::npos) << bad_stream->body;
  auto console = Call(token_, "GET", "/v1/tasks/web/console");
  ASSERT_TRUE(console.ok());
  EXPECT_EQ(console->status, 409) << console->body;
  // The name becomes a path on the host: only workload names pass.
  auto escape = Call(token_, "GET", "/v1/tasks/..%2F..%2Fetc/logs");
  ASSERT_TRUE(escape.ok());
  EXPECT_EQ(escape->status, 400) << escape->body;

  auto stats = Call(token_, "GET", "/v1/tasks/web/stats");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(Json::parse(stats->body)["pid"], 42);

  auto exec = Call(token_, "POST", "/v1/tasks/web/exec", R"({"argv": ["echo", "hi"]})");
  ASSERT_TRUE(exec.ok());
  ASSERT_EQ(exec->status, 200) << exec->body;
  auto reply = wire::DecodeExecReply("web", Json::parse(exec->body));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->exit_code, 3);
  EXPECT_EQ(reply->stdout_data, "echo hi ");
  auto bad_exec = Call(token_, "POST", "/v1/tasks/web/exec", R"({"argv": []})");
  ASSERT_TRUE(bad_exec.ok());
  EXPECT_EQ(bad_exec->status, 400);
  EXPECT_NE(bad_exec->body.find("argv"), std::string::npos) << bad_exec->body;
}

TEST_F(TaskApiTest, APlainReadReturnsTheLastBytesOfALargeFile) {
  {
    std::ofstream out(dir_ + "/big.stdout", std::ios::binary);
    out << "first\n" << std::string(kMaxTaskFileBytes - 6, 'x') << "end\n";
  }
  auto logs = Call(token_, "GET", "/v1/tasks/big/logs");
  ASSERT_TRUE(logs.ok()) << logs.status();
  ASSERT_EQ(logs->status, 200);
  EXPECT_EQ(logs->body.size(), kMaxTaskFileBytes);
  EXPECT_EQ(logs->body.substr(0, 3), "t\nx");  // the file's first 4 bytes are cut
  EXPECT_EQ(logs->body.substr(logs->body.size() - 4), "end\n");
  std::filesystem::remove(dir_ + "/big.stdout");
}

TEST_F(TaskApiTest, FollowStreamsNewLinesAndEndsWhenTheTaskIsOver) {
  HttpClient c(url_, HttpClient::Options{.bearer_token = token_});
  absl::Mutex mu;
  std::string got;
  absl::StatusOr<HttpResponse> result;
  std::thread reader([&] {
    result = c.Stream("/v1/tasks/web/logs?follow=true", [&](std::string_view chunk) {
      absl::MutexLock lock(&mu);
      got.append(chunk);
      return true;
    });
  });
  auto has = [&](std::string_view text) {
    absl::MutexLock lock(&mu);
    return got.find(text) != std::string::npos;
  };
  EXPECT_TRUE(PollUntil([&] { return has("two\n"); }));
  Append(dir_ + "/web.stdout", "three\n");
  EXPECT_TRUE(PollUntil([&] { return has("three\n"); }));
  tasks_->End();  // the stream drains and ends on its own
  reader.join();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(got, "one\ntwo\nthree\n");
}

// The API server relays a workload's task calls to the task API of the host it is placed on.
class TaskRelayTest : public TaskApiTest {
 protected:
  void SetUp() override {
    TaskApiTest::SetUp();
    control_ = std::make_unique<control::ControlPlane>(
        &store_, control::ControlPlaneOptions{.clock = &clock_});
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    o.agent_tokens = {"join-secret"};
    api_ = std::make_unique<ApiServer>(o, control_.get(), /*local=*/nullptr);
    auto port = api_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    api_url_ = "http://127.0.0.1:" + std::to_string(*port);
    admin_ = std::make_unique<Client>(api_url_, ClientOptions{.token = "admin-secret"});
    credential_ = Join("h1");
    ASSERT_FALSE(credential_.empty());
    host_ = std::make_unique<Client>(api_url_, ClientOptions{.token = credential_});
    ASSERT_TRUE(admin_->CreateWorkload(SmallProcess("web")).ok());
    auto placed = control_->ScheduleOnce();
    ASSERT_TRUE(placed.ok() && *placed == 1);
  }
  void TearDown() override {
    api_->Stop();
    TaskApiTest::TearDown();
  }
  // Registers host `name` with the join token; its credential, or "" (a failure is reported).
  std::string Join(const std::string& name) {
    wire::HostRegistration reg{.name = name};
    reg.inventory.capacity.cpu = core::MilliCpu(2000);
    reg.inventory.capacity.memory = core::MemoryMiB(1024);
    auto joined = Client(api_url_, ClientOptions{.token = "join-secret"}).RegisterHost(reg);
    EXPECT_TRUE(joined.ok()) << joined.status();
    return joined.ok() ? joined->credential : "";
  }
  static core::WorkloadSpec SmallProcess(const std::string& name) {
    core::WorkloadSpec spec;
    spec.name = name;
    spec.kind = core::WorkloadKind::kProcess;
    spec.command = {"/bin/true"};
    spec.resources.cpu = core::MilliCpu(100);
    spec.resources.memory = core::MemoryMiB(32);
    return spec;
  }
  absl::Status Beat(std::optional<wire::TaskApiReport> report) {
    return host_->Heartbeat("h1", std::nullopt, report);
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> api_;
  std::string api_url_;
  std::unique_ptr<Client> admin_;
  std::unique_ptr<Client> host_;
  std::string credential_;
};

TEST_F(TaskRelayTest, HeartbeatFieldsAreBoundedAndNamed) {
  HttpClient raw(api_url_, HttpClient::Options{.bearer_token = credential_});
  const std::string token(wire::kTaskApiTokenLength, 'b');
  struct Case {
    std::string body;
    std::string field;
  };
  for (const Case& c :
       {Case{Json{{"task_api", {{"port", 0}, {"token", token}}}}.dump(), "task_api.port"},
        Case{Json{{"task_api", {{"port", 65536}, {"token", token}}}}.dump(), "task_api.port"},
        Case{Json{{"task_api", {{"port", 80}, {"token", "abc"}}}}.dump(), "task_api.token"},
        Case{Json{{"task_api", {{"port", 80}, {"token", token}, {"host", "10.0.0.9"}}}}.dump(),
             "task_api.host"},
        Case{Json{{"task_api", "http://10.0.0.9:80"}}.dump(), "task_api"}}) {
    auto r = raw.Put("/v1/hosts/h1/heartbeat", c.body);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 400) << c.body;
    EXPECT_NE(r->body.find(c.field), std::string::npos) << c.body << ": " << r->body;
    EXPECT_NE(r->body.find("h1"), std::string::npos) << r->body;
  }
  EXPECT_FALSE(control_->TaskApi("h1").has_value());  // a refused beat records nothing

  ASSERT_TRUE(Beat(wire::TaskApiReport{.port = port_, .token = token_}).ok());
  auto kept = control_->TaskApi("h1");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->address, "127.0.0.1");  // where the beat came from, not what it said
  EXPECT_EQ(kept->port, port_);
  // The token is shown nowhere: not in the host, not in the list.
  for (const std::string& path : {std::string("/v1/hosts/h1"), std::string("/v1/hosts")}) {
    HttpClient as_admin(api_url_, HttpClient::Options{.bearer_token = "admin-secret"});
    auto r = as_admin.Get(path);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->body.find(token_), std::string::npos) << path;
  }
  // A beat without it forgets it (an older agent took over).
  ASSERT_TRUE(Beat(std::nullopt).ok());
  EXPECT_FALSE(control_->TaskApi("h1").has_value());
  // A beat another server forwarded comes from that server's address, not the host's: the
  // task API stays unknown here (and the relay answers 503 saying so).
  HttpHeaders forwarded;
  forwarded.Set(std::string(kForwardedHeader), "follower-1");
  auto relayed_beat = raw.Request("PUT", "/v1/hosts/h1/heartbeat",
                                  Json{{"task_api", {{"port", port_}, {"token", token_}}}}.dump(),
                                  "application/json", forwarded);
  ASSERT_TRUE(relayed_beat.ok()) << relayed_beat.status();
  EXPECT_EQ(relayed_beat->status, 200) << relayed_beat->body;
  EXPECT_FALSE(control_->TaskApi("h1").has_value());
}

TEST_F(TaskRelayTest, RelaysLogsStatsExecAndFollows) {
  // Before the host reports a task API, the server says why it cannot reach the task.
  absl::Status unknown = admin_->Logs("web").status();
  EXPECT_TRUE(absl::IsUnavailable(unknown)) << unknown;
  EXPECT_NE(unknown.message().find("task API"), std::string_view::npos) << unknown;

  ASSERT_TRUE(Beat(wire::TaskApiReport{.port = port_, .token = token_}).ok());
  auto logs = admin_->Logs("web");
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(*logs, "one\ntwo\n");
  EXPECT_TRUE(absl::IsNotFound(admin_->Logs("web", "stderr").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(admin_->Logs("web", "stdin").status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(admin_->Console("web").status()));
  auto stats = admin_->Stats("web");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ((*stats)["pid"], 42);
  auto exec = admin_->Exec("web", {.argv = {"echo", "hi"}, .timeout = absl::Seconds(5)});
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->stdout_data, "echo hi ");
  EXPECT_EQ(exec->exit_code, 3);

  // A follow streams what is written after it began; the client leaving ends the relay.
  for (int round = 0; round < 2; ++round) {
    HttpClient c(api_url_, HttpClient::Options{.bearer_token = "admin-secret"});
    StreamCanceller stop;
    absl::Mutex mu;
    std::string got;
    std::thread reader([&] {
      HttpClient::StreamOptions options;
      options.canceller = &stop;
      auto r = c.Stream(
          "/v1/workloads/web/logs?follow=true",
          [&](std::string_view chunk) {
            absl::MutexLock lock(&mu);
            got.append(chunk);
            return true;
          },
          options);
      EXPECT_TRUE(absl::IsCancelled(r.status())) << r.status();
    });
    const std::string line = "later " + std::to_string(round) + "\n";
    EXPECT_TRUE(PollUntil([&] {
      absl::MutexLock lock(&mu);
      return got.find("two\n") != std::string::npos;
    }));
    Append(dir_ + "/web.stdout", line);
    EXPECT_TRUE(PollUntil([&] {
      absl::MutexLock lock(&mu);
      return got.find(line) != std::string::npos;
    }));
    stop.Cancel();
    reader.join();
  }
  // Neither the relay's threads nor the task API's follows outlive their clients.
  EXPECT_TRUE(PollUntil([&] { return api_->blocking_calls() == 0; }));

  // A token the task API does not take (the agent restarted) is the server's trouble: 503.
  ASSERT_TRUE(
      Beat(wire::TaskApiReport{.port = port_, .token = std::string(wire::kTaskApiTokenLength, 'c')})
          .ok());
  absl::Status stale = admin_->Stats("web").status();
  EXPECT_TRUE(absl::IsUnavailable(stale)) << stale;
  EXPECT_NE(stale.message().find("h1"), std::string_view::npos) << stale;
  // Nothing listening there: 503 naming the host.
  server_->Stop();
  ASSERT_TRUE(Beat(wire::TaskApiReport{.port = port_, .token = token_}).ok());
  absl::Status gone = admin_->Stats("web").status();
  EXPECT_TRUE(absl::IsUnavailable(gone)) << gone;
  EXPECT_NE(gone.message().find("h1"), std::string_view::npos) << gone;
}

TEST_F(TaskRelayTest, AHostThatIsDownIsNamed) {
  ASSERT_TRUE(Beat(wire::TaskApiReport{.port = port_, .token = token_}).ok());
  clock_.Advance(control_->options().host_ttl + absl::Seconds(1));
  ASSERT_TRUE(control_->CheckHostsOnce().ok());
  absl::Status down = admin_->Logs("web").status();
  // The workload failed with its host; its host is down.
  EXPECT_TRUE(absl::IsUnavailable(down)) << down;
  EXPECT_NE(down.message().find("\"h1\" is down"), std::string_view::npos) << down;
}

TEST_F(TaskRelayTest, AWorkloadNotPlacedYetIsAConflict) {
  core::WorkloadSpec big;
  big.name = "big";
  big.kind = core::WorkloadKind::kProcess;
  big.command = {"/bin/true"};
  big.resources.cpu = core::MilliCpu(64000);
  big.resources.memory = core::MemoryMiB(32);
  ASSERT_TRUE(admin_->CreateWorkload(big).ok());
  absl::Status pending = admin_->Logs("big").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(pending)) << pending;
  EXPECT_NE(pending.message().find("not placed"), std::string_view::npos) << pending;
  EXPECT_TRUE(absl::IsNotFound(admin_->Stats("nope").status()));
}

}  // namespace
}  // namespace berth::api

namespace berth::api {
namespace {

TEST_F(TaskApiTest, SavesAWarmStateUnderAWellFormedKeyOnly) {
  auto denied = Call(std::string(wire::kTaskApiTokenLength, 'a'), "POST",
                     "/v1/tasks/web/warm-state", R"({"key": "web.r1"})");
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 401);
  for (const char* body :
       {R"({})", R"({"key": "../../etc/passwd"})", R"({"key": "web"})", R"({"key": "web.rx"})",
        R"({"key": 7})", R"({"key": "web.r1", "x": 1})", R"([1])"}) {
    auto r = Call(token_, "POST", "/v1/tasks/web/warm-state", body);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 400) << body << ": " << r->body;
  }
  EXPECT_TRUE(tasks_->saved_key.empty());
  auto missing = Call(token_, "POST", "/v1/tasks/db/warm-state", R"({"key": "db.r1"})");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404) << missing->body;
  auto saved = Call(token_, "POST", "/v1/tasks/web/warm-state", R"({"key": "web.r3"})");
  ASSERT_TRUE(saved.ok()) << saved.status();
  ASSERT_EQ(saved->status, 200) << saved->body;
  EXPECT_EQ(Json::parse(saved->body)["bytes"], 4096);
  EXPECT_EQ(tasks_->saved_key, "web.r3");
}

// A warm state's bytes: more than one read step (1 MiB), not a multiple of it.
std::string WarmBytes() {
  std::string bytes(3 * (1 << 20) + 12345, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 2654435761u) >> 13);
  return bytes;
}

TEST_F(TaskApiTest, ServesAWarmStateWholeWithItsSize) {
  const std::string bytes = WarmBytes();
  Append(dir_ + "/web.r2.state", bytes);
  auto denied = Call(std::string(wire::kTaskApiTokenLength, 'a'), "GET", "/v1/warm-states/web.r2");
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 401);
  for (const char* key : {"web", "web.rx", "..%2Fweb.r2", "web.r2.state"}) {
    auto r = Call(token_, "GET", std::string("/v1/warm-states/") + key);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 400) << key << ": " << r->body;
  }
  auto missing = Call(token_, "GET", "/v1/warm-states/web.r3");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404) << missing->body;
  HttpClient c(url_, HttpClient::Options{.bearer_token = token_});
  std::string got;
  auto r = c.Stream("/v1/warm-states/web.r2", [&](std::string_view chunk) {
    got.append(chunk);
    return true;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header(wire::kWarmStateSizeHeader), std::to_string(bytes.size()));
  EXPECT_EQ(got.size(), bytes.size());
  EXPECT_TRUE(got == bytes);
}

TEST_F(TaskRelayTest, AHostCopiesAWarmStateItsReplicaResumesFromFromTheHostThatKeepsIt) {
  // Service web at revision 2 wants the state web.r2, which h1 keeps and reports.
  auto service = core::DecodeServiceSpec(Json{
      {"name", "web"},
      {"replicas", 1},
      {"template",
       {{"kind", "vm"}, {"image", "tiny"}, {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}}}}});
  ASSERT_TRUE(service.ok()) << service.status();
  core::Service svc{.spec = *service};
  svc.status.rollout.revision = 2;
  ASSERT_TRUE(store_.Put("/services/web", core::EncodeService(svc).dump()).ok());
  const std::string bytes = WarmBytes();
  Append(dir_ + "/web.r2.state", bytes);
  wire::HeartbeatReport keeps{.task_api = wire::TaskApiReport{.port = port_, .token = token_},
                              .warm_states = {"web.r2"}};
  ASSERT_TRUE(host_->Heartbeat("h1", keeps).ok());
  // h2 joins; a replica that resumes from web.r2 is placed there.
  const std::string h2_credential = Join("h2");
  ASSERT_FALSE(h2_credential.empty());
  Client h2(api_url_, ClientOptions{.token = h2_credential});
  ASSERT_TRUE(h2.Heartbeat("h2").ok());
  auto download = [&](Client& as, std::string_view host, std::string_view key, std::string* got) {
    return as.DownloadWarmState(host, key, [got](std::string_view chunk) {
      got->append(chunk);
      return true;
    });
  };
  std::string got;
  // Not yet: no replica on h2 resumes from it.
  absl::Status early = download(h2, "h2", "web.r2", &got).status();
  EXPECT_TRUE(absl::IsPermissionDenied(early)) << early;
  EXPECT_NE(early.message().find("no workload placed here resumes from warm state web.r2"),
            std::string_view::npos)
      << early;
  core::WorkloadSpec replica = SmallProcess("web-1");
  replica.labels["berth.warm-state"] = "web.r2";
  replica.constraints.push_back(
      {.label = "berth.host", .op = core::LabelConstraint::Op::kIn, .values = {"h2"}});
  ASSERT_TRUE(admin_->CreateWorkload(replica).ok());
  ASSERT_TRUE(control_->ScheduleOnce().ok());
  ASSERT_EQ(control_->GetWorkload("web-1")->status.host, "h2");

  auto size = download(h2, "h2", "web.r2", &got);
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(got.size(), bytes.size());
  EXPECT_TRUE(got == bytes);
  // Only its own host's, only a well-formed key it wants.
  got.clear();
  absl::Status other = download(h2, "h1", "web.r2", &got).status();
  EXPECT_TRUE(absl::IsPermissionDenied(other)) << other;
  EXPECT_TRUE(absl::IsInvalidArgument(download(h2, "h2", "web.rx", &got).status()));
  EXPECT_TRUE(absl::IsPermissionDenied(download(h2, "h2", "web.r1", &got).status()));
  EXPECT_TRUE(got.empty());
  // h1 reports it keeps nothing any more: nobody to copy from.
  ASSERT_TRUE(Beat(wire::TaskApiReport{.port = port_, .token = token_}).ok());
  absl::Status none = download(h2, "h2", "web.r2", &got).status();
  EXPECT_TRUE(absl::IsNotFound(none)) << none;
  EXPECT_TRUE(PollUntil([&] { return api_->blocking_calls() == 0; }));
}

}  // namespace
}  // namespace berth::api
