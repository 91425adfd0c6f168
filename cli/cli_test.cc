// The command line against a server on a loopback port, one that is not there, and one that
// never answers.
#include "cli/cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>

#include "api/api_server.h"
#include "api/routes_jobs.h"
#include "api/routes_services.h"
#include "cli/image_cmd.h"
#include "cli/job_cmd.h"
#include "cli/rebalance_cmd.h"
#include "cli/service_cmd.h"
#include "cli/storenet_cmd.h"
#include "control/control_plane.h"
#include "control/job_controller.h"
#include "control/service_controller.h"
#include "core/clock.h"
#include "core/json.h"
#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::cli {
namespace {

using core::Cat;
using core::Json;
using ::testing::HasSubstr;

struct Result {
  int code = -1;
  std::string out, err;
};

// The client commands under the real root (global flags and logging set-up).
core::Command ClientRoot() {
  return RootCommand({WorkloadCommand(), ServiceCommand(), JobCommand(), VmCommand(),
                      ImageCommand(), DiskCommand(), NetCommand(), SecgroupCommand(),
                      PortfwdCommand(), HostCommand(), TenantCommand(), RebalanceCommand(),
                      EventsCommand(), StatusCommand(), TopCommand(), VersionCommand()});
}

Result Berth(std::vector<std::string> args) {
  std::ostringstream out, err;
  Result r;
  r.code = core::Run(ClientRoot(), args, out, err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

// A loopback listener; with `full_backlog` its accept queue is full and never drained, so a new
// connect hangs as towards a host that does not answer.
class Listener {
 public:
  explicit Listener(bool full_backlog) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr_.sin_family = AF_INET;
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr_;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr_), len), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr_), &len), 0);
    if (!full_backlog) return;
    EXPECT_EQ(listen(fd_, 0), 0);
    filler_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(connect(filler_, reinterpret_cast<sockaddr*>(&addr_), len), 0);
  }
  ~Listener() {
    if (filler_ >= 0) close(filler_);
    close(fd_);
  }
  std::string address() const { return Cat("127.0.0.1:", ntohs(addr_.sin_port)); }

 private:
  int fd_ = -1;
  int filler_ = -1;
  sockaddr_in addr_{};
};

TEST(CliFlagsTest, AnUnknownFlagIsRefusedWithItsName) {
  for (std::vector<std::string> args : {std::vector<std::string>{"workload", "ls", "--jsn"},
                                        {"host", "ls", "--all"},
                                        {"events", "-x"},
                                        {"workload", "exec", "w1", "-la"}}) {
    Result r = Berth(args);
    EXPECT_EQ(r.code, 2) << args.back();
    EXPECT_NE(r.err.find("unknown flag " + args.back()), std::string::npos) << r.err;
  }
  // The switches berth knows still work.
  Result help = Berth({"workload", "--help"});
  EXPECT_EQ(help.code, 0) << help.err;
}

TEST(CliFlagsTest, AMisspelledFlagIsNamedWithTheCommandAndItsHelp) {
  Result r = Berth({"disk", "create", "d1", "--sise", "1Gi"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "berth disk create: unknown flag --sise; see berth disk create --help\n");
  EXPECT_TRUE(r.out.empty());
}

TEST(CliFlagsTest, AMisplacedFlagSaysWhichCommandItBelongsTo) {
  // Before the command it belongs to.
  Result early = Berth({"disk", "--size", "1Gi", "create", "d1"});
  EXPECT_EQ(early.code, 2);
  EXPECT_THAT(early.err, HasSubstr("flag --size goes after the command it belongs to"));
  EXPECT_THAT(early.err, HasSubstr("berth disk create"));
  // On another command.
  Result other = Berth({"workload", "ls", "--subnet", "10.0.0.0/24"});
  EXPECT_EQ(other.code, 2);
  EXPECT_THAT(other.err, HasSubstr("unknown flag --subnet (it is a flag of berth net create)"));
}

TEST(CliFlagsTest, BadValuesAreRefusedNamingTheFlagBeforeAnyRequest) {
  // No server is named: a value error must come first, with exit code 2.
  struct Case {
    std::vector<std::string> args;
    std::string flag;
  };
  for (const Case& c : std::vector<Case>{
           {{"portfwd", "add", "--host-port", "eighty", "--workload", "w", "--port", "80"},
            "--host-port must be an integer"},
           {{"workload", "exec", "w1", "--timeout", "soon", "--", "ls"},
            "--timeout must be a duration"},
           {{"disk", "create", "d1", "--size", "big"}, "--size must be a size"},
           {{"disk", "create", "d1", "--format", "vhd"}, "--format must be qcow2 or raw"},
           {{"tenant", "quota", "set", "t1", "--cpu", "lots"}, "--cpu"},
           {{"host", "ls", "--log-level", "chatty"}, "--log-level must be debug, info, warn"},
       }) {
    Result r = Berth(c.args);
    EXPECT_EQ(r.code, 2) << c.flag << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.flag));
  }
}

