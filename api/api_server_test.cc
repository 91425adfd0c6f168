#include "api/api_server.h"

#include <thread>

#include "absl/synchronization/notification.h"
#include "api/client/client.h"
#include "api/http/client.h"
#include "core/log.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Json;

constexpr char kHello[] = R"(name: hello
kind: process
command: ["/bin/sh", "-c", "echo hello; sleep 3600"]
resources: {cpu: 500m, memory: 64Mi}
)";

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control_ = std::make_unique<control::ControlPlane>(&store_, control::ControlPlaneOptions{});
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    o.agent_tokens = {"join-secret"};
    o.read_tokens = {"read-secret"};
    o.max_body_bytes = 64 << 10;
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = "http://127.0.0.1:" + std::to_string(*port);
  }
  // Raw HTTP, for the requests whose point is their malformed shape.
  HttpClient Raw(const std::string& token = "admin-secret") {
    return HttpClient(url_, HttpClient::Options{.bearer_token = token});
  }
  std::unique_ptr<api::Client> Client(const std::string& token = "admin-secret") {
    return std::make_unique<api::Client>(url_, ClientOptions{.token = token});
  }
  int64_t Revision() { return *store_.Revision(); }

  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> server_;
  std::string url_;
};

core::HostInventory SmallInventory() {
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(2000);
  inv.capacity.memory = core::MemoryMiB(1024);
  return inv;
}

TEST_F(ApiServerTest, TokensAreRequired) {
  api::Client anonymous(url_);
  EXPECT_TRUE(anonymous.Health().ok());
  EXPECT_TRUE(absl::IsUnauthenticated(anonymous.ListWorkloads().status()));
  EXPECT_TRUE(absl::IsUnauthenticated(Client("wrong")->ListWorkloads().status()));
  EXPECT_TRUE(Client()->ListWorkloads().ok());
  // A join token may register hosts but not create workloads.
  EXPECT_TRUE(absl::IsPermissionDenied(
      Client("join-secret")->CreateWorkloadFromText(kHello, "application/yaml").status()));
  EXPECT_TRUE(
      Client("join-secret")->RegisterHost({.name = "h1", .inventory = SmallInventory()}).ok());
}

TEST_F(ApiServerTest, CreateGetListDeleteFromYaml) {
  auto c = Client();
  api::Raw raw;
  auto created = c->CreateWorkloadFromText(kHello, "application/yaml", &raw);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(raw.status, 201);
  EXPECT_EQ(created->spec.name, "hello");
  EXPECT_EQ(created->status.state, core::WorkloadState::kPending);
  EXPECT_EQ(raw.body["spec"]["resources"]["cpu"], "500m");
  auto dup = c->CreateWorkloadFromText(kHello, "application/yaml");
  EXPECT_TRUE(absl::IsAlreadyExists(dup.status())) << dup.status();
  ASSERT_TRUE(c->GetWorkload("hello", {}, &raw).ok());
  EXPECT_GT(raw.index, 0);  // X-Berth-Index
  auto list = c->ListWorkloads();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->items.size(), 1u);
  auto deleted = c->DeleteWorkload("hello", &raw);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(raw.status, 200);
  EXPECT_TRUE(absl::IsNotFound(c->GetWorkload("hello").status()));
}

TEST_F(ApiServerTest, BadInputIsRefusedWithTheFieldAndChangesNothing) {
  auto c = Raw();
  const int64_t before = Revision();
  struct Case {
    std::string body;
    int status;
    std::string mentions;
  } cases[] = {
      {R"({"name":"hello","kind":"process","command":["x"],"resources":{"memory":"-5Mi"}})", 400,
       "resources.memory"},
      {R"({"name":"hello","kind":"process","command":["x"],"colour":"red"})", 400, "colour"},
      {R"({"name":"hello","kind":"process",)", 400, "malformed JSON"},
      {"name: [unclosed\n", 400, "malformed YAML"},
      {R"({"name":"hello","kind":"teapot","command":["x"]})", 400, "kind"},
      {R"({"name":"Bad_Name","kind":"process","command":["x"]})", 400, "name"},
      {R"({"name":"hello","kind":"process","command":["x"],"resources":{"cpu":"abc"}})", 400,
       "resources.cpu"},
      {R"({"name":"hello","kind":"process","command":["x"],"user":"a b"})", 400, "user"},
      // This server was not started with root workloads allowed.
      {R"({"name":"hello","kind":"process","command":["x"],"user":"root"})", 403, "user"},
      {std::string(100 << 10, 'a'), 413, ""},
  };
  for (const auto& tc : cases) {
    auto r = c.Post("/v1/workloads", tc.body);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, tc.status) << tc.body.substr(0, 80) << " -> " << r->body;
    if (!tc.mentions.empty()) {
      Json err = Json::parse(r->body);
      EXPECT_NE(err["error"]["message"].get<std::string>().find(tc.mentions), std::string::npos)
          << r->body;
    }
  }
  EXPECT_EQ(Revision(), before);
  EXPECT_EQ(Json::parse(c.Get("/v1/workloads")->body)["items"].size(), 0u);
}

