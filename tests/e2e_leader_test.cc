// Three `berth serve` processes on one three-member etcd cluster (all on loopback): one leads,
// the others follow and forward writes. A client streams creates while the leader is SIGKILLed;
// another server takes over, every acknowledged create is there, the work created after the kill
// is placed, and nothing is placed twice. The agent and the CLI move on to the next server in
// their address list.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "state/etcd/etcd_test_util.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

void WriteSecret(const std::string& path, const std::string& text) {
  std::ofstream(path) << text << "\n";
  chmod(path.c_str(), 0600);
}

core::WorkloadSpec Sleeper(const std::string& name, const std::string& marker) {
  core::WorkloadSpec spec;
  spec.name = name;
  spec.kind = core::WorkloadKind::kProcess;
  spec.command = {"/bin/sleep", marker};
  spec.resources.cpu = core::MilliCpu(10);
  spec.resources.memory = core::MemoryMiB(4);
  return spec;
}

class LeaderFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = state::testing::EtcdCluster::Start(3);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    etcd_ = std::move(*cluster);
    std::string url = "etcd://";
    for (const auto& e : etcd_->endpoints()) url += (url.size() > 7 ? "," : "") + e;
    dir_ = TempDir("e2e-leader");
    // The servers share their tokens, so a client or agent may talk to any of them.
    const std::string admin = "admin-" + std::to_string(getpid());
    const std::string join = "join-" + std::to_string(getpid());
    for (int i = 0; i < 3; ++i) {
      const std::string d = dir_ + "/server" + std::to_string(i);
      std::filesystem::create_directories(d);
      WriteSecret(d + "/admin.token", admin);
      WriteSecret(d + "/join.token", join);
      servers_.push_back(std::make_unique<DevServer>(d, std::vector<std::string>{"--store", url}));
      ASSERT_TRUE(servers_.back()->Start()) << ReadFile(d + "/serve.log");
    }
  }

  void TearDown() override {
    for (auto& s : servers_) {
      if (s->pid() > 0) {
        DeleteAllWorkloads(*s);
        break;
      }
    }
    KillAndReap(agent_, SIGTERM);
    servers_.clear();
    etcd_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The index of the server that leads as `from` sees it, once all `members` servers are up
  // and one leads; -1 when that does not happen.
  int Leader(int from, size_t members) {
    int leader = -1;
    Eventually([&] {
      auto status = servers_[from]->client().ClusterStatus();
      if (!status.ok() || !(*status)["leader"].is_object()) return false;
      if ((*status)["members"].size() != members) return false;
      const std::string address = (*status)["leader"].value("address", "");
      for (size_t i = 0; i < servers_.size(); ++i) {
        if (servers_[i]->pid() > 0 && servers_[i]->url() == address) leader = static_cast<int>(i);
      }
      return leader >= 0;
    });
    return leader;
  }

  std::string Urls(int first) {
    std::string urls = servers_[first]->url();
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (static_cast<int>(i) != first) urls += "," + servers_[i]->url();
    }
    return urls;
  }

  // Every workload of `names` is there, placed on the one host, with one "scheduled" event and
  // placement generation 1; nothing at all was placed twice. Asked of server `from`.
  void ExpectEachPlacedOnce(int from, const std::vector<std::string>& names) {
    api::Client& survivor = servers_[from]->client();
    for (const std::string& name : names) {
      auto w = survivor.GetWorkload(name);
      ASSERT_TRUE(w.ok()) << name << ": " << w.status();
    }
    for (const std::string& name : names) {
      EXPECT_TRUE(Eventually([&] {
        auto w = survivor.GetWorkload(name);
        return w.ok() && w->status.host == "h1";
      })) << name
          << " never placed: " << servers_[from]->Dump(name).dump();
    }
    // The whole log in one answer (a limit keeps the newest events; this one is far above).
    std::map<std::string, int> scheduled;
    auto events = survivor.ListEvents({.index = 0, .limit = 1000000});
    ASSERT_TRUE(events.ok()) << events.status();
    ASSERT_LT(events->items.size(), 1000000u);
    for (const auto& e : events->items) {
      if (e.type == "scheduled") ++scheduled[e.object];
    }
    for (const std::string& name : names) {
      EXPECT_EQ(scheduled[name], 1) << name;
      auto w = survivor.GetWorkload(name);
      ASSERT_TRUE(w.ok());
      EXPECT_EQ(w->status.generation, 1) << name;
    }
    for (const auto& [name, n] : scheduled) EXPECT_LE(n, 1) << name << " placed " << n << " times";
  }

  // Starts an agent for host h1 that lists `first` before the other servers, and waits until
  // server `check` sees h1 ready.
  void StartAgent(int first, int check) {
    agent_ = Spawn(
        {"agent", "--server", Urls(first), "--join-token-file",
         servers_[0]->data_dir() + "/join.token", "--data-dir", dir_ + "/agent", "--name", "h1"},
        dir_ + "/agent.log");
    ASSERT_TRUE(Eventually([&] {
      auto h = servers_[check]->client().GetHost("h1");
      return h.ok() && h->host.state == core::HostState::kReady;
    })) << ReadFile(dir_ + "/agent.log");
  }

  std::unique_ptr<state::testing::EtcdCluster> etcd_;
  std::string dir_;
  std::vector<std::unique_ptr<DevServer>> servers_;
  pid_t agent_ = -1;
};

