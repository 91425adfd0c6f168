// Unit tests of the host agent, in-process and without root: a ControlPlane over a MemoryStore
// served by an ApiServer on a loopback port, and an Agent whose drivers are FakeDrivers on one
// FakeHost. Most tests drive the agent with SyncOnce and the scheduler with ScheduleOnce, so
// every step is explicit; one runs the real background loops.
#include "agent/agent.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/inventory.h"
#include "api/api_server.h"
#include "api/task_api.h"
#include "control/control_plane.h"
#include "control/service_controller.h"
#include "core/clock.h"
#include "core/strings.h"
#include "core/workload.h"
#include "gtest/gtest.h"
#include "runtime/fake_driver.h"
#include "runtime/gpu_env.h"
#include "runtime/host/executor.h"
#include "state/memory_store.h"

namespace berth::agent {
namespace {

namespace fs = std::filesystem;
using core::Cat;
using core::Json;

constexpr char kAdminToken[] = "admin-secret";
constexpr char kJoinToken[] = "join-secret";
constexpr char kHost[] = "h1";

Json ProcessSpec(const std::string& name, std::vector<std::string> command = {"serve"}) {
  return {{"name", name},
          {"kind", "process"},
          {"command", command},
          {"resources", {{"cpu", "500m"}, {"memory", "64Mi"}}}};
}

Json ContainerSpec(const std::string& name) {
  return {{"name", name},
          {"kind", "container"},
          {"image", "alpine:3.19"},
          {"command", {"serve"}},
          {"resources", {{"cpu", "500m"}, {"memory", "64Mi"}}}};
}

Json VmSpec(const std::string& name) {
  return {{"name", name},
          {"kind", "vm"},
          {"image", "debian-12"},
          {"command", {"serve"}},
          {"resources", {{"cpu", "1"}, {"memory", "256Mi"}}}};
}

class AgentTest : public ::testing::Test {
 protected:
  AgentTest()
      : store_(state::StoreOptions{.clock = &clock_, .lease_tick_interval = absl::ZeroDuration()}),
        control_(&store_, control::ControlPlaneOptions{.clock = &clock_}),
        host_(std::make_shared<runtime::FakeHost>(&clock_)),
        driver_(std::make_unique<runtime::FakeDriver>(host_)) {}

  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "berth-agent-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    data_dir_ = tmpl;
    api::ApiServerOptions o;
    o.admin_token = kAdminToken;
    o.agent_tokens = {kJoinToken};
    server_ = std::make_unique<api::ApiServer>(o, &control_, nullptr);
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = Cat("http://127.0.0.1:", *port);
  }

  void TearDown() override {
    agent_.reset();
    control_.Stop();
    if (server_) server_->Stop();
    std::error_code ec;
    if (!data_dir_.empty()) fs::remove_all(data_dir_, ec);
  }

  AgentOptions Options() {
    AgentOptions o;
    o.server_url = url_;
    o.token = kJoinToken;
    o.name = kHost;
    o.data_dir = data_dir_;
    o.inventory.capacity.cpu = *core::ParseCpu("4");
    o.inventory.capacity.memory = *core::ParseMemory("4Gi");
    o.inventory.capacity.disk = core::DiskMiB(10240);
    o.heartbeat_interval = absl::Milliseconds(100);
    o.poll_wait = absl::Milliseconds(50);
    o.stop_grace = absl::Milliseconds(100);
    o.drivers = {{"process", driver_.get()}, {"container", driver_.get()}, {"vm", driver_.get()}};
    return o;
  }

  // A registered host with an agent built from `o`, ready for SyncOnce. It registers as the
  // heartbeat thread would (tests that only call SyncOnce never start that thread).
  void MakeAgent(AgentOptions o) {
    agent_ = std::make_unique<Agent>(std::move(o));
    absl::Status registered = agent_->Register();
    ASSERT_TRUE(registered.ok()) << registered;
  }

  // Creates the workload and places it on the host; returns its task id.
  std::string Submit(const Json& json) {
    auto spec = core::DecodeWorkloadSpec(json);
    if (!spec.ok()) {
      ADD_FAILURE() << spec.status();
      return "";
    }
    auto created = control_.CreateWorkload(*spec);
    if (!created.ok()) {
      ADD_FAILURE() << created.status();
      return "";
    }
    auto placed = control_.ScheduleOnce();
    EXPECT_TRUE(placed.ok()) << placed.status();
    core::Workload w = Get(spec->name);
    EXPECT_EQ(w.status.host, kHost) << w.status.explanation;
    return Cat(spec->name, "-g", w.status.generation);
  }

  void Sync() {
    absl::Status s = agent_->SyncOnce();
    EXPECT_TRUE(s.ok()) << s;
  }
  // Sends `usage` with a heartbeat under the host's credential; what the server then keeps.
  std::map<std::string, core::HostUsage> BeatWith(const std::optional<core::HostUsage>& usage) {
    std::string credential;
    std::getline(std::ifstream(HostCredentialPath(data_dir_)), credential);
    api::Client host_client(url_, api::ClientOptions{.token = credential});
    absl::Status s = host_client.Heartbeat(kHost, usage);
    EXPECT_TRUE(s.ok()) << s;
    return control_.HostUsages();
  }

  core::Workload Get(const std::string& name) {
    auto w = control_.GetWorkload(name);
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *w : core::Workload{};
  }

  // The workload's state name, or "absent" once it is deleted.
  std::string StateOf(const std::string& name) {
    auto w = control_.GetWorkload(name);
    if (absl::IsNotFound(w.status())) return "absent";
    if (!w.ok()) return Cat("error: ", w.status().message());
    return std::string(core::WorkloadStateName(w->status.state));
  }