TEST_F(ApiServerTest, BlockingQueryReturnsOnChange) {
  auto c = Client();
  // index 0 means "answer now", so start from a store that has seen a write.
  ASSERT_TRUE(c->RegisterHost({.name = "h1", .inventory = SmallInventory()}).ok());
  api::Raw raw;
  ASSERT_TRUE(c->ListWorkloads({}, &raw).ok());
  const int64_t index = raw.index;
  ASSERT_GT(index, 0);
  std::thread writer([&] {
    // The waiter may park before or after this write: both must see it.
    auto w = Client();
    auto r = w->CreateWorkloadFromText(kHello, "application/yaml");
    ASSERT_TRUE(r.ok()) << r.status();
  });
  auto waited = c->ListWorkloads({.index = index, .wait = absl::Seconds(60)}, &raw);
  writer.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_GT(raw.index, index);
  // Nothing changes: the wait ends by its timer with the same index.
  ASSERT_TRUE(c->ListWorkloads({}, &raw).ok());
  const int64_t now = raw.index;
  ASSERT_TRUE(c->ListWorkloads({.index = now, .wait = absl::Milliseconds(200)}, &raw).ok());
  EXPECT_EQ(raw.index, now);
  // A malformed index is the client's mistake (raw HTTP: the typed client cannot send one).
  EXPECT_EQ(Raw().Get("/v1/workloads?index=x")->status, 400);
  // The event log's query is checked too: nothing is read on a bad limit or index.
  EXPECT_EQ(Raw().Get("/v1/events?limit=x")->status, 400);
  EXPECT_EQ(Raw().Get("/v1/events?limit=0")->status, 400);
  EXPECT_NE(Raw().Get("/v1/events?limit=-1")->body.find("limit"), std::string::npos);
  EXPECT_EQ(Raw().Get("/v1/events?index=x")->status, 400);
  EXPECT_EQ(Raw().Get("/v1/events?limit=5")->status, 200);
}

TEST_F(ApiServerTest, ActionsAndMetrics) {
  auto c = Client();
  ASSERT_TRUE(c->CreateWorkloadFromText(kHello, "application/yaml").ok());
  ASSERT_TRUE(c->StopWorkload("hello").ok());
  EXPECT_EQ(c->GetWorkload("hello")->status.state, core::WorkloadState::kStopped);
  EXPECT_TRUE(absl::IsInvalidArgument(c->Act("hello", "explode").status()));
  EXPECT_TRUE(absl::IsNotFound(c->StopWorkload("nope").status()));
  auto metrics = c->MetricsText();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->find("berth_workloads{state=\"stopped\"} 1"), std::string::npos) << *metrics;
  EXPECT_NE(metrics->find("berth_hosts{state=\"ready\"} 0"), std::string::npos);
  EXPECT_NE(metrics->find(core::Cat("berth_api_workers ", WorkPool::ResolveThreads(0), "\n")),
            std::string::npos)
      << *metrics;
  EXPECT_NE(metrics->find("berth_api_rejected_total 0\n"), std::string::npos);
}

