// Who may call what: the admin token, the join token, and each host's own credential, over
// HTTP against an ApiServer on a loopback port.
#include <string>
#include <vector>

#include "api/api_server.h"
#include "api/http/client.h"
#include "api/http/http_test_util.h"
#include "core/clock.h"
#include "core/quantity.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Json;

constexpr char kAdmin[] = "admin-secret";
constexpr char kJoin[] = "join-secret";

std::string HostBody(const std::string& name, const std::string& cpu = "2") {
  return Json{{"name", name}, {"inventory", {{"cpu", cpu}, {"memory", "1Gi"}}}}.dump();
}

std::string Message(const absl::StatusOr<HttpResponse>& r) {
  if (!r.ok()) return std::string(r.status().message());
  Json j = Json::parse(r->body, nullptr, false);
  if (!j.is_object() || !j.contains("error")) return r->body;
  return j["error"].value("message", "");
}

class HostAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    control_ = std::make_unique<control::ControlPlane>(
        &store_, control::ControlPlaneOptions{.clock = &clock_});
    ApiServerOptions o;
    o.admin_token = kAdmin;
    o.agent_tokens = {kJoin};
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    url_ = "http://127.0.0.1:" + std::to_string(*port);
  }

  absl::StatusOr<HttpResponse> Call(const std::string& token, std::string_view method,
                                    std::string_view path, std::string_view body = {}) {
    HttpClient c(url_, HttpClient::Options{.bearer_token = token});
    return c.Request(method, path, body);
  }
  int Status(const std::string& token, std::string_view method, std::string_view path,
             std::string_view body = {}) {
    auto r = Call(token, method, path, body);
    return r.ok() ? r->status : -1;
  }

  // Registers `name` with the join token; returns its credential.
  std::string Join(const std::string& name, const std::string& cpu = "2") {
    auto r = Call(kJoin, "POST", "/v1/hosts", HostBody(name, cpu));
    EXPECT_TRUE(r.ok() && r->status == 200) << Message(r);
    if (!r.ok()) return "";
    Json j = Json::parse(r->body, nullptr, false);
    EXPECT_TRUE(j.contains("credential")) << r->body;
    return j.value("credential", "");
  }

  // A workload placed on `host` (the only host when it is scheduled); returns its generation.
  int64_t Place(const std::string& name) {
    Json spec = {{"name", name},
                 {"kind", "process"},
                 {"command", {"/bin/true"}},
                 {"env", {{"API_KEY", "s3cret"}}},
                 {"resources", {{"cpu", "500m"}, {"memory", "64Mi"}}}};
    EXPECT_EQ(Status(kAdmin, "POST", "/v1/workloads", spec.dump()), 201);
    EXPECT_EQ(*control_->ScheduleOnce(), 1);
    return control_->GetWorkload(name)->status.generation;
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> server_;
  uint16_t port_ = 0;
  std::string url_;
};

TEST_F(HostAuthTest, RegistrationIssuesACredentialForThatHostAloneAndStoresOnlyItsDigest) {
  const std::string a = Join("node-a");
  ASSERT_EQ(a.rfind("node-a:", 0), 0u) << a;
  EXPECT_GE(a.size(), std::string("node-a:").size() + 48);
  const std::string b = Join("node-b");
  EXPECT_NE(a, b);
  // Nothing in the store holds a credential itself.
  auto all = store_.List("/");
  ASSERT_TRUE(all.ok());
  bool digest_seen = false;
  for (const auto& kv : all->kvs) {
    EXPECT_EQ(kv.value.find(a.substr(7)), std::string::npos) << kv.key;
    EXPECT_EQ(kv.value.find(b.substr(7)), std::string::npos) << kv.key;
    if (kv.key == control::HostCredentialKey("node-a")) {
      digest_seen = Json::parse(kv.value)["sha256"].get<std::string>().size() == 64;
    }
  }
  EXPECT_TRUE(digest_seen);
}