TEST(CliFlagsTest, MissingArgumentsAndCommandsAreUsageErrors) {
  EXPECT_THAT(Berth({"workload", "get"}).err, HasSubstr("missing NAME"));
  EXPECT_EQ(Berth({"workload", "get"}).code, 2);
  EXPECT_EQ(Berth({"workload", "create"}).code, 2);  // -f is required
  EXPECT_THAT(Berth({"workload", "create"}).err, HasSubstr("--file is required"));
  EXPECT_EQ(Berth({"workload", "frobnicate"}).code, 2);
  EXPECT_EQ(Berth({"nosuch"}).code, 2);
  EXPECT_EQ(Berth({}).code, 2);
  EXPECT_EQ(Berth({"workload", "exec", "w1"}).code, 2);  // no command to run
}

TEST(CliHelpTest, EveryGroupAndCommandRendersItsDeclaredFlags) {
  core::Command root = ClientRoot();
  std::function<void(const core::Command&, std::vector<std::string>)> walk =
      [&](const core::Command& c, std::vector<std::string> path) {
        std::vector<std::string> args = path;
        args.push_back("--help");
        Result r = Berth(args);
        std::string where;
        for (const auto& p : path) where += p + " ";
        EXPECT_EQ(r.code, 0) << where << r.err;
        EXPECT_THAT(r.out, HasSubstr("Usage: berth " + where)) << where;
        EXPECT_THAT(r.out, HasSubstr("--json")) << where;
        EXPECT_THAT(r.out, HasSubstr("--log-level")) << where;
        for (const core::FlagDef& f : c.flags) {
          EXPECT_THAT(r.out, HasSubstr("--" + f.name)) << where;
          EXPECT_THAT(r.out, HasSubstr(f.help.substr(0, f.help.find('\n')))) << where;
          if (!f.default_value.empty()) {
            EXPECT_THAT(r.out, HasSubstr("(default " + f.default_value + ")")) << where;
          }
        }
        for (const core::Command& s : c.subcommands) {
          EXPECT_THAT(r.out, HasSubstr(s.name)) << where;
          std::vector<std::string> sub = path;
          sub.push_back(s.name);
          walk(s, sub);
        }
      };
  for (const core::Command& c : root.subcommands) walk(c, {c.name});
  Result top = Berth({"--help"});
  EXPECT_EQ(top.code, 0);
  for (const char* text : {"workload", "disk", "secgroup", "tenant", "Exit codes: 0 success"}) {
    EXPECT_THAT(top.out, HasSubstr(text));
  }
  EXPECT_EQ(Berth({"help", "disk", "create"}).out, Berth({"disk", "create", "--help"}).out);
}

