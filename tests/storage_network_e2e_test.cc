// Disks, networks, security groups and port forwards through the real `berth serve --dev`
// binary: the CLI and the REST API against a server whose storage pool lives in a temporary data
// directory and whose network data path lives in a namespace the test creates
// (BERTH_NET_NETNS), so nothing touches the machine's own network.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/net/linux_network_driver.h"
#include "runtime/net/netns_test_util.h"
#include "tests/e2e_util.h"

namespace berth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Json = nlohmann::json;

class StorageNetworkE2eTest : public ::testing::Test {
 protected:
  StorageNetworkE2eTest() : ns_({"host"}), dir_(e2e::TempDir("storenet")), server_(dir_) {}

  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (bridges, nftables, qemu-img)";
    ASSERT_TRUE(ns_.ok());
    setenv("BERTH_NET_NETNS", ns_.Name("host").c_str(), 1);
    ASSERT_TRUE(server_.Start()) << e2e::ReadFile(dir_ + "/serve.log");
  }
  void TearDown() override {
    // Delete every workload so no container, VM, namespace or mount outlives the test.
    if (server_.pid() > 0) e2e::DeleteAllWorkloads(server_);
    server_.Kill(SIGTERM);
    // dnsmasq runs inside the namespace; it goes with the namespace's other processes.
    if (geteuid() == 0 && ns_.ok()) {
      std::string pids;
      runtime::net::testing::RunIn("", {"ip", "netns", "pids", ns_.Name("host")}, &pids);
      std::istringstream in(pids);
      for (int pid = 0; in >> pid;) kill(pid, SIGKILL);
    }
    unsetenv("BERTH_NET_NETNS");
    std::filesystem::remove_all(dir_);
  }

  e2e::Result Cli(std::vector<std::string> args) {
    args.push_back("--json");
    return e2e::Run(dir_, args);
  }
  Json CliJson(const std::vector<std::string>& args) {
    e2e::Result r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out, nullptr, false);
  }
  // Runs a command, expecting success; returns its stdout.
  std::string Sh(const std::vector<std::string>& argv) {
    std::string out;
    EXPECT_EQ(runtime::net::testing::RunIn("", argv, &out), 0) << argv[0] << ": " << out;
    return out;
  }
  std::string InHost(const std::vector<std::string>& argv, int* code = nullptr) {
    std::string out;
    int rc = runtime::net::testing::RunIn(ns_.Name("host"), argv, &out);
    if (code) *code = rc;
    return out;
  }
  // The volume's data as raw bytes.
  std::string RawData(const std::string& image) {
    std::string raw = dir_ + "/raw.img";
    Sh({"qemu-img", "convert", "-O", "raw", image, raw});
    std::string data = e2e::ReadFile(raw);
    std::filesystem::remove(raw);
    return data;
  }
  void WritePattern(const std::string& image, const std::string& pattern) {
    Sh({"qemu-io", "-f", "qcow2", "-c", "write -P " + pattern + " 0 1M", image});
  }
  size_t DiskCount() {
    auto list = server_.client().ListDisks();
    return list.ok() ? list->items.size() : 0;
  }
  size_t NetworkCount() {
    auto list = server_.client().ListNetworks();
    return list.ok() ? list->items.size() : 0;
  }
  // The message of a failed call, or "" when it succeeded.
  template <typename T>
  static std::string MessageOf(const absl::StatusOr<T>& r) {
    return r.ok() ? "" : std::string(r.status().message());
  }

  // The server's network instance id, and the part of it interface names carry.
  std::string Instance() { return runtime::net::InstanceIdForDir(dir_ + "/agent"); }
  std::string ShortInstance() { return Instance().substr(0, 4); }

  runtime::net::testing::TestNamespaces ns_;
  std::string dir_;
  e2e::DevServer server_;
};