// One handler thread and room for one waiting request: a third request is refused with 503, the
// refusal is counted, and the server answers normally once the thread is free.
TEST(ApiServerPoolTest, AFullQueueIs503AndCounted) {
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{});
  ApiServerOptions options;
  options.admin_token = "admin-secret";
  options.workers = 1;
  options.max_queued = 1;
  ApiServer server(options, &control, nullptr);
  absl::Notification running, release;
  server.router().Handle("GET", "/v1/test/slow", [&](const HttpRequest&) {
    running.Notify();
    release.WaitForNotification();
    return HttpResponse::Text(200, "slow");
  });
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  auto dispatch = [&](const std::string& path, std::vector<HttpResponse>* out,
                      absl::Notification* done) {
    HttpRequest req;
    req.method = "GET";
    req.path = req.target = path;
    req.headers.Set("Authorization", "Bearer admin-secret");
    server.router().Dispatch(req, Responder::ToSink([out, done](HttpResponse r) {
                               out->push_back(std::move(r));
                               done->Notify();
                             }));
  };
  std::vector<HttpResponse> slow, queued, refused;
  absl::Notification slow_done, queued_done, refused_done;
  dispatch("/v1/test/slow", &slow, &slow_done);
  running.WaitForNotification();
  dispatch("/v1/workloads", &queued, &queued_done);
  dispatch("/v1/workloads", &refused, &refused_done);
  ASSERT_TRUE(refused_done.HasBeenNotified());
  EXPECT_EQ(refused[0].status, 503);
  EXPECT_EQ(refused[0].headers.Get("Retry-After").value_or(""), "1");
  release.Notify();
  slow_done.WaitForNotification();
  queued_done.WaitForNotification();
  EXPECT_EQ(slow[0].status, 200);
  EXPECT_EQ(queued[0].status, 200);
  api::Client c("http://127.0.0.1:" + std::to_string(*port),
                ClientOptions{.token = "admin-secret"});
  auto metrics = c.MetricsText();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->find("berth_api_rejected_total 1\n"), std::string::npos) << *metrics;
  EXPECT_NE(metrics->find("berth_api_workers 1\n"), std::string::npos);
  server.Stop();
}

TEST_F(ApiServerTest, MetricsCountErrorsReportedInThisProcess) {
  core::ReportError("test.metrics", "disk d1: remove", absl::InternalError("boom"));
  core::ReportError("test.metrics", "disk d2: remove", absl::InternalError("boom"));
  int64_t expected = core::ErrorCounts()["test.metrics"];
  auto metrics = Client()->MetricsText();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->find("# TYPE berth_errors_total counter"), std::string::npos) << *metrics;
  EXPECT_NE(metrics->find("berth_errors_total{where=\"test.metrics\"} " + std::to_string(expected)),
            std::string::npos)
      << *metrics;
}

TEST_F(ApiServerTest, EventsListAndWait) {
  auto c = Client();
  ASSERT_TRUE(c->CreateWorkloadFromText(kHello, "application/yaml").ok());
  auto events = c->ListEvents();
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->items.size(), 1u);
  EXPECT_EQ(events->items[0].type, "created");
  auto none = c->ListEvents({.index = events->revision, .wait = absl::Milliseconds(100)});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->items.size(), 0u);
}

}  // namespace
}  // namespace berth::api

namespace berth::api {
namespace {

TEST_F(ApiServerTest, TenantQuotasThroughTheApi) {
  auto c = Client();
  auto bad = c->SetQuota("team-a", Json{{"cpu", "lots"}});
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("cpu"), std::string::npos);
  // A quota written as YAML, the way a user's file holds it.
  auto set = Raw().Put("/v1/tenants/team-a/quota", "cpu: 4\nmemory: 8Gi\ngpu: 2\n");
  ASSERT_EQ(set->status, 200) << set->body;
  auto tenants = c->ListTenants();
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  ASSERT_EQ((*tenants)["items"].size(), 1u);
  EXPECT_EQ((*tenants)["items"][0]["quota"]["memory"], "8Gi");
  EXPECT_EQ((*tenants)["items"][0]["used"]["cpu"], "0");
  EXPECT_TRUE(c->DeleteQuota("team-a").ok());
  EXPECT_TRUE(absl::IsNotFound(c->DeleteQuota("team-a")));
}

TEST_F(ApiServerTest, ReadOnlyTokenReadsButChangesNothing) {
  auto reader = Client("read-secret");
  EXPECT_TRUE(reader->ListWorkloads().ok());
  EXPECT_TRUE(reader->ListHosts().ok());
  EXPECT_TRUE(reader->MetricsText().ok());
  const int64_t before = Revision();
  auto created = reader->CreateWorkloadFromText(kHello, "application/yaml");
  EXPECT_TRUE(absl::IsPermissionDenied(created.status())) << created.status();
  EXPECT_NE(created.status().message().find("read-only token"), std::string::npos);
  EXPECT_TRUE(absl::IsPermissionDenied(reader->Logs("hello").status()));
  EXPECT_TRUE(absl::IsPermissionDenied(reader->Console("hello").status()));
  EXPECT_EQ(Revision(), before);
  // /metrics needs a token.
  EXPECT_TRUE(absl::IsUnauthenticated(api::Client(url_).MetricsText().status()));
}

TEST_F(ApiServerTest, DashboardFilesNeedNoTokenAndRootLeadsThere) {
  HttpClient anonymous(url_, HttpClient::Options{});
  auto index = anonymous.Get("/ui/");
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->status, 200);
  EXPECT_NE(index->Header("Content-Type").value_or("").find("text/html"), std::string::npos);
  EXPECT_NE(index->body.find("<title>Berth</title>"), std::string::npos);
  EXPECT_EQ(index->Header("X-Frame-Options").value_or(""), "DENY");
  auto js = anonymous.Get("/ui/app.js");
  ASSERT_TRUE(js.ok()) << js.status();
  EXPECT_EQ(js->status, 200);
  EXPECT_NE(js->Header("Content-Type").value_or("").find("javascript"), std::string::npos);
  for (const char* path : {"/", "/ui"}) {
    auto r = anonymous.Get(path);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 302) << path;
    EXPECT_EQ(r->Header("Location").value_or(""), "/ui/") << path;
  }
  auto missing = anonymous.Get("/ui/nope.js");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  // Only the files are open: the API still needs a token, and writes to /ui/ are not routes.
  auto api = anonymous.Get("/v1/workloads");
  ASSERT_TRUE(api.ok());
  EXPECT_EQ(api->status, 401);
  auto post = anonymous.Post("/ui/app.js", "x");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 401);
}

