// The real binary in dev mode: workloads created through the CLI run, log and stop; bad specs
// are refused with the field named and change nothing; SIGKILL of the server loses nothing it
// acknowledged, and running workloads are re-adopted rather than restarted.
#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "tests/e2e_util.h"

namespace berth::e2e {
namespace {

using nlohmann::json;

constexpr char kHello[] = R"(name: hello
kind: process            # later issues add: vm, container
command: ["/bin/sh", "-c", "echo hello; sleep 3600"]
resources: {cpu: 500m, memory: 64Mi}
)";

class DevModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("e2e-dev");
    server_ = std::make_unique<DevServer>(dir_);
    ASSERT_TRUE(server_->Start()) << ReadFile(dir_ + "/serve.log");
    // The embedded agent registers its host shortly after the server answers; wait for it so
    // that the store's revision only moves when a test moves it.
    ASSERT_TRUE(Eventually([&] {
      auto hosts = server_->client().ListHosts();
      return hosts.ok() && !hosts->items.empty();
    })) << ReadFile(dir_ + "/serve.log");
  }
  void TearDown() override {
    // Stop whatever still runs so no process outlives the test.
    if (server_->pid() > 0) {
      auto list = server_->client().ListWorkloads();
      if (list.ok()) {
        for (const auto& w : list->items) {
          auto stopped = server_->client().StopWorkload(w.spec.name);
          EXPECT_TRUE(stopped.ok()) << w.spec.name << ": " << stopped.status();
        }
        Eventually(
            [&] {
              auto l = server_->client().ListWorkloads();
              if (!l.ok()) return true;
              for (const auto& w : l->items) {
                auto s = w.status.state;
                if (s != core::WorkloadState::kStopped && s != core::WorkloadState::kFailed &&
                    s != core::WorkloadState::kPending) {
                  return false;
                }
              }
              return true;
            },
            30);
      }
    }
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  Result Cli(std::vector<std::string> args, const std::string& input = "") {
    return e2e::Run(dir_, std::move(args), input);
  }
  int64_t Revision() {
    api::Raw raw;
    return server_->client().ListWorkloads({}, &raw).ok() ? raw.index : -1;
  }

  std::string dir_;
  std::unique_ptr<DevServer> server_;
};

TEST_F(DevModeTest, HelloRunsLogsAndStopsThroughTheCli) {
  Result created = Cli({"workload", "create", "-f", "-"}, kHello);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  ASSERT_TRUE(Eventually([&] { return server_->State("hello") == "running"; }))
      << server_->Dump("hello").dump();
  ASSERT_TRUE(Eventually([&] {
    Result logs = Cli({"workload", "logs", "hello"});
    return logs.exit_code == 0 && logs.out.find("hello") != std::string::npos;
  }));
  Result ls = Cli({"workload", "ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0);
  json items = json::parse(ls.out);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0]["status"]["state"], "running");
  Result hosts = Cli({"host", "ls", "--json"});
  ASSERT_EQ(hosts.exit_code, 0);
  EXPECT_EQ(json::parse(hosts.out).size(), 1u);

  Result stop = Cli({"workload", "stop", "hello"});
  ASSERT_EQ(stop.exit_code, 0) << stop.err;
  ASSERT_TRUE(Eventually([&] { return server_->State("hello") == "stopped"; }));
  // Following the log of a finished workload prints what there is, then ends.
  Result followed = Cli({"workload", "logs", "hello", "--follow"});
  EXPECT_EQ(followed.exit_code, 0) << followed.err;
  EXPECT_NE(followed.out.find("hello"), std::string::npos) << followed.out;
  Result events = Cli({"events", "--json"});
  ASSERT_EQ(events.exit_code, 0);
  for (const char* type : {"created", "scheduled", "starting", "running", "stopped"}) {
    EXPECT_NE(events.out.find(std::string("\"type\":\"") + type + "\""), std::string::npos) << type;
  }
}

TEST_F(DevModeTest, BadSpecsAreRefusedWithTheFieldAndChangeNothing) {
  const int64_t before = Revision();
  Result negative = Cli({"workload", "create", "-f", "-"},
                        "name: bad\nkind: process\ncommand: [x]\nresources: {memory: -5Mi}\n");
  EXPECT_NE(negative.exit_code, 0);
  EXPECT_NE(negative.err.find("resources.memory"), std::string::npos) << negative.err;
  Result unknown = Cli({"workload", "create", "-f", "-"},
                       "name: bad\nkind: process\ncommand: [x]\ncolour: red\n");
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("colour"), std::string::npos) << unknown.err;
  EXPECT_EQ(Revision(), before);
  EXPECT_TRUE(absl::IsNotFound(server_->client().GetWorkload("bad").status()));
  // Without the token the API refuses.
  api::Client anonymous(server_->url());
  EXPECT_TRUE(absl::IsUnauthenticated(anonymous.ListWorkloads().status()));
}