TEST_F(LeaderFailoverTest, AcknowledgedCreatesSurviveTheLeadersKillAndNothingIsPlacedTwice) {
  const int leader = Leader(0, 3);
  ASSERT_GE(leader, 0) << ReadFile(servers_[0]->data_dir() + "/serve.log");
  const int follower = (leader + 1) % 3;
  // Every server names the same leader.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Leader(i, 3), leader);
  // The agent lists the leader first, so killing it makes the agent move on too.
  StartAgent(leader, follower);

  // A write through a follower goes to the leader and is placed.
  const std::string marker = "3600." + std::to_string(getpid());
  auto first = servers_[follower]->client().CreateWorkload(Sleeper("via-follower", marker));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(Eventually([&] {
    auto w = servers_[follower]->client().GetWorkload("via-follower");
    return w.ok() && !w->status.host.empty();
  })) << servers_[follower]->Dump("via-follower").dump();

  // A client streams creates, leader first in its list, while the leader is killed.
  api::Client client(Urls(leader), api::ClientOptions{.token = servers_[0]->token(),
                                                      .timeout = absl::Seconds(30),
                                                      .connect_timeout = absl::Seconds(2),
                                                      .failover_wait = absl::Seconds(60)});
  absl::Mutex mu;
  std::vector<std::string> acknowledged;
  std::vector<std::string> unknown;  // failed: maybe applied, maybe not
  std::atomic<bool> killed{false};
  std::atomic<int> after_kill{0};
  std::atomic<bool> stop{false};
  std::thread creator([&] {
    for (int i = 0; !stop.load() && i < 2000; ++i) {
      const std::string name = "w-" + std::to_string(i);
      const bool was_killed = killed.load();
      auto created = client.CreateWorkload(Sleeper(name, marker));
      absl::MutexLock lock(&mu);
      if (created.ok()) {
        acknowledged.push_back(name);
        if (was_killed) ++after_kill;
      } else {
        unknown.push_back(name + ": " + std::string(created.status().message()));
      }
    }
  });
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return acknowledged.size() >= 10;
  }));
  servers_[leader]->Kill(SIGKILL);
  killed = true;
  // Creates go on through the other servers once a new leader is elected.
  const bool resumed = Eventually([&] { return after_kill.load() >= 10; }, 120);
  stop = true;
  creator.join();
  ASSERT_TRUE(resumed) << ReadFile(servers_[follower]->data_dir() + "/serve.log");

  const int next = Leader(follower, 2);
  ASSERT_GE(next, 0);
  EXPECT_NE(next, leader);
  std::vector<std::string> all;
  {
    absl::MutexLock lock(&mu);
    all = acknowledged;
    for (const auto& u : unknown)
      std::fprintf(stderr, "create with unknown outcome: %s\n", u.c_str());
  }
  all.push_back("via-follower");
  ExpectEachPlacedOnce(follower, all);
}

