// A server and a separate `berth agent` process: the agent joins with the join token (read from a
// file), runs what is placed on it, and when it is killed the server marks its host down after
// the TTL and fails its workloads; the restarted agent comes back with its own credential and
// stops what is no longer assigned to it. A host that is down can be removed, which revokes
// that credential.
#include <sys/stat.h>

#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

TEST(AgentProcessTest, JoinsRunsAndIsMarkedDownWhenKilled) {
  std::string dir = TempDir("e2e-agent");
  DevServer server(dir + "/server", {"--host-ttl", "2s"});
  ASSERT_TRUE(server.Start()) << ReadFile(dir + "/server/serve.log");
  std::string join = ReadFile(dir + "/server/join.token");
  while (!join.empty() && join.back() == '\n') join.pop_back();
  const std::vector<std::string> agent_args = {"agent",
                                               "--server",
                                               server.url(),
                                               "--join-token-file",
                                               dir + "/server/join.token",
                                               "--data-dir",
                                               dir + "/agent",
                                               "--name",
                                               "agent-1"};
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

}  // namespace
}  // namespace berth::e2e