TEST_F(ApiServerTest, HeartbeatUsageIsServedWithTheHostAndBadUsageIsRefused) {
  auto joined = Client("join-secret")->RegisterHost({.name = "h1", .inventory = SmallInventory()});
  ASSERT_TRUE(joined.ok()) << joined.status();
  auto host = Client(joined->credential);
  core::HostUsage usage;
  usage.cpu = core::MilliCpu(250);
  usage.memory = core::MemoryMiB(512);
  ASSERT_TRUE(host->Heartbeat("h1", usage).ok());
  api::Raw raw;
  ASSERT_TRUE(Client()->ListHosts(&raw).ok());
  ASSERT_EQ(raw.body["items"].size(), 1u);
  EXPECT_EQ(raw.body["items"][0]["used"]["cpu"], "250m") << raw.body.dump();
  EXPECT_EQ(raw.body["items"][0]["allocated"]["cpu"], "0") << raw.body.dump();

  HttpClient as_host(url_, HttpClient::Options{.bearer_token = joined->credential});
  for (const char* body :
       {R"({"usage": {"cpu": "-1"}})", R"({"usage": {"gpus": 3}})", R"({"load": 1})", R"([1])"}) {
    auto r = as_host.Put("/v1/hosts/h1/heartbeat", body);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 400) << body << ": " << r->body;
    EXPECT_NE(r->body.find("h1"), std::string::npos) << r->body;
  }
  // The refused reports changed nothing.
  ASSERT_TRUE(Client()->ListHosts(&raw).ok());
  EXPECT_EQ(raw.body["items"][0]["used"]["cpu"], "250m");

  // The report is the first sample of the host's usage history.
  auto history = Client("read-secret")->Call("GET", "/v1/hosts/h1/usage");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ((*history)["samples"].size(), 1u) << history->dump();
  EXPECT_EQ((*history)["samples"][0]["memory"], "512Mi");
  EXPECT_TRUE((*history)["samples"][0]["time"].is_string());
  EXPECT_TRUE(absl::IsNotFound(Client()->Call("GET", "/v1/hosts/nope/usage").status()));
}

