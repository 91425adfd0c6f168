// The network routes over HTTP: integer fields are range-checked before they are narrowed, an
// address owner must be a workload name, and the API's own port cannot be forwarded.
#include <memory>
#include <string>

#include "api/http/client.h"
#include "api/http/router.h"
#include "api/http/server.h"
#include "api/storenet_routes.h"
#include "api/wire/host_network.h"
#include "core/clock.h"
#include "core/json.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Json;

// A host that does whatever it is asked.
class OkNetworkHost : public control::NetworkHost {
 public:
  absl::StatusOr<std::string> EnsureNetwork(const control::HostNetwork& n) override {
    return "br-" + n.name;
  }
  absl::Status DeleteNetwork(std::string_view) override { return absl::OkStatus(); }
  absl::Status PutGroup(const control::HostGroup&) override { return absl::OkStatus(); }
  absl::Status DeleteGroup(std::string_view) override { return absl::OkStatus(); }
  absl::Status AddForward(const control::HostForward&) override { return absl::OkStatus(); }
  absl::Status RemoveForward(std::string_view) override { return absl::OkStatus(); }
  absl::Status Cleanup(const control::HostKeep&) override { return absl::OkStatus(); }
  absl::StatusOr<control::HostEndpoint> AttachEndpoint(
      const control::HostEndpointSpec& spec) override {
    return control::HostEndpoint{.host_ifname = "veth-" + spec.owner, .address = spec.address};
  }
  absl::Status DetachEndpoint(std::string_view, std::string_view) override {
    return absl::OkStatus();
  }
};

class NetworkRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AddNetworkRoutes(router_, &nets_);
    server_ = std::make_unique<HttpServer>(HttpServer::Options{}, router_.AsHandler());
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    client_ = std::make_unique<HttpClient>("http://127.0.0.1:" + std::to_string(*port));
    ASSERT_EQ(Post("/v1/networks", R"({"name":"n1","subnet":"10.88.0.0/24"})").status, 201);
    ASSERT_EQ(Post("/v1/networks/n1/addresses", R"({"owner":"w1"})").status, 201);
  }
  void TearDown() override { server_->Stop(); }

  HttpResponse Post(std::string_view path, std::string_view body) {
    auto r = client_->Post(path, body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }
  static std::string MessageOf(const HttpResponse& r) {
    Json j = Json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"].value("message", "") : r.body;
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  OkNetworkHost host_;
  control::NetworkService nets_{&store_, &clock_, &host_};
  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(NetworkRoutesTest, PortsOutsideTheirRangeAreRefusedNotWrapped) {
  const int64_t before = *store_.Revision();
  struct Case {
    std::string body;
    std::string field;
  } cases[] = {
      {R"({"host_port":4294967318,"workload":"w1","port":80})", "host_port"},  // 2^32 + 22
      {R"({"host_port":18446744073709551615,"workload":"w1","port":80})", "host_port"},
      {R"({"host_port":-65514,"workload":"w1","port":80})", "host_port"},
      {R"({"host_port":65536,"workload":"w1","port":80})", "host_port"},
      {R"({"host_port":8080,"workload":"w1","port":4294967376})", "port"},  // 2^32 + 80
      {R"({"host_port":8080,"workload":"w1","port":0})", "port"},
      {R"({"host_port":"22","workload":"w1","port":80})", "host_port"},
      {R"({"host_port":22.5,"workload":"w1","port":80})", "host_port"},
      // One host (serve --dev) names no other host; a host is a string.
      {R"({"host_port":8080,"workload":"w1","port":80,"host":"h2"})", "host names a host"},
      {R"({"host_port":8080,"workload":"w1","port":80,"host":7})", "host must be a string"},
  };
  for (const Case& c : cases) {
    HttpResponse r = Post("/v1/portforwards", c.body);
    EXPECT_EQ(r.status, 400) << c.body << " -> " << r.body;
    EXPECT_NE(MessageOf(r).find("portforward"), std::string::npos) << r.body;
    EXPECT_NE(MessageOf(r).find(c.field), std::string::npos) << r.body;
  }
  EXPECT_EQ(*store_.Revision(), before);
  EXPECT_EQ(Post("/v1/portforwards", R"({"host_port":65535,"workload":"w1","port":1})").status,
            201);
}

TEST_F(NetworkRoutesTest, AnAddressOwnerMustBeAWorkloadName) {
  const int64_t before = *store_.Revision();
  for (std::string owner : {"a\nb", "x; rm -rf /", "$(id)", "../etc", ""}) {
    HttpResponse r = Post("/v1/networks/n1/addresses", Json{{"owner", owner}}.dump());
    EXPECT_EQ(r.status, 400) << owner;
    EXPECT_NE(MessageOf(r).find("network \"n1\": owner"), std::string::npos) << r.body;
  }
  EXPECT_EQ(*store_.Revision(), before);
}

TEST_F(NetworkRoutesTest, TheApisOwnPortCannotBeForwarded) {
  nets_.ReserveHostPort(7070, "Berth's API");
  HttpResponse r = Post("/v1/portforwards", R"({"host_port":7070,"workload":"w1","port":80})");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(MessageOf(r).find("host_port 7070"), std::string::npos) << r.body;
  EXPECT_NE(MessageOf(r).find("Berth's API"), std::string::npos) << r.body;
}

TEST_F(NetworkRoutesTest, NetworksAndPortForwardsPage) {
  ASSERT_EQ(Post("/v1/networks", R"({"name":"n0","subnet":"10.89.0.0/24"})").status, 201);
  ASSERT_EQ(Post("/v1/networks", R"({"name":"n2","subnet":"10.90.0.0/24"})").status, 201);
  std::vector<std::string> names;
  std::string next;
  int pages = 0;
  do {
    auto r = client_->Get("/v1/networks?limit=2" + (next.empty() ? "" : "&continue=" + next));
    ASSERT_TRUE(r.ok() && r->status == 200) << (r.ok() ? r->body : r.status().ToString());
    Json page = Json::parse(r->body);
    for (const Json& n : page["items"]) names.push_back(n["name"]);
    next = page.value("continue", "");
    ++pages;
  } while (!next.empty());
  EXPECT_EQ(names, (std::vector<std::string>{"n0", "n1", "n2"}));
  EXPECT_EQ(pages, 2);
  // Port forwards are named by id; their pages follow it.
  for (int port : {8081, 8082}) {
    ASSERT_EQ(
        Post("/v1/portforwards", Json{{"host_port", port}, {"workload", "w1"}, {"port", 80}}.dump())
            .status,
        201);
  }
  auto first = client_->Get("/v1/portforwards?limit=1");
  ASSERT_TRUE(first.ok());
  Json page = Json::parse(first->body);
  ASSERT_EQ(page["items"].size(), 1u);
  auto rest =
      client_->Get("/v1/portforwards?limit=5&continue=" + page["continue"].get<std::string>());
  ASSERT_TRUE(rest.ok());
  Json rest_page = Json::parse(rest->body);
  ASSERT_EQ(rest_page["items"].size(), 1u);
  EXPECT_NE(rest_page["items"][0]["id"], page["items"][0]["id"]);
  EXPECT_EQ(client_->Get("/v1/secgroups?limit=9999")->status, 400);
  EXPECT_EQ(client_->Get("/v1/networks?continue=junk")->status, 400);
}

// A host's part of a fleet's networks: bad bodies are 400 naming the field, nothing else is read.
TEST(FleetNetworkRoutesTest, AttachRefusesBadBodiesAndAnswersAHostsPlan) {
  core::ManualClock clock;
  state::MemoryStore store(state::StoreOptions{.clock = &clock});
  control::ControlPlaneOptions o;
  o.clock = &clock;
  control::ControlPlane control(&store, o);
  control::FleetNetworks fleet(&store, &clock, &control);
  ASSERT_TRUE(fleet.Start().ok());
  Router router;
  AddFleetNetworkRoutes(router, &fleet);
  HttpServer server(HttpServer::Options{}, router.AsHandler());
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  HttpClient client("http://127.0.0.1:" + std::to_string(*port));
  auto post = [&](std::string_view body) {
    auto r = client.Post("/v1/hosts/h1/network-attach", body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  };
  for (const char* bad : {R"({})", R"({"workload": 7})", R"({"workload": "../hosts/h2"})",
                          R"({"workload": "w", "extra": 1})", R"([1])", "not json"}) {
    HttpResponse r = post(bad);
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
  }
  EXPECT_EQ(post(R"({"workload": "nobody"})").status, 404);
  auto plan = client.Get("/v1/hosts/h1/networks");
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->status, 200);
  auto decoded = wire::DecodeHostNetworkPlan("h1", Json::parse(plan->body));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_TRUE(decoded->networks.empty());
  server.Stop();
}

}  // namespace
}  // namespace berth::api
