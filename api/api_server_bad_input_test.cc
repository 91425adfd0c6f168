// Hostile and mistaken request bodies against the real ApiServer over loopback: each is a 4xx
// with a JSON error naming the field, changes nothing, and the server answers normally after.
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "api/api_server.h"
#include "api/http/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Json;
using ::testing::HasSubstr;

constexpr char kHello[] = R"({"name":"hello","kind":"process","command":["x"]})";
constexpr char kHost[] = R"({"name":"h1","inventory":{"cpu":"2","memory":"1Gi"}})";

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control_ = std::make_unique<control::ControlPlane>(&store_, control::ControlPlaneOptions{});
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    o.agent_tokens = {"join-secret"};
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    server_->router().Handle("GET", "/v1/test/throw", [](const HttpRequest&) -> HttpResponse {
      throw std::runtime_error("boom");
    });
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = "http://127.0.0.1:" + std::to_string(*port);
  }
  HttpClient Client(const std::string& token = "admin-secret") {
    return HttpClient(url_, HttpClient::Options{.bearer_token = token});
  }

  // Sends `body`, expects a 4xx JSON error whose message holds `mentions`, and checks that the
  // server still answers and nothing changed.
  void ExpectRefused(const std::string& method, const std::string& path, const std::string& body,
                     const std::string& mentions, const std::string& token = "admin-secret") {
    SCOPED_TRACE(method + " " + path + " " + body.substr(0, 60));
    int64_t before = *store_.Revision();
    auto r = Client(token).Request(method, path, body, "application/json");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_GE(r->status, 400);
    EXPECT_LT(r->status, 500) << r->body;
    Json err = Json::parse(r->body, nullptr, false);
    ASSERT_TRUE(err.is_object()) << r->body;
    EXPECT_THAT(err["error"]["message"].get<std::string>(), HasSubstr(mentions));
    EXPECT_EQ(*store_.Revision(), before);
    auto health = HttpClient(url_).Get("/healthz");
    ASSERT_TRUE(health.ok());
    EXPECT_EQ(health->status, 200);
  }

  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> server_;
  std::string url_;
};

std::string Deep(int levels) {
  std::string s;
  for (int i = 0; i < levels; ++i) s += "{\"a\":";
  return s + "1" + std::string(levels, '}');
}

TEST_F(BadInputTest, YamlReproducers) {
  ExpectRefused("POST", "/v1/workloads", "a: &a [*a]", "aliases are not supported");
  ExpectRefused("POST", "/v1/workloads", ",", "malformed YAML");
  std::string laughs = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 8; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    laughs += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + prev;
    for (int k = 0; k < 8; ++k) laughs += ", " + prev;
    laughs += "]\n";
  }
  ExpectRefused("POST", "/v1/workloads", laughs, "not supported");
  ExpectRefused("PUT", "/v1/tenants/team-a/quota", "a: &a [*a]", "quota \"team-a\"");
  EXPECT_EQ(Client().Post("/v1/workloads", kHello)->status, 201);
}

TEST_F(BadInputTest, DeviceRequestsAndQuotasNameTheField) {
  const std::string base = R"({"name":"f","kind":"process","command":["true"],"devices":)";
  ExpectRefused("POST", "/v1/workloads", base + R"([{"class":"fpga","count":1}]})",
                "devices[0].class");
  ExpectRefused("POST", "/v1/workloads", base + R"([{"class":"xilinx.com/fpga","count":-1}]})",
                "devices[0].count");
  ExpectRefused("POST", "/v1/workloads", base + R"([{"class":"xilinx.com/fpga","count":[]}]})",
                "devices[0].count");
  ExpectRefused("POST", "/v1/workloads", base + R"("xilinx.com/fpga"})", "devices");
  ExpectRefused("PUT", "/v1/tenants/t/quota", R"({"devices":{"xilinx.com/fpga":-1}})",
                "devices.xilinx.com/fpga");
  ExpectRefused("PUT", "/v1/tenants/t/quota", R"({"devices":{"fpga":1}})", "devices.fpga");
  ExpectRefused("PUT", "/v1/tenants/t/quota", R"({"devices":[1]})", "devices");
}

TEST_F(BadInputTest, DeepJson) {
  ExpectRefused("POST", "/v1/hosts", Deep(100000), "more than 64 deep", "join-secret");
  ExpectRefused("PUT", "/v1/tenants/x/quota", Deep(100000), "more than 64 deep");
  ExpectRefused("POST", "/v1/workloads", std::string(100000, '[') + std::string(100000, ']'),
                "more than 64 deep");
  // Within the depth limit, error messages quoting a deep value stay short.
  ExpectRefused("PUT", "/v1/tenants/x/quota", R"({"cpu": )" + Deep(60) + "}", "cpu");
}

TEST_F(BadInputTest, OutOfRangeNumbersOnEveryJsonRoute) {
  ASSERT_EQ(Client().Post("/v1/workloads", kHello)->status, 201);
  const std::string big = R"({"name": 1e400})";
  ExpectRefused("POST", "/v1/workloads", big, "field \"name\": number is out of range");
  ExpectRefused("POST", "/v1/hosts", big, "field \"name\": number is out of range");
  ExpectRefused("PUT", "/v1/workloads/hello/status", R"({"generation": 1e400})",
                "field \"generation\": number is out of range");
  ExpectRefused("POST", "/v1/workloads/hello/exec", R"({"argv": [1e400]})",
                "field \"argv[0]\": number is out of range");
  ExpectRefused("PUT", "/v1/tenants/x/quota", R"({"cpu": 1e400})", "field \"cpu\"");
}