TEST_F(ApiServerTest, SummarySumsReadyHostsWorkloadsAndMeasuresGpuFragmentation) {
  core::HostInventory inv = SmallInventory();
  inv.capacity.cpu = core::MilliCpu(8000);
  inv.capacity.memory = core::MemoryMiB(16384);
  inv.drivers = {"process"};
  for (int i = 0; i < 2; ++i) {
    inv.gpus.push_back({.index = i, .model = "A100", .memory_mib = 81920});
  }
  auto joined = Client("join-secret")->RegisterHost({.name = "g1", .inventory = inv});
  ASSERT_TRUE(joined.ok()) << joined.status();
  auto c = Client();
  for (const char* spec : {
           R"({"name":"half","kind":"process","command":["x"],
               "resources":{"cpu":"1","memory":"1Gi","gpu":{"share":"500m","memory":"10Gi"}}})",
           R"({"name":"whole","kind":"process","command":["x"],
               "resources":{"cpu":"2","memory":"2Gi","gpu":{"count":1}}})",
           R"({"name":"huge","kind":"process","command":["x"],"resources":{"cpu":"64"}})"}) {
    ASSERT_TRUE(c->CreateWorkloadFromText(spec).ok()) << spec;
  }
  ASSERT_TRUE(control_->ScheduleOnce().ok());
  core::HostUsage usage;
  usage.cpu = core::MilliCpu(1500);
  usage.memory = core::MemoryMiB(4096);
  usage.gpus = {{.index = 0, .utilization_percent = 40, .memory_used_mib = 8192},
                {.index = 1, .utilization_percent = 90, .memory_used_mib = 70000}};
  ASSERT_TRUE(Client(joined->credential)->Heartbeat("g1", usage).ok());

  // The read-only token may read it; no token may not.
  auto s = Client("read-secret")->Call("GET", "/v1/summary");
  ASSERT_TRUE(s.ok()) << s.status();
  const Json& j = *s;
  EXPECT_EQ(j["hosts"]["total"], 1) << j.dump();
  EXPECT_EQ(j["hosts"]["ready"], 1);
  EXPECT_EQ(j["workloads"]["total"], 3);
  EXPECT_EQ(j["workloads"]["by_state"]["pending"], 1) << j.dump();
  EXPECT_EQ(j["workloads"]["by_state"]["scheduled"], 2) << j.dump();
  EXPECT_EQ(j["capacity"]["cpu"], "8");
  EXPECT_EQ(j["capacity"]["gpus"], 2);
  EXPECT_EQ(j["capacity"]["gpu_memory"], "160Gi");
  EXPECT_EQ(j["allocated"]["cpu"], "3");
  EXPECT_EQ(j["allocated"]["memory"], "3Gi");
  EXPECT_EQ(j["allocated"]["gpu_milli"], 1500);
  // The whole device holds its 80 GiB, the half share the 10 GiB it asked for.
  EXPECT_EQ(j["allocated"]["gpu_memory"], "90Gi");
  EXPECT_EQ(j["used"]["hosts_reporting"], 1);
  EXPECT_EQ(j["used"]["cpu"], "1500m");
  EXPECT_EQ(j["used"]["gpu_utilization_percent"], 65.0);
  // 500 milli free, all of it on the half-allocated device.
  EXPECT_EQ(j["gpu_fragmentation"]["free_milli"], 500);
  EXPECT_EQ(j["gpu_fragmentation"]["stranded_milli"], 500);
  EXPECT_EQ(j["gpu_fragmentation"]["whole_free_gpus"], 0);
  EXPECT_EQ(j["gpu_fragmentation"]["stranded_pct"], 100.0);
  // FGD, against the mix of the three workloads' shapes: neither a whole GPU nor the CPU-only
  // workload can use the 500 free milli, another half share can: (500 + 500 + 0) / 3.
  const Json& fgd = j["gpu_fragmentation"]["fgd"];
  EXPECT_EQ(fgd["mix_shapes"], 3) << fgd.dump();
  EXPECT_NEAR(fgd["fragmented_milli"].get<double>(), 1000.0 / 3, 1e-6) << fgd.dump();
  EXPECT_NEAR(fgd["fragmented_pct"].get<double>(), 100.0 / 6, 1e-6);
  EXPECT_NEAR(fgd["ratio_pct"].get<double>(), 200.0 / 3, 1e-6);
  EXPECT_EQ(fgd["skipped"], 0);
  EXPECT_TRUE(absl::IsUnauthenticated(api::Client(url_).Call("GET", "/v1/summary").status()));
}

TEST_F(ApiServerTest, OneSummaryServesEveryCallerForItsMaxAge) {
  // Two more servers on the same control plane: one keeps its answer for an hour, one never.
  auto serve = [&](absl::Duration max_age) {
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    o.summary_max_age = max_age;
    auto s = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    auto port = s->Start();
    EXPECT_TRUE(port.ok()) << port.status();
    return std::make_pair(std::move(s), "http://127.0.0.1:" + std::to_string(port.value_or(0)));
  };
  auto [hourly, hourly_url] = serve(absl::Hours(1));
  auto [always, always_url] = serve(absl::ZeroDuration());
  auto total = [](const std::string& url) {
    auto s = api::Client(url, ClientOptions{.token = "admin-secret"}).Call("GET", "/v1/summary");
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? (*s)["workloads"]["total"].get<int64_t>() : -1;
  };
  EXPECT_EQ(total(hourly_url), 0);
  EXPECT_EQ(total(always_url), 0);
  ASSERT_TRUE(Client()->CreateWorkloadFromText(kHello, "application/yaml").ok());
  EXPECT_EQ(total(hourly_url), 0);  // the answer it computed before
  EXPECT_EQ(total(always_url), 1);
  hourly->Stop();
  always->Stop();
}

}  // namespace
}  // namespace berth::api