  // Waits until the workload is in `state`, woken by store changes instead of polling.
  bool AwaitState(const std::string& name, std::string_view state, absl::Duration timeout) {
    absl::Mutex mu;
    int64_t changes = 0;
    auto watch = store_.Watch(control::kWorkloadPrefix, 0, [&](const state::Event&) {
      absl::MutexLock lock(&mu);
      ++changes;
    });
    if (!watch.ok()) return false;
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      int64_t seen = 0;
      {
        absl::MutexLock lock(&mu);
        seen = changes;
      }
      if (StateOf(name) == state) return true;
      absl::MutexLock lock(&mu);
      auto changed = [&] { return changes != seen; };
      if (!mu.AwaitWithDeadline(absl::Condition(&changed), deadline)) return false;
    }
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  control::ControlPlane control_;
  std::shared_ptr<runtime::FakeHost> host_;
  std::unique_ptr<runtime::FakeDriver> driver_;
  std::unique_ptr<api::ApiServer> server_;
  std::unique_ptr<Agent> agent_;
  std::string data_dir_;
  std::string url_;
};

TEST(HostPathOfTest, APathOnAMountedDiskIsFoundWhereTheHostMountsIt) {
  const std::vector<runtime::TaskDisk> disks = {
      {.name = "data", .path = "/var/lib/berth/mnt/data", .mount_path = "/data"},
      {.name = "ckpt", .path = "/var/lib/berth/mnt/ckpt", .mount_path = "/ckpt/"},
      {.name = "vm", .path = "/pool/vm.qcow2"},  // no mount: a VM's disk
      {.name = "root", .path = "/var/lib/berth/mnt/root", .mount_path = "/"}};
  EXPECT_EQ(HostPathOf(disks, "/ckpt"), "/var/lib/berth/mnt/ckpt");
  EXPECT_EQ(HostPathOf(disks, "/ckpt/run-1"), "/var/lib/berth/mnt/ckpt/run-1");
  EXPECT_EQ(HostPathOf(disks, "/data/x/y"), "/var/lib/berth/mnt/data/x/y");
  // Only a whole path component matches, and a disk at "/" is never the answer.
  EXPECT_EQ(HostPathOf(disks, "/ckpt2"), "/ckpt2");
  EXPECT_EQ(HostPathOf(disks, "/srv/ckpt"), "/srv/ckpt");
  EXPECT_EQ(HostPathOf({}, "/ckpt"), "/ckpt");
}

TEST_F(AgentTest, ProcessWorkloadRunsWithTheSpecsCommandEnvAndResources) {
  MakeAgent(Options());
  Json spec = ProcessSpec("web", {"serve", "--port", "8080"});
  spec["env"] = {{"MODE", "prod"}, {"LEVEL", "3"}};
  spec["working_dir"] = "/srv";
  const std::string task_id = Submit(spec);
  Sync();

  core::Workload w = Get("web");
  EXPECT_EQ(StateOf("web"), "running") << w.status.reason;
  EXPECT_EQ(w.status.reason, Cat("running on ", kHost));
  EXPECT_EQ(host_->starts(), 1);
  EXPECT_TRUE(host_->IsRunning(task_id));
  auto cfg = host_->Config(task_id);
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(cfg->task_id, task_id);
  EXPECT_EQ(cfg->workload, "web");
  EXPECT_EQ(cfg->kind, "process");
  EXPECT_EQ(cfg->command, "serve");
  EXPECT_EQ(cfg->args, (std::vector<std::string>{"--port", "8080"}));
  EXPECT_EQ(cfg->env, (std::map<std::string, std::string>{{"MODE", "prod"}, {"LEVEL", "3"}}));
  EXPECT_EQ(cfg->working_dir, "/srv");
  EXPECT_EQ(cfg->resources.cpu.value(), 500);
  EXPECT_EQ(cfg->resources.memory.value(), 64);
  EXPECT_EQ(cfg->task_dir, Cat(data_dir_, "/tasks/", task_id));
  EXPECT_TRUE(cfg->nics.empty());
  EXPECT_TRUE(cfg->disks.empty());
  // The agent keeps a record of the task for re-adoption after a restart.
  EXPECT_TRUE(fs::exists(Cat(data_dir_, "/tasks/", task_id, ".json")));

  // Another pass changes nothing: the task is not started twice.
  Sync();
  EXPECT_EQ(host_->starts(), 1);
  EXPECT_EQ(StateOf("web"), "running");
}

TEST_F(AgentTest, AttachHookWiresNicsAndDisksBeforeTheDriverStarts) {
  struct AttachCall {
    std::string workload;
    std::vector<std::string> networks;
    std::vector<std::string> disks;
    std::string task_id;
    int64_t starts_before = -1;
  };
  std::vector<AttachCall> attached;
  std::vector<std::string> detached;
  AgentOptions o = Options();
  o.attach = [&](const core::WorkloadSpec& spec, runtime::TaskConfig* config) {
    AttachCall call{
        .workload = spec.name, .task_id = config->task_id, .starts_before = host_->starts()};
    for (const auto& n : spec.networks) call.networks.push_back(n.network);
    for (const auto& d : spec.disks) call.disks.push_back(d.disk);
    attached.push_back(call);
    config->nics.push_back({.name = "eth0",
                            .host_ifname = "veth-edge0",
                            .mac = "52:54:00:12:34:56",
                            .netns_path = "/run/netns/edge",
                            .addresses = {"10.0.0.5/24"}});
    config->disks.push_back({.name = "data",
                             .path = "/var/lib/berth/disks/data.img",
                             .format = "raw",
                             .mount_path = "/data"});
    return absl::OkStatus();
  };
  o.detach = [&](std::string_view workload) { detached.emplace_back(workload); };
  MakeAgent(std::move(o));
  Json spec = ContainerSpec("edge");
  spec["networks"] = {"blue"};
  spec["disks"] = {{{"disk", "data"}, {"mount", "/data"}}};
  const std::string task_id = Submit(spec);
  Sync();

  EXPECT_EQ(StateOf("edge"), "running") << Get("edge").status.reason;
  ASSERT_EQ(attached.size(), 1u);
  EXPECT_EQ(attached[0].workload, "edge");
  EXPECT_EQ(attached[0].networks, std::vector<std::string>{"blue"});
  EXPECT_EQ(attached[0].disks, std::vector<std::string>{"data"});
  EXPECT_EQ(attached[0].task_id, task_id);
  EXPECT_EQ(attached[0].starts_before, 0);  // called before the driver's Start
  auto cfg = host_->Config(task_id);
  ASSERT_TRUE(cfg.has_value());
  ASSERT_EQ(cfg->nics.size(), 1u);
  EXPECT_EQ(cfg->nics[0].name, "eth0");
  EXPECT_EQ(cfg->nics[0].host_ifname, "veth-edge0");
  EXPECT_EQ(cfg->nics[0].mac, "52:54:00:12:34:56");
  EXPECT_EQ(cfg->nics[0].netns_path, "/run/netns/edge");
  EXPECT_EQ(cfg->nics[0].addresses, std::vector<std::string>{"10.0.0.5/24"});
  ASSERT_EQ(cfg->disks.size(), 1u);
  EXPECT_EQ(cfg->disks[0].name, "data");
  EXPECT_EQ(cfg->disks[0].path, "/var/lib/berth/disks/data.img");
  EXPECT_EQ(cfg->disks[0].format, "raw");
  EXPECT_EQ(cfg->disks[0].mount_path, "/data");
  EXPECT_TRUE(detached.empty());
}

TEST_F(AgentTest, AttachErrorFailsTheWorkloadWithoutStartingItAndDetaches) {
  int attach_calls = 0;
  std::vector<std::string> detached;
  AgentOptions o = Options();
  o.attach = [&](const core::WorkloadSpec& spec, runtime::TaskConfig* config) {
    ++attach_calls;
    return absl::UnavailableError(Cat("workload \"", spec.name, "\": network blue has no bridge"));
  };
  o.detach = [&](std::string_view workload) { detached.emplace_back(workload); };
  MakeAgent(std::move(o));
  Json spec = VmSpec("db");
  spec["networks"] = {"blue"};
  const std::string task_id = Submit(spec);
  Sync();

  core::Workload w = Get("db");
  EXPECT_EQ(StateOf("db"), "failed");
  EXPECT_NE(w.status.reason.find("network blue has no bridge"), std::string::npos)
      << w.status.reason;
  EXPECT_EQ(attach_calls, 1);
  EXPECT_EQ(host_->starts(), 0);
  EXPECT_FALSE(host_->Config(task_id).has_value());
  EXPECT_EQ(detached, std::vector<std::string>{"db"});

  // The failure is final: later passes neither retry nor detach again.
  Sync();
  EXPECT_EQ(attach_calls, 1);
  EXPECT_EQ(host_->starts(), 0);
  EXPECT_EQ(detached.size(), 1u);
}

TEST_F(AgentTest, FailedDriverStartIsReportedAndDetached) {
  std::vector<std::string> detached;
  AgentOptions o = Options();
  o.attach = [](const core::WorkloadSpec&, runtime::TaskConfig*) { return absl::OkStatus(); };
  o.detach = [&](std::string_view workload) { detached.emplace_back(workload); };
  MakeAgent(std::move(o));
  host_->FailNextStart(absl::ResourceExhaustedError("no free loop devices"));
  Submit(ContainerSpec("edge"));
  Sync();

  core::Workload w = Get("edge");
  EXPECT_EQ(StateOf("edge"), "failed");
  EXPECT_EQ(w.status.reason, "start failed: no free loop devices");
  EXPECT_EQ(host_->starts(), 0);
  EXPECT_EQ(detached, std::vector<std::string>{"edge"});
}

TEST_F(AgentTest, WithoutAttachHookNetworksOrDisksFailTheWorkload) {
  MakeAgent(Options());
  Json networked = ContainerSpec("net-only");
  networked["networks"] = {"blue"};
  Json with_disk = VmSpec("disk-only");
  with_disk["disks"] = {"data"};
  const std::string net_task = Submit(networked);
  const std::string disk_task = Submit(with_disk);
  Sync();

  for (const std::string name : {"net-only", "disk-only"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(StateOf(name), "failed");
    const std::string reason = Get(name).status.reason;
    EXPECT_NE(reason.find(Cat("host ", kHost, " cannot give workloads Berth networks or disks")),
              std::string::npos)
        << reason;
  }
  EXPECT_EQ(host_->starts(), 0);
  EXPECT_FALSE(host_->Config(net_task).has_value());
  EXPECT_FALSE(host_->Config(disk_task).has_value());

  // Without networks or disks the same host runs containers and VMs.
  Submit(ContainerSpec("plain"));
  Sync();
  EXPECT_EQ(StateOf("plain"), "running") << Get("plain").status.reason;
}

TEST_F(AgentTest, DeleteStopsTheTaskThenDestroysItAndDetaches) {
  struct DetachCall {
    std::string workload;
    bool task_still_known = false;
  };
  std::vector<DetachCall> detached;
  std::string task_id;
  AgentOptions o = Options();
  o.attach = [](const core::WorkloadSpec&, runtime::TaskConfig*) { return absl::OkStatus(); };
  o.detach = [&](std::string_view workload) {
    auto tasks = driver_->Tasks();
    detached.push_back(
        {.workload = std::string(workload),
         .task_still_known = std::find(tasks.begin(), tasks.end(), task_id) != tasks.end()});
  };
  MakeAgent(std::move(o));
  task_id = Submit(ContainerSpec("edge"));
  Sync();
  ASSERT_EQ(StateOf("edge"), "running");
  const std::string task_dir = Cat(data_dir_, "/tasks/", task_id);
  ASSERT_TRUE(fs::exists(task_dir));

  bool deleted = true;
  ASSERT_TRUE(control_.DeleteWorkload("edge", &deleted).ok());
  EXPECT_FALSE(deleted);  // the host is live: the agent must stop it first
  Sync();
  // Stopped and reported: the server dropped the object; the task waits for its destruction.
  EXPECT_EQ(StateOf("edge"), "absent");
  EXPECT_FALSE(host_->IsRunning(task_id));
  EXPECT_TRUE(detached.empty());

  Sync();
  ASSERT_EQ(detached.size(), 1u);
  EXPECT_EQ(detached[0].workload, "edge");
  EXPECT_FALSE(detached[0].task_still_known);  // detach comes after Destroy
  EXPECT_TRUE(driver_->Tasks().empty());
  EXPECT_FALSE(host_->Config(task_id).has_value());
  EXPECT_FALSE(fs::exists(task_dir));
  EXPECT_FALSE(fs::exists(Cat(data_dir_, "/tasks/", task_id, ".json")));

  Sync();
  EXPECT_EQ(detached.size(), 1u);
}

TEST_F(AgentTest, PauseResumeAndStopReachTheDriver) {
  MakeAgent(Options());
  const std::string task_id = Submit(ProcessSpec("web"));
  Sync();
  ASSERT_EQ(StateOf("web"), "running");

  ASSERT_TRUE(control_.Act("web", control::Action::kPause).ok());
  Sync();
  EXPECT_EQ(StateOf("web"), "paused");
  auto st = driver_->Inspect(task_id);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state, runtime::TaskState::kPaused);

  ASSERT_TRUE(control_.Act("web", control::Action::kResume).ok());
  Sync();
  EXPECT_EQ(StateOf("web"), "running");
  st = driver_->Inspect(task_id);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state, runtime::TaskState::kRunning);

  ASSERT_TRUE(control_.Act("web", control::Action::kStop).ok());
  Sync();
  EXPECT_EQ(StateOf("web"), "stopped");
  EXPECT_EQ(Get("web").status.reason, "stopped on request");
  st = driver_->Inspect(task_id);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state, runtime::TaskState::kExited);
  ASSERT_TRUE(st->exit.has_value());
  EXPECT_EQ(st->exit->signal, 15);

  // No longer assigned: the next pass destroys the stopped task.
  Sync();
  EXPECT_TRUE(driver_->Tasks().empty());
  EXPECT_EQ(StateOf("web"), "stopped");
  EXPECT_EQ(host_->starts(), 1);
}

TEST_F(AgentTest, WorkloadCreatedPausedStartsPaused) {
  MakeAgent(Options());
  const std::string task_id = Submit(ProcessSpec("web"));
  ASSERT_TRUE(control_.Act("web", control::Action::kPause).ok());
  Sync();
  EXPECT_EQ(StateOf("web"), "paused");
  auto st = driver_->Inspect(task_id);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state, runtime::TaskState::kPaused);
}