TEST_F(DevModeTest, ProcessWorkloadsRunUnprivilegedAndRootOnlyWhereAllowed) {
  // This server was started without --allow-root-workloads.
  const int64_t before = Revision();
  Result root = Cli({"workload", "create", "-f", "-"},
                    "name: boss\nkind: process\ncommand: [id, -u]\nuser: root\n");
  EXPECT_NE(root.exit_code, 0);
  EXPECT_NE(root.err.find("user"), std::string::npos) << root.err;
  // A malformed spec (a numeric user) sent as is: raw HTTP is the point here.
  api::HttpClient raw_client(server_->url(), {.bearer_token = server_->token()});
  auto raw = raw_client.Post("/v1/workloads",
                             R"({"name":"boss","kind":"process","command":["id"],"user":0})");
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw->status, 403) << raw->body;
  EXPECT_EQ(Revision(), before);

  Result created = Cli({"workload", "create", "-f", "-"}, R"(name: who
kind: process
command: ["/bin/sh", "-c", "id -u; cat /proc/self/status; echo done"]
resources: {cpu: 100m, memory: 32Mi}
)");
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string out;
  ASSERT_TRUE(Eventually([&] {
    Result logs = Cli({"workload", "logs", "who"});
    out = logs.out;
    return logs.exit_code == 0 && out.find("done\n") != std::string::npos;
  })) << out;
  EXPECT_NE(out.find("NoNewPrivs:\t1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("CapEff:\t0000000000000000\n"), std::string::npos) << out;
  EXPECT_NE(out.find("CapAmb:\t0000000000000000\n"), std::string::npos) << out;
  // As root the agent switches to nobody; otherwise the task runs as the agent's own user.
  EXPECT_EQ(out.substr(0, out.find('\n')), std::to_string(geteuid() == 0 ? 65534 : geteuid()));
}

TEST(DevModeRootTest, AllowRootWorkloadsLetsAProcessRunAsRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "only an agent running as root can run root workloads";
  const std::string dir = TempDir("e2e-dev-root");
  {
    DevServer server(dir, {"--dev", "--allow-root-workloads"});
    ASSERT_TRUE(server.Start()) << ReadFile(dir + "/serve.log");
    Result created = e2e::Run(dir, {"workload", "create", "-f", "-"}, R"(name: boss
kind: process
command: ["/bin/sh", "-c", "id -u; echo done"]
user: root
)");
    ASSERT_EQ(created.exit_code, 0) << created.err;
    std::string out;
    EXPECT_TRUE(Eventually([&] {
      out = e2e::Run(dir, {"workload", "logs", "boss"}).out;
      return out.find("done\n") != std::string::npos;
    })) << out;
    EXPECT_EQ(out, "0\ndone\n");
  }
  std::filesystem::remove_all(dir);
}

TEST_F(DevModeTest, KillNineLosesNothingAcknowledgedAndAdoptsRunningWork) {
  ASSERT_EQ(Cli({"workload", "create", "-f", "-"}, kHello).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return server_->State("hello") == "running"; }));
  auto before = server_->client().GetWorkload("hello");
  ASSERT_TRUE(before.ok()) << before.status();

  // A stream of creates, each remembered only once the server acknowledged it. The workloads
  // ask for a label no host has, so they stay pending and start no processes.
  std::atomic<bool> stop{false};
  std::vector<std::string> acknowledged;
  std::thread writer([&] {
    api::Client c(server_->url(),
                  api::ClientOptions{.token = server_->token(), .timeout = absl::Seconds(5)});
    for (int i = 0; !stop && i < 100000; ++i) {
      json spec = {{"name", "w" + std::to_string(i)},
                   {"kind", "process"},
                   {"command", {"/bin/true"}},
                   {"constraints", {{{"label", "never"}, {"op", "exists"}}}}};
      auto created = c.CreateWorkloadFromText(spec.dump());
      // A transport error: the server died mid-request, so it was not acknowledged.
      if (absl::IsUnavailable(created.status()) || absl::IsDeadlineExceeded(created.status())) {
        break;
      }
      if (created.ok()) acknowledged.push_back(spec["name"]);
    }
  });
  ASSERT_TRUE(Eventually([&] { return acknowledged.size() >= 20; }, 120));
  server_->Kill(SIGKILL);
  stop = true;
  writer.join();

  ASSERT_TRUE(server_->Start()) << ReadFile(dir_ + "/serve.log");
  auto list = server_->client().ListWorkloads();
  ASSERT_TRUE(list.ok()) << list.status();
  std::set<std::string> present;
  for (const auto& w : list->items) present.insert(w.spec.name);
  for (const auto& name : acknowledged) EXPECT_TRUE(present.count(name)) << name << " was lost";
  EXPECT_TRUE(present.count("hello"));

  // hello was re-adopted: still running, same start time, and no second start.
  ASSERT_TRUE(Eventually([&] {
    auto h = server_->client().ListHosts();
    return h.ok() && !h->items.empty() && h->items[0].state == core::HostState::kReady;
  }));
  auto after = server_->client().GetWorkload("hello");
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->status.state, core::WorkloadState::kRunning);
  EXPECT_EQ(after->status.started_at, before->status.started_at);
  EXPECT_EQ(after->status.generation, before->status.generation);
  Result events = Cli({"events", "--json"});
  size_t starts = 0;
  for (size_t pos = 0; (pos = events.out.find("\"type\":\"starting\"", pos)) != std::string::npos;
       ++pos) {
    ++starts;
  }
  EXPECT_EQ(starts, 1u) << events.out;
  // And it can still be stopped by the restarted server.
  ASSERT_EQ(Cli({"workload", "stop", "hello"}).exit_code, 0);
  ASSERT_TRUE(Eventually([&] { return server_->State("hello") == "stopped"; }));
}