TEST_F(BadInputTest, TypeChecks) {
  ASSERT_EQ(Client().Post("/v1/workloads", kHello)->status, 201);
  ExpectRefused("PUT", "/v1/workloads/hello/status", R"({"state": 5})", "state");
  ExpectRefused("PUT", "/v1/workloads/hello/status", R"({"state": "running", "host": []})",
                "host must be a string");
  ExpectRefused("PUT", "/v1/workloads/hello/status", R"({"state": "stopped", "exit_code": "1"})",
                "exit_code must be an integer");
  ExpectRefused("PUT", "/v1/workloads/hello/status", R"({"state": "stopped", "oom_killed": 1})",
                "oom_killed must be true or false");
  ExpectRefused("PUT", "/v1/workloads/hello/status", R"({"state": "bogus"})",
                "state is not a workload state");
  auto gpu_host = [](const std::string& gpu) {
    return R"({"name":"g1","inventory":{"cpu":"8","memory":"8Gi","gpus":[)" + gpu + "]}}";
  };
  ExpectRefused("POST", "/v1/hosts", gpu_host(R"({"model":"A100","index":"zero"})"),
                "inventory.gpus[0].index must be an integer", "join-secret");
  ExpectRefused("POST", "/v1/hosts", gpu_host(R"({"model":7})"), "inventory.gpus[0].model",
                "join-secret");
  ExpectRefused("POST", "/v1/hosts", gpu_host(R"({"model":"A100","numa_node":[1]})"),
                "inventory.gpus[0].numa_node", "join-secret");
  ExpectRefused("POST", "/v1/hosts", gpu_host(R"({"model":"A100","mig_enabled":"yes"})"),
                "inventory.gpus[0].mig_enabled", "join-secret");
  ExpectRefused("POST", "/v1/hosts", gpu_host(R"({"model":"A100","uuid":{}})"),
                "inventory.gpus[0].uuid", "join-secret");
  ExpectRefused("POST", "/v1/hosts", gpu_host(R"({"model":"A100","memory":[[1]]})"),
                "inventory.gpus[0].memory", "join-secret");
  ExpectRefused(
      "POST", "/v1/hosts",
      R"({"name":"h","inventory":{"cpu":"2","memory":"1Gi","devices":[{"class":"fpga"}]}})",
      "inventory.devices[0].class", "join-secret");
  ExpectRefused("POST", "/v1/hosts", R"({"name":5,"inventory":{}})", "name must be a string",
                "join-secret");
  ExpectRefused("POST", "/v1/hosts",
                R"({"name":"h","inventory":{"cpu":"2","memory":"1Gi","os":1}})", "inventory.os",
                "join-secret");
  EXPECT_EQ(Client("join-secret").Post("/v1/hosts", kHost)->status, 200);
}

TEST_F(BadInputTest, InvalidUtf8) {
  ExpectRefused("POST", "/v1/workloads",
                "{\"name\":\"x\",\"kind\":\"process\",\"command\":[\"a\"],"
                "\"labels\":{\"rack\":\"\xff\"}}",
                "workload \"x\": field \"labels.rack\": not valid UTF-8");
  ExpectRefused("POST", "/v1/workloads",
                "name: x\nkind: process\ncommand: [a]\nlabels:\n  rack: \"\xc3\x28\"\n",
                "not valid UTF-8");
  ExpectRefused("POST", "/v1/hosts",
                "{\"name\":\"h\",\"inventory\":{\"cpu\":\"2\",\"memory\":\"1Gi\","
                "\"labels\":{\"\xed\xa0\x80\":\"a\"}}}",
                "not valid UTF-8", "join-secret");
}

TEST_F(BadInputTest, AThrowingHandlerIsA500AndTheServerGoesOn) {
  auto r = Client().Get("/v1/test/throw");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 500);
  Json err = Json::parse(r->body, nullptr, false);
  EXPECT_EQ(err["error"]["code"], "internal");
  EXPECT_THAT(err["error"]["message"].get<std::string>(), HasSubstr("boom"));
  EXPECT_EQ(Client().Post("/v1/workloads", kHello)->status, 201);
}

// The router can be driven without sockets: a Responder that hands the response to a sink.
TEST_F(BadInputTest, RoutesAnswerThroughASink) {
  HttpRequest req;
  req.method = "POST";
  req.path = req.target = "/v1/workloads";
  req.headers.Set("Authorization", "Bearer admin-secret");
  req.body = "a: &a [*a]";
  // The handler runs on one of the server's workers: the sink is called from there.
  HttpResponse got;
  absl::Notification answered;
  server_->router().Dispatch(req, Responder::ToSink([&](HttpResponse r) {
                               got = std::move(r);
                               answered.Notify();
                             }));
  answered.WaitForNotification();
  EXPECT_EQ(got.status, 400);
  EXPECT_THAT(got.body, HasSubstr("aliases"));
}

}  // namespace
}  // namespace berth::api