TEST_F(StorageNetworkE2eTest, DiskLifecycleThroughTheCli) {
  Json d = CliJson({"disk", "create", "data", "--size", "64Mi"});
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d["status"]["size_mib"], 64);
  EXPECT_EQ(d["spec"]["format"], "qcow2");
  std::string path = d["status"]["path"];
  ASSERT_TRUE(std::filesystem::exists(path));

  // Grow; shrinking is refused naming the field, and changes nothing.
  EXPECT_EQ(CliJson({"disk", "resize", "data", "--size", "96Mi"})["status"]["size_mib"], 96);
  e2e::Result smaller = Cli({"disk", "resize", "data", "--size", "32Mi"});
  EXPECT_EQ(smaller.exit_code, 1);
  EXPECT_THAT(smaller.err, HasSubstr("size"));
  EXPECT_EQ(CliJson({"disk", "get", "data"})["status"]["size_mib"], 96);

  // Snapshot, overwrite, revert: the earlier data is back.
  WritePattern(path, "0x5a");
  std::string first = RawData(path);
  ASSERT_EQ(static_cast<unsigned char>(first[0]), 0x5a);
  Json snap = CliJson({"disk", "snapshot", "data", "before"});
  EXPECT_THAT(snap["status"]["snapshots"].dump(), HasSubstr("before"));
  WritePattern(path, "0x11");
  ASSERT_EQ(static_cast<unsigned char>(RawData(path)[0]), 0x11);
  CliJson({"disk", "revert", "data", "before"});
  EXPECT_TRUE(RawData(path) == first);

  // Backup -> restore keeps the data, checksummed. The file is a name in the backup directory
  // (default DATA_DIR/backups); an absolute path inside it names the same file.
  std::string backup = dir_ + "/backups/data.backup";
  e2e::Result b = e2e::Run(dir_, {"disk", "backup", "data", "data.backup"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_THAT(b.err, HasSubstr("100.0%"));  // progress on stderr
  EXPECT_THAT(b.out, HasSubstr(backup));
  ASSERT_TRUE(std::filesystem::exists(backup));
  Json restored = CliJson({"disk", "restore", backup, "copy"});
  ASSERT_TRUE(restored.is_object());
  EXPECT_TRUE(RawData(restored["status"]["path"]) == first);

  // Clone from the snapshot is an independent disk with the snapshot's data.
  Json clone = CliJson({"disk", "clone", "data@before", "twin"});
  ASSERT_TRUE(clone.is_object());
  EXPECT_TRUE(RawData(clone["status"]["path"]) == first);

  Json list = CliJson({"disk", "ls"});
  EXPECT_EQ(list["items"].size(), 3u);
  // The pool's accounting agrees with the disks: virtual sizes add up; thin files take less.
  Json pools = CliJson({"disk", "pools"});
  ASSERT_EQ(pools["items"].size(), 1u) << pools.dump();
  int64_t provisioned = 0;
  for (const auto& d : list["items"]) provisioned += d["status"]["size_mib"].get<int64_t>();
  EXPECT_EQ(pools["items"][0]["volume_count"], 3);
  EXPECT_EQ(pools["items"][0]["provisioned_mib"], provisioned);
  EXPECT_LT(pools["items"][0]["allocated_bytes"].get<int64_t>(), provisioned << 20);

  // A disk attached to a workload cannot be deleted; detached it can.
  auto holder = server_.client().CreateWorkloadFromText(Json{
      {"name", "holder"},
      {"kind", "process"},
      {"command", {"/bin/sh", "-c", "sleep 3600"}},
      {"resources", {{"cpu", "100m"}, {"memory", "16Mi"}}}}.dump());
  ASSERT_TRUE(holder.ok()) << holder.status();
  EXPECT_EQ(CliJson({"disk", "attach", "data", "holder"})["status"]["attached_to"], "holder");
  e2e::Result rm = Cli({"disk", "rm", "data"});
  EXPECT_EQ(rm.exit_code, 1);
  EXPECT_THAT(rm.err, HasSubstr("attached_to"));
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(DiskCount(), 3u);
  CliJson({"disk", "detach", "data"});
  EXPECT_EQ(Cli({"disk", "rm", "data"}).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(DiskCount(), 2u);

  // Events record what happened.
  api::Raw events;
  ASSERT_TRUE(server_.client().ListEvents({}, &events).ok());
  EXPECT_THAT(events.body.dump(), HasSubstr("reverted to snapshot"));
}

TEST_F(StorageNetworkE2eTest, ARestoredDiskComesBackInItsFormatWithItsFilesystem) {
  // A raw ext4 disk (what a container mounts) comes back raw ext4, so it stays mountable.
  Json flat =
      CliJson({"disk", "create", "flat", "--size", "32Mi", "--format", "raw", "--fs", "ext4"});
  ASSERT_TRUE(flat.is_object());
  e2e::Result b = Cli({"disk", "backup", "flat", "flat.backup"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_THAT(e2e::ReadFile(dir_ + "/backups/flat.backup.sha256"), HasSubstr("\nformat raw\n"));
  Json back = CliJson({"disk", "restore", "flat.backup", "flat-again"});
  ASSERT_TRUE(back.is_object());
  EXPECT_EQ(back["spec"]["format"], "raw");
  EXPECT_EQ(back["spec"]["filesystem"], "ext4");
  const std::string path = back["status"]["path"];
  EXPECT_TRUE(path.ends_with(".raw")) << path;
  EXPECT_THAT(Sh({"blkid", "-p", "-o", "value", "-s", "TYPE", path}), HasSubstr("ext4"));

  // A qcow2 disk comes back qcow2, without a filesystem it never had.
  ASSERT_TRUE(CliJson({"disk", "create", "blocks", "--size", "32Mi"}).is_object());
  ASSERT_EQ(Cli({"disk", "backup", "blocks", "blocks.backup"}).exit_code, 0);
  Json again = CliJson({"disk", "restore", "blocks.backup", "blocks-again"});
  ASSERT_TRUE(again.is_object());
  EXPECT_EQ(again["spec"]["format"], "qcow2");
  EXPECT_EQ(again["spec"]["filesystem"], "");
}

TEST_F(StorageNetworkE2eTest, BadDiskInputNamesTheFieldAndChangesNothing) {
  auto r = server_.client().CreateDisk({.name = "d", .size = "lots"});
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(MessageOf(r), HasSubstr("size"));
  r = server_.client().CreateDisk({.name = "d", .size = "1Gi", .format = "vmdk"});
  EXPECT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(MessageOf(r), HasSubstr("format"));
  // A field no client knows: only raw HTTP can send it.
  auto unknown = server_.RawClient()->Post(
      "/v1/disks", Json{{"name", "d"}, {"size", "1Gi"}, {"colour", "red"}}.dump());
  ASSERT_TRUE(unknown.ok()) << unknown.status();
  EXPECT_EQ(unknown->status, 400);
  EXPECT_THAT(unknown->body, HasSubstr("colour"));
  EXPECT_EQ(DiskCount(), 0u);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/agent/pools/default") ||
              !std::filesystem::exists(dir_ + "/agent/pools/default/d.qcow2"));
}

// What a file on the host looks like, to tell that nothing changed it.
std::string Fingerprint(const std::string& path) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return "missing";
  return std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec) + ":" + std::to_string(st.st_ino) + ":" +
         e2e::ReadFile(path);
}

// Every file name under `dir`, recursively, without following links.
std::vector<std::string> Tree(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST_F(StorageNetworkE2eTest, ApiTouchesNoHostFileOutsideBerthDirectories) {
  namespace fs = std::filesystem;
  auto made = server_.client().CreateDisk({.name = "d1", .size = "16Mi"});
  ASSERT_TRUE(made.ok()) << made.status();
  const std::string backups = dir_ + "/backups";
  ASSERT_TRUE(fs::is_directory(backups));
  // A victim file beside the backup directory, links from inside it to outside, an existing
  // backup-directory entry of each kind.
  fs::create_directories(dir_ + "/outside");
  std::ofstream(dir_ + "/outside/victim") << "precious";
  fs::create_symlink(dir_ + "/outside/victim", backups + "/escape");
  fs::create_symlink("/etc/shadow", backups + "/shadow-link");
  fs::create_directory_symlink(dir_ + "/outside", backups + "/out");
  fs::create_directories(backups + "/a-directory");
  std::ofstream(backups + "/existing") << "an older backup";
  const std::vector<std::string> watched = {"/etc/shadow", "/etc/passwd", dir_ + "/outside/victim",
                                            backups + "/existing"};
  std::vector<std::string> before;
  for (const auto& f : watched) before.push_back(Fingerprint(f));
  const std::vector<std::string> outside_before = Tree(dir_ + "/outside");
  const std::vector<std::string> backups_before = Tree(backups);

  // A request that must be refused with `code` and a message naming the object and field. Sent
  // as raw HTTP: hostile requests are the point.
  auto raw_client = server_.RawClient();
  auto refused = [&](const std::string& path, const Json& body, int code,
                     const std::string& names) {
    SCOPED_TRACE(path + " " + body.dump());
    auto r = raw_client->Post(path, body.dump());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, code) << r->body;
    Json j = Json::parse(r->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << r->body;
    EXPECT_THAT(j["error"].value("message", ""), HasSubstr(names));
  };
  const std::string backup_field = "disk \"d1\": file must be a name inside the backup directory";
  for (const std::string& file :
       {std::string("/etc/shadow"), std::string("/proc/self/environ"), dir_ + "/outside/victim",
        std::string("../outside/victim"), backups + "/../outside/victim", std::string("escape"),
        std::string("shadow-link"), std::string("out/victim"), std::string("out/new"),
        std::string("nodir/new"), std::string("")}) {
    refused("/v1/disks/d1/backup", Json{{"file", file}}, 400,
            file.empty() ? "disk \"d1\": file" : backup_field);
  }
  // Existing names are never replaced, whatever they are.
  for (const std::string file : {"existing", "a-directory"}) {
    refused("/v1/disks/d1/backup", Json{{"file", file}}, 409, "already exists");
  }
  const std::string restore_field = "disk \"r1\": file must be a name inside the backup directory";
  for (const std::string& file :
       {std::string("/etc/shadow"), std::string("/proc/self/environ"), dir_ + "/outside/victim",
        std::string("../outside/victim"), std::string("escape"), std::string("shadow-link"),
        std::string("out/victim"), std::string("a-directory")}) {
    refused("/v1/disks/restore", Json{{"name", "r1"}, {"file", file}}, 400, restore_field);
  }
  const std::string image_field = "disk \"leak\": from_image";
  for (const std::string& image :
       {std::string("/etc/shadow"), std::string("/proc/self/environ"),
        std::string("../../../etc/shadow"), dir_ + "/agent/images/../../outside/victim",
        std::string("no-such-image")}) {
    refused("/v1/disks", Json{{"name", "leak"}, {"from_image", image}}, 400, image_field);
  }

  // Nothing on the host changed; only d1 exists; nothing was left behind.
  for (size_t i = 0; i < watched.size(); ++i) EXPECT_EQ(Fingerprint(watched[i]), before[i]);
  EXPECT_EQ(Tree(dir_ + "/outside"), outside_before);
  EXPECT_EQ(Tree(backups), backups_before);
  EXPECT_EQ(DiskCount(), 1u);

  // Inside the backup directory a round trip still works, and a second backup to the same name
  // is refused without touching the first.
  auto b = server_.client().BackupDisk("d1", "d1.backup");
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string first = Fingerprint(backups + "/d1.backup");
  ASSERT_NE(first, "missing");
  EXPECT_TRUE(fs::exists(backups + "/d1.backup.sha256"));
  refused("/v1/disks/d1/backup", Json{{"file", backups + "/d1.backup"}}, 409, "already exists");
  EXPECT_EQ(Fingerprint(backups + "/d1.backup"), first);
  auto r = server_.client().RestoreDisk("d1.backup", "r1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["name"], "r1");
  EXPECT_EQ(DiskCount(), 2u);
  for (const auto& f : Tree(dir_)) EXPECT_THAT(f, Not(HasSubstr(".tmp-")));
}

TEST_F(StorageNetworkE2eTest, ImagesComeFromTheCatalogAndBackupsGoWhereTheOperatorSays) {
  namespace fs = std::filesystem;
  // The default backup directory is made at start, for the server's user only.
  EXPECT_EQ(fs::status(dir_ + "/backups").permissions() & fs::perms::all, fs::perms::owner_all);
  // A host file gets into the catalog only by an image import from the server's import
  // directory (DATA_DIR/imports); the API then names it.
  fs::create_directories(dir_ + "/imports");
  Sh({"qemu-img", "create", "-q", "-f", "qcow2", dir_ + "/imports/base.qcow2", "32M"});
  e2e::Result imported;
  e2e::Eventually(
      [&] {
        imported = e2e::Run(dir_, {"image", "import", "base", "--disk", "base.qcow2"});
        return imported.exit_code == 0;
      },
      30);
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  const std::string image = dir_ + "/agent/images/images/base/disk.qcow2";
  auto by_name = server_.client().CreateDisk({.name = "root", .from_image = "base"});
  ASSERT_TRUE(by_name.ok()) << by_name.status();
  EXPECT_EQ((*by_name)["status"]["backing_file"], image);
  EXPECT_EQ((*by_name)["status"]["size_mib"], 32);
  auto by_path = server_.client().CreateDisk({.name = "root2", .from_image = image});
  ASSERT_TRUE(by_path.ok()) << by_path.status();
  EXPECT_EQ((*by_path)["status"]["backing_file"], image);
  // The file imported from stays outside the API's reach.
  auto outside =
      server_.client().CreateDisk({.name = "root3", .from_image = dir_ + "/imports/base.qcow2"});
  EXPECT_TRUE(absl::IsInvalidArgument(outside.status())) << outside.status();

  // --backup-dir puts backups elsewhere; the default directory is then out of reach.
  server_.Kill(SIGTERM);
  const std::string chosen = dir_ + "/operator-backups";
  e2e::DevServer other(dir_, {"--dev", "--backup-dir", chosen});
  ASSERT_TRUE(other.Start()) << e2e::ReadFile(dir_ + "/serve.log");
  auto b = other.client().BackupDisk("root", "root.backup");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(b->dump(), HasSubstr(chosen + "/root.backup"));
  EXPECT_TRUE(fs::exists(chosen + "/root.backup"));
  auto old = other.client().BackupDisk("root", dir_ + "/backups/root.backup");
  EXPECT_TRUE(absl::IsInvalidArgument(old.status())) << old.status();
  EXPECT_FALSE(fs::exists(dir_ + "/backups/root.backup"));
  other.Kill(SIGTERM);
}

TEST_F(StorageNetworkE2eTest, NetworkLifecycleLeavesNothingBehind) {
  Json n = CliJson({"net", "create", "blue", "--subnet", "10.211.0.0/24", "--nat"});
  ASSERT_TRUE(n.is_object());
  EXPECT_EQ(n["spec"]["gateway"], "10.211.0.1");
  std::string bridge = n["status"]["bridge"];
  ASSERT_FALSE(bridge.empty());
  int code = 0;
  InHost({"ip", "link", "show", "dev", bridge}, &code);
  EXPECT_EQ(code, 0) << "bridge " << bridge << " missing";
  EXPECT_THAT(InHost({"ip", "-4", "addr", "show", "dev", bridge}), HasSubstr("10.211.0.1/24"));

  // Bad input is refused naming the field, and changes nothing.
  e2e::Result overlap = Cli({"net", "create", "green", "--subnet", "10.211.0.0/16"});
  EXPECT_EQ(overlap.exit_code, 1);
  EXPECT_THAT(overlap.err, HasSubstr("subnet"));
  EXPECT_THAT(overlap.err, HasSubstr("blue"));
  e2e::Result outside =
      Cli({"net", "create", "red", "--subnet", "10.212.0.0/24", "--gateway", "10.213.0.1"});
  EXPECT_EQ(outside.exit_code, 1);
  EXPECT_THAT(outside.err, HasSubstr("gateway"));
  EXPECT_EQ(NetworkCount(), 1u);
  auto bad = server_.client().AllocateAddress("blue", "w1", "10.99.0.5");
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_THAT(MessageOf(bad), HasSubstr("address"));
  auto got = server_.client().GetNetwork("blue");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE((*got)["status"]["addresses"].empty()) << got->dump();

  // Addresses are handed out once each and held in the store across a restart.
  auto a1 = server_.client().AllocateAddress("blue", "w1");
  ASSERT_TRUE(a1.ok()) << a1.status();
  auto a2 = server_.client().AllocateAddress("blue", "w2");
  ASSERT_TRUE(a2.ok()) << a2.status();
  EXPECT_NE(*a1, *a2);
  server_.Kill(SIGKILL);
  ASSERT_TRUE(server_.Start());
  InHost({"ip", "link", "show", "dev", bridge}, &code);
  EXPECT_EQ(code, 0) << "bridge gone after a restart";
  auto a3 = server_.client().AllocateAddress("blue", "w3");
  ASSERT_TRUE(a3.ok()) << a3.status();
  EXPECT_NE(*a3, *a1);
  EXPECT_NE(*a3, *a2);

  // In use: refused. Released: deleted with everything it had.
  EXPECT_EQ(Cli({"net", "rm", "blue"}).exit_code, 1);
  for (const char* owner : {"w1", "w2", "w3"}) {
    ASSERT_TRUE(server_.client().ReleaseAddress("blue", owner).ok());
  }
  e2e::Result rm = Cli({"net", "rm", "blue"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  InHost({"ip", "link", "show", "dev", bridge}, &code);
  EXPECT_NE(code, 0) << "bridge " << bridge << " left behind";
  EXPECT_THAT(InHost({"nft", "list", "ruleset"}), Not(HasSubstr("10.211.0.")));
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/agent/net/blue"));
  EXPECT_EQ(NetworkCount(), 0u);
}

TEST_F(StorageNetworkE2eTest, RestartKeepsStoredNetworksAndRemovesLeftovers) {
  Json n = CliJson({"net", "create", "keep", "--subnet", "10.214.0.0/24"});
  ASSERT_TRUE(n.is_object());
  std::string bridge = n["status"]["bridge"];
  // A Berth bridge of this server's the store does not know, as a crash between steps would
  // leave it; and one of another instance sharing the namespace, which must stay.
  const std::string stale = "bb" + ShortInstance() + "deadbeef0";
  const std::string foreign = "bbffffdeadbeef0";
  ASSERT_NE(ShortInstance(), "ffff");
  int code = 0;
  InHost({"ip", "link", "add", stale, "type", "bridge"}, &code);
  ASSERT_EQ(code, 0);
  InHost({"ip", "link", "add", foreign, "type", "bridge"}, &code);
  ASSERT_EQ(code, 0);
  server_.Kill(SIGKILL);
  // The network's bridge vanishes while the server is down; the restart re-declares it.
  InHost({"ip", "link", "del", bridge}, &code);
  ASSERT_EQ(code, 0);
  ASSERT_TRUE(server_.Start());
  InHost({"ip", "link", "show", "dev", bridge}, &code);
  EXPECT_EQ(code, 0) << "stored network not re-declared";
  InHost({"ip", "link", "show", "dev", stale}, &code);
  EXPECT_NE(code, 0) << "leftover bridge kept";
  InHost({"ip", "link", "show", "dev", foreign}, &code);
  EXPECT_EQ(code, 0) << "another instance's bridge removed";
  ASSERT_EQ(Cli({"net", "rm", "keep"}).exit_code, 0);
  InHost({"ip", "link", "show", "dev", bridge}, &code);
  EXPECT_NE(code, 0);
}

TEST_F(StorageNetworkE2eTest, SecurityGroupsAndPortForwardsValidate) {
  ASSERT_EQ(Cli({"secgroup", "create", "web"}).exit_code, 0);
  for (const char* ports : {"90-80", "0", "70000", "http"}) {
    e2e::Result r = Cli({"secgroup", "rule", "add", "web", "--proto", "tcp", "--ports", ports});
    EXPECT_EQ(r.exit_code, 1) << ports;
    EXPECT_THAT(r.err, HasSubstr("ports")) << ports;
  }
  e2e::Result r =
      Cli({"secgroup", "rule", "add", "web", "--ports", "80", "--from", "10.0.0.300/8"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("from"));
  r = Cli({"secgroup", "rule", "add", "web", "--ports", "80", "--from-group", "nosuch"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("from_group"));
  EXPECT_TRUE(CliJson({"secgroup", "get", "web"})["spec"]["rules"].empty());

  Json g = CliJson({"secgroup", "rule", "add", "web", "--proto", "tcp", "--ports", "80-90",
                    "--from", "10.0.0.0/8"});
  ASSERT_EQ(g["spec"]["rules"].size(), 1u);
  std::string rule = g["spec"]["rules"][0]["id"];
  ASSERT_EQ(Cli({"secgroup", "create", "db"}).exit_code, 0);
  CliJson({"secgroup", "rule", "add", "db", "--ports", "5432", "--from-group", "web"});
  // A group another group's rule names cannot go.
  e2e::Result in_use = Cli({"secgroup", "rm", "web"});
  EXPECT_EQ(in_use.exit_code, 1);
  EXPECT_THAT(in_use.err, HasSubstr("db"));
  EXPECT_EQ(CliJson({"secgroup", "rule", "rm", "web", rule})["spec"]["rules"].size(), 0u);
  EXPECT_EQ(CliJson({"secgroup", "ls"})["items"].size(), 2u);

  // Port forwards need a real port and a workload with an address.
  e2e::Result pf =
      Cli({"portfwd", "add", "--host-port", "70000", "--workload", "w", "--port", "80"});
  EXPECT_EQ(pf.exit_code, 1);
  EXPECT_THAT(pf.err, HasSubstr("host_port"));
  pf = Cli({"portfwd", "add", "--host-port", "8080", "--workload", "w", "--port", "80"});
  EXPECT_EQ(pf.exit_code, 1);
  EXPECT_THAT(pf.err, HasSubstr("no address"));
  EXPECT_EQ(CliJson({"portfwd", "ls"})["items"].size(), 0u);
}

// Two dev servers with different data directories in one network namespace, each with a NAT
// network "blue": the second's restart (with its cleanup) and its removing its network leave the
// first's bridge, nftables table and dnsmasq in place and working.
TEST_F(StorageNetworkE2eTest, TwoServersInOneNamespaceLeaveEachOthersNetworksAlone) {
  Json a = CliJson({"net", "create", "blue", "--subnet", "10.217.0.0/24", "--nat"});
  ASSERT_TRUE(a.is_object());
  const std::string a_bridge = a["status"]["bridge"];
  const std::string a_table = "inet berth_" + Instance();
  const std::string a_pid_file = dir_ + "/agent/net/dnsmasq/blue/pid";
  const std::string a_dnsmasq = e2e::ReadFile(a_pid_file);
  ASSERT_FALSE(a_dnsmasq.empty());

  const std::string b_dir = e2e::TempDir("storenet-b");
  struct Cleanup {
    std::string dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } remove_b{b_dir};
  const std::string b_inst = runtime::net::InstanceIdForDir(b_dir + "/agent");
  ASSERT_NE(b_inst, Instance());
  e2e::DevServer b(b_dir);
  ASSERT_TRUE(b.Start()) << e2e::ReadFile(b_dir + "/serve.log");
  auto b_cli = [&](std::vector<std::string> args) {
    args.push_back("--json");
    return e2e::Run(b_dir, args);
  };
  e2e::Result created = b_cli({"net", "create", "blue", "--subnet", "10.218.0.0/24", "--nat"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const std::string b_bridge = Json::parse(created.out, nullptr, false)["status"]["bridge"];
  EXPECT_NE(b_bridge, a_bridge);
  EXPECT_THAT(InHost({"nft", "list", "tables"}), HasSubstr("inet berth_" + b_inst));

  // The second server crashes and starts again: its start-up cleanup runs. Then it removes its
  // network and stops.
  b.Kill(SIGKILL);
  ASSERT_TRUE(b.Start()) << e2e::ReadFile(b_dir + "/serve.log");
  int code = 0;
  InHost({"ip", "link", "show", "dev", b_bridge}, &code);
  EXPECT_EQ(code, 0) << "the second server lost its own bridge on restart";
  e2e::Result removed = b_cli({"net", "rm", "blue"});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  b.Kill(SIGTERM);
  InHost({"ip", "link", "show", "dev", b_bridge}, &code);
  EXPECT_NE(code, 0) << "bridge " << b_bridge << " left behind";

  // The first server's network is untouched and still serves.
  std::string link = InHost({"ip", "-o", "addr", "show", "dev", a_bridge}, &code);
  EXPECT_EQ(code, 0) << "bridge " << a_bridge << " deleted by the other server";
  EXPECT_THAT(link, HasSubstr("10.217.0.1/24"));
  std::string rules = InHost({"nft", "list", "table", a_table}, &code);
  EXPECT_EQ(code, 0) << "table " << a_table << " deleted by the other server";
  EXPECT_THAT(rules, HasSubstr("ip saddr 10.217.0.0/24"));
  EXPECT_THAT(rules, HasSubstr("masquerade"));
  EXPECT_THAT(InHost({"nft", "list", "tables"}), Not(HasSubstr("inet berth_" + b_inst)));
  EXPECT_EQ(e2e::ReadFile(a_pid_file), a_dnsmasq);
  const std::string pid = a_dnsmasq.substr(0, a_dnsmasq.find('\n'));
  EXPECT_TRUE(std::filesystem::exists("/proc/" + pid)) << "dnsmasq " << pid << " is gone";
  EXPECT_THAT(e2e::ReadFile("/proc/" + pid + "/cmdline"), HasSubstr(a_bridge));
  // Traffic still crosses the bridge: a namespace plugged into it reaches the gateway.
  runtime::net::testing::TestNamespaces guest({"guest"});
  ASSERT_TRUE(guest.ok());
  const std::string g = guest.Name("guest");
  InHost({"ip", "link", "add", "gport", "type", "veth", "peer", "name", "eth0", "netns", g}, &code);
  ASSERT_EQ(code, 0);
  InHost({"ip", "link", "set", "gport", "master", a_bridge, "up"}, &code);
  ASSERT_EQ(code, 0);
  std::string out;
  ASSERT_EQ(runtime::net::testing::RunIn(g, {"ip", "addr", "add", "10.217.0.77/24", "dev", "eth0"}),
            0);
  ASSERT_EQ(runtime::net::testing::RunIn(g, {"ip", "link", "set", "eth0", "up"}), 0);
  EXPECT_EQ(runtime::net::testing::RunIn(
                g, {"busybox", "ping", "-c", "1", "-W", "20", "10.217.0.1"}, &out),
            0)
      << out;
  // Still the first server's to manage: it removes its network completely.
  e2e::Result a_rm = Cli({"net", "rm", "blue"});
  EXPECT_EQ(a_rm.exit_code, 0) << a_rm.err;
  InHost({"ip", "link", "show", "dev", a_bridge}, &code);
  EXPECT_NE(code, 0);
}

}  // namespace
}  // namespace berth