// The first host the server knows, once its embedded agent has registered, as the server encodes
// it; null if it never does.
json FirstHost(DevServer& server) {
  json host;
  Eventually([&] {
    api::Raw raw;
    auto hosts = server.client().ListHosts(&raw);
    if (!hosts.ok() || hosts->items.empty()) return false;
    host = raw.body["items"][0];
    return true;
  });
  return host;
}

// How VMs are accelerated is the operator's to force, and otherwise probed: either way the host
// says which accelerator it uses and why.
TEST(DevModeVmAccelTest, ForcedTcgIsReportedInTheHostFingerprint) {
  std::string dir = TempDir("e2e-accel");
  {
    DevServer server(dir, {"--dev", "--vm-accel", "tcg"});
    ASSERT_TRUE(server.Start()) << ReadFile(dir + "/serve.log");
    json host = FirstHost(server);
    ASSERT_TRUE(host.is_object()) << ReadFile(dir + "/serve.log");
    const json& fp = host["inventory"]["fingerprint"];
    EXPECT_EQ(fp.value("vm_accel", ""), "tcg") << host.dump();
    EXPECT_NE(fp.value("vm_accel_reason", "").find("--vm-accel tcg"), std::string::npos)
        << host.dump();
    EXPECT_FALSE(fp.contains("vm_accel_fallback"));
    Result ls = e2e::Run(dir, {"host", "ls"});
    ASSERT_EQ(ls.exit_code, 0) << ls.err;
    EXPECT_NE(ls.out.find("vm(tcg)"), std::string::npos) << ls.out;
    Result get = e2e::Run(dir, {"host", "get", host["name"].get<std::string>(), "--json"});
    ASSERT_EQ(get.exit_code, 0) << get.err;
    EXPECT_EQ(json::parse(get.out)["inventory"]["fingerprint"]["vm_accel"], "tcg");
  }
  std::filesystem::remove_all(dir);
}

