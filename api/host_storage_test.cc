// A host's disk pools over its task API, end to end: the server's remote StorageHost against an
// agent's task API serving a pool, with the token each heartbeat carries; and what a hostile or
// mistaken caller sends is refused naming the field, changing nothing.
#include "api/host_storage.h"

#include <memory>
#include <string>

#include "api/api_server.h"
#include "api/http/client.h"
#include "api/storenet_routes.h"
#include "api/task_api.h"
#include "api/wire/wire.h"
#include "control/fake_storage_host.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

using core::Json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

class HostStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<TaskApiServer>(TaskApiOptions{.host = "127.0.0.1", .token = kToken},
                                              nullptr);
    AddHostStorageRoutes(server_->routes(), {{"default", &pool_}, {"shared", &shared_}});
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = TaskApiUrl("127.0.0.1", *port);
    remote_ = NewRemoteStorageHost(
        [this]() -> absl::StatusOr<TaskApiTarget> {
          return TaskApiTarget{.host = "h1", .url = url_, .token = kToken};
        },
        "default");
  }
  void TearDown() override { server_->Stop(); }

  HttpResponse Post(const std::string& path, const std::string& body,
                    const std::string& token = kToken) {
    HttpClient http(url_, HttpClientOptions{.bearer_token = token});
    auto r = http.Post(path, body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }

  control::FakeStorageHost pool_, shared_;
  std::unique_ptr<TaskApiServer> server_;
  std::string url_;
  std::unique_ptr<control::StorageHost> remote_;
};

TEST_F(HostStorageTest, EveryOperationReachesTheHostsPoolAndAnswersAsItDid) {
  auto made =
      remote_->Create({.name = "d1", .format = "raw", .size_mib = 64, .filesystem = "ext4"});
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->path, "/pool/d1.raw");
  EXPECT_EQ(pool_.last_create.filesystem, "ext4");
  EXPECT_TRUE(shared_.volumes.empty());
  ASSERT_TRUE(remote_->Snapshot("d1", "s1").ok());
  auto got = remote_->Get("d1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size_mib, 64);
  auto grown = remote_->Resize("d1", 128, "vm-1");
  ASSERT_TRUE(grown.ok()) << grown.status();
  EXPECT_EQ(pool_.last_attached_to, "vm-1");
  ASSERT_TRUE(remote_->Clone("d1", "s1", "d2", "qcow2").ok());
  auto backup = remote_->Backup("d1", "d1.backup", nullptr);
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(pool_.last_file, "d1.backup");
  ASSERT_TRUE(remote_->Restore("d1.backup", "d3", "", nullptr).ok());
  ASSERT_TRUE(remote_->Revert("d1", "s1", "").ok());
  ASSERT_TRUE(remote_->DeleteSnapshot("d1", "s1").ok());
  ASSERT_TRUE(remote_->Delete("d2", "").ok());
  auto pools = remote_->Pools();
  ASSERT_TRUE(pools.ok()) << pools.status();
  ASSERT_EQ(pools->size(), 1u);
  EXPECT_EQ((*pools)[0].volume_count, 2);
  // The host's errors keep their kind: a volume that is not there is NotFound.
  EXPECT_EQ(remote_->Get("nosuch").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(remote_->Get("nosuch").status().message(), HasSubstr("host \"h1\""));
  pool_.fail["Create"] = absl::ResourceExhaustedError("pool full");
  EXPECT_EQ(remote_->Create({.name = "d4", .size_mib = 1}).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(HostStorageTest, OnlyTheTokenAndWellFormedRequestsAreServed) {
  const std::string before = Json(pool_.calls).dump();
  EXPECT_EQ(Post("/v1/storage/default/create", R"({"name":"d1","size_mib":8})", "wrong").status,
            401);
  struct Case {
    std::string path, body;
    int status;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"/v1/storage/default/create", R"({"name":"../etc","size_mib":8})", 400, "name"},
           {"/v1/storage/default/create", R"({"name":"d1","size_mib":-1})", 400, "size_mib"},
           {"/v1/storage/default/create", R"({"name":"d1","size_mib":"8"})", 400, "size_mib"},
           {"/v1/storage/default/create", R"({"name":"d1","color":"red"})", 400, "color"},
           {"/v1/storage/default/clone", R"({"source":"a/b","name":"d1"})", 400, "source"},
           {"/v1/storage/default/delete", R"({"name":"d1","attached_to":"x y"})", 400, "workload"},
           {"/v1/storage/default/get", R"([1,2])", 400, ""},
           {"/v1/storage/default/get", "{\"name\":\"\xff\"}", 400, ""},
           {"/v1/storage/default/format", R"({"name":"d1"})", 404, "does not exist"},
           {"/v1/storage/nfs/get", R"({"name":"d1"})", 404, "default, shared"},
       }) {
    SCOPED_TRACE(c.path + " " + c.body);
    HttpResponse r = Post(c.path, c.body);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_THAT(r.body, HasSubstr(c.says));
  }
  EXPECT_EQ(Json(pool_.calls).dump(), before);
}

TEST_F(HostStorageTest, AnUnreachableHostIsUnavailableNamingIt) {
  server_->Stop();
  auto got = remote_->Get("d1");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(got.status().message(), HasSubstr("host \"h1\""));
}

TEST(HostDisks, RoundTripAndRefuseNamesThatAreNotDisks) {
  std::vector<control::HostDisk> disks = {
      {.name = "a", .format = "raw", .filesystem = "ext4", .read_only = true, .mount = "/data"},
      {.name = "b", .pool = "shared", .format = "qcow2"}};
  auto back = DecodeHostDisks("h1", EncodeHostDisks(disks));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, disks);
  Json bad = EncodeHostDisks(disks);
  bad["disks"][1]["name"] = "../../etc";
  EXPECT_THAT(DecodeHostDisks("h1", bad).status().message(), HasSubstr("disks[1].name"));
  bad = EncodeHostDisks(disks);
  bad["disks"][0]["pool"] = "other";
  EXPECT_THAT(DecodeHostDisks("h1", bad).status().message(), HasSubstr("disks[0].pool"));
  EXPECT_FALSE(DecodeHostDisks("h1", Json{{"disks", 3}}).ok());
}

}  // namespace
}  // namespace berth::api

