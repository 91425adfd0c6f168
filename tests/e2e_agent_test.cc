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

using nlohmann::json;

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
  // The agent keeps its own credential, readable by its owner only; the join token alone can
  // no longer act for the host.
  struct stat st {};
  ASSERT_EQ(stat((dir + "/agent/host.credential").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string credential = ReadFile(dir + "/agent/host.credential");
  while (!credential.empty() && credential.back() == '\n') credential.pop_back();
  api::HttpClient joiner(server.url(), api::HttpClient::Options{.bearer_token = join});
  EXPECT_EQ(joiner.Get("/v1/hosts/agent-1/assignments")->status, 403);
  api::HttpClient as_host(server.url(), api::HttpClient::Options{.bearer_token = credential});
  EXPECT_EQ(as_host.Get("/v1/hosts/agent-1/assignments")->status, 200);
  EXPECT_EQ(as_host.Get("/v1/workloads")->status, 403);
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
  // A live host cannot be removed; once its agent is gone and it is down, it can.
  EXPECT_EQ(server.client().Delete("/v1/hosts/agent-1")->status, 409);
  KillAndReap(agent, SIGTERM);
  ASSERT_TRUE(Eventually([&] {
    auto h = server.Get("/v1/hosts/agent-1");
    return h.is_object() && h["state"] == "down";
  }));
  Result rm = e2e::Run(dir + "/server", {"host", "rm", "agent-1", "--json"});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_EQ(server.client().Get("/v1/hosts/agent-1")->status, 404);
  EXPECT_EQ(as_host.Get("/v1/hosts/agent-1/assignments")->status, 401);
  server.Kill(SIGTERM);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace berth::e2e