// Every client command accepts --json; a failure (here: no server listening) is exit code 1
// with a JSON error, never a usage error.
TEST(CliJsonTest, EveryCommandAcceptsJsonAndFailsWithAJsonError) {
  Listener closed(/*full_backlog=*/false);
  core::Command root = ClientRoot();
  int leaves = 0;
  std::function<void(const core::Command&, std::vector<std::string>)> walk =
      [&](const core::Command& c, std::vector<std::string> args) {
        if (!c.subcommands.empty()) {
          for (const core::Command& s : c.subcommands) {
            std::vector<std::string> sub = args;
            sub.push_back(s.name);
            walk(s, sub);
          }
          return;
        }
        ++leaves;
        // Flags first: after `workload exec NAME CMD` everything is the command's.
        args.insert(args.end(), {"--json", "--log-level", "off"});
        if (args[0] != "version") {
          args.insert(args.end(), {"--server", closed.address(), "--token", "t"});
        }
        for (const core::FlagDef& f : c.flags) {
          if (!f.required) continue;
          args.push_back("--" + f.name);
          args.push_back(f.type == core::FlagType::kInt    ? "80"
                         : f.type == core::FlagType::kSize ? "1Gi"
                                                           : "x1");
        }
        if (c.name == "set") args.insert(args.end(), {"--gpu", "1"});  // tenant quota set
        for (const core::ArgDef& a : c.args) {
          args.push_back(a.rest ? "true" : a.name == "REPLICAS" ? "1" : "x1");
        }
        Result r = Berth(args);
        std::string where;
        for (const auto& a : args) where += a + " ";
        EXPECT_NE(r.code, 2) << where << r.err;
        if (r.code == 0) {
          EXPECT_FALSE(Json::parse(r.out, nullptr, false).is_discarded()) << where << r.out;
        } else {
          EXPECT_EQ(r.code, 1) << where;
          Json e = Json::parse(r.err, nullptr, false);
          EXPECT_TRUE(e.is_object() && e.contains("error")) << where << r.err;
        }
      };
  for (const core::Command& c : root.subcommands) walk(c, {c.name});
  EXPECT_GT(leaves, 40);
}

TEST(CliExitCodesTest, ZeroOkOneFailureTwoUsage) {
  Result ok = Berth({"version", "--json"});
  EXPECT_EQ(ok.code, 0);
  EXPECT_EQ(Json::parse(ok.out, nullptr, false)["version"], "0.1.0");
  Listener closed(/*full_backlog=*/false);
  EXPECT_EQ(Berth({"host", "ls", "--server", closed.address(), "--token", "t"}).code, 1);
  EXPECT_EQ(Berth({"host", "ls", "--bogus"}).code, 2);
}

