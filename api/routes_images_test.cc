#include "api/routes_images.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "api/api_server.h"
#include "api/http/client.h"
#include "api/local_images.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/host/executor.h"
#include "runtime/host/file.h"
#include "state/memory_store.h"

namespace berth::api {
namespace {

namespace fs = std::filesystem;
using core::Json;
using ::testing::HasSubstr;

// A dev server's image routes: host "local" is this server's own host, with a catalog and an
// import directory; host "far" is registered but its catalog is out of reach.
class ImageRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("berth-image-routes-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "imports");
    fs::create_directories(root_ / "outside");
    auto catalog = runtime::ImageCatalog::Open((root_ / "catalog").string());
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = std::move(*catalog);
    images_ = std::make_unique<LocalHostImages>((root_ / "imports").string());
    images_->Attach("local", catalog_.get());

    control_ = std::make_unique<control::ControlPlane>(&store_, control::ControlPlaneOptions{});
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    server_ = std::make_unique<ApiServer>(o, control_.get(), nullptr);
    AddImageRoutes(server_->router(), control_.get(), images_.get());
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    client_ = std::make_unique<HttpClient>("http://127.0.0.1:" + std::to_string(*port),
                                           HttpClient::Options{.bearer_token = "admin-secret"});
    for (const char* host : {"local", "far"}) {
      ASSERT_EQ(Call("POST", "/v1/hosts",
                     Json{{"name", host}, {"inventory", {{"cpu", "2"}, {"memory", "1Gi"}}}}.dump())
                    .status,
                200);
    }
  }
  void TearDown() override {
    server_->Stop();
    images_->Attach("", nullptr);
    fs::remove_all(root_);
  }

  HttpResponse Call(std::string_view method, std::string_view path, std::string_view body = "") {
    auto r = client_->Request(method, path, body, "application/json");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpResponse{};
  }
  HttpResponse Import(const Json& body) {
    return Call("POST", "/v1/hosts/local/images", body.dump());
  }
  static std::string MessageOf(const HttpResponse& r) {
    Json j = Json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"].value("message", "") : r.body;
  }
  std::string Write(const fs::path& path, const std::string& data) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << data;
    return path.string();
  }
  // The catalog's entries and what lies in its images/ directory: both stay empty after a
  // refused request.
  void ExpectCatalogEmpty() {
    EXPECT_TRUE(catalog_->List().empty());
    const fs::path dir = root_ / "catalog" / "images";
    EXPECT_TRUE(!fs::exists(dir) || fs::is_empty(dir)) << dir;
  }

  fs::path root_;
  std::unique_ptr<runtime::ImageCatalog> catalog_;
  std::unique_ptr<LocalHostImages> images_;
  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<HttpClient> client_;
};

TEST_F(ImageRoutesTest, ImportListGetRemove) {
  Write(root_ / "imports" / "vmlinuz", "kernel-bytes");
  const std::string initrd = Write(root_ / "imports" / "boot" / "initrd.img", "initrd-bytes");
  // One name relative to the import directory, one absolute beneath it.
  auto created = Import(
      {{"name", "tiny"}, {"kernel", "vmlinuz"}, {"initrd", initrd}, {"cmdline", "console=ttyS0"}});
  ASSERT_EQ(created.status, 201) << created.body;
  Json entry = Json::parse(created.body);
  EXPECT_EQ(entry["name"], "tiny");
  EXPECT_EQ(entry["kind"], "kernel");
  EXPECT_EQ(entry["cmdline"], "console=ttyS0");
  auto stored = catalog_->Get("tiny");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_FALSE(fs::is_symlink(stored->kernel));
  EXPECT_EQ(*runtime::host::ReadFile(stored->kernel), "kernel-bytes");
  EXPECT_EQ(*runtime::host::ReadFile(stored->initrd), "initrd-bytes");
  // The source stays where it was: the catalog holds a copy.
  EXPECT_TRUE(fs::exists(root_ / "imports" / "vmlinuz"));

  auto list = Call("GET", "/v1/hosts/local/images");
  ASSERT_EQ(list.status, 200) << list.body;
  Json items = Json::parse(list.body)["items"];
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["name"], "tiny");
  EXPECT_EQ(Json::parse(list.body)["host"], "local");
  // The catalog pages like every list.
  ASSERT_EQ(Import({{"name", "zeta"}, {"kernel", "vmlinuz"}}).status, 201);
  auto first = Json::parse(Call("GET", "/v1/hosts/local/images?limit=1").body);
  ASSERT_EQ(first["items"].size(), 1u);
  EXPECT_EQ(first["items"][0]["name"], "tiny");
  auto second = Json::parse(
      Call("GET", "/v1/hosts/local/images?limit=1&continue=" + first["continue"].get<std::string>())
          .body);
  ASSERT_EQ(second["items"].size(), 1u);
  EXPECT_EQ(second["items"][0]["name"], "zeta");
  EXPECT_FALSE(second.contains("continue"));
  EXPECT_EQ(Call("GET", "/v1/hosts/local/images?limit=0").status, 400);
  ASSERT_EQ(Call("DELETE", "/v1/hosts/local/images/zeta").status, 200);

  auto got = Call("GET", "/v1/hosts/local/images/tiny");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Json::parse(got.body)["kind"], "kernel");

  auto dup = Import({{"name", "tiny"}, {"kernel", "vmlinuz"}});
  EXPECT_EQ(dup.status, 409) << dup.body;
  EXPECT_THAT(MessageOf(dup), HasSubstr("image \"tiny\" already exists"));
  Write(root_ / "imports" / "vmlinuz", "newer-kernel");
  auto replaced = Import({{"name", "tiny"}, {"kernel", "vmlinuz"}, {"replace", true}});
  ASSERT_EQ(replaced.status, 201) << replaced.body;
  EXPECT_EQ(*runtime::host::ReadFile(catalog_->Get("tiny")->kernel), "newer-kernel");

  auto removed = Call("DELETE", "/v1/hosts/local/images/tiny");
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_EQ(Json::parse(removed.body)["removed"], true);
  EXPECT_EQ(Call("GET", "/v1/hosts/local/images/tiny").status, 404);
  auto again = Call("DELETE", "/v1/hosts/local/images/tiny");
  EXPECT_EQ(again.status, 404);
  EXPECT_THAT(MessageOf(again), HasSubstr("image \"tiny\" not found"));
  ExpectCatalogEmpty();
}

