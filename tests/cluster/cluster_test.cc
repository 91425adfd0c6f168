// Three hosts on one machine (tests/cluster/cluster.h): a killed host's restartable workloads run
// elsewhere; a host cut off the network fences its workloads before they start elsewhere, so no
// workload ever runs twice; a host that comes back cleans up what is no longer its own; a drain
// moves a host's restartable workloads one at a time and leaves the rest; a workload that keeps
// failing restarts per its policy until max_retries; a workload's stats and exec reach its host's
// task API over the network.
#include "tests/cluster/cluster.h"

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace berth::cluster {
namespace {

using e2e::Eventually;

// A sleep whose argument is unique to this test process and `n`, so its process can be found.
std::string Marker(int n) { return "3600." + std::to_string(getpid()) + std::to_string(n); }

core::WorkloadSpec Sleeper(const std::string& name, const std::string& marker,
                           const char* restart) {
  core::Json j = {{"name", name},
                  {"kind", "process"},
                  {"command", {"/bin/sleep", marker}},
                  {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}}};
  if (restart != nullptr) j["restart"] = core::Json::parse(restart);
  auto spec = core::DecodeWorkloadSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string started = cluster_.Start();
    ASSERT_EQ(started, "");
  }

  // The workload's host while it runs, "" otherwise.
  std::string RunningOn(const std::string& name) {
    auto w = cluster_.client().GetWorkload(name);
    if (!w.ok() || w->status.state != core::WorkloadState::kRunning) return "";
    return w->status.host;
  }
  std::string State(const std::string& name) { return cluster_.server().State(name); }
  std::string Why(const std::string& name) { return cluster_.server().Dump(name).dump(); }

  // Creates `specs` with every host but `host` cordoned (through the CLI), waits until they run
  // there, and lifts the cordons.
  void PlaceOn(int host, const std::vector<core::WorkloadSpec>& specs) {
    for (int i = 0; i < cluster_.hosts(); ++i) {
      if (i == host) continue;
      e2e::Result r = Cli({"host", "cordon", Cluster::HostName(i), "--json"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_TRUE(core::Json::parse(r.out, nullptr, false).value("cordoned", false)) << r.out;
    }
    for (const core::WorkloadSpec& spec : specs) {
      auto created = cluster_.client().CreateWorkload(spec);
      ASSERT_TRUE(created.ok()) << created.status();
    }
    for (const core::WorkloadSpec& spec : specs) {
      ASSERT_TRUE(Eventually([&] { return RunningOn(spec.name) == Cluster::HostName(host); }))
          << Why(spec.name);
    }
    for (int i = 0; i < cluster_.hosts(); ++i) {
      if (i == host) continue;
      e2e::Result r = Cli({"host", "uncordon", Cluster::HostName(i)});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
  }
  e2e::Result Cli(const std::vector<std::string>& args) {
    return e2e::Run(cluster_.server().data_dir(), args);
  }
  // The task records host i's agent keeps.
  int TaskRecords(int i) {
    int n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(cluster_.AgentDir(i) + "/tasks", ec)) {
      n += e.path().extension() == ".json";
    }
    return n;
  }

  Cluster cluster_;
};

// Samples, on its own thread, how many copies of a marker's process run at once, and keeps the
// most it saw.
class CopyCounter {
 public:
  CopyCounter(const Cluster& cluster, std::string marker)
      : thread_([this, &cluster, marker] {
          while (!stop_) {
            const int n = static_cast<int>(cluster.MarkerProcesses(marker).size());
            int seen = most_.load();
            while (n > seen && !most_.compare_exchange_weak(seen, n)) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }) {}
  ~CopyCounter() { Stop(); }
  int Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return most_.load();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> most_{0};
  std::thread thread_;
};

TEST_F(ClusterTest, AKilledHostsRestartableWorkloadsRunElsewhereAndItCleansUpOnRejoin) {
  const std::string moves = Marker(1), ends = Marker(2);
  PlaceOn(0, {Sleeper("moves", moves, R"("always")"), Sleeper("ends", ends, nullptr)});
  const int64_t generation = cluster_.client().GetWorkload("moves")->status.generation;

  cluster_.KillHost(0);
  ASSERT_TRUE(Eventually([&] {
    const std::string on = RunningOn("moves");
    return !on.empty() && on != Cluster::HostName(0);
  })) << Why("moves");
  const int now_on = cluster_.IndexOf(RunningOn("moves"));
  EXPECT_TRUE(Eventually([&] { return cluster_.MarkerProcesses(moves) == std::vector{now_on}; }));
  auto moved = cluster_.client().GetWorkload("moves");
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_GT(moved->status.generation, generation);
  EXPECT_EQ(moved->status.restarts, 0);
  EXPECT_EQ(cluster_.HostState(0), "down");
  // Without a restart policy it fails with its host, as it always has.
  EXPECT_EQ(State("ends"), "failed") << Why("ends");
  EXPECT_TRUE(cluster_.MarkerProcesses(ends).empty());

  // The host comes back: it is ready again, and keeps no record of what now runs elsewhere.
  cluster_.StartAgent(0);
  ASSERT_TRUE(Eventually([&] { return cluster_.HostState(0) == "ready"; }))
      << e2e::ReadFile(cluster_.AgentLog(0));
  EXPECT_TRUE(Eventually([&] { return TaskRecords(0) == 0; }))
      << e2e::ReadFile(cluster_.AgentLog(0));
  EXPECT_EQ(cluster_.MarkerProcesses(moves), std::vector{now_on});
  EXPECT_EQ(RunningOn("moves"), Cluster::HostName(now_on));
}

TEST_F(ClusterTest, ACutOffHostFencesItsWorkloadsSoNoneRunsTwice) {
  const std::string fenced = Marker(1), unfenced = Marker(2);
  PlaceOn(0, {Sleeper("fenced", fenced, R"("on-failure")"),
              Sleeper("unfenced", unfenced, R"({"policy":"always","fence":false})")});
  CopyCounter copies(cluster_, fenced);

  ASSERT_TRUE(cluster_.CutLink(0));
  // The agent, cut off for the host TTL, stops the fenced workload; the server, after the TTL
  // and the grace, starts it elsewhere.
  ASSERT_TRUE(Eventually([&] {
    const std::string on = RunningOn("fenced");
    return !on.empty() && on != Cluster::HostName(0);
  })) << Why("fenced");
  const int now_on = cluster_.IndexOf(RunningOn("fenced"));
  EXPECT_TRUE(Eventually([&] { return cluster_.MarkerProcesses(fenced) == std::vector{now_on}; }));
  // The one that opted out of fencing keeps running where it was, so it is not started
  // elsewhere: the server fails it with its host.
  EXPECT_EQ(cluster_.MarkerProcesses(unfenced), std::vector{0});
  EXPECT_EQ(State("unfenced"), "failed") << Why("unfenced");

  // Back on the network: the host rejoins and stops what is no longer assigned to it.
  ASSERT_TRUE(cluster_.RestoreLink(0));
  ASSERT_TRUE(Eventually([&] { return cluster_.HostState(0) == "ready"; }))
      << e2e::ReadFile(cluster_.AgentLog(0));
  EXPECT_TRUE(Eventually([&] { return cluster_.MarkerProcesses(unfenced).empty(); }))
      << e2e::ReadFile(cluster_.AgentLog(0));
  EXPECT_TRUE(Eventually([&] { return TaskRecords(0) == 0; }))
      << e2e::ReadFile(cluster_.AgentLog(0));
  EXPECT_EQ(cluster_.MarkerProcesses(fenced), std::vector{now_on});
  EXPECT_EQ(RunningOn("fenced"), Cluster::HostName(now_on));
  EXPECT_EQ(copies.Stop(), 1) << "the fenced workload ran in two places at once";
}

TEST_F(ClusterTest, ATasksStatsAndExecReachItsHostOverTheNetwork) {
  // The agents serve their task APIs on every interface (the default); the server reaches each
  // at the bridge address its heartbeats come from.
  const std::string marker = Marker(1);
  PlaceOn(2, {Sleeper("seen", marker, nullptr)});
  auto stats = cluster_.client().Stats("seen");
  ASSERT_TRUE(stats.ok()) << stats.status() << e2e::ReadFile(cluster_.ServerLog());
  EXPECT_GT(stats->value("pid", 0), 0) << stats->dump();
  EXPECT_EQ(stats->value("state", ""), "running") << stats->dump();
  auto exec = cluster_.client().Exec("seen", {.argv = {"/bin/sh", "-c", "echo from-$((40+2))"}});
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->stdout_data, "from-42\n");
  EXPECT_EQ(exec->exit_code, 0);
  // Cut off, the host cannot be asked: the server says which and why rather than waiting.
  ASSERT_TRUE(cluster_.CutLink(2));
  absl::Status cut = cluster_.client().Stats("seen").status();
  EXPECT_TRUE(absl::IsUnavailable(cut)) << cut;
  EXPECT_NE(cut.message().find(Cluster::HostName(2)), std::string_view::npos) << cut;
  ASSERT_TRUE(cluster_.RestoreLink(2));
}

TEST_F(ClusterTest, ADrainMovesRestartableWorkloadsOneAtATimeAndLeavesTheRest) {
  const std::string a = Marker(1), b = Marker(2), c = Marker(3);
  PlaceOn(0, {Sleeper("a", a, R"("always")"), Sleeper("b", b, R"("on-failure")"),
              Sleeper("c", c, nullptr)});
  CopyCounter copies_a(cluster_, a), copies_b(cluster_, b);

  e2e::Result drained = Cli({"host", "drain", Cluster::HostName(0), "--json"});
  ASSERT_EQ(drained.exit_code, 0) << drained.err;
  // One JSON object per step; the last says it is done.
  std::string last = drained.out;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
  core::Json done = core::Json::parse(last, nullptr, false);
  ASSERT_TRUE(done.is_object()) << drained.out;
  EXPECT_TRUE(done.value("done", false)) << drained.out;
  EXPECT_EQ(done.value("moved", 0), 2) << drained.out;

  for (const auto& [name, marker] : {std::pair{"a", a}, std::pair{"b", b}}) {
    const std::string on = RunningOn(name);
    EXPECT_NE(on, "") << Why(name);
    EXPECT_NE(on, Cluster::HostName(0)) << Why(name);
    EXPECT_TRUE(Eventually([&] {
      return cluster_.MarkerProcesses(marker) == std::vector{cluster_.IndexOf(on)};
    })) << name;
  }
  EXPECT_EQ(RunningOn("c"), Cluster::HostName(0)) << Why("c");
  EXPECT_EQ(cluster_.MarkerProcesses(c), std::vector{0});
  auto host = cluster_.client().GetHost(Cluster::HostName(0));
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_TRUE(host->host.cordoned);
  EXPECT_FALSE(host->host.draining);
  EXPECT_EQ(copies_a.Stop(), 1);
  EXPECT_EQ(copies_b.Stop(), 1);
  // A host that is not there is a 404 naming it.
  e2e::Result missing = Cli({"host", "drain", "host-9"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("host-9"), std::string::npos) << missing.err;
}

TEST_F(ClusterTest, AFailingWorkloadRestartsPerItsPolicyUntilMaxRetries) {
  core::Json j = {
      {"name", "flaky"},
      {"kind", "process"},
      {"command", {"/bin/sh", "-c", "exit 3"}},
      {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
      {"restart", {{"policy", "on-failure"}, {"max_retries", 2}, {"backoff", "200ms"}}}};
  auto spec = core::DecodeWorkloadSpec(j);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(cluster_.client().CreateWorkload(*spec).ok());
  ASSERT_TRUE(Eventually([&] { return State("flaky") == "failed"; })) << Why("flaky");
  auto w = cluster_.client().GetWorkload("flaky");
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->status.restarts, 2);
  EXPECT_EQ(w->status.exit_code, 3);
  EXPECT_NE(w->status.reason.find("max_retries (2) reached"), std::string::npos)
      << w->status.reason;
  // A bad policy is a 400 naming the field, and creates nothing.
  j["name"] = "bad";
  j["restart"] = {{"policy", "on-failure"}, {"backoff", "soon"}};
  absl::Status bad = cluster_.client().CreateWorkloadFromText(j.dump()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(bad)) << bad;
  EXPECT_NE(bad.message().find("restart.backoff"), std::string_view::npos) << bad;
  EXPECT_TRUE(absl::IsNotFound(cluster_.client().GetWorkload("bad").status()));
}

}  // namespace
}  // namespace berth::cluster