TEST(CliUnreachableTest, AClosedPortSaysWhichAddressAndHowToNameAnother) {
  Listener bound_not_listening(/*full_backlog=*/false);
  Result r = Berth({"host", "ls", "--server", bound_not_listening.address(), "--token", "t"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(Cat("http://", bound_not_listening.address())), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("BERTH_ADDR"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--server"), std::string::npos) << r.err;
}

TEST(CliUnreachableTest, AServerThatNeverAcceptsIsGivenUpOnAfterTheConnectTimeout) {
  Listener blackhole(/*full_backlog=*/true);
  const absl::Time start = absl::Now();
  Result r = Berth({"workload", "ls", "--json", "--server", blackhole.address(), "--token", "t"});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.code, 1);
  Json err = Json::parse(r.err, nullptr, false);
  ASSERT_TRUE(err.is_object()) << r.err;
  EXPECT_NE(err["error"].get<std::string>().find(blackhole.address()), std::string::npos) << r.err;
  EXPECT_GE(took, kConnectTimeout - absl::Milliseconds(100));
  EXPECT_LT(took, absl::Seconds(30));  // it used to wait for the kernel's SYN retries (~2 min)
}

TEST(CliHostTest, RmRemovesAHostThatIsDownAndRefusesALiveOne) {
  core::ManualClock clock;
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{.clock = &clock});
  api::ApiServer server(api::ApiServerOptions{.admin_token = "admin"}, &control, nullptr);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string url = Cat("127.0.0.1:", *port);
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(2000);
  inv.capacity.memory = core::MemoryMiB(1024);
  ASSERT_TRUE(control.RegisterHost("node-a", inv).ok());

  Result live = Berth({"host", "rm", "node-a", "--server", url, "--token", "admin"});
  EXPECT_EQ(live.code, 1);
  EXPECT_NE(live.err.find("is live"), std::string::npos) << live.err;

  clock.Advance(absl::Seconds(20));
  ASSERT_EQ(*control.CheckHostsOnce(), 1);
  Result removed = Berth({"host", "rm", "node-a", "--json", "--server", url, "--token", "admin"});
  EXPECT_EQ(removed.code, 0) << removed.err;
  Json body = Json::parse(removed.out, nullptr, false);
  EXPECT_EQ(body["name"], "node-a") << removed.out;
  EXPECT_EQ(body["deleted"], true) << removed.out;
  EXPECT_FALSE(control.GetHost("node-a").ok());

  Result again = Berth({"host", "rm", "node-a", "--server", url, "--token", "admin"});
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("not found"), std::string::npos) << again.err;
  EXPECT_EQ(Berth({"host", "rm", "--server", url, "--token", "admin"}).code, 2);
  Result help = Berth({"host", "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("host rm NAME"), std::string::npos) << help.out;
}

TEST(CliServiceTest, CreateListGetScaleAndDelete) {
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{});
  control::ServiceController services(&control, control::ServiceControllerOptions{});
  api::ApiServer server(api::ApiServerOptions{.admin_token = "admin"}, &control, nullptr);
  api::AddServiceRoutes(server.router(), &services);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string url = Cat("127.0.0.1:", *port);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / Cat("berth-cli-service-", getpid());
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "web.yaml").string();
  {
    std::ofstream f(file);
    f << "name: web\nkind: service\nreplicas: 2\nport: 8080\n"
         "template: {kind: process, command: [/bin/sleep, '60']}\n";
  }
  auto berth = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--server", url, "--token", "admin"});
    return Berth(args);
  };
  Result created = berth({"service", "create", "-f", file});
  EXPECT_EQ(created.code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("service web created"));
  ASSERT_TRUE(services.ReconcileOnce().ok());
  Result ls = berth({"service", "ls", "--json"});
  EXPECT_EQ(ls.code, 0) << ls.err;
  Json items = Json::parse(ls.out, nullptr, false);
  ASSERT_TRUE(items.is_array()) << ls.out;
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["name"], "web");
  Result table = berth({"service", "ls"});
  EXPECT_THAT(table.out, HasSubstr("0/2"));
  Result get = berth({"service", "get", "web"});
  EXPECT_EQ(get.code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("web-0"));
  EXPECT_THAT(get.out, HasSubstr("web-1"));
  Result get_json = berth({"service", "get", "web", "--json"});
  EXPECT_EQ(Json::parse(get_json.out, nullptr, false)["status"]["replicas"].size(), 2u);
  Result scaled = berth({"service", "scale", "web", "3", "--json"});
  EXPECT_EQ(scaled.code, 0) << scaled.err;
  EXPECT_EQ(Json::parse(scaled.out, nullptr, false)["spec"]["replicas"], 3);
  // A changed template rolls out as a new revision; undo goes back.
  {
    std::ofstream f(file);
    f << "name: web\nkind: service\nreplicas: 3\nport: 8080\n"
         "update: {max_surge: 2, max_unavailable: 1}\n"
         "template: {kind: process, command: [/bin/sleep, '120']}\n";
  }
  Result updated = berth({"service", "update", "-f", file});
  EXPECT_EQ(updated.code, 0) << updated.err;
  EXPECT_THAT(updated.out, HasSubstr("service web updated; rolling out revision 2"));
  Result rollout = berth({"service", "rollout", "status", "web"});
  EXPECT_EQ(rollout.code, 0) << rollout.err;
  EXPECT_THAT(rollout.out, HasSubstr("revision:  2 (progressing)"));
  EXPECT_THAT(rollout.out, HasSubstr("previous:  revision 1"));
  Result rollout_json = berth({"service", "rollout", "status", "web", "--json"});
  Json r = Json::parse(rollout_json.out, nullptr, false);
  EXPECT_EQ(r["revision"], 2) << rollout_json.out;
  EXPECT_EQ(r["state"], "progressing") << rollout_json.out;
  Result undo = berth({"service", "rollout", "undo", "web"});
  EXPECT_EQ(undo.code, 0) << undo.err;
  EXPECT_THAT(undo.out, HasSubstr("rolling back to revision 1"));
  Result again = berth({"service", "rollout", "undo", "web", "--json"});
  EXPECT_EQ(Json::parse(again.out, nullptr, false)["status"]["rollout"]["revision"], 2);
  Result unknown = berth({"service", "rollout", "undo", "nope"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("service \"nope\" not found"));
  // Usage mistakes exit 2 before any request; the server's refusals exit 1 naming the field.
  Result word = berth({"service", "scale", "web", "three"});
  EXPECT_EQ(word.code, 2);
  EXPECT_THAT(word.err, HasSubstr("REPLICAS must be a whole number"));
  Result too_many = berth({"service", "scale", "web", "1000"});
  EXPECT_EQ(too_many.code, 1);
  EXPECT_THAT(too_many.err, HasSubstr("service \"web\": replicas must be between 0 and 100"));
  EXPECT_EQ(berth({"service", "get", "nope"}).code, 1);
  Result missing = berth({"service", "create", "-f", (dir / "none.yaml").string()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_THAT(missing.err, HasSubstr("cannot read"));
  Result deleted = berth({"service", "delete", "web"});
  EXPECT_EQ(deleted.code, 0) << deleted.err;
  EXPECT_THAT(deleted.out, HasSubstr("deleting"));
  ASSERT_TRUE(services.ReconcileOnce().ok());
  ASSERT_TRUE(services.ReconcileOnce().ok());
  EXPECT_EQ(berth({"service", "get", "web"}).code, 1);
  std::filesystem::remove_all(dir);
}

TEST(CliJobTest, CreateListGetLogsAndCancel) {
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{});
  control::JobController jobs(&control,
                              control::JobControllerOptions{.port_free = [](int) { return true; }});
  api::ApiServer server(api::ApiServerOptions{.admin_token = "admin"}, &control, nullptr);
  api::AddJobRoutes(server.router(), &jobs);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string url = Cat("127.0.0.1:", *port);
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / Cat("berth-cli-job-", getpid());
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "train.yaml").string();
  {
    std::ofstream f(file);
    f << "name: train\nkind: job\nparallelism: 2\nrestart: {max_retries: 1, scope: task}\n"
         "template: {kind: process, command: [/bin/true]}\n";
  }
  auto berth = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--server", url, "--token", "admin"});
    return Berth(args);
  };
  Result created = berth({"job", "create", "-f", file});
  EXPECT_EQ(created.code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("job train created"));
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  Result ls = berth({"job", "ls", "--json"});
  EXPECT_EQ(ls.code, 0) << ls.err;
  Json items = Json::parse(ls.out, nullptr, false);
  ASSERT_TRUE(items.is_array()) << ls.out;
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["status"]["state"], "pending");
  Result table = berth({"job", "ls"});
  EXPECT_THAT(table.out, HasSubstr("0/2"));
  EXPECT_THAT(table.out, HasSubstr("0/1"));
  Result get = berth({"job", "get", "train"});
  EXPECT_EQ(get.code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("train-0"));
  EXPECT_THAT(get.out, HasSubstr("train-1"));
  EXPECT_THAT(get.out, HasSubstr("restart:   on-failure, scope task, 0 of 1 retries spent"));
  Result get_json = berth({"job", "get", "train", "--json"});
  EXPECT_EQ(Json::parse(get_json.out, nullptr, false)["status"]["tasks"].size(), 2u);
  // `job logs` takes a job's task; another workload is refused, saying what to do.
  core::WorkloadSpec other;
  other.name = "other";
  other.command = {"/bin/true"};
  ASSERT_TRUE(control.CreateWorkload(other).ok());
  Result not_task = berth({"job", "logs", "other"});
  EXPECT_EQ(not_task.code, 1);
  EXPECT_THAT(not_task.err, HasSubstr("is not a job's task; `berth job get JOB` lists"));
  EXPECT_EQ(berth({"job", "get", "nope"}).code, 1);
  {
    std::ofstream f(file);
    f << "name: wide\nkind: job\nparallelism: 64\ntemplate: {kind: process, command: [x]}\n";
  }
  Result wide = berth({"job", "create", "-f", file});
  EXPECT_EQ(wide.code, 1);
  EXPECT_THAT(wide.err, HasSubstr("job \"wide\": parallelism must be between 1 and 32, got 64"));
  // Cancel: the job ends cancelled and stays; a second cancel removes it with its tasks.
  Result cancel = berth({"job", "cancel", "train"});
  EXPECT_EQ(cancel.code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr("job train cancelled"));
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  Result remove = berth({"job", "cancel", "train", "--json"});
  EXPECT_EQ(remove.code, 0) << remove.err;
  EXPECT_EQ(Json::parse(remove.out, nullptr, false)["status"]["removing"], true) << remove.out;
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  ASSERT_TRUE(jobs.ReconcileOnce().ok());
  EXPECT_EQ(berth({"job", "get", "train"}).code, 1);
  std::filesystem::remove_all(dir);
}

