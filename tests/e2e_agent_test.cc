// A server and a separate `berth agent` process: the agent joins with the join token (read from a
// file), runs what is placed on it, and when it is killed the server marks its host down after
// the TTL and fails its workloads; the restarted agent comes back with its own credential and
// stops what is no longer assigned to it. A host that is down can be removed, which revokes
// that credential. The server relays logs, stats and exec of the agent's workloads to its task
// API.
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

TEST(AgentProcessTest, JoinsRunsAndIsMarkedDownWhenKilled) {
  std::string dir = TempDir("e2e-agent");
  // A TTL a loaded machine's scheduling stalls stay well inside (the agent beats every TTL/3):
  // the host must go down because it was killed, not because a heartbeat came late.
  DevServer server(dir + "/server", {"--host-ttl", "5s"});
  ASSERT_TRUE(server.Start()) << ReadFile(dir + "/server/serve.log");
  std::string join = ReadFile(dir + "/server/join.token");
  while (!join.empty() && join.back() == '\n') join.pop_back();
  const std::vector<std::string> agent_args = {
      "agent",      "--server",     server.url(), "--join-token-file", dir + "/server/join.token",
      "--data-dir", dir + "/agent", "--name",     "agent-1",           "--task-api-listen",
      "none"};
  // The join token comes from one place; without any a new host cannot register.
  Result both = e2e::Run(dir, {"agent", "--server", server.url(), "--join-token", join,
                               "--join-token-file", dir + "/server/join.token"});
  EXPECT_EQ(both.exit_code, 2) << both.err;
  Result none = e2e::Run(dir, {"agent", "--server", server.url(), "--data-dir", dir + "/no-token"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("--join-token-file"), std::string::npos) << none.err;
  Result help = e2e::Run(dir, {"agent", "--help"});
  EXPECT_NE(help.out.find("`ps`"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("BERTH_JOIN_TOKEN"), std::string::npos) << help.out;
  // A wrong token is refused.
  api::Client intruder(server.url(), api::ClientOptions{.token = "nope"});
  core::HostInventory tiny;
  tiny.capacity.cpu = core::MilliCpu(1000);
  tiny.capacity.memory = core::MemoryMiB(1024);
  EXPECT_TRUE(
      absl::IsUnauthenticated(intruder.RegisterHost({.name = "x", .inventory = tiny}).status()));
  // The state of host agent-1 ("ready", "down"), or "" when it cannot be read.
  auto host_state = [&] {
    auto h = server.client().GetHost("agent-1");
    return h.ok() ? std::string(core::HostStateName(h->host.state)) : std::string();
  };

  pid_t agent = Spawn(agent_args, dir + "/agent.log");
  ASSERT_TRUE(Eventually([&] { return host_state() == "ready"; })) << ReadFile(dir + "/agent.log");

  // A sleep whose argument is unique to this test run, so the process can be found in /proc.
  const std::string marker = "3600." + std::to_string(getpid());
  core::WorkloadSpec spec;
  spec.name = "job";
  spec.kind = core::WorkloadKind::kProcess;
  spec.command = {"/bin/sleep", marker};
  spec.resources.cpu = core::MilliCpu(100);
  spec.resources.memory = core::MemoryMiB(32);
  auto created = server.client().CreateWorkload(spec);
  ASSERT_TRUE(created.ok()) << created.status();
  ASSERT_TRUE(Eventually([&] { return server.State("job") == "running"; }))
      << server.Dump("job").dump();
  EXPECT_EQ(server.client().GetWorkload("job")->status.host, "agent-1");
  // The agent keeps its own credential, readable by its owner only; the join token alone can
  // no longer act for the host.
  struct stat st {};
  ASSERT_EQ(stat((dir + "/agent/host.credential").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string credential = ReadFile(dir + "/agent/host.credential");
  while (!credential.empty() && credential.back() == '\n') credential.pop_back();
  api::Client joiner(server.url(), api::ClientOptions{.token = join});
  EXPECT_TRUE(absl::IsPermissionDenied(joiner.Assignments("agent-1").status()));
  api::Client as_host(server.url(), api::ClientOptions{.token = credential});
  EXPECT_TRUE(as_host.Assignments("agent-1").ok());
  EXPECT_TRUE(absl::IsPermissionDenied(as_host.ListWorkloads().status()));
  ASSERT_TRUE(Eventually([&] { return ProcessWithArg(marker); }));
  // An agent that serves no task API: the server says why it cannot show the workload's logs.
  absl::Status no_task_api = server.client().Logs("job").status();
  EXPECT_TRUE(absl::IsUnavailable(no_task_api)) << no_task_api;
  EXPECT_NE(no_task_api.message().find("--task-api-listen none"), std::string_view::npos)
      << no_task_api;

  KillAndReap(agent, SIGKILL);
  ASSERT_TRUE(Eventually([&] { return host_state() == "down"; }));
  auto failed = server.client().GetWorkload("job");
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->status.state, core::WorkloadState::kFailed);
  EXPECT_NE(failed->status.reason.find("down"), std::string::npos);
  EXPECT_TRUE(ProcessWithArg(marker));  // the work itself outlives its agent

  // The agent comes back: the host is ready again and the orphaned process is stopped.
  agent = Spawn(agent_args, dir + "/agent.log");
  ASSERT_TRUE(Eventually([&] { return host_state() == "ready"; }));
  EXPECT_TRUE(Eventually([&] { return !ProcessWithArg(marker); })) << ReadFile(dir + "/agent.log");
  EXPECT_EQ(server.State("job"), "failed");
  // A live host cannot be removed; once its agent is gone and it is down, it can.
  absl::Status live = server.client().DeleteHost("agent-1");
  EXPECT_TRUE(absl::IsFailedPrecondition(live) || absl::IsAlreadyExists(live) ||
              absl::IsAborted(live))
      << live;  // 409
  KillAndReap(agent, SIGTERM);
  ASSERT_TRUE(Eventually([&] { return host_state() == "down"; }));
  Result rm = e2e::Run(dir + "/server", {"host", "rm", "agent-1", "--json"});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_TRUE(absl::IsNotFound(server.client().GetHost("agent-1").status()));
  EXPECT_TRUE(absl::IsUnauthenticated(as_host.Assignments("agent-1").status()));
  server.Kill(SIGTERM);
  std::filesystem::remove_all(dir);
}

// Waits (up to a minute) for `pid` to exit; its exit code, or -1 when it did not exit (it is
// then killed) or ended by a signal.
int ExitCodeWithin(pid_t pid) {
  int status = 0;
  bool exited = Eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; });
  if (!exited) {
    KillAndReap(pid, SIGKILL);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A workload on a host run by a separate `berth agent`: the server relays its logs (followed
// too), stats and exec to the agent's task API, and a follow whose client left leaves nothing
// stuck behind.
TEST(AgentProcessTest, LogsStatsAndExecOfARemoteWorkloadGoThroughItsAgent) {
  std::string dir = TempDir("e2e-agent-tasks");
  DevServer server(dir + "/server", {"--host-ttl", "5s"});
  ASSERT_TRUE(server.Start()) << ReadFile(dir + "/server/serve.log");
  Result help = e2e::Run(dir, {"agent", "--help"});
  EXPECT_NE(help.out.find("--task-api-listen"), std::string::npos) << help.out;
  Result bad_listen = e2e::Run(dir, {"agent", "--server", server.url(), "--task-api-listen",
                                     "nowhere", "--data-dir", dir + "/bad"});
  EXPECT_EQ(bad_listen.exit_code, 2);
  EXPECT_NE(bad_listen.err.find("--task-api-listen"), std::string::npos) << bad_listen.err;
  EXPECT_NE(help.out.find("--publish-address"), std::string::npos) << help.out;
  Result bad_publish = e2e::Run(dir, {"agent", "--server", server.url(), "--publish-address",
                                      "everywhere", "--data-dir", dir + "/bad"});
  EXPECT_EQ(bad_publish.exit_code, 2);
  EXPECT_NE(bad_publish.err.find("--publish-address must be an IPv4 address"), std::string::npos)
      << bad_publish.err;

  pid_t agent = Spawn(
      {"agent", "--server", server.url(), "--join-token-file", dir + "/server/join.token",
       "--data-dir", dir + "/agent", "--name", "remote-1", "--task-api-listen", "127.0.0.1:0"},
      dir + "/agent.log");
  ASSERT_TRUE(Eventually([&] {
    auto h = server.client().GetHost("remote-1");
    return h.ok() && h->host.state == core::HostState::kReady;
  })) << ReadFile(dir + "/agent.log");

  core::WorkloadSpec spec;
  spec.name = "tick";
  spec.kind = core::WorkloadKind::kProcess;
  spec.command = {"/bin/sh", "-c", "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.2; done"};
  spec.resources.cpu = core::MilliCpu(100);
  spec.resources.memory = core::MemoryMiB(32);
  ASSERT_TRUE(server.client().CreateWorkload(spec).ok());
  ASSERT_TRUE(Eventually([&] { return server.State("tick") == "running"; }))
      << server.Dump("tick").dump() << ReadFile(dir + "/agent.log");
  EXPECT_EQ(server.client().GetWorkload("tick")->status.host, "remote-1");
  const std::string cli_dir = dir + "/server";

  // The lines printed so far, through the server.
  auto printed = [&] {
    Result logs = e2e::Run(cli_dir, {"workload", "logs", "tick"});
    int last = 0;
    std::istringstream in(logs.out);
    std::string word;
    int n = 0;
    while (in >> word >> n) last = std::max(last, word == "line" ? n : last);
    return logs.exit_code == 0 ? last : -1;
  };
  ASSERT_TRUE(Eventually([&] { return printed() >= 2; })) << ReadFile(dir + "/agent.log");

  Result stats = e2e::Run(cli_dir, {"workload", "stats", "tick", "--json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  nlohmann::json figures = nlohmann::json::parse(stats.out, nullptr, false);
  ASSERT_TRUE(figures.is_object()) << stats.out;
  EXPECT_GT(figures.value("pid", 0), 0) << stats.out;
  EXPECT_TRUE(figures.contains("cpu_user_ms")) << stats.out;
  EXPECT_EQ(figures.value("state", ""), "running") << stats.out;

  Result exec = e2e::Run(cli_dir, {"workload", "exec", "tick", "--", "/bin/echo", "hi"});
  EXPECT_EQ(exec.exit_code, 0) << exec.err;
  EXPECT_EQ(exec.out, "hi\n");
  Result failing = e2e::Run(cli_dir, {"workload", "exec", "tick", "--", "/bin/sh", "-c", "exit 3"});
  EXPECT_EQ(failing.exit_code, 3) << failing.err;

  // Two follows one after the other: each streams a line printed after it began, and its
  // client going away leaves the server and the agent able to serve the next.
  for (int round = 0; round < 2; ++round) {
    const std::string out = dir + "/follow-" + std::to_string(round) + ".out";
    pid_t follow = Spawn(
        {"workload", "logs", "tick", "-f", "--server", server.url(), "--token", server.token()},
        out);
    ASSERT_TRUE(Eventually([&] { return ReadFile(out).find("line ") != std::string::npos; }))
        << ReadFile(out);
    const int before = printed();  // the follow had begun by then: it has printed lines
    ASSERT_GT(before, 0);
    const std::string later = "line " + std::to_string(before + 1) + "\n";
    EXPECT_TRUE(Eventually([&] { return ReadFile(out).find(later) != std::string::npos; }))
        << ReadFile(out);
    KillAndReap(follow, SIGTERM);
  }

  // Deleted: the server stops relaying, and the agent stops cleanly, follows gone.
  ASSERT_TRUE(server.client().DeleteWorkload("tick").ok());
  ASSERT_TRUE(
      Eventually([&] { return absl::IsNotFound(server.client().GetWorkload("tick").status()); }));
  kill(agent, SIGTERM);
  EXPECT_EQ(ExitCodeWithin(agent), 0) << ReadFile(dir + "/agent.log");
  server.Kill(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace berth::e2e
