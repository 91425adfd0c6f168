// The `berth` binary's one command framework, end to end: the long-running roles (`serve`,
// `agent`) and the simulator refuse a bad command line the way every client command does
// (exit code 2, the flag named, nothing started), render --help from their declarations, and
// print their startup lines as JSON objects with --json.
#include <csignal>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// The first line of `text` that parses as a JSON object with "event" == `event`.
json EventLine(const std::string& text, const std::string& event) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == event) return j;
  }
  return nullptr;
}

TEST(CommandLineTest, UnknownFlagsAreRefusedWithTheirNameByEveryRole) {
  std::string dir = TempDir("e2e-cli-unknown");
  for (std::vector<std::string> args :
       {std::vector<std::string>{"serve", "--dev", "--data-dir", dir + "/data", "--lisen", "x"},
        {"agent", "--server", "http://127.0.0.1:1", "--jointoken", "t"},
        {"sim", "fill", "--clustr", "c.csv"},
        {"disk", "create", "d1", "--sise", "1Gi"}}) {
    std::string bad;
    for (const auto& a : args) {
      if (a.rfind("--", 0) == 0 &&
          (a == "--lisen" || a == "--jointoken" || a == "--clustr" || a == "--sise")) {
        bad = a;
      }
    }
    Result r = e2e::Run(dir, args);
    std::string path = "berth " + args[0] + (args[0] == "sim" ? " fill" : "") +
                       (args[0] == "disk" ? " create" : "");
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err, path + ": unknown flag " + bad + "; see " + path + " --help\n");
  }
  // Nothing was started or written.
  EXPECT_FALSE(std::filesystem::exists(dir + "/data"));
  std::filesystem::remove_all(dir);
}

TEST(CommandLineTest, MisplacedFlagsAndBadValuesAreUsageErrors) {
  std::string dir = TempDir("e2e-cli-values");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"sim", "--cluster", "c.csv", "fill"}, "flag --cluster goes after the command"},
           {{"serve", "--size", "1Gi"}, "unknown flag --size (it is a flag of berth disk"},
           {{"serve", "--host-ttl", "soon", "--data-dir", dir + "/data"}, "--host-ttl"},
           {{"serve", "--listen", "nowhere", "--data-dir", dir + "/data"}, "--listen"},
           {{"serve", "--policy", "nonsense", "--data-dir", dir + "/data"}, "--policy"},
           {{"agent", "--server", "http://127.0.0.1:1", "--vm-accel", "fast"},
            "--vm-accel must be auto, kvm or tcg"},
           {{"sim", "fill", "--cluster", "c", "--trace", "t", "--jobs", "0"},
            "--jobs must be an integer between 1 and 4096"},
           {{"sim", "generate", "--out", dir + "/gen", "--requests", "many"},
            "--requests must be an integer"},
           {{"serve", "--log-level", "loud"},
            "--log-level must be debug, info, warn, error or off"},
       }) {
    Result r = e2e::Run(dir, c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message));
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/data"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/gen"));
  std::filesystem::remove_all(dir);
}