// The endpoint in `service ls` and `service get`, through real proxy endpoints on loopback; a
// port something else holds is refused naming the field.
TEST(CliServiceTest, GetShowsTheEndpoint) {
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{});
  std::unique_ptr<control::Endpoints> endpoints = control::NewProxyEndpoints("127.0.0.1");
  control::ServiceController services(
      &control, control::ServiceControllerOptions{.endpoints = endpoints.get()});
  api::ApiServer server(api::ApiServerOptions{.admin_token = "admin"}, &control, nullptr);
  api::AddServiceRoutes(server.router(), &services);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string url = Cat("127.0.0.1:", *port);
  auto berth = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--server", url, "--token", "admin"});
    return Berth(args);
  };
  const std::string file =
      std::filesystem::temp_directory_path() / Cat("berth-cli-endpoint-", getpid(), ".yaml");
  auto spec = [&](int host_port) {
    std::ofstream(file) << "name: web\nreplicas: 1\nport: 8080\nendpoint: {host_port: " << host_port
                        << "}\ntemplate: {kind: process, command: [/bin/sleep, '60']}\n";
    return file;
  };
  // The API server's own port is taken: the endpoint cannot listen there.
  Result busy = berth({"service", "create", "-f", spec(*port)});
  EXPECT_EQ(busy.code, 1);
  EXPECT_THAT(busy.err, HasSubstr(Cat("service \"web\": endpoint.host_port port ", *port,
                                      " cannot be used on the server's host")));
  // A port that was free a moment ago.
  auto probe = control::EndpointProxy::Start({.listen_address = "127.0.0.1", .port = 0});
  ASSERT_TRUE(probe.ok()) << probe.status();
  const int free_port = (*probe)->port();
  probe->reset();
  Result created = berth({"service", "create", "-f", spec(free_port)});
  std::filesystem::remove(file);
  ASSERT_EQ(created.code, 0) << created.err;
  ASSERT_TRUE(services.ReconcileOnce().ok());
  Result get = berth({"service", "get", "web"});
  EXPECT_EQ(get.code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr(Cat("endpoint:  127.0.0.1:", free_port,
                                     ", serving, forwarding to 0 ready replicas")));
  EXPECT_THAT(get.out, HasSubstr("REVISION"));
  Result get_json = berth({"service", "get", "web", "--json"});
  Json j = Json::parse(get_json.out, nullptr, false);
  EXPECT_EQ(j["status"]["endpoint"]["address"], Cat("127.0.0.1:", free_port)) << get_json.out;
  EXPECT_EQ(j["status"]["endpoint"]["serving"], true);
  Result ls = berth({"service", "ls"});
  EXPECT_THAT(ls.out, HasSubstr(Cat("127.0.0.1:", free_port)));
  ASSERT_TRUE(services.Delete("web").ok());
  ASSERT_TRUE(services.ReconcileOnce().ok());
  EXPECT_TRUE(endpoints->List().empty());
}