TEST_F(AgentTest, TaskEndsAreReportedWithTheirCause) {
  MakeAgent(Options());
  const std::string crash = Submit(ProcessSpec("crash"));
  const std::string oom = Submit(ProcessSpec("oom"));
  const std::string done = Submit(ProcessSpec("done"));
  Sync();
  ASSERT_EQ(StateOf("crash"), "running");
  ASSERT_EQ(StateOf("oom"), "running");
  ASSERT_EQ(StateOf("done"), "running");

  ASSERT_TRUE(host_->ExitTask(crash, 3).ok());
  ASSERT_TRUE(host_->OomKill(oom).ok());
  ASSERT_TRUE(host_->ExitTask(done, 0).ok());
  Sync();

  core::Workload w = Get("crash");
  EXPECT_EQ(StateOf("crash"), "failed");
  EXPECT_EQ(w.status.reason, "exited with code 3");
  EXPECT_EQ(w.status.exit_code, 3);
  w = Get("oom");
  EXPECT_EQ(StateOf("oom"), "failed");
  EXPECT_TRUE(w.status.oom_killed);
  EXPECT_NE(w.status.reason.find("OOM-killed"), std::string::npos) << w.status.reason;
  w = Get("done");
  EXPECT_EQ(StateOf("done"), "stopped");
  EXPECT_EQ(w.status.exit_code, 0);
}

TEST_F(AgentTest, RestartedAgentReadoptsTheRunningTaskInsteadOfStartingIt) {
  MakeAgent(Options());
  const std::string task_id = Submit(ProcessSpec("web"));
  Sync();
  ASSERT_EQ(StateOf("web"), "running");
  ASSERT_EQ(host_->starts(), 1);

  // The agent process goes away with its driver instances; the task keeps running on the host.
  agent_.reset();
  driver_ = std::make_unique<runtime::FakeDriver>(host_);
  ASSERT_TRUE(driver_->Tasks().empty());
  agent_ = std::make_unique<Agent>(Options());
  // Start recovers the recorded tasks before its loops run.
  ASSERT_TRUE(agent_->Start().ok());
  agent_->Stop();
  EXPECT_EQ(driver_->Tasks(), std::vector<std::string>{task_id});

  Sync();
  EXPECT_EQ(host_->starts(), 1);
  EXPECT_TRUE(host_->IsRunning(task_id));
  EXPECT_EQ(StateOf("web"), "running");

  // The new instance supervises it: its exit is noticed and reported.
  ASSERT_TRUE(host_->ExitTask(task_id, 0).ok());
  Sync();
  EXPECT_EQ(StateOf("web"), "stopped");
  EXPECT_EQ(Get("web").status.exit_code, 0);
  EXPECT_EQ(host_->starts(), 1);
}

TEST_F(AgentTest, TaskLostWhileTheAgentWasDownIsReportedFailed) {
  MakeAgent(Options());
  const std::string task_id = Submit(ProcessSpec("web"));
  Sync();
  ASSERT_EQ(StateOf("web"), "running");

  agent_.reset();
  driver_ = std::make_unique<runtime::FakeDriver>(host_);
  host_->Vanish(task_id);  // the machine rebooted meanwhile
  agent_ = std::make_unique<Agent>(Options());
  ASSERT_TRUE(agent_->Start().ok());
  agent_->Stop();
  Sync();

  core::Workload w = Get("web");
  EXPECT_EQ(StateOf("web"), "failed");
  EXPECT_NE(w.status.reason.find("lost while the agent was down"), std::string::npos)
      << w.status.reason;
  EXPECT_EQ(host_->starts(), 1);  // not restarted behind the server's back
}