TEST(CommandLineTest, HelpForEveryRoleAndTheTopLevel) {
  std::string dir = TempDir("e2e-cli-help");
  Result top = e2e::Run(dir, {"--help"});
  EXPECT_EQ(top.exit_code, 0);
  for (const char* command : {"serve", "agent", "sim", "workload", "image", "disk", "net",
                              "secgroup", "portfwd", "host", "tenant", "events"}) {
    EXPECT_THAT(top.out, HasSubstr(std::string("\n  ") + command)) << command;
  }
  EXPECT_THAT(top.out, HasSubstr("--log-file FILE"));
  EXPECT_THAT(top.out, HasSubstr("Exit codes: 0 success, 1 failure"));
  EXPECT_EQ(e2e::Run(dir, {}).exit_code, 2);

  Result serve = e2e::Run(dir, {"serve", "--help"});
  EXPECT_EQ(serve.exit_code, 0);
  for (const char* text : {"Usage: berth serve [FLAGS]", "--listen HOST:PORT",
                           "(default 127.0.0.1:7070)", "--host-ttl DURATION", "(default 10s)",
                           "--vm-accel auto|kvm|tcg", "--allow-root-workloads", "--json"}) {
    EXPECT_THAT(serve.out, HasSubstr(text));
  }
  Result agent = e2e::Run(dir, {"agent", "-h"});
  EXPECT_EQ(agent.exit_code, 0);
  EXPECT_THAT(agent.out, HasSubstr("--join-token-file FILE"));
  EXPECT_THAT(agent.out, HasSubstr("`ps`"));
  Result sim = e2e::Run(dir, {"sim", "--help"});
  EXPECT_EQ(sim.exit_code, 0);
  EXPECT_THAT(sim.out, HasSubstr("sim generate"));
  EXPECT_THAT(sim.out, HasSubstr("sim replay --cluster FILE --trace FILE"));
  Result fill = e2e::Run(dir, {"help", "sim", "fill"});
  EXPECT_EQ(fill.exit_code, 0);
  EXPECT_THAT(fill.out, HasSubstr("--seeds LIST"));
  EXPECT_THAT(fill.out, HasSubstr("(default 130)"));
  std::filesystem::remove_all(dir);
}

TEST(CommandLineTest, ServeAndAgentPrintJsonStartupLines) {
  std::string dir = TempDir("e2e-cli-json");
  DevServer server(dir + "/server", {"--json", "--log-level", "warn"});
  ASSERT_TRUE(server.Start()) << ReadFile(dir + "/server/serve.log");
  json serving;
  ASSERT_TRUE(Eventually([&] {
    serving = EventLine(ReadFile(dir + "/server/serve.log"), "serving");
    return serving.is_object();
  })) << ReadFile(dir + "/server/serve.log");
  EXPECT_EQ(serving["url"], server.url());
  EXPECT_EQ(serving["data_dir"], dir + "/server");
  EXPECT_EQ(serving["dev"], false);

  pid_t agent =
      Spawn({"agent", "--json", "--server", server.url(), "--join-token-file",
             dir + "/server/join.token", "--data-dir", dir + "/agent", "--name", "json-agent"},
            dir + "/agent.log");
  json joining;
  EXPECT_TRUE(Eventually([&] {
    joining = EventLine(ReadFile(dir + "/agent.log"), "joining");
    return joining.is_object();
  })) << ReadFile(dir + "/agent.log");
  EXPECT_EQ(joining["host"], "json-agent");
  EXPECT_EQ(joining["server"], server.url());
  KillAndReap(agent, SIGTERM);

  server.Kill(SIGTERM);
  json shutdown = EventLine(ReadFile(dir + "/server/serve.log"), "shutdown");
  ASSERT_TRUE(shutdown.is_object()) << ReadFile(dir + "/server/serve.log");
  EXPECT_EQ(shutdown["signal"], SIGTERM);
  std::filesystem::remove_all(dir);
}

// The GET /v1/workloads requests the server has answered, from its metrics.
int64_t WorkloadListRequests(api::Client& client) {
  auto text = client.MetricsText();
  if (!text.ok()) return -1;
  int64_t total = 0;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("berth_http_requests_total{", 0) == 0 &&
        line.find("route=\"/v1/workloads\"") != std::string::npos &&
        line.find("method=\"GET\"") != std::string::npos) {
      total += std::stoll(line.substr(line.rfind(' ') + 1));
    }
  }
  return total;
}