// `service get` with an autoscaler: its settings, what it measured and what it decided; `scale`
// is refused while it decides.
TEST(CliServiceTest, GetShowsTheAutoscaler) {
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{});
  std::unique_ptr<control::Endpoints> endpoints = control::NewProxyEndpoints("127.0.0.1");
  control::ServiceController services(
      &control, control::ServiceControllerOptions{.endpoints = endpoints.get()});
  api::ApiServer server(api::ApiServerOptions{.admin_token = "admin"}, &control, nullptr);
  api::AddServiceRoutes(server.router(), &services);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  auto berth = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--server", Cat("127.0.0.1:", *port), "--token", "admin"});
    return Berth(args);
  };
  auto probe = control::EndpointProxy::Start({.listen_address = "127.0.0.1", .port = 0});
  ASSERT_TRUE(probe.ok()) << probe.status();
  const int free_port = (*probe)->port();
  probe->reset();
  const std::string file =
      std::filesystem::temp_directory_path() / Cat("berth-cli-autoscale-", getpid(), ".yaml");
  std::ofstream(file) << "name: web\nport: 8080\nendpoint: {host_port: " << free_port
                      << "}\nautoscale: {min: 0, max: 8, target: 4, idle_to_zero: 2m}\n"
                         "template: {kind: process, command: [/bin/sleep, '60']}\n";
  Result created = berth({"service", "create", "-f", file});
  std::filesystem::remove(file);
  ASSERT_EQ(created.code, 0) << created.err;
  ASSERT_TRUE(services.ReconcileOnce().ok());
  Result get = berth({"service", "get", "web"});
  EXPECT_EQ(get.code, 0) << get.err;
  EXPECT_THAT(get.out, HasSubstr("replicas:  0 ready of 1 (autoscaled)"));
  EXPECT_THAT(get.out, HasSubstr("autoscale: concurrency, target 4 open connections per replica, "
                                 "0 to 8 replicas (stable window 1m, panic window 6s, scale-down "
                                 "delay 0, to zero after 2m idle)"));
  EXPECT_THAT(get.out, HasSubstr("measured:  concurrency 0.00 over the stable window"));
  EXPECT_THAT(get.out, HasSubstr("decision:  1 replicas: no measurement yet: keeps 1 replica"));
  Result get_json = berth({"service", "get", "web", "--json"});
  Json j = Json::parse(get_json.out, nullptr, false);
  EXPECT_EQ(j["status"]["autoscale"]["desired"], 1) << get_json.out;
  EXPECT_EQ(j["spec"]["autoscale"]["metric"], "concurrency") << get_json.out;
  Result ls = berth({"service", "ls"});
  EXPECT_THAT(ls.out, HasSubstr("0/1"));
  Result scaled = berth({"service", "scale", "web", "3"});
  EXPECT_EQ(scaled.code, 1);
  EXPECT_THAT(scaled.err, HasSubstr("service \"web\": its replicas are set by its autoscaler"));
  ASSERT_TRUE(services.Delete("web").ok());
}

