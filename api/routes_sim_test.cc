// The simulator's routes: a comparison on a generated cluster and trace runs to its curves; the
// live cluster's hosts can be the cluster; every client mistake is a 400 naming the field and
// starts nothing; one comparison at a time (409); only the admin token starts one.
#include "api/routes_sim.h"

#include <memory>

#include "absl/time/clock.h"
#include "api/api_server.h"
#include "api/client/client.h"
#include "api/http/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sim/sched_engine.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Json;
using ::testing::HasSubstr;

class SimRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control_ = std::make_unique<control::ControlPlane>(&store_, control::ControlPlaneOptions{});
    runs_ = std::make_unique<sim::FillRuns>(sim::SchedEngineFactory());
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    o.read_tokens = {"read-secret"};
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    AddSimRoutes(server_->router(), runs_.get(), control_.get());
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = "http://127.0.0.1:" + std::to_string(*port);
  }
  void TearDown() override {
    server_->Stop();
    runs_.reset();
  }
  HttpClient Http(const std::string& token = "admin-secret") {
    return HttpClient(url_, HttpClient::Options{.bearer_token = token});
  }
  // POST /v1/sim/fill: (status, body).
  std::pair<int, Json> Start(const Json& body, const std::string& token = "admin-secret") {
    auto r = Http(token).Post("/v1/sim/fill", body.dump());
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {0, Json()};
    return {r->status, Json::parse(r->body, nullptr, false)};
  }
  Json Wait(int64_t id) {
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    for (;;) {
      auto r = Http("read-secret").Get("/v1/sim/fill/" + std::to_string(id));
      EXPECT_TRUE(r.ok() && r->status == 200);
      if (!r.ok()) return Json();
      Json j = Json::parse(r->body, nullptr, false);
      if (j["state"] != "running" || absl::Now() > deadline) return j;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<sim::FillRuns> runs_;
  std::unique_ptr<ApiServer> server_;
  std::string url_;
};

constexpr char kCluster[] =
    "name,cpu,memory,gpus,gpu_model\n"
    "a,32,128Gi,8,A100\n"
    "b,32,128Gi,8,A100\n"
    "c,32,128Gi,4,V100\n";

TEST_F(SimRoutesTest, ProfilesAreListed) {
  auto r = Http("read-secret").Get("/v1/sim/profiles");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->status, 200) << r->body;
  Json j = Json::parse(r->body);
  ASSERT_GE(j["items"].size(), 2u);
  EXPECT_EQ(j["items"][0]["name"], "default");
  bool openb = false;
  for (const Json& p : j["items"]) openb = openb || p["name"] == "openb";
  EXPECT_TRUE(openb);
}

TEST_F(SimRoutesTest, AComparisonRunsToItsSummaryAndCurves) {
  auto [status, started] = Start({{"cluster", {{"text", kCluster}}},
                                  {"trace", {{"profile", "default"}, {"requests", 200}}},
                                  {"policies", {"default", "first-fit"}},
                                  {"seeds", "1..3"}});
  ASSERT_EQ(status, 202) << started.dump();
  EXPECT_EQ(started["cluster"], "uploaded");
  EXPECT_EQ(started["hosts"], 3);
  EXPECT_EQ(started["gpus"], 20);
  EXPECT_EQ(started["requests"], 200);
  EXPECT_EQ(started["progress"]["total"], 6);
  Json done = Wait(started["id"].get<int64_t>());
  ASSERT_EQ(done["state"], "done") << done.dump();
  EXPECT_EQ(done["progress"]["done"], 6);
  ASSERT_EQ(done["curves"].size(), 2u);
  EXPECT_EQ(done["curves"][1]["policy"], "first-fit");
  // The curve grid runs every 1 % from 75 % to the target (130 %).
  const Json& arrived = done["curves"][0]["arrived_pct"];
  ASSERT_EQ(arrived.size(), 56u);
  EXPECT_EQ(arrived.front(), 75);
  EXPECT_EQ(arrived.back(), 130);
  EXPECT_TRUE(done["summary"]["policies"].contains("default"));
  // Listed, newest first.
  auto list = Http("read-secret").Get("/v1/sim/fill");
  ASSERT_TRUE(list.ok());
  Json items = Json::parse(list->body)["items"];
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["state"], "done");
}

TEST_F(SimRoutesTest, TheLiveClusterIsTheHostsThatAreReady) {
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(64000);
  inv.capacity.memory = core::MemoryMiB(256 * 1024);
  for (int i = 0; i < 4; ++i) inv.gpus.push_back({.index = i, .model = "A100"});
  ASSERT_TRUE(control_->RegisterHost("g1", inv).ok());
  ASSERT_TRUE(control_->RegisterHost("g2", inv).ok());
  auto [status, started] = Start({{"cluster", {{"live", true}}},
                                  {"trace", {{"profile", "default"}, {"requests", 50}}},
                                  {"seeds", "7"}});
  ASSERT_EQ(status, 202) << started.dump();
  EXPECT_EQ(started["cluster"], "live");
  EXPECT_EQ(started["hosts"], 2);
  EXPECT_EQ(started["gpus"], 8);
  EXPECT_EQ(started["policies"], Json::array({"default"}));
  EXPECT_EQ(Wait(started["id"].get<int64_t>())["state"], "done");
}