TEST_F(ImageRoutesTest, ImportsDiskAndRootfsTar) {
  // A raw disk image: qemu-img recognises any file as raw.
  {
    std::ofstream disk(root_ / "imports" / "disk.img", std::ios::binary);
    disk << std::string(1 << 16, '\0');
  }
  auto disk = Import({{"name", "data"}, {"disk", "disk.img"}});
  ASSERT_EQ(disk.status, 201) << disk.body;
  EXPECT_EQ(Json::parse(disk.body)["disk_format"], "raw");

  Write(root_ / "tree" / "etc" / "hostname", "box\n");
  auto tar = runtime::host::RunOk(runtime::host::RealExecutor(),
                                  {"tar", "-czf", (root_ / "imports" / "rootfs.tar.gz").string(),
                                   "-C", (root_ / "tree").string(), "."});
  ASSERT_TRUE(tar.ok()) << tar.status();
  auto rootfs = Import({{"name", "box"}, {"rootfs", "rootfs.tar.gz"}});
  ASSERT_EQ(rootfs.status, 201) << rootfs.body;
  auto entry = catalog_->Get("box");
  ASSERT_TRUE(entry.ok());
  EXPECT_EQ(*runtime::host::ReadFile(entry->rootfs + "/etc/hostname"), "box\n");

  // A directory is not taken as a rootfs through the API: only a tar archive, a single file
  // opened beneath the import directory.
  fs::create_directories(root_ / "imports" / "tree");
  auto dir = Import({{"name", "dir"}, {"rootfs", "tree"}});
  EXPECT_EQ(dir.status, 400) << dir.body;
  EXPECT_THAT(MessageOf(dir), HasSubstr("image \"dir\": rootfs"));
  EXPECT_THAT(MessageOf(dir), HasSubstr("regular file"));
}

// No request reads a host file outside the import directory: "..", absolute paths elsewhere,
// links out (as the file or on the way) and special files are refused with 400, naming the
// field, and leave the catalog as it was.
TEST_F(ImageRoutesTest, PathsOutsideTheImportDirectoryAreRefused) {
  const std::string secret = Write(root_ / "outside" / "secret", "not-for-clients");
  fs::create_symlink(secret, root_ / "imports" / "link-out");
  fs::create_directory_symlink(root_ / "outside", root_ / "imports" / "dir-out");
  fs::create_symlink(root_ / "imports" / "vmlinuz", root_ / "imports" / "link-in");
  Write(root_ / "imports" / "vmlinuz", "kernel-bytes");
  ASSERT_EQ(mkfifo((root_ / "imports" / "fifo").c_str(), 0600), 0);

  for (const std::string& path : {
           std::string("../outside/secret"),
           std::string("boot/../../outside/secret"),
           secret,
           std::string("/etc/passwd"),
           (root_ / "imports" / ".." / "outside" / "secret").string(),
           std::string("link-out"),
           std::string("dir-out/secret"),
           std::string("link-in"),  // a link is refused even when it points inside
           std::string("fifo"),
           std::string("."),
           (root_ / "imports").string(),
           std::string("vm\nlinuz"),
       }) {
    for (const char* field : {"kernel", "disk", "rootfs"}) {
      auto r = Import({{"name", "evil"}, {field, path}});
      EXPECT_EQ(r.status, 400) << field << " " << path << ": " << r.body;
      EXPECT_THAT(MessageOf(r), HasSubstr(std::string("image \"evil\": ") + field))
          << field << " " << path;
      EXPECT_THAT(MessageOf(r), HasSubstr("the image import directory")) << path;
    }
  }
  auto initrd = Import({{"name", "evil"}, {"kernel", "vmlinuz"}, {"initrd", "../outside/secret"}});
  EXPECT_EQ(initrd.status, 400) << initrd.body;
  EXPECT_THAT(MessageOf(initrd), HasSubstr("image \"evil\": initrd"));
  // The missing file is a 404 that names the field too.
  auto missing = Import({{"name", "evil"}, {"kernel", "nope"}});
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_THAT(MessageOf(missing), HasSubstr("image \"evil\": kernel"));
  ExpectCatalogEmpty();
  EXPECT_EQ(*runtime::host::ReadFile(secret), "not-for-clients");
}