// `berth image` acts on one host's catalog: --host names it, else the only host there is; with
// none or several it says so before asking for any catalog.
TEST(CliImageTest, PicksTheOnlyHostOrAsksForHost) {
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{});
  api::ApiServer server(api::ApiServerOptions{.admin_token = "admin"}, &control, nullptr);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::vector<std::string> to = {"--server", Cat("127.0.0.1:", *port), "--token", "admin"};
  auto berth = [&](std::vector<std::string> args) {
    args.insert(args.end(), to.begin(), to.end());
    return Berth(args);
  };

  Result none = berth({"image", "ls"});
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("no hosts"), std::string::npos) << none.err;

  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(2000);
  inv.capacity.memory = core::MemoryMiB(1024);
  ASSERT_TRUE(control.RegisterHost("node-a", inv).ok());
  ASSERT_TRUE(control.RegisterHost("node-b", inv).ok());
  Result several = berth({"image", "ls"});
  EXPECT_EQ(several.code, 2);
  EXPECT_NE(several.err.find("--host NAME"), std::string::npos) << several.err;
  EXPECT_NE(several.err.find("node-a, node-b"), std::string::npos) << several.err;

  // With --host the request goes to the server, whose answer (no catalog here) is printed.
  Result named = berth({"image", "rm", "tiny", "--host", "node-b", "--json"});
  EXPECT_EQ(named.code, 1);
  Json err = Json::parse(named.err, nullptr, false);
  ASSERT_TRUE(err.is_object() && err.contains("error")) << named.err;
  EXPECT_EQ(err["error"].get<std::string>().find("cannot reach"), std::string::npos) << named.err;

  Result help = Berth({"image", "import", "--help"});
  EXPECT_NE(help.out.find("import directory"), std::string::npos) << help.out;
}