TEST_F(AgentTest, DiskHotplugNeedsACapableDriverAndATaskOnThisHost) {
  ASSERT_FALSE(driver_->Capabilities().disk_hotplug);
  MakeAgent(Options());
  const runtime::TaskDisk disk{.name = "data", .path = "/dev/null", .format = "raw"};
  EXPECT_EQ(agent_->AttachDisk("ghost", disk).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(agent_->DetachDisk("ghost", "data").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(agent_->SnapshotDisk("ghost", "data", "snap1").code(), absl::StatusCode::kNotFound);

  Submit(VmSpec("db"));
  Sync();
  ASSERT_EQ(StateOf("db"), "running");
  EXPECT_EQ(agent_->AttachDisk("db", disk).code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(agent_->DetachDisk("db", "data").code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(agent_->SnapshotDisk("db", "data", "snap1").code(), absl::StatusCode::kUnimplemented);

  // Once its task is destroyed the workload has no task here any more.
  ASSERT_TRUE(control_.Act("db", control::Action::kStop).ok());
  Sync();
  Sync();
  ASSERT_TRUE(driver_->Tasks().empty());
  EXPECT_EQ(agent_->AttachDisk("db", disk).code(), absl::StatusCode::kNotFound);
}

TEST_F(AgentTest, ResolvedImageAndKernelCmdlineReachTheDriver) {
  std::vector<std::string> resolved;
  AgentOptions o = Options();
  o.resolve_image = [&](std::string_view kind,
                        std::string_view image) -> absl::StatusOr<ResolvedImage> {
    resolved.push_back(Cat(kind, "/", image));
    if (image == "missing") return absl::NotFoundError("not in the catalog");
    return ResolvedImage{.path = Cat("/images/", image, ".qcow2"),
                         .kernel_cmdline = "console=ttyS0"};
  };
  MakeAgent(std::move(o));
  Json spec = VmSpec("db");
  spec["cmdline"] = "quiet";
  const std::string task_id = Submit(spec);
  Json missing = VmSpec("lost");
  missing["image"] = "missing";
  Submit(missing);
  Sync();

  EXPECT_EQ(StateOf("db"), "running") << Get("db").status.reason;
  auto cfg = host_->Config(task_id);
  ASSERT_TRUE(cfg.has_value());
  EXPECT_EQ(cfg->image, "debian-12");
  EXPECT_EQ(cfg->image_path, "/images/debian-12.qcow2");
  EXPECT_EQ(cfg->env["BERTH_VM_CMDLINE"], "console=ttyS0 quiet");
  EXPECT_EQ(StateOf("lost"), "failed");
  EXPECT_EQ(Get("lost").status.reason, "image \"missing\": not in the catalog");
  EXPECT_EQ(host_->starts(), 1);
  std::sort(resolved.begin(), resolved.end());
  EXPECT_EQ(resolved, (std::vector<std::string>{"vm/debian-12", "vm/missing"}));
}

TEST_F(AgentTest, AWarmStateIsSavedOncePerServiceAndResumedFromWhereItLoads) {
  MakeAgent(Options());
  EXPECT_EQ(agent_->SaveWarmState("ghost", "web.r1").status().code(), absl::StatusCode::kNotFound);
  Submit(VmSpec("web-0"));
  Sync();
  ASSERT_EQ(StateOf("web-0"), "running");
  for (const char* key : {"../../etc/passwd", "web", "web.r", "web.rx", ".r1", "Web.r1"}) {
    EXPECT_EQ(agent_->SaveWarmState("web-0", key).status().code(),
              absl::StatusCode::kInvalidArgument)
        << key;
  }
  EXPECT_FALSE(fs::exists(data_dir_ + "/warm/web.state"));
  auto bytes = agent_->SaveWarmState("web-0", "web.r1");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::string r1 = data_dir_ + "/warm/web.r1.state";
  EXPECT_EQ(agent_->WarmStatePath("web.r1"), r1);
  EXPECT_EQ(*bytes, static_cast<int64_t>(fs::file_size(r1)));
  ASSERT_TRUE(agent_->SaveWarmState("web-0", "api.r4").ok());  // another service's

  // A replica labelled with the key resumes from the file.
  Json resumed = VmSpec("web-1");
  resumed["labels"] = {{"berth.warm-state", "web.r1"}};
  const std::string task = Submit(resumed);
  Sync();
  ASSERT_EQ(StateOf("web-1"), "running");
  EXPECT_EQ(host_->Config(task)->restore_from, r1);
  EXPECT_EQ(Get("web-1").status.reason,
            "running on " + std::string(kHost) + ", resumed from warm state web.r1");

  // A newer revision's state replaces the service's older one, not other services'.
  ASSERT_TRUE(agent_->SaveWarmState("web-1", "web.r2").ok());
  EXPECT_FALSE(fs::exists(r1));
  EXPECT_TRUE(fs::exists(data_dir_ + "/warm/api.r4.state"));
  EXPECT_TRUE(fs::exists(data_dir_ + "/warm/web.r2.state"));

  // A state that does not load is dropped and the replica boots; a key this host lacks boots.
  const std::string r2 = data_dir_ + "/warm/web.r2.state";
  std::ofstream(r2, std::ios::trunc) << "torn";
  Json bad = VmSpec("web-2");
  bad["labels"] = {{"berth.warm-state", "web.r2"}};
  const std::string booted = Submit(bad);
  Json elsewhere = VmSpec("web-3");
  elsewhere["labels"] = {{"berth.warm-state", "web.r9"}};
  const std::string fresh = Submit(elsewhere);
  Sync();
  ASSERT_EQ(StateOf("web-2"), "running") << Get("web-2").status.reason;
  EXPECT_TRUE(host_->Config(booted)->restore_from.empty());
  EXPECT_EQ(Get("web-2").status.reason, "running on " + std::string(kHost));
  EXPECT_FALSE(fs::exists(r2));
  ASSERT_EQ(StateOf("web-3"), "running");
  EXPECT_TRUE(host_->Config(fresh)->restore_from.empty());
}

// Writes service `name` as the service controller keeps it: its template's current revision
// and the warm state its status names.
void PutService(state::Store& store, const std::string& name, int64_t revision,
                const std::string& warm_key) {
  core::Service svc;
  svc.spec = *core::DecodeServiceSpec({{"name", name},
                                       {"kind", "service"},
                                       {"template",
                                        {{"kind", "process"},
                                         {"command", {"/bin/true"}},
                                         {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}}}}});
  svc.status.rollout.revision = revision;
  svc.status.rollout.next_revision = revision + 1;
  svc.status.warm = core::WarmStateStatus{
      .revision = core::ParseWarmStateKey(warm_key)->revision, .key = warm_key, .host = kHost};
  state::TxnRequest txn;
  txn.then_ops.push_back(
      state::Op::Put(Cat(control::kServicePrefix, name), core::EncodeService(svc).dump()));
  ASSERT_TRUE(store.Txn(txn).ok());
}

// A host that keeps warm states and serves them over its task API, as another agent would.
class KeeperHost : public LocalHost {
 public:
  explicit KeeperHost(std::string dir) : dir_(std::move(dir)) {}
  std::string HostName() override { return "keeper"; }
  absl::StatusOr<std::string> LogPath(std::string_view, std::string_view) override {
    return absl::NotFoundError("no tasks here");
  }
  absl::StatusOr<std::string> ConsolePath(std::string_view) override {
    return absl::NotFoundError("no tasks here");
  }
  absl::StatusOr<api::wire::ExecReply> Exec(std::string_view,
                                            const api::wire::ExecRequest&) override {
    return absl::NotFoundError("no tasks here");
  }
  absl::StatusOr<Json> Stats(std::string_view) override {
    return absl::NotFoundError("no tasks here");
  }
  absl::StatusOr<int64_t> SaveWarmState(std::string_view, std::string_view) override {
    return absl::NotFoundError("no tasks here");
  }
  absl::StatusOr<std::string> WarmStateFile(std::string_view key) override {
    const std::string path = Cat(dir_, "/", key, ".state");
    if (!fs::exists(path)) return absl::NotFoundError(Cat("warm state ", key, ": none"));
    return path;
  }

 private:
  std::string dir_;
};

TEST_F(AgentTest, AReplicaWhoseWarmStateAnotherHostKeepsIsCopiedHereAndResumesFromIt) {
  MakeAgent(Options());
  PutService(store_, "web", 5, "web.r5");
  // Another host keeps web.r5 (its replica saved it) and serves it over its task API.
  const std::string keeper_dir = data_dir_ + "/keeper-host";
  fs::create_directories(keeper_dir);
  // The state as a replica saved it (here, then moved over: this host keeps none).
  Submit(VmSpec("web-0"));
  Sync();
  ASSERT_TRUE(agent_->SaveWarmState("web-0", "web.r5").ok());
  fs::rename(data_dir_ + "/warm/web.r5.state", keeper_dir + "/web.r5.state");
  std::ifstream saved(keeper_dir + "/web.r5.state", std::ios::binary);
  const std::string state((std::istreambuf_iterator<char>(saved)),
                          std::istreambuf_iterator<char>());
  ASSERT_FALSE(state.empty());
  KeeperHost keeper(keeper_dir);
  auto token = api::NewTaskApiToken();
  ASSERT_TRUE(token.ok()) << token.status();
  api::TaskApiServer keeper_api({.host = "127.0.0.1", .port = 0, .token = *token}, &keeper);
  auto port = keeper_api.Start();
  ASSERT_TRUE(port.ok()) << port.status();

  // The replica is placed here, then the keeper reports what it keeps.
  Json replica = VmSpec("web-7");
  replica["labels"] = {{"berth.warm-state", "web.r5"}};
  const std::string task = Submit(replica);
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(1000);
  inv.capacity.memory = core::MemoryMiB(1024);
  ASSERT_TRUE(control_.RegisterHost("keeper", inv).ok());
  ASSERT_TRUE(control_
                  .Heartbeat("keeper", std::nullopt,
                             control::TaskApiEndpoint{
                                 .address = "127.0.0.1", .port = *port, .token = *token})
                  .ok());
  EXPECT_TRUE(control_.ReportWarmStates("keeper", {"web.r5"}).empty());
  Sync();
  ASSERT_EQ(StateOf("web-7"), "running") << Get("web-7").status.reason;
  const std::string here = data_dir_ + "/warm/web.r5.state";
  EXPECT_EQ(host_->Config(task)->restore_from, here);
  EXPECT_EQ(Get("web-7").status.reason,
            "running on " + std::string(kHost) + ", resumed from warm state web.r5");
  std::ifstream copied(here, std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(copied)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got.size(), state.size());
  EXPECT_TRUE(got == state);
  EXPECT_FALSE(fs::exists(here + ".copying"));
  // This host now reports it too.
  EXPECT_EQ(agent_->ListWarmStates(), std::vector<std::string>{"web.r5"});
  keeper_api.Stop();
}

TEST_F(AgentTest, UnfinishedWarmStateSavesAndCopiesAreSweptAndNothingElse) {
  MakeAgent(Options());
  const std::string dir = data_dir_ + "/warm";
  fs::create_directories(dir);
  const std::vector<std::string> swept = {"web.r1.state.partial", "api.r2.state.copying"};
  const std::vector<std::string> kept = {"web.r1.state", "notes.partial", "x.copying",
                                         "Bad.r1.state.copying"};
  for (const std::string& name : swept) std::ofstream(dir + "/" + name) << "half";
  for (const std::string& name : kept) std::ofstream(dir + "/" + name) << "whole";
  agent_->SweepUnfinishedWarmStates();
  for (const std::string& name : swept) EXPECT_FALSE(fs::exists(dir + "/" + name)) << name;
  for (const std::string& name : kept) EXPECT_TRUE(fs::exists(dir + "/" + name)) << name;
  EXPECT_EQ(agent_->ListWarmStates(), std::vector<std::string>{"web.r1"});
}

TEST_F(AgentTest, HeartbeatsReportTheWarmStatesHeldAndDeleteThoseNoServiceWants) {
  MakeAgent(Options());
  const std::string dir = data_dir_ + "/warm";
  fs::create_directories(dir + "/dir.r1.state");
  const std::vector<std::string> files = {"web.r1.state",  "web.r2.state",         "api.r4.state",
                                          "gone.r1.state", "web.r3.state.partial", "notes.txt",
                                          "Bad.r1.state"};
  for (const std::string& name : files) std::ofstream(dir + "/" + name) << "state";
  EXPECT_EQ(agent_->ListWarmStates(),
            (std::vector<std::string>{"api.r4", "gone.r1", "web.r1", "web.r2"}));
  // web runs revision 2 and saved it; api saved its revision 4; gone was deleted.
  PutService(store_, "web", 2, "web.r2");
  PutService(store_, "api", 4, "api.r4");
  ASSERT_TRUE(agent_->Heartbeat().ok());
  EXPECT_EQ(control_.WarmStates().at(kHost), (std::set<std::string>{"api.r4", "web.r2"}));
  EXPECT_FALSE(fs::exists(dir + "/web.r1.state"));
  EXPECT_FALSE(fs::exists(dir + "/gone.r1.state"));
  // The current states, a save under way and what is not a state stay.
  for (const char* name :
       {"web.r2.state", "api.r4.state", "web.r3.state.partial", "notes.txt", "Bad.r1.state"}) {
    EXPECT_TRUE(fs::exists(dir + "/" + name)) << name;
  }
  EXPECT_TRUE(fs::is_directory(dir + "/dir.r1.state"));
}

TEST_F(AgentTest, ADropDeletesOnlyTheFileTheListingFound) {
  MakeAgent(Options());
  Submit(VmSpec("web-0"));
  Sync();
  ASSERT_EQ(StateOf("web-0"), "running");
  const std::string r1 = data_dir_ + "/warm/web.r1.state";
  const std::string api = data_dir_ + "/warm/api.r1.state";
  ASSERT_TRUE(agent_->SaveWarmState("web-0", "web.r1").ok());
  ASSERT_EQ(agent_->ListWarmStates(), std::vector<std::string>{"web.r1"});
  // Saved again after the listing the server judged, or not listed at all: kept.
  ASSERT_TRUE(agent_->SaveWarmState("web-0", "web.r1").ok());
  ASSERT_TRUE(agent_->SaveWarmState("web-0", "api.r1").ok());
  agent_->DropWarmStates({"web.r1", "api.r1"});
  EXPECT_TRUE(fs::exists(r1));
  EXPECT_TRUE(fs::exists(api));
  // As listed: deleted.
  ASSERT_EQ(agent_->ListWarmStates(), (std::vector<std::string>{"api.r1", "web.r1"}));
  agent_->DropWarmStates({"web.r1"});
  EXPECT_FALSE(fs::exists(r1));
  EXPECT_TRUE(fs::exists(api));
  // At most 256 are reported, the first in key order.
  for (int i = 0; i < 300; ++i) {
    std::ofstream(absl::StrFormat("%s/warm/s%03d.r1.state", data_dir_, i)) << "state";
  }
  const std::vector<std::string> listed = agent_->ListWarmStates();
  ASSERT_EQ(listed.size(), core::kMaxReportedWarmStates);
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end()));
  EXPECT_EQ(listed.front(), "api.r1");
  EXPECT_EQ(listed.back(), "s254.r1");
}

// A host with two declared A100s (ids derived as the agent derives them) and PCI addresses.
AgentOptions WithGpus(AgentOptions o) {
  for (int i = 0; i < 2; ++i) {
    core::GpuDevice d{.index = i, .model = "A100-SXM4-80GB", .memory_mib = 81920};
    d.pci_address = Cat("0000:0", 7 + i, ":00.0");
    o.inventory.gpus.push_back(d);
  }
  NameDeclaredGpus(kHost, &o.inventory.gpus);
  return o;
}

Json WithGpu(Json spec, Json gpu) {
  spec["resources"]["gpu"] = std::move(gpu);
  return spec;
}

TEST_F(AgentTest, EachWorkloadGetsTheIdsOfExactlyTheGpusItsStatusRecords) {
  MakeAgent(WithGpus(Options()));
  const std::string a = Submit(WithGpu(ProcessSpec("a"), {{"count", 1}}));
  const std::string b = Submit(WithGpu(ProcessSpec("b"), {{"count", 1}}));
  Sync();
  std::vector<std::string> ids;
  for (const auto& [name, task] : {std::pair{"a", a}, std::pair{"b", b}}) {
    EXPECT_EQ(StateOf(name), "running") << Get(name).status.reason;
    core::Workload w = Get(name);
    ASSERT_EQ(w.status.gpus.size(), 1u);
    auto cfg = host_->Config(task);
    ASSERT_TRUE(cfg.has_value());
    EXPECT_EQ(cfg->gpu_device_ids, std::vector<std::string>{w.status.gpus[0].device_id});
    EXPECT_EQ(w.status.gpus[0].device_id, core::DeclaredGpuUuid(kHost, w.status.gpus[0].index));
    EXPECT_EQ(cfg->gpu_pci_addresses,
              std::vector<std::string>{Cat("0000:0", 7 + w.status.gpus[0].index, ":00.0")});
    ids.push_back(w.status.gpus[0].device_id);
  }
  EXPECT_NE(ids[0], ids[1]);
}

TEST_F(AgentTest, AMigRequestGetsItsInstancesUuid) {
  AgentOptions o = Options();
  core::GpuDevice d{.index = 0,
                    .uuid = "GPU-1c7e9a52",
                    .model = "A100-SXM4-80GB",
                    .memory_mib = 81920,
                    .mig_enabled = true};
  d.mig_instances = {{.profile = "3g.40gb", .start_slice = 0, .uuid = "MIG-at-zero"},
                     {.profile = "3g.40gb", .start_slice = 4, .uuid = "MIG-at-four"}};
  o.inventory.gpus = {d};
  MakeAgent(std::move(o));
  const std::string first = Submit(WithGpu(ProcessSpec("m1"), {{"mig", "3g.40gb"}}));
  const std::string second = Submit(WithGpu(ProcessSpec("m2"), {{"mig", "3g.40gb"}}));
  Sync();
  std::set<std::string> got;
  for (const auto& [name, task] : {std::pair{"m1", first}, std::pair{"m2", second}}) {
    core::Workload w = Get(name);
    ASSERT_EQ(w.status.gpus.size(), 1u) << w.status.explanation;
    const core::GpuAssignment& g = w.status.gpus[0];
    EXPECT_EQ(g.device_id, g.mig_start_slice == 0 ? "MIG-at-zero" : "MIG-at-four");
    auto cfg = host_->Config(task);
    ASSERT_TRUE(cfg.has_value());
    EXPECT_EQ(cfg->gpu_device_ids, std::vector<std::string>{g.device_id});
    got.insert(g.device_id);
  }
  EXPECT_EQ(got, (std::set<std::string>{"MIG-at-zero", "MIG-at-four"}));
}

TEST_F(AgentTest, AGpuTheDriverFailsOnIsTakenOutOfPlacementAndItsTaskFails) {
  AgentOptions o = WithGpus(Options());
  o.inventory.gpus.resize(1);
  bool failing = false;
  int probes = 0;
  const core::GpuDevice device = o.inventory.gpus[0];
  o.probe_gpus = [&]() -> absl::StatusOr<std::vector<core::GpuDevice>> {
    ++probes;
    if (failing) {
      return absl::UnavailableError(
          "Unable to determine the device handle for GPU0000:07:00.0: Unknown Error");
    }
    return std::vector<core::GpuDevice>{device};
  };
  o.gpu_check_interval = absl::ZeroDuration();
  MakeAgent(std::move(o));
  Submit(WithGpu(ProcessSpec("train"), {{"count", 1}}));
  Sync();
  EXPECT_EQ(StateOf("train"), "running") << Get("train").status.reason;
  EXPECT_GT(probes, 0);
  failing = true;
  Sync();  // the check sees the failure
  Sync();  // the task holding the GPU fails with it
  EXPECT_EQ(StateOf("train"), "failed");
  EXPECT_NE(Get("train").status.reason.find("became unhealthy: Unable to determine"),
            std::string::npos)
      << Get("train").status.reason;
  ASSERT_TRUE(agent_->Register().ok());  // as the heartbeat does after the change
  auto host = control_.GetHost(kHost);
  ASSERT_TRUE(host.ok()) << host.status();
  ASSERT_EQ(host->inventory.gpus.size(), 1u);
  EXPECT_FALSE(host->inventory.gpus[0].healthy);
  EXPECT_NE(host->inventory.gpus[0].health.find("Unknown Error"), std::string::npos);
  auto spec = core::DecodeWorkloadSpec(WithGpu(ProcessSpec("next"), {{"count", 1}}));
  ASSERT_TRUE(spec.ok());
  ASSERT_TRUE(control_.CreateWorkload(*spec).ok());
  ASSERT_TRUE(control_.ScheduleOnce().ok());
  EXPECT_EQ(StateOf("next"), "pending");
}

TEST_F(AgentTest, AMigSliceWithoutAnInstanceFailsWithTheReason) {
  AgentOptions o = Options();
  o.inventory.gpus = {{.index = 0,
                       .uuid = "GPU-1c7e9a52",
                       .model = "A100-SXM4-80GB",
                       .memory_mib = 81920,
                       .mig_enabled = true}};
  MakeAgent(std::move(o));
  const std::string task = Submit(WithGpu(ProcessSpec("m"), {{"mig", "1g.10gb"}}));
  Sync();
  EXPECT_EQ(StateOf("m"), "failed");
  EXPECT_NE(Get("m").status.reason.find("MIG 1g.10gb"), std::string::npos)
      << Get("m").status.reason;
  EXPECT_FALSE(host_->Config(task).has_value());
}

TEST_F(AgentTest, ContainersGetTheirGpusThroughCdiWhereASpecNamesThem) {
  AgentOptions o = WithGpus(Options());
  runtime::CdiRegistry registry;
  const std::string id0 = o.inventory.gpus[0].uuid;
  auto spec = runtime::DecodeCdiSpec(
      Json{
          {"cdiVersion", "0.5.0"},
          {"kind", "nvidia.com/gpu"},
          {"containerEdits", {{"deviceNodes", {{{"path", "/dev/nvidiactl"}}}}}},
          {"devices",
           {{{"name", id0}, {"containerEdits", {{"deviceNodes", {{{"path", "/dev/nvidia0"}}}}}}},
            {{"name", "1"}, {"containerEdits", {{"deviceNodes", {{{"path", "/dev/nvidia1"}}}}}}}}}},
      "test");
  ASSERT_TRUE(spec.ok()) << spec.status();
  registry.Add(*spec);
  o.cdi = &registry;
  MakeAgent(std::move(o));
  const std::string both = Submit(WithGpu(ContainerSpec("both"), {{"count", 2}}));
  Sync();
  EXPECT_EQ(StateOf("both"), "running") << Get("both").status.reason;
  auto cfg = host_->Config(both);
  ASSERT_TRUE(cfg.has_value());
  std::vector<std::string> nodes;
  for (const auto& n : cfg->device_edits.device_nodes) nodes.push_back(n.path);
  std::sort(nodes.begin(), nodes.end());
  // The spec's own node once, and each GPU's (by UUID for one, by index for the other).
  EXPECT_EQ(nodes, (std::vector<std::string>{"/dev/nvidia0", "/dev/nvidia1", "/dev/nvidiactl"}));
}

TEST_F(AgentTest, AContainerWhoseGpusCdiCoversOnlyInPartFailsWithTheReason) {
  AgentOptions o = WithGpus(Options());
  runtime::CdiRegistry registry;
  registry.Add(*runtime::DecodeCdiSpec(
      Json{{"cdiVersion", "0.5.0"},
           {"kind", "nvidia.com/gpu"},
           {"devices", {{{"name", "0"}, {"containerEdits", {{"env", {"A=1"}}}}}}}},
      "test"));
  o.cdi = &registry;
  MakeAgent(std::move(o));
  const std::string task = Submit(WithGpu(ContainerSpec("half"), {{"count", 2}}));
  Sync();
  EXPECT_EQ(StateOf("half"), "failed");
  EXPECT_NE(Get("half").status.reason.find("no CDI spec"), std::string::npos)
      << Get("half").status.reason;
  EXPECT_FALSE(host_->Config(task).has_value());
}

// A host offering two FPGAs, with a CDI spec that gives each its own device node.
AgentOptions WithFpgas(AgentOptions o, runtime::CdiRegistry* registry) {
  o.inventory.devices = {{.cls = "xilinx.com/fpga", .id = "u250-0"},
                         {.cls = "xilinx.com/fpga", .id = "u250-1"}};
  Json devices = Json::array();
  for (int i = 0; i < 2; ++i) {
    devices.push_back(
        {{"name", Cat("u250-", i)},
         {"containerEdits",
          {{"deviceNodes",
            {{{"path", Cat("/dev/xclmgmt", i)}, {"type", "c"}, {"major", 240}, {"minor", i}}}}}}});
  }
  auto spec = runtime::DecodeCdiSpec(
      Json{{"cdiVersion", "0.6.0"}, {"kind", "xilinx.com/fpga"}, {"devices", devices}}, "test");
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (spec.ok()) registry->Add(*spec);
  o.cdi = registry;
  return o;
}

Json WithDevices(Json spec, int count) {
  spec["devices"] = Json::array({{{"class", "xilinx.com/fpga"}, {"count", count}}});
  return spec;
}

TEST_F(AgentTest, ProcessesAndContainersGetExactlyTheDevicesOfAClassTheyWereGranted) {
  runtime::CdiRegistry registry;
  MakeAgent(WithFpgas(Options(), &registry));
  const std::string proc = Submit(WithDevices(ProcessSpec("p"), 1));
  const std::string box = Submit(WithDevices(ContainerSpec("c"), 1));
  Sync();
  EXPECT_EQ(StateOf("p"), "running") << Get("p").status.reason;
  EXPECT_EQ(StateOf("c"), "running") << Get("c").status.reason;
  const core::Workload p = Get("p"), c = Get("c");
  ASSERT_EQ(p.status.devices.size(), 1u);
  ASSERT_EQ(c.status.devices.size(), 1u);
  EXPECT_NE(p.status.devices[0].id, c.status.devices[0].id);
  auto pcfg = host_->Config(proc);
  ASSERT_TRUE(pcfg.has_value());
  EXPECT_EQ(pcfg->env["BERTH_DEVICES_XILINX_COM_FPGA"], p.status.devices[0].id);
  auto ccfg = host_->Config(box);
  ASSERT_TRUE(ccfg.has_value());
  EXPECT_EQ(ccfg->env["BERTH_DEVICES_XILINX_COM_FPGA"], c.status.devices[0].id);
  EXPECT_TRUE(ccfg->device_edits.empty());
  ASSERT_EQ(ccfg->class_device_edits.device_nodes.size(), 1u);
  EXPECT_EQ(ccfg->class_device_edits.device_nodes[0].path,
            Cat("/dev/xclmgmt", c.status.devices[0].id.back()));
  // Both are held: a third waits, and says why.
  auto spec = core::DecodeWorkloadSpec(WithDevices(ProcessSpec("third"), 1));
  ASSERT_TRUE(spec.ok());
  ASSERT_TRUE(control_.CreateWorkload(*spec).ok());
  ASSERT_TRUE(control_.ScheduleOnce().ok());
  EXPECT_EQ(StateOf("third"), "pending");
  EXPECT_NE(Get("third").status.explanation.find("insufficient devices"), std::string::npos)
      << Get("third").status.explanation;
  auto allocations = control_.HostAllocations();
  ASSERT_TRUE(allocations.ok()) << allocations.status();
  std::set<std::string> holders;
  for (const core::DeviceAllocation& d : allocations->at(kHost).devices) holders.insert(d.holder);
  EXPECT_EQ(holders, (std::set<std::string>{"p", "c"}));
}

TEST_F(AgentTest, AContainerWhoseDeviceNoSpecNamesFailsWithTheReason) {
  AgentOptions o = Options();
  o.inventory.devices = {{.cls = "acme.com/npu", .id = "npu0"}};
  runtime::CdiRegistry empty;
  o.cdi = &empty;
  MakeAgent(std::move(o));
  Json spec = ContainerSpec("c");
  spec["devices"] = Json::array({{{"class", "acme.com/npu"}}});
  const std::string task = Submit(spec);
  Sync();
  EXPECT_EQ(StateOf("c"), "failed");
  EXPECT_NE(Get("c").status.reason.find("no CDI spec on host h1 names device acme.com/npu=npu0"),
            std::string::npos)
      << Get("c").status.reason;
  EXPECT_FALSE(host_->Config(task).has_value());
}

TEST_F(AgentTest, ADeviceWhoseNodeVanishesIsTakenOutOfPlacementAndItsTaskFails) {
  runtime::CdiRegistry registry;
  AgentOptions o = WithFpgas(Options(), &registry);
  bool gone = false;
  o.probe_devices = [&] {
    std::vector<core::Device> now = {{.cls = "xilinx.com/fpga", .id = "u250-0"},
                                     {.cls = "xilinx.com/fpga", .id = "u250-1"}};
    if (gone) {
      for (core::Device& d : now) {
        d.healthy = false;
        d.health = Cat("device node /dev/xclmgmt", d.id.back(), ": No such file or directory");
      }
    }
    return now;
  };
  o.gpu_check_interval = absl::ZeroDuration();
  MakeAgent(std::move(o));
  Submit(WithDevices(ProcessSpec("f"), 1));
  Sync();
  EXPECT_EQ(StateOf("f"), "running") << Get("f").status.reason;
  const std::string id = Get("f").status.devices.at(0).id;
  gone = true;
  Sync();  // the check sees it
  Sync();  // the task holding it fails
  EXPECT_EQ(StateOf("f"), "failed");
  EXPECT_NE(Get("f").status.reason.find(
                Cat("device xilinx.com/fpga=", id, " became unhealthy: device node /dev/xclmgmt")),
            std::string::npos)
      << Get("f").status.reason;
  ASSERT_TRUE(agent_->Register().ok());
  auto host = control_.GetHost(kHost);
  ASSERT_TRUE(host.ok()) << host.status();
  ASSERT_EQ(host->inventory.devices.size(), 2u);
  EXPECT_FALSE(host->inventory.devices[0].healthy);
  auto spec = core::DecodeWorkloadSpec(WithDevices(ProcessSpec("next"), 1));
  ASSERT_TRUE(spec.ok());
  ASSERT_TRUE(control_.CreateWorkload(*spec).ok());
  ASSERT_TRUE(control_.ScheduleOnce().ok());
  EXPECT_EQ(StateOf("next"), "pending");
  EXPECT_NE(Get("next").status.explanation.find("no devices of the class"), std::string::npos)
      << Get("next").status.explanation;
  // Its node back, the device is healthy again and takes work.
  gone = false;
  Sync();
  ASSERT_TRUE(agent_->Register().ok());
  host = control_.GetHost(kHost);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_TRUE(host->inventory.devices[0].healthy) << host->inventory.devices[0].health;
  ASSERT_TRUE(control_.ScheduleOnce().ok());
  EXPECT_EQ(StateOf("next"), "scheduled") << Get("next").status.explanation;
}

TEST_F(AgentTest, AnXidFaultInTheKernelLogFailsTheTaskOnThatGpuOnly) {
  AgentOptions o = WithGpus(Options());
  const std::string log = data_dir_ + "/kern.log";
  std::ofstream(log) << "NVRM: Xid (PCI:0000:07:00): 79, from an earlier boot\n";
  o.xid_log = log;
  o.gpu_check_interval = absl::ZeroDuration();
  MakeAgent(std::move(o));
  Submit(WithGpu(ProcessSpec("a"), {{"count", 1}}));
  Submit(WithGpu(ProcessSpec("b"), {{"count", 1}}));
  Sync();
  EXPECT_EQ(StateOf("a"), "running");
  EXPECT_EQ(StateOf("b"), "running");
  const std::string on_07 = Get("a").status.gpus.at(0).index == 0 ? "a" : "b";
  const std::string on_08 = on_07 == "a" ? "b" : "a";
  // An application's own fault leaves the device alone.
  std::ofstream(log, std::ios::app)
      << "[ 99.1] NVRM: Xid (PCI:0000:07:00): 13, pid=7, name=python, Graphics Exception\n";
  Sync();
  Sync();
  EXPECT_EQ(StateOf(on_07), "running");
  std::ofstream(log, std::ios::app)
      << "[ 99.2] NVRM: Xid (PCI:0000:07:00): 79, pid=7, name=python, GPU has fallen off the "
         "bus.\n";
  Sync();
  Sync();
  EXPECT_EQ(StateOf(on_07), "failed");
  EXPECT_NE(Get(on_07).status.reason.find("became unhealthy: Xid 79: GPU has fallen off the bus."),
            std::string::npos)
      << Get(on_07).status.reason;
  EXPECT_EQ(StateOf(on_08), "running");
  ASSERT_TRUE(agent_->Register().ok());
  auto host = control_.GetHost(kHost);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_FALSE(host->inventory.gpus[0].healthy);
  EXPECT_TRUE(host->inventory.gpus[1].healthy);
}

// A fake nvidia-smi (agent/testdata/nvidia-smi/fake-nvidia-smi) printing what `machine`
// recorded, in `dir`: the machine's files are copied to DIR/MACHINE, the binary is
// DIR/nvidia-smi.
std::string FakeNvidiaSmiIn(const std::string& dir, const std::string& machine) {
  fs::copy(std::string(BERTH_NVIDIA_SMI_TESTDATA) + "/" + machine, dir + "/" + machine);
  const std::string smi = dir + "/nvidia-smi";
  std::ofstream(smi) << "#!/bin/sh\nexec " << BERTH_NVIDIA_SMI_TESTDATA << "/fake-nvidia-smi "
                     << dir << "/" << machine << " \"$@\"\n";
  fs::permissions(smi, fs::perms::owner_all);
  return smi;
}

// `q` (nvidia-smi -q) with the GPU at `pci` ("00000000:2A:00.0") counting `errors` volatile
// uncorrectable DRAM errors.
std::string WithDramErrors(const std::string& q, const std::string& pci, int errors) {
  size_t at = q.find("GPU " + pci);
  EXPECT_NE(at, std::string::npos) << pci;
  at = q.find("DRAM Uncorrectable", at);  // the Volatile section's comes first
  const size_t value = q.find(": ", at) + 2;
  return q.substr(0, value) + std::to_string(errors) + q.substr(q.find('\n', value));
}

TEST_F(AgentTest, AGpuWhoseErrorCountersRiseLeavesPlacementAndItsWorkloadRestartsOnAnother) {
  // The agent asks a fake nvidia-smi that prints what an H100 machine printed.
  const std::string smi = FakeNvidiaSmiIn(data_dir_, "h100");
  const std::string q_path = data_dir_ + "/h100/q.txt";
  std::string q;
  std::getline(std::ifstream(q_path), q, '\0');
  auto report = QueryNvidiaSmi(runtime::host::RealExecutor(), smi);
  ASSERT_TRUE(report.ok()) << report.status();
  AgentOptions o = Options();
  o.inventory.gpus = report->gpus;
  o.probe_gpus = [smi]() -> absl::StatusOr<std::vector<core::GpuDevice>> {
    auto again = QueryNvidiaSmi(runtime::host::RealExecutor(), smi);
    if (!again.ok()) return again.status();
    return again->gpus;
  };
  o.gpu_check_interval = absl::ZeroDuration();
  MakeAgent(std::move(o));
  Json spec = WithGpu(ProcessSpec("train"), {{"count", 1}});
  spec["restart"] = {{"policy", "on-failure"}, {"backoff", "1s"}};
  Submit(spec);
  Sync();
  ASSERT_EQ(StateOf("train"), "running") << Get("train").status.reason;
  const int first = Get("train").status.gpus.at(0).index;
  // nvidia-smi -q writes the address as "00000000:BA:00.0", the inventory as "0000:ba:00.0".
  std::string pci = "0000" + report->gpus[first].pci_address;
  std::transform(pci.begin(), pci.end(), pci.begin(), [](char c) { return std::toupper(c); });
  // nvidia-smi -q now counts two uncorrectable errors on its GPU.
  std::ofstream(q_path) << WithDramErrors(q, pci, 2);
  Sync();  // the check sees it
  Sync();  // the task holding it fails, and its restart policy places it again
  core::Workload w = Get("train");
  EXPECT_EQ(w.status.state, core::WorkloadState::kPending) << w.status.reason;
  EXPECT_EQ(w.status.restarts, 1);
  EXPECT_NE(w.status.reason.find("became unhealthy: nvidia-smi -q: 2 uncorrectable ECC errors "
                                 "since the driver loaded (reset the GPU: nvidia-smi -r)"),
            std::string::npos)
      << w.status.reason;
  ASSERT_TRUE(agent_->Register().ok());  // as the heartbeat does after the change
  auto host = control_.GetHost(kHost);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_FALSE(host->inventory.gpus[first].healthy);
  clock_.Advance(absl::Seconds(2));  // past the restart's backoff
  ASSERT_TRUE(control_.ScheduleOnce().ok());
  w = Get("train");
  ASSERT_EQ(w.status.gpus.size(), 1u) << w.status.explanation;
  EXPECT_NE(w.status.gpus[0].index, first);
  Sync();
  EXPECT_EQ(StateOf("train"), "running") << Get("train").status.reason;
  // A reset clears the volatile counters: the GPU is healthy again.
  std::ofstream(q_path) << q;
  Sync();
  ASSERT_TRUE(agent_->Register().ok());
  host = control_.GetHost(kHost);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_TRUE(host->inventory.gpus[first].healthy) << host->inventory.gpus[first].health;
}

TEST_F(AgentTest, AMigRequestOnTheRecordedA100GetsItsInstancesUuid) {
  const std::string smi = FakeNvidiaSmiIn(data_dir_, "a100-mig");
  auto report = QueryNvidiaSmi(runtime::host::RealExecutor(), smi);
  ASSERT_TRUE(report.ok()) << report.status();
  AgentOptions o = Options();
  o.inventory.gpus = report->gpus;
  MakeAgent(std::move(o));
  // The 3g.40gb instance sits at slice 4 (slices 0-3 hold a 2g.20gb and two 1g.10gb).
  const std::string big = Submit(WithGpu(ProcessSpec("big"), {{"mig", "3g.40gb"}}));
  const std::string small = Submit(WithGpu(ProcessSpec("small"), {{"mig", "1g.10gb"}}));
  Sync();
  const std::map<std::string, std::pair<std::string, std::string>> want = {
      {"big", {big, "MIG-4a8c2e6f-1b3d-5f7a-9c2e-4b6d8f1a3c57"}},
      {"small", {small, "MIG-2d6f8b1c-4e9a-7b3d-c5f2-8a1e4c6d9b73"}}};  // the 1g.10gb at slice 2
  for (const auto& [name, task_and_id] : want) {
    const auto& [task, id] = task_and_id;
    core::Workload w = Get(name);
    EXPECT_EQ(w.status.state, core::WorkloadState::kRunning) << name << ": " << w.status.reason;
    ASSERT_EQ(w.status.gpus.size(), 1u) << name << ": " << w.status.explanation;
    EXPECT_EQ(w.status.gpus[0].index, 0);
    EXPECT_EQ(w.status.gpus[0].device_id, id) << name;
    auto cfg = host_->Config(task);
    ASSERT_TRUE(cfg.has_value()) << name;
    EXPECT_EQ(cfg->gpu_device_ids, std::vector<std::string>{id});
    const std::map<std::string, std::string> env =
        runtime::GpuEnvironment(runtime::GrantedGpus(*cfg));
    EXPECT_EQ(env.at("CUDA_VISIBLE_DEVICES"), id);
    EXPECT_EQ(env.at("NVIDIA_VISIBLE_DEVICES"), id);
  }
  // No second 3g.40gb instance exists: the next one waits instead of failing on the host.
  auto spec = core::DecodeWorkloadSpec(WithGpu(ProcessSpec("big2"), {{"mig", "3g.40gb"}}));
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(control_.CreateWorkload(*spec).ok());
  ASSERT_TRUE(control_.ScheduleOnce().ok());
  EXPECT_EQ(StateOf("big2"), "pending") << Get("big2").status.reason;
}

TEST_F(AgentTest, UsageCountsTheGpuMemoryOfEachWorkloadsProcesses) {
  const std::string smi = FakeNvidiaSmiIn(data_dir_, "h100");
  AgentOptions o = Options();
  o.nvidia_smi = smi;
  MakeAgent(std::move(o));
  const std::string a = Submit(ProcessSpec("a"));
  const std::string b = Submit(ProcessSpec("b"));
  Submit(ProcessSpec("idle"));
  Sync();
  auto pa = driver_->Inspect(a);
  auto pb = driver_->Inspect(b);
  ASSERT_TRUE(pa.ok() && pb.ok());
  ASSERT_GT(pa->pid, 0);
  // Two processes of a's task on two GPUs, one of b's (with a row whose memory nvidia-smi could
  // not read), and one of no workload's: init, a process the host runs itself.
  {
    std::ofstream(data_dir_ + "/h100/apps.csv")
        << pa->pid << ", 30512, GPU-b5e3c8a1-6f2d-9e4b-7a3c-1d8f5b2e9c60\n"
        << pa->pid << ", 1024, GPU-3f9a6d2e-8c1b-5d7f-2e4a-9b6c3f8d1e75\n"
        << pb->pid << ", [N/A], GPU-d8c2f5b9-1e7a-3c6d-8f2b-5a9e1d4c7f36\n"
        << pb->pid << ", 2048, GPU-d8c2f5b9-1e7a-3c6d-8f2b-5a9e1d4c7f36\n"
        << "1, 512, GPU-6a4d1e8c-9f3b-2a5e-c7d1-4e8b6a3f9d52\n";
    std::ofstream(data_dir_ + "/h100/usage.csv") << "0, 87, 31536\n1, 5, 1024\n2, 40, 2048\n"
                                                 << "3, 0, 512\n";
  }
  ASSERT_TRUE(agent_->MeasureUsage().has_value());  // starts each workload's interval
  clock_.Advance(absl::Seconds(1));
  std::optional<core::HostUsage> usage = agent_->MeasureUsage();
  ASSERT_TRUE(usage.has_value());
  ASSERT_EQ(usage->gpus.size(), 4u);
  EXPECT_EQ(usage->gpus[0].utilization_percent, 87);
  EXPECT_EQ(usage->gpus[0].memory_used_mib, 31536);
  std::map<std::string, int64_t> gpu_memory;
  for (const core::WorkloadUsage& w : usage->workloads) gpu_memory[w.name] = w.gpu_memory.value();
  EXPECT_EQ(gpu_memory, (std::map<std::string, int64_t>{{"a", 31536}, {"b", 2048}, {"idle", 0}}));
  // What the server keeps from a heartbeat carrying it.
  std::map<std::string, core::HostUsage> kept = BeatWith(usage);
  ASSERT_TRUE(kept.contains(kHost));
  for (const core::WorkloadUsage& w : kept[kHost].workloads) {
    EXPECT_EQ(w.gpu_memory.value(), gpu_memory[w.name]) << w.name;
  }
}

TEST_F(AgentTest, AStopWaitsTheGraceTheWorkloadsLabelAsksFor) {
  MakeAgent(Options());
  Json graced = ProcessSpec("graced");
  graced["labels"] = {{"berth.stop-grace", "45s"}};
  const std::string a = Submit(graced);
  const std::string b = Submit(ProcessSpec("plain"));
  Sync();
  for (const char* name : {"graced", "plain"}) {
    ASSERT_TRUE(control_.Act(name, control::Action::kStop).ok());
  }
  Sync();
  EXPECT_EQ(host_->LastStopGrace(a), absl::Seconds(45));
  EXPECT_EQ(host_->LastStopGrace(b), Options().stop_grace);  // the agent's default
  // A label the server would refuse (an older server let it through) leaves the default.
  core::WorkloadSpec bad = *core::DecodeWorkloadSpec(ProcessSpec("odd"));
  bad.labels["berth.stop-grace"] = "soon";
  EXPECT_EQ(Agent::StopGraceOf(bad), std::nullopt);
  bad.labels["berth.stop-grace"] = "2h";
  EXPECT_EQ(Agent::StopGraceOf(bad), std::nullopt);
  bad.labels["berth.stop-grace"] = "0s";
  EXPECT_EQ(Agent::StopGraceOf(bad), absl::ZeroDuration());
}

TEST_F(AgentTest, UsageCarriesEachWorkloadsDiskAndNetworkThroughput) {
  AgentOptions o = Options();
  o.attach = [](const core::WorkloadSpec& spec, runtime::TaskConfig* config) {
    if (!spec.networks.empty()) config->nics.push_back({.name = "eth0", .host_ifname = "veth-x"});
    return absl::OkStatus();
  };
  MakeAgent(std::move(o));
  Submit(ProcessSpec("local"));
  Json networked = ContainerSpec("networked");
  networked["networks"] = {"blue"};
  Submit(networked);
  Sync();
  ASSERT_EQ(StateOf("networked"), "running") << Get("networked").status.reason;
  // The first measurement starts each interval; the fake driver's counters then grow by a MiB
  // read, 512 KiB written, and (with NICs) 64 KiB received and 16 KiB sent per second.
  std::optional<core::HostUsage> first = agent_->MeasureUsage();
  ASSERT_TRUE(first.has_value());
  EXPECT_TRUE(first->workloads.empty());
  clock_.Advance(absl::Seconds(4));
  std::optional<core::HostUsage> usage = agent_->MeasureUsage();
  ASSERT_TRUE(usage.has_value());
  std::map<std::string, core::WorkloadUsage> by_name;
  for (const core::WorkloadUsage& w : usage->workloads) by_name[w.name] = w;
  ASSERT_TRUE(by_name.contains("local") && by_name.contains("networked"));
  EXPECT_EQ(by_name["local"].disk_read_per_second, 1 << 20);
  EXPECT_EQ(by_name["local"].disk_write_per_second, 1 << 19);
  EXPECT_EQ(by_name["local"].net_rx_per_second, std::nullopt);  // the host's network
  EXPECT_EQ(by_name["networked"].net_rx_per_second, 1 << 16);
  EXPECT_EQ(by_name["networked"].net_tx_per_second, 1 << 14);
  // The server keeps the figures from the heartbeat.
  std::map<std::string, core::HostUsage> kept = BeatWith(usage);
  ASSERT_TRUE(kept.contains(kHost));
  EXPECT_EQ(kept[kHost].workloads, usage->workloads);
  // Stats carry the totals since the task started.
  auto stats = agent_->Stats("networked");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ((*stats)["disk_read_bytes"], 4 << 20);
  EXPECT_EQ((*stats)["net_tx_bytes"], 4 << 14);
  auto local = agent_->Stats("local");
  ASSERT_TRUE(local.ok()) << local.status();
  EXPECT_FALSE(local->contains("net_rx_bytes"));
}

TEST_F(AgentTest, UsageSaysWhenAWorkloadLastWroteToItsCheckpointDirectory) {
  MakeAgent(Options());
  const std::string ckpt = data_dir_ + "/ckpt";
  fs::create_directories(ckpt);
  Json trainer = ProcessSpec("trainer");
  trainer["env"] = {{"BERTH_CHECKPOINT_DIR", ckpt}};
  Submit(trainer);
  Submit(ProcessSpec("plain"));
  Sync();
  ASSERT_TRUE(agent_->MeasureUsage().has_value());
  clock_.Advance(absl::Seconds(4));
  auto by_name = [&] {
    std::map<std::string, core::WorkloadUsage> out;
    std::optional<core::HostUsage> usage = agent_->MeasureUsage();
    EXPECT_TRUE(usage.has_value());
    if (usage) {
      for (const core::WorkloadUsage& w : usage->workloads) out[w.name] = w;
    }
    clock_.Advance(absl::Seconds(4));
    return out;
  };
  // An empty directory holds no checkpoint yet.
  auto first = by_name();
  ASSERT_TRUE(first.contains("trainer") && first.contains("plain"));
  EXPECT_FALSE(first["trainer"].checkpoint_at.has_value());
  EXPECT_FALSE(first["plain"].checkpoint_at.has_value());
  // A checkpoint written one level down: the newest time of what the directory holds.
  fs::create_directories(ckpt + "/train");
  const std::string file = ckpt + "/train/checkpoint.pt";
  std::ofstream(file) << "weights";
  const absl::Time written = absl::FromUnixSeconds(1'790'000'000);
  auto set_time = [](const std::string& path, absl::Time t) {
    const struct timespec times[2] = {absl::ToTimespec(t), absl::ToTimespec(t)};
    return utimensat(AT_FDCWD, path.c_str(), times, 0);
  };
  ASSERT_EQ(set_time(file, written), 0);
  ASSERT_EQ(set_time(ckpt + "/train", written - absl::Hours(1)), 0);
  auto second = by_name();
  ASSERT_TRUE(second["trainer"].checkpoint_at.has_value());
  EXPECT_EQ(*second["trainer"].checkpoint_at, written);
  EXPECT_FALSE(second["plain"].checkpoint_at.has_value());
  // It reaches the server with the heartbeat.
  std::optional<core::HostUsage> usage = agent_->MeasureUsage();
  ASSERT_TRUE(usage.has_value());
  std::map<std::string, core::HostUsage> kept = BeatWith(usage);
  bool seen = false;
  for (const core::WorkloadUsage& w : kept[kHost].workloads) {
    if (w.name == "trainer") seen = w.checkpoint_at == written;
  }
  EXPECT_TRUE(seen);
}

TEST_F(AgentTest, SharesOfOneGpuRunUnderOneMpsDaemonUntilTheLastIsDeleted) {
  runtime::MpsDaemons mps({.control_binary = BERTH_FAKE_MPS_CONTROL,
                           .root_dir = data_dir_ + "/mps",
                           .stop_grace = absl::Seconds(30)});
  // Whatever happens below, no daemon outlives the test.
  struct ReleaseAll {
    runtime::MpsDaemons& mps;
    ~ReleaseAll() {
      for (const char* holder : {"s1", "s2"}) EXPECT_TRUE(mps.Release(holder).ok());
    }
  } release_all{mps};
  AgentOptions o = WithGpus(Options());
  o.inventory.gpus.resize(1);
  o.mps = &mps;
  MakeAgent(std::move(o));
  const std::string a = Submit(WithGpu(ProcessSpec("s1"), {{"share", "250m"}, {"memory", "10Gi"}}));
  const std::string b = Submit(WithGpu(ProcessSpec("s2"), {{"share", "500m"}}));
  Sync();
  auto ca = host_->Config(a);
  auto cb = host_->Config(b);
  ASSERT_TRUE(ca.has_value() && cb.has_value()) << Get("s1").status.reason;
  const std::string gpu = Get("s1").status.gpus.at(0).device_id;
  EXPECT_EQ(ca->mps_pipe_dir, mps.GpuDir(gpu) + "/pipe");
  EXPECT_EQ(cb->mps_pipe_dir, ca->mps_pipe_dir);
  EXPECT_EQ(ca->gpus.at(0).milli, 250);
  EXPECT_EQ(ca->gpus.at(0).memory_mib, 10240);
  EXPECT_EQ(mps.Running(), std::vector<std::string>{gpu});
  // A delete stops the task at one pass and destroys it at the next.
  ASSERT_TRUE(control_.DeleteWorkload("s1").ok());
  Sync();
  Sync();
  EXPECT_FALSE(host_->Config(a).has_value());
  EXPECT_EQ(mps.Running(), std::vector<std::string>{gpu});
  ASSERT_TRUE(control_.DeleteWorkload("s2").ok());
  Sync();
  Sync();
  EXPECT_FALSE(host_->Config(b).has_value());
  EXPECT_TRUE(mps.Running().empty());
}

// An agent that reaches no server for the host TTL (which the server names at registration)
// stops its fenced workloads; a workload with `restart.fence: false` keeps running.
TEST_F(AgentTest, AnAgentCutOffForTheHostTtlStopsItsFencedWorkloads) {
  control::ControlPlane control(
      &store_, control::ControlPlaneOptions{.clock = &clock_,
                                            .host_ttl = absl::Milliseconds(600),
                                            .failover_grace = absl::Milliseconds(400)});
  api::ApiServerOptions o;
  o.admin_token = kAdminToken;
  o.agent_tokens = {kJoinToken};
  api::ApiServer server(o, &control, nullptr);
  auto port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  AgentOptions options = Options();
  options.server_url = Cat("http://127.0.0.1:", *port);
  agent_ = std::make_unique<Agent>(options);
  ASSERT_TRUE(agent_->Start().ok());
  Json unfenced = ProcessSpec("kept");
  unfenced["restart"] = {{"policy", "always"}, {"fence", false}};
  for (const Json& json : {ProcessSpec("fenced"), unfenced}) {
    auto spec = core::DecodeWorkloadSpec(json);
    ASSERT_TRUE(spec.ok()) << spec.status();
    ASSERT_TRUE(control.CreateWorkload(*spec).ok());
  }
  // Polls `done` until it holds or 30 seconds pass.
  auto eventually = [](const std::function<bool()>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!done() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
    return done();
  };
  ASSERT_TRUE(eventually([&] {
    return control.ScheduleOnce().ok() && control.Assignments(kHost).ok() &&
           control.Assignments(kHost)->size() == 2;
  }));
  auto running = [&](const std::string& name) {
    auto w = control.GetWorkload(name);
    return w.ok() && w->status.state == core::WorkloadState::kRunning;
  };
  ASSERT_TRUE(eventually([&] { return running("fenced") && running("kept"); }));
  EXPECT_FALSE(agent_->fenced());
  auto exited = [&](const std::string& task) {
    auto st = driver_->Inspect(task);
    return st.ok() && st->state == runtime::TaskState::kExited;
  };

  server.Stop();  // no server answers from now on
  EXPECT_TRUE(eventually([&] { return agent_->fenced() && exited("fenced-g1"); }));
  EXPECT_FALSE(exited("kept-g1"));
  agent_.reset();
}

TEST_F(AgentTest, StartRegistersTheHostAndConvergesInTheBackground) {
  control_.Start();  // schedules on every change
  agent_ = std::make_unique<Agent>(Options());
  ASSERT_TRUE(agent_->Start().ok());
  auto spec = core::DecodeWorkloadSpec(ProcessSpec("web"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(control_.CreateWorkload(*spec).ok());

  EXPECT_TRUE(AwaitState("web", "running", absl::Seconds(10))) << StateOf("web");
  auto host = control_.GetHost(kHost);
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->inventory.drivers, (std::vector<std::string>{"container", "process", "vm"}));
  EXPECT_EQ(Get("web").status.host, kHost);

  ASSERT_TRUE(control_.Act("web", control::Action::kStop).ok());
  EXPECT_TRUE(AwaitState("web", "stopped", absl::Seconds(10))) << StateOf("web");
  agent_->Stop();
  EXPECT_EQ(host_->starts(), 1);
}

TEST_F(AgentTest, HeartbeatsCarryWhatEachRunningWorkloadUsed) {
  control_.Start();
  agent_ = std::make_unique<Agent>(Options());
  ASSERT_TRUE(agent_->Start().ok());
  auto spec = core::DecodeWorkloadSpec(ProcessSpec("web"));
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_TRUE(control_.CreateWorkload(*spec).ok());
  ASSERT_TRUE(AwaitState("web", "running", absl::Seconds(10))) << StateOf("web");
  // The fake task burns one CPU second per second of the test's clock, and its resident memory
  // is what it asked for; a workload is reported from its second measurement on.
  std::optional<core::WorkloadUsage> seen;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!seen && absl::Now() < deadline) {
    clock_.Advance(absl::Milliseconds(500));
    absl::SleepFor(absl::Milliseconds(150));
    std::map<std::string, core::HostUsage> usage = control_.HostUsages();
    if (auto it = usage.find(kHost); it != usage.end()) {
      for (const core::WorkloadUsage& w : it->second.workloads) {
        if (w.name == "web") seen = w;
      }
    }
  }
  ASSERT_TRUE(seen.has_value()) << "no heartbeat reported web's usage";
  EXPECT_EQ(seen->cpu, core::MilliCpu(1000));
  EXPECT_EQ(seen->memory, core::MemoryMiB(64));
  agent_->Stop();
}

}  // namespace
}  // namespace berth::agent