TEST_F(ImageRoutesTest, BadRequestsNameTheFieldAndChangeNothing) {
  Write(root_ / "imports" / "vmlinuz", "kernel-bytes");
  Write(root_ / "imports" / "disk.img", "raw");
  struct Case {
    std::string body;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"kernel":"vmlinuz"})", "name is required"},
           {R"({"name":"Bad_Name","kernel":"vmlinuz"})", "Bad_Name"},
           {R"({"name":7,"kernel":"vmlinuz"})", "name"},
           {R"({"name":"x"})", "image \"x\": source must be exactly one"},
           {R"({"name":"x","kernel":"vmlinuz","disk":"disk.img"})", "source must be exactly one"},
           {R"({"name":"x","disk":"disk.img","initrd":"vmlinuz"})", "initrd needs a kernel"},
           {R"({"name":"x","disk":"disk.img","cmdline":"quiet"})", "cmdline needs a kernel"},
           {R"({"name":"x","kernel":"vmlinuz","replace":"yes"})", "replace"},
           {R"({"name":"x","kernel":["vmlinuz"]})", "kernel"},
           {R"({"name":"x","kernel":"vmlinuz","path":"/etc"})", "path"},
           {R"(["x"])", "image"},
           {R"({"name":"x",)", "image"},
       }) {
    auto r = Call("POST", "/v1/hosts/local/images", c.body);
    EXPECT_EQ(r.status, 400) << c.body << ": " << r.body;
    EXPECT_THAT(MessageOf(r), HasSubstr(c.says)) << c.body;
  }
  ExpectCatalogEmpty();
}

// A host the server does not know is 404; a known host whose catalog it cannot reach is 409.
TEST_F(ImageRoutesTest, OtherHostsAreAnsweredClearly) {
  Write(root_ / "imports" / "vmlinuz", "kernel-bytes");
  const std::string import = Json{{"name", "tiny"}, {"kernel", "vmlinuz"}}.dump();
  struct Route {
    std::string method, path, body;
  };
  for (const char* host : {"ghost", "far"}) {
    const std::string base = std::string("/v1/hosts/") + host + "/images";
    for (const Route& route : std::vector<Route>{{"GET", base, ""},
                                                 {"POST", base, import},
                                                 {"GET", base + "/tiny", ""},
                                                 {"DELETE", base + "/tiny", ""}}) {
      auto r = Call(route.method, route.path, route.body);
      EXPECT_EQ(r.status, std::string(host) == "ghost" ? 404 : 409)
          << route.method << " " << route.path << ": " << r.body;
      EXPECT_THAT(MessageOf(r), HasSubstr(std::string("host \"") + host + "\""));
    }
  }
  ExpectCatalogEmpty();

  // Before the local agent runs, no catalog is open: 503, and nothing changes.
  images_->Attach("", nullptr);
  EXPECT_EQ(Call("GET", "/v1/hosts/local/images").status, 503);
  EXPECT_EQ(Call("POST", "/v1/hosts/local/images", import).status, 503);
  ExpectCatalogEmpty();
}

TEST(ImageRoutesWithoutCatalogTest, EveryKnownHostIs409) {
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{});
  ApiServerOptions o;
  o.admin_token = "admin-secret";
  ApiServer server(o, &control, nullptr);
  AddImageRoutes(server.router(), &control, nullptr);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  HttpClient c("http://127.0.0.1:" + std::to_string(*port),
               HttpClient::Options{.bearer_token = "admin-secret"});
  ASSERT_EQ(c.Post("/v1/hosts", R"({"name":"h1","inventory":{"cpu":"2","memory":"1Gi"}})")->status,
            200);
  EXPECT_EQ(c.Get("/v1/hosts/h1/images")->status, 409);
  EXPECT_EQ(c.Post("/v1/hosts/h1/images", R"({"name":"x","kernel":"k"})")->status, 409);
  EXPECT_EQ(c.Get("/v1/hosts/h1/images/x")->status, 409);
  EXPECT_EQ(c.Request("DELETE", "/v1/hosts/h1/images/x", "", "application/json")->status, 409);
  EXPECT_EQ(c.Get("/v1/hosts/nope/images")->status, 404);
  server.Stop();
}

}  // namespace
}  // namespace berth::api
