#include "api/http/router.h"

#include <memory>

#include "api/http/client.h"
#include "api/http/http_test_util.h"
#include "api/http/server.h"
#include "core/strings.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace berth::api {
namespace {

using testing::PollUntil;

TEST(SplitPathTest, DecodesSegmentsAndSkipsEmptyOnes) {
  EXPECT_EQ(*SplitPath("/v1/workloads/train-7"),
            (std::vector<std::string>{"v1", "workloads", "train-7"}));
  EXPECT_EQ(*SplitPath("/v1//a%2Fb/"), (std::vector<std::string>{"v1", "a/b"}));
  EXPECT_TRUE(SplitPath("/")->empty());
  EXPECT_FALSE(SplitPath("/v1/%zz").ok());
}

// A router served on loopback, with a client pointed at it.
class RouterTest : public ::testing::Test {
 protected:
  void Serve() {
    server_ = std::make_unique<HttpServer>(HttpServer::Options{}, router_.AsHandler());
    absl::StatusOr<uint16_t> port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    client_ = std::make_unique<HttpClient>(core::Cat("http://127.0.0.1:", *port));
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  static std::string ErrorCode(const HttpResponse& r) {
    return nlohmann::json::parse(r.body)["error"]["code"].get<std::string>();
  }

  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(RouterTest, RoutesByMethodAndPatternWithParams) {
  router_.Handle("GET", "/v1/workloads",
                 [](const HttpRequest& r) { return HttpResponse::Json(200, R"({"list":true})"); });
  router_.Handle("GET", "/v1/workloads/{name}", [](const HttpRequest& r) {
    return HttpResponse::Text(200, core::Cat("get ", r.Param("name"), " route ", r.route));
  });
  router_.Handle("POST", "/v1/workloads/{name}/actions/{action}", [](const HttpRequest& r) {
    return HttpResponse::Text(201, core::Cat(r.Param("action"), " ", r.Param("name"), " ", r.body));
  });
  Serve();

  auto list = client_->Get("/v1/workloads");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->status, 200);
  EXPECT_EQ(list->body, R"({"list":true})");
  EXPECT_EQ(list->Header("Content-Type"), "application/json");

  auto one = client_->Get("/v1/workloads/train-7");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->body, "get train-7 route /v1/workloads/{name}");

  auto trailing = client_->Get("/v1/workloads/train-7/");
  ASSERT_TRUE(trailing.ok());
  EXPECT_EQ(trailing->body, "get train-7 route /v1/workloads/{name}");

  auto encoded = client_->Get("/v1/workloads/" + PercentEncode("a b/c"));
  ASSERT_TRUE(encoded.ok());
  EXPECT_EQ(encoded->body, "get a b/c route /v1/workloads/{name}");

  auto action = client_->Post("/v1/workloads/train-7/actions/restart", "now");
  ASSERT_TRUE(action.ok()) << action.status();
  EXPECT_EQ(action->status, 201);
  EXPECT_EQ(action->body, "restart train-7 now");
}

TEST_F(RouterTest, LiteralSegmentBeatsParameter) {
  router_.Handle("GET", "/v1/workloads/{name}",
                 [](const HttpRequest& r) { return HttpResponse::Text(200, "param"); });
  router_.Handle("GET", "/v1/workloads/_summary",
                 [](const HttpRequest& r) { return HttpResponse::Text(200, "literal"); });
  Serve();
  EXPECT_EQ(client_->Get("/v1/workloads/_summary")->body, "literal");
  EXPECT_EQ(client_->Get("/v1/workloads/other")->body, "param");
}

TEST_F(RouterTest, UnknownPathIs404WithJsonError) {
  router_.Handle("GET", "/v1/workloads", [](const HttpRequest&) { return HttpResponse{}; });
  Serve();
  auto r = client_->Get("/v1/nothing/here");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->Header("Content-Type"), "application/json");
  EXPECT_EQ(ErrorCode(*r), "not_found");
  EXPECT_EQ(StatusFromResponse(r->status, r->body).code(), absl::StatusCode::kNotFound);
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  router_.Handle("GET", "/v1/workloads/{name}", [](const HttpRequest&) { return HttpResponse{}; });
  router_.Handle("DELETE", "/v1/workloads/{name}",
                 [](const HttpRequest&) { return HttpResponse{}; });
  Serve();
  auto r = client_->Post("/v1/workloads/x", "{}");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->Header("Allow"), "DELETE, GET, HEAD");
  EXPECT_EQ(ErrorCode(*r), "method_not_allowed");
}

