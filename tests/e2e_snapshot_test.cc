// Control-plane disaster recovery with the real binary: `berth admin snapshot save` of a live
// server, `restore` into a new data directory (SQLite) or a fresh etcd member, the agents
// reconciling against the restored store, `berth admin migrate` from SQLite to etcd, scheduled
// snapshots, and the refusals (a file that is not a snapshot, a target that holds data).
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "state/etcd/etcd_test_util.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A `berth serve` process started with exactly `args` after --data-dir.
class Serve {
 public:
  Serve(std::string dir, std::vector<std::string> args)
      : dir_(std::move(dir)), args_(std::move(args)) {}
  ~Serve() { Stop(SIGTERM); }

  bool Start() {
    fs::create_directories(dir_);
    fs::remove(dir_ + "/server.json");
    std::vector<std::string> args = {"serve", "--data-dir", dir_, "--host-ttl", "30s"};
    args.insert(args.end(), args_.begin(), args_.end());
    if (std::find(args.begin(), args.end(), "--listen") == args.end()) {
      args.insert(args.end(), {"--listen", "127.0.0.1:0"});
    }
    pid_ = Spawn(args, dir_ + "/serve.log");
    bool up = Eventually([&] {
      auto info = json::parse(ReadFile(dir_ + "/server.json"), nullptr, false);
      if (!info.is_object() || info.value("pid", 0) != pid_) return false;
      url_ = info.value("url", "");
      return true;
    });
    if (!up) return false;
    token_ = ReadFile(dir_ + "/admin.token");
    while (!token_.empty() && token_.back() == '\n') token_.pop_back();
    client_ = std::make_unique<api::Client>(url_, api::ClientOptions{.token = token_});
    return true;
  }
  void Stop(int sig) {
    if (pid_ <= 0) return;
    KillAndReap(pid_, sig);
    pid_ = -1;
    client_.reset();
  }
  api::Client& client() { return *client_; }
  const std::string& url() const { return url_; }
  std::string port() const { return url_.substr(url_.rfind(':') + 1); }
  const std::string& token() const { return token_; }
  std::string Log() const { return ReadFile(dir_ + "/serve.log"); }
  std::string State(const std::string& workload) {
    auto w = client_->GetWorkload(workload);
    return w.ok() ? std::string(core::WorkloadStateName(w->status.state)) : "";
  }
  // `berth ARGS --server URL --token TOKEN`.
  Result Cli(const std::string& data_dir, std::vector<std::string> args) {
    args.insert(args.end(), {"--server", url_, "--token", token_});
    return e2e::Run(data_dir, args);
  }

 private:
  std::string dir_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  std::string url_;
  std::string token_;
  std::unique_ptr<api::Client> client_;
};

core::WorkloadSpec Sleeper(const std::string& name, const std::string& marker) {
  core::WorkloadSpec spec;
  spec.name = name;
  spec.kind = core::WorkloadKind::kProcess;
  spec.command = {"/bin/sleep", marker};
  spec.resources.cpu = core::MilliCpu(100);
  spec.resources.memory = core::MemoryMiB(32);
  return spec;
}

// The pid of the process whose command line holds `marker`; 0 when there is none.
pid_t PidWithArg(const std::string& marker) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
    for (char& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (cmdline.find(marker) != std::string::npos && cmdline.find("sleep") != std::string::npos) {
      return static_cast<pid_t>(std::atoi(entry.path().filename().c_str()));
    }
  }
  return 0;
}

json LastJsonLine(const std::string& text) {
  size_t end = text.find_last_not_of('\n');
  if (end == std::string::npos) return json();
  size_t start = text.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  return json::parse(text.substr(start, end - start + 1), nullptr, false);
}