TEST(CommandLineTest, ListsArePagedAndFilteredByTheServer) {
  std::string dir = TempDir("e2e-cli-pages");
  DevServer server(dir + "/server", {"--log-level", "warn"});
  ASSERT_TRUE(server.Start()) << ReadFile(dir + "/server/serve.log");
  for (int i = 0; i < 12; ++i) {
    json spec = {{"name", "w" + std::to_string(10 + i)},
                 {"kind", "process"},
                 {"command", {"/bin/true"}},
                 {"tenant", i % 3 == 0 ? "gold" : "basic"},
                 {"labels", {{"app", i % 2 == 0 ? "web" : "db"}}}};
    ASSERT_TRUE(server.client().CreateWorkloadFromText(spec.dump()).ok());
  }
  auto names = [](const Result& r) {
    std::vector<std::string> out;
    json items = json::parse(r.out, nullptr, false);
    if (!items.is_array()) return out;
    for (const json& w : items) out.push_back(w.value("name", ""));
    return out;
  };
  const int64_t before = WorkloadListRequests(server.client());
  Result all = e2e::Run(dir + "/server", {"workload", "ls", "--json", "--page-size", "5"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  std::vector<std::string> listed = names(all);
  EXPECT_EQ(listed.size(), 12u) << all.out;
  EXPECT_EQ(std::set<std::string>(listed.begin(), listed.end()).size(), 12u);
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));
  EXPECT_EQ(WorkloadListRequests(server.client()) - before, 3);  // pages of 5, 5 and 2

  Result gold = e2e::Run(dir + "/server", {"workload", "ls", "--json", "--tenant", "gold"});
  ASSERT_EQ(gold.exit_code, 0) << gold.err;
  EXPECT_EQ(names(gold), (std::vector<std::string>{"w10", "w13", "w16", "w19"}));
  Result web =
      e2e::Run(dir + "/server", {"workload", "ls", "--json", "-l", "app=web", "--tenant", "gold"});
  ASSERT_EQ(web.exit_code, 0) << web.err;
  EXPECT_EQ(names(web), (std::vector<std::string>{"w10", "w16"}));
  Result pending = e2e::Run(dir + "/server", {"workload", "ls", "--state", "pending"});
  ASSERT_EQ(pending.exit_code, 0) << pending.err;
  EXPECT_THAT(pending.out, HasSubstr("w21"));
  Result running = e2e::Run(dir + "/server", {"workload", "ls", "--json", "--state", "running"});
  ASSERT_EQ(running.exit_code, 0) << running.err;
  EXPECT_TRUE(names(running).empty()) << running.out;
  Result hosts = e2e::Run(dir + "/server", {"host", "ls", "--json", "--state", "down"});
  ASSERT_EQ(hosts.exit_code, 0) << hosts.err;
  EXPECT_EQ(json::parse(hosts.out, nullptr, false), json::array());

  // What the server refuses is said with the parameter; a bad flag value never reaches it.
  Result bad = e2e::Run(dir + "/server", {"workload", "ls", "--selector", "a b=c"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err, HasSubstr("query: selector"));
  Result state = e2e::Run(dir + "/server", {"workload", "ls", "--state", "sleeping"});
  EXPECT_EQ(state.exit_code, 2);
  EXPECT_THAT(state.err, HasSubstr("--state"));
  Result help = e2e::Run(dir, {"workload", "ls", "--help"});
  EXPECT_THAT(help.out, HasSubstr("--page-size"));
  EXPECT_THAT(help.out, HasSubstr("--selector"));
  server.Kill(SIGTERM);
  std::filesystem::remove_all(dir);
}

TEST(CommandLineTest, SimGenerateTakesJson) {
  std::string dir = TempDir("e2e-cli-sim");
  Result r = e2e::Run(dir, {"sim", "generate", "--json", "--out", dir + "/gen", "--requests", "10",
                            "--hosts", "2:8:A100:96:512Gi"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int files = 0;
  while (std::getline(lines, line)) {
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_TRUE(std::filesystem::exists(j.value("wrote", ""))) << line;
    ++files;
  }
  EXPECT_EQ(files, 2);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace berth::e2e
