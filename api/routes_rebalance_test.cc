// GET /v1/rebalance/plan over loopback: a plan through the typed client, the read-only token,
// and 4xx answers naming the bad parameter.
#include <string>
#include <vector>

#include "api/api_server.h"
#include "api/client/client.h"
#include "api/http/client.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Cat;
using core::Json;

class RebalanceRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Spread puts one share on each host: an 8-GPU workload then needs one moved.
    control_ = std::make_unique<control::ControlPlane>(
        &store_, control::ControlPlaneOptions{.policy = "spread"});
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    o.read_tokens = {"read-secret"};
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = Cat("http://127.0.0.1:", *port);
    client_ = std::make_unique<Client>(url_, ClientOptions{.token = "admin-secret"});
    for (const char* host : {"h1", "h2"}) {
      core::HostInventory inv;
      inv.capacity.cpu = core::MilliCpu(64000);
      inv.capacity.memory = core::MemoryMiB(1 << 19);
      for (int i = 0; i < 8; ++i) {
        inv.gpus.push_back({.index = i, .model = "A100-SXM4-80GB", .memory_mib = 81920});
      }
      ASSERT_TRUE(control_->RegisterHost(host, inv).ok());
    }
    Create("s1", {{"share", "500m"}});
    Create("s2", {{"share", "500m"}});
    ASSERT_EQ(*control_->ScheduleOnce(), 2);
    Create("train", {{"count", 8}});
  }
  void Create(const std::string& name, Json gpu) {
    Json spec = {{"name", name},
                 {"kind", "process"},
                 {"command", {"/bin/true"}},
                 {"restart", "on-failure"},
                 {"resources", {{"cpu", "1"}, {"memory", "1Gi"}, {"gpu", gpu}}}};
    auto w = client_->CreateWorkloadFromText(spec.dump());
    ASSERT_TRUE(w.ok()) << w.status();
  }
  std::pair<int, Json> Get(const std::string& target, const std::string& token = "admin-secret") {
    HttpClient raw(url_, HttpClient::Options{.bearer_token = token});
    auto r = raw.Get(target);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {0, Json()};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }

  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<Client> client_;
  std::string url_;
};

TEST_F(RebalanceRoutesTest, APlanNamesTheMovesAndChangesNothing) {
  const int64_t revision = *store_.Revision();
  auto plan = client_->RebalancePlan({.workload = "train", .max_moves = 2});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ((*plan)["dry_run"], true);
  EXPECT_EQ((*plan)["policy"], "spread");
  EXPECT_EQ((*plan)["max_moves"], 2);
  EXPECT_EQ((*plan)["gpu"]["stranded_milli"], 1000);
  ASSERT_EQ((*plan)["items"].size(), 1u);
  const Json& train = (*plan)["items"][0];
  EXPECT_EQ(train["workload"], "train");
  EXPECT_EQ(train["outcome"], "plan") << train.dump();
  // Both hosts need one move of a process (cost 1); the lower host index wins the tie.
  EXPECT_EQ(train["host"], "h1");
  ASSERT_EQ(train["moves"].size(), 1u);
  EXPECT_EQ(train["moves"][0]["workload"], "s1");
  EXPECT_EQ(train["moves"][0]["from"], "h1");
  EXPECT_EQ(train["moves"][0]["to"], "h2");
  EXPECT_EQ(train["moves"][0]["cost"], 1);
  EXPECT_EQ(*store_.Revision(), revision);
  EXPECT_EQ(control_->GetWorkload("s1")->status.host, "h1");

  // A read: the read-only token may ask.
  auto [status, body] = Get("/v1/rebalance/plan", "read-secret");
  EXPECT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["pending"], 1);
}

TEST_F(RebalanceRoutesTest, BadParametersAre4xxNamingTheParameter) {
  struct Case {
    std::string target;
    int status;
    std::string names;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/rebalance/plan?max_moves=0", 400, "query: max_moves"},
           {"/v1/rebalance/plan?max_moves=17", 400, "query: max_moves"},
           {"/v1/rebalance/plan?max_moves=two", 400, "query: max_moves"},
           {"/v1/rebalance/plan?max_moves=1&max_moves=2", 400, "query: max_moves"},
           {"/v1/rebalance/plan?limit=0", 400, "query: limit"},
           {"/v1/rebalance/plan?limit=201", 400, "query: limit"},
           {"/v1/rebalance/plan?workload=", 400, "query: workload"},
           {"/v1/rebalance/plan?workload=Not_A_Name", 400, "query: workload"},
           {"/v1/rebalance/plan?moves=3", 400, "query: \"moves\""},
           {"/v1/rebalance/plan?workload=nosuch", 404, "workload \"nosuch\" not found"},
           {"/v1/rebalance/plan?workload=s1", 409, "workload \"s1\" is scheduled on h1"},
       }) {
    auto [status, body] = Get(c.target);
    EXPECT_EQ(status, c.status) << c.target << ": " << body.dump();
    ASSERT_TRUE(body.is_object() && body.contains("error")) << c.target;
    EXPECT_NE(body["error"]["message"].get<std::string>().find(c.names), std::string::npos)
        << c.target << ": " << body.dump();
  }
}

}  // namespace
}  // namespace berth::api