TEST_F(HostAuthTest, EachAgentRouteAnswersOnlyItsOwnHost) {
  const std::string a = Join("node-a");
  const int64_t generation = Place("job");  // on node-a, the only host so far
  const std::string b = Join("node-b");
  const std::string report =
      Json{{"host", "node-a"}, {"generation", generation}, {"state", "running"}}.dump();
  const std::string report_as_b =
      Json{{"host", "node-b"}, {"generation", generation}, {"state", "running"}}.dump();

  struct Row {
    std::string method, path, body;
    int join, host_a, host_b, admin;
  } rows[] = {
      {"PUT", "/v1/hosts/node-a/heartbeat", "", 403, 200, 403, 200},
      {"GET", "/v1/hosts/node-a/assignments", "", 403, 200, 403, 200},
      {"GET", "/v1/hosts/node-b/assignments", "", 403, 403, 200, 200},
      {"PUT", "/v1/workloads/job/status", report, 403, 200, 403, 200},
      {"PUT", "/v1/workloads/job/status", report_as_b, 403, 403, 403, 409},
      {"POST", "/v1/hosts", HostBody("node-a"), 409, 200, 403, 409},
      {"GET", "/v1/hosts", "", 403, 403, 403, 200},
      {"GET", "/v1/hosts/node-a", "", 403, 403, 403, 200},
      {"GET", "/v1/workloads", "", 403, 403, 403, 200},
      {"GET", "/v1/workloads/job", "", 403, 403, 403, 200},
      {"POST", "/v1/workloads/job/actions/stop", "", 403, 403, 403, 200},
      {"GET", "/v1/events", "", 403, 403, 403, 200},
      {"GET", "/metrics", "", 403, 403, 403, 200},
      {"PUT", "/v1/tenants/t/quota", R"({"cpu":"1"})", 403, 403, 403, 200},
      {"DELETE", "/v1/hosts/node-b", "", 403, 403, 403, 409},
  };
  for (const Row& row : rows) {
    const std::string what = row.method + " " + row.path + " " + row.body;
    EXPECT_EQ(Status(kJoin, row.method, row.path, row.body), row.join) << "join: " << what;
    EXPECT_EQ(Status(a, row.method, row.path, row.body), row.host_a) << "host a: " << what;
    EXPECT_EQ(Status(b, row.method, row.path, row.body), row.host_b) << "host b: " << what;
    EXPECT_EQ(Status(kAdmin, row.method, row.path, row.body), row.admin) << "admin: " << what;
  }
  // Host a reads its own assignments, the environment included; b sees none of it.
  auto own = Call(a, "GET", "/v1/hosts/node-a/assignments");
  ASSERT_EQ(own->status, 200);
  EXPECT_NE(own->body.find("s3cret"), std::string::npos);
  auto other = Call(b, "GET", "/v1/hosts/node-a/assignments");
  EXPECT_EQ(other->status, 403);
  EXPECT_EQ(other->body.find("s3cret"), std::string::npos);
  EXPECT_NE(Message(other).find("only for itself"), std::string::npos) << Message(other);
}

TEST_F(HostAuthTest, AnotherHostCannotFailAWorkloadOrClaimAHost) {
  Join("node-a");
  const int64_t generation = Place("job");
  const std::string b = Join("node-b", "100000");
  const int64_t before = *store_.Revision();
  // A status report for a workload on another host, under either name.
  for (const char* host : {"node-a", "node-b"}) {
    auto r = Call(b, "PUT", "/v1/workloads/job/status",
                  Json{{"host", host}, {"generation", generation}, {"state", "failed"}}.dump());
    EXPECT_EQ(r->status, 403) << host;
  }
  // Re-registering another host's name with its own credential, or with the join token.
  auto claim = Call(b, "POST", "/v1/hosts", HostBody("node-a", "100000"));
  EXPECT_EQ(claim->status, 403);
  auto rejoin = Call(kJoin, "POST", "/v1/hosts", HostBody("node-a", "100000"));
  EXPECT_EQ(rejoin->status, 409);
  EXPECT_NE(Message(rejoin).find("its own credential"), std::string::npos) << Message(rejoin);
  EXPECT_NE(Message(rejoin).find("berth host rm node-a"), std::string::npos) << Message(rejoin);
  EXPECT_EQ(*store_.Revision(), before);
  EXPECT_EQ(control_->GetWorkload("job")->status.state, core::WorkloadState::kScheduled);
  EXPECT_EQ(control_->GetHost("node-a")->inventory.capacity.cpu.value(), 2000);
}