namespace berth::agent {
namespace {

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

TEST_F(AgentTest, KeepsItsHostCredentialPrivateAndRegistersAgainWithIt) {
  MakeAgent(Options());
  const std::string path = HostCredentialPath(data_dir_);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string credential = FirstLine(path);
  EXPECT_EQ(credential.rfind(Cat(kHost, ":"), 0), 0u) << credential;
  auto who = control_.AuthenticateHost(credential);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(*who, kHost);

  // Restarted without a join token, it registers again with its credential and keeps it.
  agent_.reset();
  AgentOptions o = Options();
  o.token.clear();
  agent_ = std::make_unique<Agent>(o);
  absl::Status again = agent_->Register();
  ASSERT_TRUE(again.ok()) << again;
  EXPECT_EQ(FirstLine(path), credential);
  Submit(ProcessSpec("web"));
  Sync();
  EXPECT_EQ(StateOf("web"), "running");
}

TEST_F(AgentTest, JoinsAgainWithTheJoinTokenOnceItsHostWasRemoved) {
  MakeAgent(Options());
  const std::string path = HostCredentialPath(data_dir_);
  const std::string old = FirstLine(path);
  clock_.Advance(absl::Seconds(60));
  ASSERT_EQ(*control_.CheckHostsOnce(), 1);
  ASSERT_TRUE(control_.RemoveHost(kHost).ok());

  absl::Status rejoined = agent_->Register();
  ASSERT_TRUE(rejoined.ok()) << rejoined;
  const std::string fresh = FirstLine(path);
  EXPECT_NE(fresh, old);
  EXPECT_TRUE(control_.AuthenticateHost(fresh).ok());
  EXPECT_FALSE(control_.AuthenticateHost(old).ok());

  // Without a join token there is nothing to join with.
  agent_.reset();
  clock_.Advance(absl::Seconds(60));
  ASSERT_EQ(*control_.CheckHostsOnce(), 1);
  ASSERT_TRUE(control_.RemoveHost(kHost).ok());
  AgentOptions o = Options();
  o.token.clear();
  agent_ = std::make_unique<Agent>(o);
  absl::Status refused = agent_->Register();
  EXPECT_TRUE(absl::IsUnauthenticated(refused)) << refused;
}

}  // namespace
}  // namespace berth::agent
