// A server and a separate `berth agent` process: the agent joins with the join token, runs what
// is placed on it, and when it is killed the server marks its host down after the TTL and fails
// its workloads; the restarted agent stops what is no longer assigned to it.
#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

using nlohmann::json;

TEST(AgentProcessTest, JoinsRunsAndIsMarkedDownWhenKilled) {
  std::string dir = TempDir("e2e-agent");
  DevServer server(dir + "/server", {"--host-ttl", "2s"});
  ASSERT_TRUE(server.Start()) << ReadFile(dir + "/server/serve.log");
  std::string join = ReadFile(dir + "/server/join.token");
  while (!join.empty() && join.back() == '\n') join.pop_back();
  const std::vector<std::string> agent_args = {"agent",        "--server", server.url(),
                                               "--join-token", join,       "--data-dir",
                                               dir + "/agent", "--name",   "agent-1"};
  // A wrong token is refused.
  api::HttpClient intruder(server.url(), api::HttpClient::Options{.bearer_token = "nope"});
  EXPECT_EQ(
      intruder.Post("/v1/hosts", R"({"name":"x","inventory":{"cpu":"1","memory":"1Gi"}})")->status,
      401);

  pid_t agent = Spawn(agent_args, dir + "/agent.log");
  ASSERT_TRUE(Eventually([&] {
    auto h = server.Get("/v1/hosts/agent-1");
    return h.is_object() && h["state"] == "ready";
  })) << ReadFile(dir + "/agent.log");

  // A sleep whose argument is unique to this test run, so the process can be found in /proc.
  const std::string marker = "3600." + std::to_string(getpid());
  json spec = {{"name", "job"},
               {"kind", "process"},
               {"command", {"/bin/sleep", marker}},
               {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}}};
  ASSERT_EQ(server.client().Post("/v1/workloads", spec.dump())->status, 201);
  ASSERT_TRUE(Eventually([&] { return server.State("job") == "running"; }))
      << server.Get("/v1/workloads/job").dump();
  EXPECT_EQ(server.Get("/v1/workloads/job")["status"]["host"], "agent-1");
  ASSERT_TRUE(Eventually([&] { return ProcessWithArg(marker); }));

  KillAndReap(agent, SIGKILL);
  ASSERT_TRUE(Eventually([&] {
    auto h = server.Get("/v1/hosts/agent-1");
    return h.is_object() && h["state"] == "down";
  }));
  json failed = server.Get("/v1/workloads/job");
  EXPECT_EQ(failed["status"]["state"], "failed");
  EXPECT_NE(failed["status"]["reason"].get<std::string>().find("down"), std::string::npos);
  EXPECT_TRUE(ProcessWithArg(marker));  // the work itself outlives its agent

  // The agent comes back: the host is ready again and the orphaned process is stopped.
  agent = Spawn(agent_args, dir + "/agent.log");
  ASSERT_TRUE(Eventually([&] {
    auto h = server.Get("/v1/hosts/agent-1");
    return h.is_object() && h["state"] == "ready";
  }));
  EXPECT_TRUE(Eventually([&] { return !ProcessWithArg(marker); })) << ReadFile(dir + "/agent.log");
  EXPECT_EQ(server.State("job"), "failed");
  KillAndReap(agent, SIGTERM);
  server.Kill(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace berth::e2e