TEST_F(HostAuthTest, AHostRegistersAgainWithItsCredentialAndKeepsIt) {
  const std::string a = Join("node-a");
  auto again = Call(a, "POST", "/v1/hosts", HostBody("node-a", "4"));
  ASSERT_EQ(again->status, 200) << again->body;
  EXPECT_FALSE(Json::parse(again->body).contains("credential"));
  EXPECT_EQ(control_->GetHost("node-a")->inventory.capacity.cpu.value(), 4000);
  EXPECT_EQ(Status(a, "PUT", "/v1/hosts/node-a/heartbeat"), 200);
  // A credential with its secret changed is no credential at all.
  std::string forged = a;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_EQ(Status(forged, "PUT", "/v1/hosts/node-a/heartbeat"), 401);
  EXPECT_EQ(Status("node-a:", "PUT", "/v1/hosts/node-a/heartbeat"), 401);
}

TEST_F(HostAuthTest, RemovingAHostNeedsItDownAndRevokesItsCredential) {
  const std::string a = Join("node-a");
  auto live = Call(kAdmin, "DELETE", "/v1/hosts/node-a");
  EXPECT_EQ(live->status, 409);
  EXPECT_NE(Message(live).find("is live"), std::string::npos) << Message(live);
  EXPECT_EQ(Status(kAdmin, "DELETE", "/v1/hosts/nope"), 404);

  clock_.Advance(absl::Seconds(16));
  ASSERT_EQ(*control_->CheckHostsOnce(), 1);
  auto removed = Call(kAdmin, "DELETE", "/v1/hosts/node-a");
  ASSERT_EQ(removed->status, 200) << removed->body;
  EXPECT_EQ(Json::parse(removed->body)["deleted"], true);
  EXPECT_EQ(Status(kAdmin, "GET", "/v1/hosts/node-a"), 404);
  EXPECT_FALSE(store_.Get(control::HostCredentialKey("node-a"))->kv.has_value());
  // The old credential is dead; the name can join afresh with the join token.
  EXPECT_EQ(Status(a, "PUT", "/v1/hosts/node-a/heartbeat"), 401);
  EXPECT_EQ(Status(a, "POST", "/v1/hosts", HostBody("node-a")), 401);
  const std::string fresh = Join("node-a");
  EXPECT_NE(fresh, a);
  EXPECT_EQ(Status(fresh, "PUT", "/v1/hosts/node-a/heartbeat"), 200);
}

TEST_F(HostAuthTest, AHostRecordedWithoutACredentialJoinsOnlyOnceDown) {
  // As an older server left it: a host record and no credential.
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu("2");
  inv.capacity.memory = *core::ParseMemory("1Gi");
  core::Host old{.name = "node-a", .inventory = inv};
  ASSERT_TRUE(store_.Put(control::HostKey("node-a"), core::EncodeHost(old).dump()).ok());
  auto live = Call(kJoin, "POST", "/v1/hosts", HostBody("node-a"));
  EXPECT_EQ(live->status, 409);
  EXPECT_NE(Message(live).find("once it is down"), std::string::npos) << Message(live);
  clock_.Advance(absl::Seconds(16));
  ASSERT_EQ(*control_->CheckHostsOnce(), 1);
  const std::string a = Join("node-a");
  EXPECT_EQ(Status(a, "PUT", "/v1/hosts/node-a/heartbeat"), 200);
}

TEST_F(HostAuthTest, ARepeatedAuthorizationHeaderIsRefused) {
  boost::asio::io_context ioc;
  testing::RawConnection raw(ioc, port_);
  raw.Send(testing::Get("/v1/workloads", std::string("Authorization: Bearer ") + kAdmin +
                                             "\r\nAuthorization: Bearer " + kAdmin + "\r\n"));
  auto r = raw.Read();
  EXPECT_EQ(r.result_int(), 400u);
  EXPECT_NE(r.body().find("Authorization"), std::string::npos) << r.body();
  testing::RawConnection once(ioc, port_);
  once.Send(testing::Get("/v1/workloads", std::string("Authorization: Bearer ") + kAdmin + "\r\n"));
  EXPECT_EQ(once.Read().result_int(), 200u);
}

}  // namespace
}  // namespace berth::api