TEST(DevModeVmAccelTest, AutoProbesAndAFallbackIsAnEvent) {
  std::string dir = TempDir("e2e-accel-auto");
  {
    DevServer server(dir);
    ASSERT_TRUE(server.Start()) << ReadFile(dir + "/serve.log");
    json host = FirstHost(server);
    ASSERT_TRUE(host.is_object()) << ReadFile(dir + "/serve.log");
    const json& fp = host["inventory"]["fingerprint"];
    const std::string accel = fp.value("vm_accel", "");
    const std::string reason = fp.value("vm_accel_reason", "");
    api::Raw events;
    auto listed = server.client().ListEvents({}, &events);
    ASSERT_TRUE(listed.ok()) << listed.status();
    bool fallback_event = false;
    for (const auto& e : listed->items) fallback_event |= e.type == "vm-accel-fallback";
    if (accel == "kvm") {
      // KVM ran the probe guest: no warning, no event.
      EXPECT_NE(reason.find("probe guest ran"), std::string::npos) << reason;
      EXPECT_FALSE(fallback_event) << events.body.dump();
    } else {
      ASSERT_EQ(accel, "tcg") << host.dump();
      EXPECT_NE(reason.find("using tcg"), std::string::npos) << reason;
      EXPECT_TRUE(fallback_event) << events.body.dump();
      EXPECT_NE(ReadFile(dir + "/serve.log").find("warning: VMs run without KVM"),
                std::string::npos);
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(DevModeVmAccelTest, AnUnknownAcceleratorIsRefusedBeforeAnythingStarts) {
  std::string dir = TempDir("e2e-accel-bad");
  Result serve =
      e2e::Run(dir, {"serve", "--dev", "--vm-accel", "fast", "--data-dir", dir + "/data"});
  EXPECT_EQ(serve.exit_code, 2);
  EXPECT_NE(serve.err.find("--vm-accel"), std::string::npos) << serve.err;
  EXPECT_NE(serve.err.find("auto, kvm or tcg"), std::string::npos) << serve.err;
  EXPECT_FALSE(std::filesystem::exists(dir + "/data"));
  Result agent = e2e::Run(dir, {"agent", "--server", "http://127.0.0.1:1", "--join-token", "x",
                                "--data-dir", dir + "/agent", "--vm-accel", "fast"});
  EXPECT_EQ(agent.exit_code, 2);
  EXPECT_NE(agent.err.find("auto, kvm or tcg"), std::string::npos) << agent.err;
  std::filesystem::remove_all(dir);
}

// The dev server serves its own host's image catalog through the API, importing only files
// inside its import directory: DATA_DIR/imports by default, --image-import-dir DIR otherwise.
TEST(DevModeImagesTest, TheApiImportsOnlyFromTheImportDirectory) {
  const std::string base = TempDir("e2e-images");
  for (bool flag : {false, true}) {
    const std::string dir = base + (flag ? "/flag" : "/default");
    const std::string imports = flag ? base + "/in" : dir + "/imports";
    std::vector<std::string> args = {"--dev"};
    if (flag) args.insert(args.end(), {"--image-import-dir", imports});
    DevServer server(dir, args);
    ASSERT_TRUE(server.Start()) << ReadFile(dir + "/serve.log");
    // Raw requests: the traversal attempts below are what a typed client would never send.
    std::unique_ptr<api::HttpClient> raw = server.RawClient();
    json host = FirstHost(server);
    ASSERT_TRUE(host.is_object()) << ReadFile(dir + "/serve.log");
    const std::string images = "/v1/hosts/" + host["name"].get<std::string>() + "/images";
    ASSERT_TRUE(std::filesystem::is_directory(imports)) << imports;
    std::ofstream(imports + "/vmlinuz") << "kernel-bytes";
    std::ofstream(dir + "/secret") << "not-for-clients";

    // The catalog opens with the local agent, just after the host registers.
    absl::StatusOr<api::HttpResponse> imported;
    ASSERT_TRUE(Eventually([&] {
      imported = raw->Post(images, R"({"name":"tiny","kernel":"vmlinuz"})");
      return imported.ok() && imported->status != 503;
    })) << ReadFile(dir + "/serve.log");
    ASSERT_EQ(imported->status, 201) << imported->body;
    const std::string kernel = json::parse(imported->body)["kernel"];
    EXPECT_EQ(kernel, dir + "/agent/images/images/tiny/vmlinuz");
    EXPECT_EQ(ReadFile(kernel), "kernel-bytes");
    auto listed = raw->Get(images);
    ASSERT_TRUE(listed.ok() && listed->status == 200);
    json list = json::parse(listed->body);
    ASSERT_EQ(list["items"].size(), 1u);
    EXPECT_EQ(list["items"][0]["name"], "tiny");

    for (const std::string& outside : {dir + "/secret", std::string("../secret"),
                                       std::string("../../secret"), std::string("/etc/passwd")}) {
      auto refused = raw->Post(images, json{{"name", "evil"}, {"disk", outside}}.dump());
      ASSERT_TRUE(refused.ok());
      EXPECT_EQ(refused->status, 400) << outside << ": " << refused->body;
    }
    EXPECT_EQ(raw->Get(images + "/evil")->status, 404);
    EXPECT_EQ(raw->Get("/v1/hosts/elsewhere/images")->status, 404);
    EXPECT_EQ(raw->Delete(images + "/tiny")->status, 200);
    EXPECT_EQ(raw->Get(images + "/tiny")->status, 404);
    EXPECT_FALSE(std::filesystem::exists(kernel));
  }
  std::filesystem::remove_all(base);
}

}  // namespace
}  // namespace berth::e2e