TEST_F(SimRoutesTest, MistakesAreRefusedNamingTheFieldAndStartNothing) {
  const Json trace = {{"profile", "default"}, {"requests", 20}};
  const Json cluster = {{"text", kCluster}};
  struct Case {
    Json body;
    std::string field;
  };
  const std::vector<Case> cases = {
      {Json::array(), "must be an object"},
      {{{"trace", trace}}, "\"cluster\": is required"},
      {{{"cluster", cluster}}, "\"trace\": is required"},
      {{{"cluster", cluster}, {"trace", trace}, {"bogus", 1}}, "\"bogus\": unknown field"},
      {{{"cluster", {{"profile", "openb"}, {"live", true}}}, {"trace", trace}},
       "\"cluster\": give exactly one"},
      {{{"cluster", {{"profile", "nope"}}}, {"trace", trace}}, "\"cluster.profile\""},
      {{{"cluster", {{"live", 1}}}, {"trace", trace}}, "\"cluster.live\": must be true"},
      {{{"cluster", {{"text", "name,cpu\nx,banana\n"}}}, {"trace", trace}}, "\"cluster.text\""},
      {{{"cluster", {{"text", kCluster}, {"format", "xml"}}}, {"trace", trace}},
       "\"cluster.format\""},
      {{{"cluster", cluster}, {"trace", {{"profile", "default"}, {"requests", 0}}}},
       "\"trace.requests\": must be a whole number"},
      {{{"cluster", cluster}, {"trace", {{"profile", "default"}, {"requests", 1e12}}}},
       "\"trace.requests\""},
      {{{"cluster", cluster}, {"trace", {{"text", "x"}, {"requests", 5}}}},
       "\"trace.requests\": goes with profile only"},
      {{{"cluster", cluster}, {"trace", trace}, {"policies", Json::array()}}, "\"policies\""},
      {{{"cluster", cluster}, {"trace", trace}, {"policies", {"default", 3}}}, "\"policies[1]\""},
      {{{"cluster", cluster}, {"trace", trace}, {"policies", {"default", "no-such"}}},
       "policies[1]"},
      {{{"cluster", cluster}, {"trace", trace}, {"seeds", "1..100"}}, "\"seeds\": names 100"},
      {{{"cluster", cluster}, {"trace", trace}, {"seeds", 5}}, "\"seeds\": must be a string"},
      {{{"cluster", cluster}, {"trace", trace}, {"target_pct", 50}}, "\"target_pct\""},
      {{{"cluster", {{"text", "name,cpu,memory,gpus\nx,8,16Gi,0\n"}}}, {"trace", trace}},
       "no GPUs"},
  };
  for (const Case& c : cases) {
    auto [status, body] = Start(c.body);
    EXPECT_EQ(status, 400) << c.body.dump().substr(0, 200) << " -> " << body.dump();
    const std::string message = body["error"].value("message", "");
    EXPECT_THAT(message, HasSubstr(c.field)) << c.body.dump().substr(0, 200);
  }
  // A text past the server's body limit is refused before it is read.
  auto [too_big, answer] =
      Start({{"cluster", {{"text", std::string(1 << 20, 'x')}}}, {"trace", trace}});
  EXPECT_EQ(too_big, 413) << answer.dump();
  auto list = Http().Get("/v1/sim/fill");
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(Json::parse(list->body)["items"].empty());
  auto bad_id = Http().Get("/v1/sim/fill/zero");
  ASSERT_TRUE(bad_id.ok());
  EXPECT_EQ(bad_id->status, 400);
  auto missing = Http().Get("/v1/sim/fill/99");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
}

TEST_F(SimRoutesTest, OneAtATimeAndOnlyTheAdminTokenStartsOne) {
  const Json body = {{"cluster", {{"profile", "openb"}}},
                     {"trace", {{"profile", "openb"}, {"requests", 2000}}},
                     {"policies", {"default", "first-fit"}},
                     {"seeds", "1..2"}};
  auto [refused, why] = Start(body, "read-secret");
  EXPECT_EQ(refused, 403) << why.dump();
  auto [status, started] = Start(body);
  ASSERT_EQ(status, 202) << started.dump();
  auto [second, answer] = Start(
      {{"cluster", {{"text", kCluster}}}, {"trace", {{"profile", "default"}, {"requests", 20}}}});
  // Unless the first already finished, the second is refused while it runs.
  if (second != 202) {
    EXPECT_EQ(second, 409) << answer.dump();
    EXPECT_THAT(answer["error"].value("message", ""), HasSubstr("still running"));
  }
  EXPECT_EQ(Wait(started["id"].get<int64_t>())["state"], "done");
}

}  // namespace
}  // namespace berth::api
