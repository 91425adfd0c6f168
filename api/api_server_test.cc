#include "api/api_server.h"

#include <thread>

#include "api/http/client.h"
#include "core/log.h"
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
    o.max_body_bytes = 64 << 10;
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = "http://127.0.0.1:" + std::to_string(*port);
  }
  HttpClient Client(const std::string& token = "admin-secret") {
    return HttpClient(url_, HttpClient::Options{.bearer_token = token});
  }
  int64_t Revision() { return *store_.Revision(); }

  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> server_;
  std::string url_;
};

TEST_F(ApiServerTest, TokensAreRequired) {
  HttpClient anonymous(url_);
  EXPECT_EQ(anonymous.Get("/healthz")->status, 200);
  EXPECT_EQ(anonymous.Get("/v1/workloads")->status, 401);
  EXPECT_EQ(Client("wrong").Get("/v1/workloads")->status, 401);
  EXPECT_EQ(Client().Get("/v1/workloads")->status, 200);
  // A join token may register hosts but not create workloads.
  EXPECT_EQ(Client("join-secret").Post("/v1/workloads", kHello)->status, 403);
  EXPECT_EQ(Client("join-secret")
                .Post("/v1/hosts", R"({"name":"h1","inventory":{"cpu":"2","memory":"1Gi"}})")
                ->status,
            200);
}

TEST_F(ApiServerTest, CreateGetListDeleteFromYaml) {
  auto c = Client();
  auto created = c.Request("POST", "/v1/workloads", kHello, "application/yaml");
  ASSERT_TRUE(created.ok());
  ASSERT_EQ(created->status, 201) << created->body;
  Json body = Json::parse(created->body);
  EXPECT_EQ(body["name"], "hello");
  EXPECT_EQ(body["status"]["state"], "pending");
  EXPECT_EQ(body["spec"]["resources"]["cpu"], "500m");
  auto dup = c.Request("POST", "/v1/workloads", kHello, "application/yaml");
  EXPECT_EQ(dup->status, 409);
  auto got = c.Get("/v1/workloads/hello");
  ASSERT_EQ(got->status, 200);
  EXPECT_TRUE(got->Header("X-Berth-Index").has_value());
  auto list = Json::parse(c.Get("/v1/workloads")->body);
  EXPECT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(c.Delete("/v1/workloads/hello")->status, 200);
  EXPECT_EQ(c.Get("/v1/workloads/hello")->status, 404);
}

TEST_F(ApiServerTest, BadInputIsRefusedWithTheFieldAndChangesNothing) {
  auto c = Client();
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
  ASSERT_EQ(c.Post("/v1/hosts", R"({"name":"h1","inventory":{"cpu":"2","memory":"1Gi"}})")->status,
            200);
  auto first = c.Get("/v1/workloads");
  int64_t index = std::stoll(*first->Header("X-Berth-Index"));
  std::thread writer([&] {
    // The waiter may park before or after this write: both must see it.
    HttpClient w(url_, HttpClient::Options{.bearer_token = "admin-secret"});
    auto r = w.Request("POST", "/v1/workloads", kHello, "application/yaml");
    ASSERT_EQ(r->status, 201);
  });
  auto waited = c.Get("/v1/workloads?index=" + std::to_string(index) + "&wait=60s");
  writer.join();
  ASSERT_TRUE(waited.ok());
  EXPECT_EQ(waited->status, 200);
  EXPECT_GT(std::stoll(*waited->Header("X-Berth-Index")), index);
  // Nothing changes: the wait ends by its timer with the same index.
  int64_t now = std::stoll(*c.Get("/v1/workloads")->Header("X-Berth-Index"));
  auto idle = c.Get("/v1/workloads?index=" + std::to_string(now) + "&wait=200ms");
  EXPECT_EQ(idle->status, 200);
  EXPECT_EQ(std::stoll(*idle->Header("X-Berth-Index")), now);
  EXPECT_EQ(c.Get("/v1/workloads?index=x")->status, 400);
}

TEST_F(ApiServerTest, ActionsAndMetrics) {
  auto c = Client();
  ASSERT_EQ(c.Request("POST", "/v1/workloads", kHello, "application/yaml")->status, 201);
  EXPECT_EQ(c.Post("/v1/workloads/hello/actions/stop", "")->status, 200);
  EXPECT_EQ(Json::parse(c.Get("/v1/workloads/hello")->body)["status"]["state"], "stopped");
  EXPECT_EQ(c.Post("/v1/workloads/hello/actions/explode", "")->status, 400);
  EXPECT_EQ(c.Post("/v1/workloads/nope/actions/stop", "")->status, 404);
  auto metrics = c.Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("berth_workloads{state=\"stopped\"} 1"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("berth_hosts{state=\"ready\"} 0"), std::string::npos);
}

TEST_F(ApiServerTest, MetricsCountErrorsReportedInThisProcess) {
  core::ReportError("test.metrics", "disk d1: remove", absl::InternalError("boom"));
  core::ReportError("test.metrics", "disk d2: remove", absl::InternalError("boom"));
  int64_t expected = core::ErrorCounts()["test.metrics"];
  auto metrics = Client().Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("# TYPE berth_errors_total counter"), std::string::npos)
      << metrics->body;
  EXPECT_NE(
      metrics->body.find("berth_errors_total{where=\"test.metrics\"} " + std::to_string(expected)),
      std::string::npos)
      << metrics->body;
}

TEST_F(ApiServerTest, EventsListAndWait) {
  auto c = Client();
  ASSERT_EQ(c.Request("POST", "/v1/workloads", kHello, "application/yaml")->status, 201);
  auto events = Json::parse(c.Get("/v1/events")->body);
  ASSERT_EQ(events["items"].size(), 1u);
  EXPECT_EQ(events["items"][0]["type"], "created");
  int64_t rev = events["revision"];
  auto none = Json::parse(c.Get("/v1/events?index=" + std::to_string(rev) + "&wait=100ms")->body);
  EXPECT_EQ(none["items"].size(), 0u);
}

}  // namespace
}  // namespace berth::api

namespace berth::api {
namespace {

TEST_F(ApiServerTest, TenantQuotasThroughTheApi) {
  auto c = Client();
  auto bad = c.Put("/v1/tenants/team-a/quota", R"({"cpu": "lots"})");
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(bad->body.find("cpu"), std::string::npos);
  auto set = c.Put("/v1/tenants/team-a/quota", "cpu: 4\nmemory: 8Gi\ngpu: 2\n");
  ASSERT_EQ(set->status, 200) << set->body;
  auto tenants = Json::parse(c.Get("/v1/tenants")->body);
  ASSERT_EQ(tenants["items"].size(), 1u);
  EXPECT_EQ(tenants["items"][0]["quota"]["memory"], "8Gi");
  EXPECT_EQ(tenants["items"][0]["used"]["cpu"], "0");
  EXPECT_EQ(c.Delete("/v1/tenants/team-a/quota")->status, 200);
  EXPECT_EQ(c.Delete("/v1/tenants/team-a/quota")->status, 404);
}

}  // namespace
}  // namespace berth::api