TEST_F(RouterTest, HeadIsServedByGetWithoutBody) {
  router_.Handle("GET", "/v1/x", [](const HttpRequest&) { return HttpResponse::Text(200, "abc"); });
  Serve();
  auto r = client_->Request("HEAD", "/v1/x");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "");
  EXPECT_EQ(r->Header("Content-Length"), "3");
  // The connection stays usable after a bodiless response.
  EXPECT_EQ(client_->Get("/v1/x")->body, "abc");
}

TEST_F(RouterTest, QueryHeadersAndRemoteAddressReachTheHandler) {
  router_.Handle("GET", "/v1/watch", [](const HttpRequest& r) {
    nlohmann::json j = {{"index", r.Query("index").value_or("")},
                        {"wait", r.Query("wait").value_or("")},
                        {"label", r.Query("label").value_or("")},
                        {"agent", r.Header("x-agent").value_or("")},
                        {"remote", r.remote_address},
                        {"port", r.remote_port}};
    return HttpResponse::Json(200, j.dump());
  });
  Serve();
  HttpHeaders extra;
  extra.Add("X-Agent", "host-1");
  auto r = client_->Request("GET", "/v1/watch?index=5&wait=30s&label=gpu%3Da100+x", {}, {}, extra);
  ASSERT_TRUE(r.ok()) << r.status();
  nlohmann::json j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["index"], "5");
  EXPECT_EQ(j["wait"], "30s");
  EXPECT_EQ(j["label"], "gpu=a100 x");
  EXPECT_EQ(j["agent"], "host-1");
  EXPECT_EQ(j["remote"], "127.0.0.1");
  EXPECT_NE(j["port"], 0);
}

TEST_F(RouterTest, MalformedQueryOrPathIs400) {
  router_.Handle("GET", "/v1/{x}", [](const HttpRequest&) { return HttpResponse{}; });
  Serve();
  auto q = client_->Get("/v1/a?wait=%zz");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->status, 400);
  auto p = client_->Get("/v1/%zz");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->status, 400);
  EXPECT_EQ(ErrorCode(*p), "bad_request");
}

TEST_F(RouterTest, BeforeHookCanRejectAndAnnotate) {
  router_.Before([](HttpRequest& r) -> std::optional<HttpResponse> {
    if (r.path == "/healthz") return std::nullopt;
    if (r.Header("Authorization") != "Bearer s3cret") {
      return HttpResponse::Error(401, "unauthenticated", "missing or wrong bearer token");
    }
    r.attributes["principal"] = "admin";
    return std::nullopt;
  });
  router_.Handle("GET", "/v1/me", [](const HttpRequest& r) {
    return HttpResponse::Text(200, r.attributes.at("principal"));
  });
  router_.Handle("GET", "/healthz",
                 [](const HttpRequest&) { return HttpResponse::Text(200, "ok"); });
  Serve();

  auto denied = client_->Get("/v1/me");
  ASSERT_TRUE(denied.ok());
  EXPECT_EQ(denied->status, 401);
  EXPECT_EQ(ErrorCode(*denied), "unauthenticated");
  EXPECT_EQ(client_->Get("/healthz")->status, 200);

  HttpClient authed(client_->base_url(), HttpClientOptions{.bearer_token = "s3cret"});
  auto me = authed.Get("/v1/me");
  ASSERT_TRUE(me.ok()) << me.status();
  EXPECT_EQ(me->status, 200);
  EXPECT_EQ(me->body, "admin");
}