TEST_F(LeaderFailoverTest, LosingOneEtcdMemberOfThreeFailsNoWrite) {
  const int leader = Leader(0, 3);
  ASSERT_GE(leader, 0) << ReadFile(servers_[0]->data_dir() + "/serve.log");
  const int follower = (leader + 1) % 3;
  StartAgent(leader, follower);
  // Creates stream through a follower (forwarded to the leader) while the first etcd member,
  // the one every server talks to first, is killed: each gets a definite answer, and that
  // answer is yes.
  const std::string marker = "3600." + std::to_string(getpid());
  api::Client client(servers_[follower]->url(),
                     api::ClientOptions{.token = servers_[0]->token(),
                                        .timeout = absl::Seconds(60),
                                        .connect_timeout = absl::Seconds(2)});
  absl::Mutex mu;
  std::vector<std::string> acknowledged;
  std::vector<std::string> failed;
  std::thread creator([&] {
    for (int i = 0; i < 40; ++i) {
      const std::string name = "m-" + std::to_string(i);
      auto created = client.CreateWorkload(Sleeper(name, marker));
      absl::MutexLock lock(&mu);
      if (created.ok()) {
        acknowledged.push_back(name);
      } else {
        failed.push_back(name + ": " + std::string(created.status().message()));
      }
    }
  });
  bool started = Eventually([&] {
    absl::MutexLock lock(&mu);
    return acknowledged.size() + failed.size() >= 10;
  });
  ASSERT_TRUE(etcd_->Kill(0).ok());
  creator.join();
  ASSERT_TRUE(started);
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(failed.empty()) << failed.size() << " failed, first: " << failed.front()
                              << "\nleader's log:\n"
                              << ReadFile(servers_[leader]->data_dir() + "/serve.log");
  EXPECT_EQ(acknowledged.size(), 40u);
  ExpectEachPlacedOnce(follower, acknowledged);
}

TEST_F(LeaderFailoverTest, TheCliMovesOnToTheNextServerInItsList) {
  const int leader = Leader(0, 3);
  ASSERT_GE(leader, 0);
  const int follower = (leader + 1) % 3;
  Result status = e2e::Run(dir_, {"status", "--json", "--server", servers_[follower]->url(),
                                  "--token", servers_[0]->token()});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  auto j = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << status.out;
  EXPECT_EQ(j["leader"].value("address", ""), servers_[leader]->url());
  EXPECT_EQ(j["members"].size(), 3u);
  EXPECT_EQ(j["store"].value("kind", ""), "etcd");
  EXPECT_EQ(j["store"]["endpoints"].size(), 3u);
  EXPECT_FALSE(j["server"].value("leader", true));
  Result table = e2e::Run(
      dir_, {"status", "--server", servers_[follower]->url(), "--token", servers_[0]->token()});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("leader"), std::string::npos) << table.out;

  // The first server in the list is gone: the CLI says nothing of it and answers from the next.
  const std::string dead = servers_[leader]->url();
  servers_[leader]->Kill(SIGKILL);
  const std::string list = dead + "," + servers_[follower]->url();
  Result created = e2e::Run(dir_,
                            {"workload", "create", "--json", "-f", "-", "--server", list, "--token",
                             servers_[0]->token()},
                            "name: cli-one\nkind: process\ncommand: [/bin/true]\n"
                            "resources: {cpu: 10m, memory: 4Mi}\n");
  EXPECT_EQ(created.exit_code, 0) << created.err;
  Result listed = e2e::Run(
      dir_, {"workload", "ls", "--json", "--server", list, "--token", servers_[0]->token()});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("cli-one"), std::string::npos) << listed.out;
}

}  // namespace
}  // namespace berth::e2e