TEST(SnapshotE2eTest, SqliteSnapshotOfALiveServerRestoresAndAgentsReconcile) {
  const std::string dir = TempDir("e2e-snapshot");
  Serve first(dir + "/a", {});
  ASSERT_TRUE(first.Start()) << first.Log();
  const std::vector<std::string> agent_args = {
      "agent",      "--server",     first.url(), "--join-token-file", dir + "/a/join.token",
      "--data-dir", dir + "/agent", "--name",    "snap-host"};
  pid_t agent = Spawn(agent_args, dir + "/agent.log");
  auto host_ready = [&](Serve& server) {
    auto h = server.client().GetHost("snap-host");
    return h.ok() && h->host.state == core::HostState::kReady;
  };
  ASSERT_TRUE(Eventually([&] { return host_ready(first); })) << ReadFile(dir + "/agent.log");

  const std::string kept_marker = "3600.1" + std::to_string(getpid());
  const std::string lost_marker = "3600.2" + std::to_string(getpid());
  ASSERT_TRUE(first.client().CreateWorkload(Sleeper("kept", kept_marker)).ok());
  ASSERT_TRUE(Eventually([&] { return first.State("kept") == "running"; }));
  const pid_t kept_pid = PidWithArg(kept_marker);
  ASSERT_GT(kept_pid, 0);

  // A snapshot of the live server, through its API.
  Result saved = first.Cli(dir, {"admin", "snapshot", "save", dir + "/snap.db", "--json"});
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  json info = json::parse(saved.out, nullptr, false);
  ASSERT_TRUE(info.is_object()) << saved.out;
  EXPECT_EQ(info.value("format", ""), "sqlite");
  EXPECT_GT(info.value("keys", 0), 0);
  EXPECT_GT(info.value("revision", 0), 0);
  EXPECT_EQ(info.value("bytes", int64_t{0}), static_cast<int64_t>(fs::file_size(dir + "/snap.db")));
  EXPECT_NE(saved.err.find("\"progress\""), std::string::npos) << saved.err;
  // It does not overwrite a file without --force.
  Result again = first.Cli(dir, {"admin", "snapshot", "save", dir + "/snap.db"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again.err;

  // Work started after the snapshot: the restored store will not know it.
  ASSERT_TRUE(first.client().CreateWorkload(Sleeper("lost", lost_marker)).ok());
  ASSERT_TRUE(Eventually([&] { return first.State("lost") == "running"; }));
  ASSERT_GT(PidWithArg(lost_marker), 0);
  const std::string port = first.port();
  first.Stop(SIGKILL);  // the server is lost

  // Restore into a new data directory and serve it where the agents look.
  Result restored = e2e::Run(
      dir, {"admin", "snapshot", "restore", dir + "/snap.db", "--data-dir", dir + "/b", "--json"});
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  EXPECT_EQ(LastJsonLine(restored.out).value("target", ""), dir + "/b/berth.db");
  Result twice =
      e2e::Run(dir, {"admin", "snapshot", "restore", dir + "/snap.db", "--data-dir", dir + "/b"});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.err.find("--force"), std::string::npos) << twice.err;

  Serve second(dir + "/b", {"--listen", "127.0.0.1:" + port});
  ASSERT_TRUE(second.Start()) << second.Log();
  auto kept = second.client().GetWorkload("kept");
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_TRUE(absl::IsNotFound(second.client().GetWorkload("lost").status()));
  // The agent stops what the store does not know and keeps (re-adopts) what it knows.
  EXPECT_TRUE(Eventually([&] { return PidWithArg(lost_marker) == 0; }))
      << ReadFile(dir + "/agent.log");
  EXPECT_TRUE(Eventually([&] { return host_ready(second); }));
  EXPECT_EQ(PidWithArg(kept_marker), kept_pid);
  EXPECT_EQ(second.State("kept"), "running");

  ASSERT_TRUE(second.client().DeleteWorkload("kept").ok());
  EXPECT_TRUE(Eventually([&] { return PidWithArg(kept_marker) == 0; }));
  KillAndReap(agent, SIGTERM);
  second.Stop(SIGTERM);
  fs::remove_all(dir);
}

TEST(SnapshotE2eTest, WhatIsNotASnapshotAndTargetsThatHoldDataAreRefused) {
  const std::string dir = TempDir("e2e-snapshot-bad");
  std::ofstream(dir + "/notes.txt") << "not a snapshot\n";
  Result bad =
      e2e::Run(dir, {"admin", "snapshot", "restore", dir + "/notes.txt", "--data-dir", dir + "/b"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("not a snapshot"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir + "/b/berth.db"));
  Result bad_json = e2e::Run(dir, {"admin", "snapshot", "restore", dir + "/notes.txt", "--to",
                                   "sqlite://" + dir + "/x.db", "--json"});
  EXPECT_EQ(bad_json.exit_code, 1);
  EXPECT_TRUE(json::parse(bad_json.err, nullptr, false).contains("error")) << bad_json.err;
  Result missing = e2e::Run(dir, {"admin", "snapshot", "restore", dir + "/absent.db", "--to",
                                  "sqlite://" + dir + "/x.db"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no such file"), std::string::npos) << missing.err;

  // Usage mistakes: no target, two targets, a malformed store URL.
  Result no_target = e2e::Run(dir, {"admin", "snapshot", "restore", dir + "/snap.db"});
  Result url = e2e::Run(dir, {"admin", "snapshot", "save", dir + "/s.db", "--store", "mysql://x"});
  EXPECT_EQ(url.exit_code, 2) << url.err;
  Result migrate_url =
      e2e::Run(dir, {"admin", "migrate", "--from", "sqlite://", "--to", "etcd://h"});
  EXPECT_EQ(migrate_url.exit_code, 2) << migrate_url.err;

  // A store of a stopped server saves straight from its file; the snapshot restores, but not
  // over a target that holds data.
  {
    Serve server(dir + "/a", {});
    ASSERT_TRUE(server.Start()) << server.Log();
    ASSERT_TRUE(server.client().CreateWorkload(Sleeper("pending-1", "1")).ok());
    // While the server holds the file, saving from it is refused, naming the way that works.
    Result held = e2e::Run(dir, {"admin", "snapshot", "save", dir + "/direct.db", "--store",
                                 "sqlite://" + dir + "/a/berth.db"});
    EXPECT_EQ(held.exit_code, 1);
    EXPECT_NE(held.err.find("running server"), std::string::npos) << held.err;
  }
  Result direct = e2e::Run(dir, {"admin", "snapshot", "save", dir + "/direct.db", "--store",
                                 "sqlite://" + dir + "/a/berth.db"});
  ASSERT_EQ(direct.exit_code, 0) << direct.err;
  EXPECT_NE(direct.out.find("keys at revision"), std::string::npos) << direct.out;
  Result over = e2e::Run(dir, {"admin", "snapshot", "restore", dir + "/direct.db", "--to",
                               "sqlite://" + dir + "/a/berth.db"});
  EXPECT_EQ(over.exit_code, 1);
  EXPECT_NE(over.err.find("already holds data"), std::string::npos) << over.err;
  Result forced = e2e::Run(dir, {"admin", "snapshot", "restore", dir + "/direct.db", "--to",
                                 "sqlite://" + dir + "/a/berth.db", "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;

  // --help explains; no_target was a usage error.
  EXPECT_EQ(no_target.exit_code, 2) << no_target.err;
  Result help = e2e::Run(dir, {"admin", "snapshot", "save", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("online backup"), std::string::npos) << help.out;
  Result migrate_help = e2e::Run(dir, {"admin", "migrate", "--help"});
  EXPECT_NE(migrate_help.out.find("lease"), std::string::npos) << migrate_help.out;
  fs::remove_all(dir);
}

TEST(SnapshotE2eTest, ScheduledSnapshotsAreWrittenAndPruned) {
  const std::string dir = TempDir("e2e-snapshot-every");
  {
    Serve server(dir + "/a", {"--snapshot-every", "1s", "--snapshot-keep", "2"});
    ASSERT_TRUE(server.Start()) << server.Log();
    ASSERT_TRUE(server.client().CreateWorkload(Sleeper("pending-1", "1")).ok());
    auto snapshots = [&] {
      std::vector<std::string> names;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir + "/a/snapshots", ec)) {
        std::string name = e.path().filename().string();
        if (name.starts_with("berth-")) names.push_back(name);
      }
      std::sort(names.begin(), names.end());
      return names;
    };
    // Once a fourth has been taken, the first two are gone.
    std::vector<std::string> seen;
    ASSERT_TRUE(Eventually([&] {
      for (const std::string& name : snapshots()) {
        if (std::find(seen.begin(), seen.end(), name) == seen.end()) seen.push_back(name);
      }
      return seen.size() >= 4;
    })) << server.Log();
    std::vector<std::string> kept = snapshots();
    EXPECT_LE(kept.size(), 3u);  // two kept, and perhaps a third not yet pruned
    EXPECT_EQ(std::count(kept.begin(), kept.end(), seen.front()), 0);
    Result restored =
        e2e::Run(dir, {"admin", "snapshot", "restore", dir + "/a/snapshots/" + seen.back(), "--to",
                       "sqlite://" + dir + "/restored.db", "--json"});
    EXPECT_EQ(restored.exit_code, 0) << restored.err;
    EXPECT_GT(LastJsonLine(restored.out).value("keys", 0), 0) << restored.out;
  }
  fs::remove_all(dir);
}

TEST(SnapshotE2eTest, EtcdSnapshotRestoresIntoAFreshMember) {
  auto source = state::testing::EtcdCluster::Start(1);
  ASSERT_TRUE(source.ok()) << source.status();
  const std::string dir = TempDir("e2e-snapshot-etcd");
  {
    Serve server(dir + "/a", {"--store", "etcd://" + (*source)->endpoint(0)});
    ASSERT_TRUE(server.Start()) << server.Log();
    ASSERT_TRUE(server.client().CreateWorkload(Sleeper("kept", "1")).ok());
    Result saved = server.Cli(dir, {"admin", "snapshot", "save", dir + "/etcd.snap", "--json"});
    ASSERT_EQ(saved.exit_code, 0) << saved.err;
    json info = json::parse(saved.out, nullptr, false);
    EXPECT_EQ(info.value("format", ""), "etcd") << saved.out;
    EXPECT_GT(info.value("keys", 0), 0) << saved.out;
    // Straight from etcd, too.
    Result direct = e2e::Run(dir, {"admin", "snapshot", "save", dir + "/direct.snap", "--store",
                                   "etcd://" + (*source)->endpoint(0)});
    EXPECT_EQ(direct.exit_code, 0) << direct.err;
    ASSERT_TRUE(server.client().CreateWorkload(Sleeper("after", "1")).ok());
  }
  auto fresh = state::testing::EtcdCluster::Start(1);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  ASSERT_TRUE((*fresh)->Kill(0).ok());
  std::vector<std::string> restore = {"admin",
                                      "snapshot",
                                      "restore",
                                      dir + "/etcd.snap",
                                      "--data-dir",
                                      (*fresh)->data_dir(0),
                                      "--etcd-name",
                                      (*fresh)->name(0),
                                      "--etcd-initial-cluster",
                                      (*fresh)->initial_cluster(),
                                      "--etcd-peer-url",
                                      (*fresh)->peer_url(0)};
  Result refused = e2e::Run(dir, restore);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("--force"), std::string::npos) << refused.err;
  restore.push_back("--force");
  Result restored = e2e::Run(dir, restore);
  ASSERT_EQ(restored.exit_code, 0) << restored.err;
  ASSERT_TRUE((*fresh)->Restart(0).ok());
  {
    Serve server(dir + "/b", {"--store", "etcd://" + (*fresh)->endpoint(0)});
    ASSERT_TRUE(server.Start()) << server.Log();
    EXPECT_TRUE(server.client().GetWorkload("kept").ok());
    EXPECT_TRUE(absl::IsNotFound(server.client().GetWorkload("after").status()));
    EXPECT_TRUE(server.client().CreateWorkload(Sleeper("new", "1")).ok());
  }
  fs::remove_all(dir);
}

TEST(SnapshotE2eTest, MigrateMovesAnSqliteDeploymentToEtcd) {
  auto cluster = state::testing::EtcdCluster::Start(1);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string etcd = "etcd://" + (*cluster)->endpoint(0);
  const std::string dir = TempDir("e2e-migrate");
  const std::string db = "sqlite://" + dir + "/a/berth.db";
  std::vector<std::string> names;
  {
    Serve server(dir + "/a", {});
    ASSERT_TRUE(server.Start()) << server.Log();
    for (int i = 0; i < 20; ++i) {
      names.push_back("w-" + std::to_string(i));
      ASSERT_TRUE(server.client().CreateWorkload(Sleeper(names.back(), "1")).ok());
    }
    Result held = e2e::Run(dir, {"admin", "migrate", "--from", db, "--to", etcd});
    EXPECT_EQ(held.exit_code, 1);
    EXPECT_NE(held.err.find("stop it first"), std::string::npos) << held.err;
  }
  Result migrated = e2e::Run(dir, {"admin", "migrate", "--from", db, "--to", etcd, "--json"});
  ASSERT_EQ(migrated.exit_code, 0) << migrated.err;
  json result = json::parse(migrated.out, nullptr, false);
  ASSERT_TRUE(result.is_object()) << migrated.out;
  EXPECT_GT(result.value("keys", 0), 20);
  EXPECT_NE(migrated.err.find("\"progress\""), std::string::npos) << migrated.err;
  Result again = e2e::Run(dir, {"admin", "migrate", "--from", db, "--to", etcd});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("not empty"), std::string::npos) << again.err;
  Result forced = e2e::Run(dir, {"admin", "migrate", "--from", db, "--to", etcd, "--force"});
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(forced.out.find("migrated"), std::string::npos) << forced.out;
  {
    Serve server(dir + "/b", {"--store", etcd});
    ASSERT_TRUE(server.Start()) << server.Log();
    auto list = server.client().ListWorkloads();
    ASSERT_TRUE(list.ok()) << list.status();
    std::vector<std::string> found;
    for (const auto& w : list->items) found.push_back(w.spec.name);
    std::sort(found.begin(), found.end());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(found, names);
    EXPECT_TRUE(server.client().CreateWorkload(Sleeper("after-migrate", "1")).ok());
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace berth::e2e