TEST_F(RouterTest, AfterHookSeesRouteStatusAndLatency) {
  absl::Mutex mu;
  std::vector<std::string> seen;
  router_.After([&](const HttpRequest& r, int status, absl::Duration latency) {
    absl::MutexLock lock(&mu);
    EXPECT_GE(latency, absl::ZeroDuration());
    seen.push_back(core::Cat(r.method, " ", r.route, " ", status));
  });
  router_.Handle("GET", "/v1/workloads/{name}",
                 [](const HttpRequest&) { return HttpResponse::Text(200, "x"); });
  Serve();
  client_->Get("/v1/workloads/a").IgnoreError();
  client_->Get("/v1/missing").IgnoreError();
  client_->Post("/v1/workloads/a", "").IgnoreError();
  ASSERT_TRUE(PollUntil([&] {
    absl::MutexLock lock(&mu);
    return seen.size() == 3;
  }));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(seen,
            (std::vector<std::string>{"GET /v1/workloads/{name} 200", "GET  404", "POST  405"}));
}

// Responder::ToSink: the router driven without a connection (tests, fuzzers).
TEST(RouterSinkTest, SinkGetsWholeAnswersStreamsAndDroppedRequests) {
  Router router;
  router.Handle("GET", "/plain", [](const HttpRequest&) { return HttpResponse::Text(201, "hi"); });
  router.HandleAsync("GET", "/stream", [](const HttpRequest&, Responder r) {
    HttpHeaders h;
    h.Set("Content-Type", "text/plain");
    ResponseStream out = r.StartStream(200, h);
    EXPECT_TRUE(out.Write("a"));
    EXPECT_TRUE(out.Write("b"));
    out.Finish();
    EXPECT_FALSE(out.Write("c"));
  });
  router.HandleAsync("GET", "/drop", [](const HttpRequest&, Responder) {});
  std::vector<int> completed;
  router.After(
      [&](const HttpRequest&, int status, absl::Duration) { completed.push_back(status); });
  auto run = [&](const std::string& path) {
    HttpRequest req;
    req.method = "GET";
    req.path = req.target = path;
    std::vector<HttpResponse> got;
    router.Dispatch(req, Responder::ToSink([&](HttpResponse r) { got.push_back(std::move(r)); }));
    EXPECT_EQ(got.size(), 1u) << path;
    return got.empty() ? HttpResponse{} : got[0];
  };
  HttpResponse plain = run("/plain");
  EXPECT_EQ(plain.status, 201);
  EXPECT_EQ(plain.body, "hi");
  HttpResponse streamed = run("/stream");
  EXPECT_EQ(streamed.status, 200);
  EXPECT_EQ(streamed.body, "ab");
  EXPECT_EQ(streamed.Header("Content-Type"), "text/plain");
  EXPECT_EQ(run("/drop").status, 500);
  EXPECT_EQ(run("/nowhere").status, 404);
  EXPECT_EQ(completed, (std::vector<int>{201, 200, 500, 404}));
}

TEST(RouterDeathTest, DuplicateOrMalformedPatternsCrash) {
  Router router;
  router.Handle("GET", "/v1/{a}", [](const HttpRequest&) { return HttpResponse{}; });
  EXPECT_DEATH(router.Handle("GET", "/v1/{b}", [](const HttpRequest&) { return HttpResponse{}; }),
               "registered twice");
  EXPECT_DEATH(router.Handle("GET", "v1", [](const HttpRequest&) { return HttpResponse{}; }),
               "must start with");
  EXPECT_DEATH(router.Handle("GET", "/v1/{a", [](const HttpRequest&) { return HttpResponse{}; }),
               "bad parameter");
}

}  // namespace
}  // namespace berth::api