namespace berth::api {
namespace {

// Who may call a host's disk route: the host itself (or the admin), never another host; and a
// host credential reaches no other disk route.
TEST(FleetStorageRoutesTest, OnlyTheHostItselfAttachesItsWorkloadsDisks) {
  core::ManualClock clock;
  state::MemoryStore store(state::StoreOptions{.clock = &clock});
  control::ControlPlane control(&store, control::ControlPlaneOptions{.clock = &clock});
  control::FleetStorage fleet(&store, &clock, &control, [](const std::string&, const std::string&) {
    return std::make_shared<control::FakeStorageHost>();
  });
  ApiServerOptions o;
  o.admin_token = "admin-secret";
  o.agent_tokens = {"join-secret"};
  ApiServer server(o, &control, nullptr);
  AddStorageRoutes(server.router(), &fleet.service());
  AddFleetStorageRoutes(server.router(), &fleet);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string url = "http://127.0.0.1:" + std::to_string(*port);
  auto call = [&](const std::string& token, std::string_view method, std::string_view path,
                  std::string_view body = {}) {
    HttpClient c(url, HttpClientOptions{.bearer_token = token});
    auto r = c.Request(method, path, body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  };
  auto join = [&](const std::string& name) {
    wire::HostRegistration reg{.name = name};
    reg.inventory.capacity.cpu = *core::ParseCpu("2");
    reg.inventory.capacity.memory = *core::ParseMemory("1Gi");
    HttpResponse r =
        call("join-secret", "POST", "/v1/hosts", wire::EncodeHostRegistration(reg).dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body, nullptr, false).value("credential", "");
  };
  const std::string a = join("node-a"), b = join("node-b");
  const std::string attach = R"({"workload":"nobody"})";
  EXPECT_EQ(call(b, "POST", "/v1/hosts/node-a/disk-attach", attach).status, 403);
  EXPECT_EQ(call(a, "POST", "/v1/hosts/node-a/disk-attach", attach).status, 404);
  EXPECT_EQ(call("admin-secret", "POST", "/v1/hosts/node-a/disk-attach", attach).status, 404);
  EXPECT_EQ(call(a, "POST", "/v1/hosts/node-a/disk-attach", R"({"workload":"../x"})").status, 400);
  EXPECT_EQ(call(a, "GET", "/v1/disks").status, 403);
  EXPECT_EQ(call(a, "POST", "/v1/disks", R"({"name":"d1","size":"1Gi"})").status, 403);
  EXPECT_EQ(call("join-secret", "POST", "/v1/hosts/node-a/disk-attach", attach).status, 403);
  server.Stop();
}

}  // namespace
}  // namespace berth::api

namespace berth::api {
namespace {

// The running tasks' disk operations: the volume is found in the pool and handed to the task.
TEST(HostTaskDisksTest, PlugFindsTheVolumeAndBadNamesNeverReachTheTask) {
  control::FakeStorageHost pool;
  ASSERT_TRUE((pool.Create({.name = "d1", .format = "qcow2", .size_mib = 8}).ok()));
  std::vector<std::string> calls;
  Router router;
  AddHostStorageRoutes(
      router, {{"default", &pool}},
      HostTaskDisks{.plug =
                        [&](std::string_view w, const control::HostVolume& v, std::string_view d) {
                          calls.push_back(core::Cat("plug ", w, " ", d, " ", v.path));
                          return absl::OkStatus();
                        },
                    .unplug =
                        [&](std::string_view w, std::string_view d) {
                          calls.push_back(core::Cat("unplug ", w, " ", d));
                          return absl::NotFoundError("no task");
                        },
                    .snapshot =
                        [&](std::string_view w, std::string_view d, std::string_view s) {
                          calls.push_back(core::Cat("snapshot ", w, " ", d, " ", s));
                          return absl::OkStatus();
                        }});
  HttpServer server(HttpServer::Options{}, router.AsHandler());
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  HttpClient client("http://127.0.0.1:" + std::to_string(*port));
  auto post = [&](const std::string& op, const std::string& body) {
    auto r = client.Post("/v1/storage/default/" + op, body);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->status : -1;
  };
  EXPECT_EQ(post("plug", R"({"workload":"vm1","name":"d1"})"), 200);
  EXPECT_EQ(post("plug", R"({"workload":"vm1","name":"nosuch"})"), 404);
  EXPECT_EQ(post("unplug", R"({"workload":"vm1","name":"d1"})"), 404);
  EXPECT_EQ(post("live-snapshot", R"({"workload":"vm1","name":"d1","snapshot":"s1"})"), 200);
  EXPECT_EQ(post("plug", R"({"workload":"../vm","name":"d1"})"), 400);
  EXPECT_EQ(post("plug", R"({"name":"d1"})"), 400);
  EXPECT_THAT(calls,
              ElementsAre("plug vm1 d1 /pool/d1.qcow2", "unplug vm1 d1", "snapshot vm1 d1 s1"));
  server.Stop();
}

}  // namespace
}  // namespace berth::api