// `berth rebalance plan` against a server whose two GPU hosts each hold a half-GPU share: an
// 8-GPU workload needs one share moved; the table says so, --json is the server's plan, and bad
// flags or names are refused.
TEST(CliRebalanceTest, PlanPrintsTheMovesAsADryRun) {
  state::MemoryStore store;
  control::ControlPlane control(&store, control::ControlPlaneOptions{.policy = "spread"});
  api::ApiServer server(api::ApiServerOptions{.admin_token = "admin"}, &control, nullptr);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::vector<std::string> to = {"--server", Cat("127.0.0.1:", *port), "--token", "admin"};
  auto berth = [&](std::vector<std::string> args) {
    args.insert(args.end(), to.begin(), to.end());
    return Berth(args);
  };
  for (const char* host : {"node-a", "node-b"}) {
    core::HostInventory inv;
    inv.capacity.cpu = core::MilliCpu(64000);
    inv.capacity.memory = core::MemoryMiB(1 << 19);
    for (int i = 0; i < 8; ++i) {
      inv.gpus.push_back({.index = i, .model = "A100-SXM4-80GB", .memory_mib = 81920});
    }
    ASSERT_TRUE(control.RegisterHost(host, inv).ok());
  }
  auto create = [&](const std::string& name, Json gpu) {
    auto spec = core::DecodeWorkloadSpec(
        {{"name", name},
         {"kind", "process"},
         {"command", {"/bin/true"}},
         {"restart", "always"},
         {"resources", {{"cpu", "1"}, {"memory", "1Gi"}, {"gpu", std::move(gpu)}}}});
    ASSERT_TRUE(spec.ok()) << spec.status();
    ASSERT_TRUE(control.CreateWorkload(*spec).ok());
  };
  create("share-a", {{"share", "500m"}});
  create("share-b", {{"share", "500m"}});
  ASSERT_EQ(*control.ScheduleOnce(), 2);
  create("train", {{"count", 8}});

  Result table = berth({"rebalance", "plan"});
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("Dry run: nothing is moved"));
  EXPECT_THAT(table.out, HasSubstr("stranded 1 (free on partly used devices)"));
  EXPECT_THAT(table.out, HasSubstr("WORKLOAD  GPUS  OUTCOME  GOES TO"));
  EXPECT_THAT(table.out, HasSubstr("train     8     plan     node-a [0,1,2,3,4,5,6,7]  1"));
  EXPECT_THAT(table.out, HasSubstr("train: move, in this order:"));
  EXPECT_THAT(table.out, HasSubstr("share-a   process  node-a  node-b"));
  EXPECT_EQ(control.GetWorkload("share-a")->status.host, "node-a");  // nothing moved

  Result json = berth({"rebalance", "plan", "--workload", "train", "--max-moves", "1", "--json"});
  ASSERT_EQ(json.code, 0) << json.err;
  Json j = Json::parse(json.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << json.out;
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["max_moves"], 1);
  EXPECT_EQ(j["items"][0]["moves"][0]["workload"], "share-a");

  Result unknown = berth({"rebalance", "plan", "--workload", "nosuch"});
  EXPECT_EQ(unknown.code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("workload \"nosuch\" not found"));
  Result placed = berth({"rebalance", "plan", "--workload", "share-b"});
  EXPECT_EQ(placed.code, 1);
  EXPECT_THAT(placed.err, HasSubstr("not pending"));
  Result bad = berth({"rebalance", "plan", "--max-moves", "0"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--max-moves must be an integer between 1 and 16"));
  Result help = Berth({"rebalance", "--help"});
  EXPECT_THAT(help.out,
              HasSubstr("plan moves for pending workloads (a dry run: nothing is moved)"));
}

}  // namespace
}  // namespace berth::cli
