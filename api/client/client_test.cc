// The typed client against a real ApiServer on loopback: a round trip through every resource
// group, and the server's errors coming back as the matching canonical codes with the message
// that names the object and field.
#include "api/client/client.h"

#include <filesystem>
#include <fstream>
#include <memory>

#include "api/api_server.h"
#include "api/routes_admin.h"
#include "api/routes_images.h"
#include "api/routes_jobs.h"
#include "api/routes_services.h"
#include "core/clock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"
#ifdef BERTH_CLIENT_TEST_STORENET
#include "api/storenet_routes.h"
#endif

namespace berth::api {
namespace {

using core::Json;

core::WorkloadSpec Hello(const std::string& name = "hello") {
  core::WorkloadSpec spec;
  spec.name = name;
  spec.kind = core::WorkloadKind::kProcess;
  spec.command = {"/bin/sh", "-c", "echo hello; sleep 3600"};
  spec.resources.cpu = core::MilliCpu(500);
  spec.resources.memory = core::MemoryMiB(64);
  return spec;
}

core::HostInventory Inventory() {
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(4000);
  inv.capacity.memory = core::MemoryMiB(4096);
  inv.capacity.disk = core::DiskMiB(10240);
  inv.drivers = {"process"};
  return inv;
}

// The tasks of "this host": a log file per workload, an echoing exec and fixed stats.
class FakeLocalHost : public agent::LocalHost {
 public:
  explicit FakeLocalHost(std::string dir) : dir_(std::move(dir)) {}
  std::string HostName() override { return "h1"; }
  absl::StatusOr<std::string> LogPath(std::string_view workload, std::string_view stream) override {
    std::string path = dir_ + "/" + std::string(workload) + "." + std::string(stream);
    if (!std::filesystem::exists(path)) return absl::NotFoundError("no log yet");
    return path;
  }
  absl::StatusOr<std::string> ConsolePath(std::string_view workload) override {
    return LogPath(workload, "stdout");
  }
  absl::StatusOr<wire::ExecReply> Exec(std::string_view,
                                       const wire::ExecRequest& request) override {
    std::string joined;
    for (const auto& a : request.argv) joined += a + " ";
    return wire::ExecReply{.exit_code = 7, .stdout_data = joined, .stderr_data = "e"};
  }
  absl::StatusOr<Json> Stats(std::string_view workload) override {
    return Json{{"workload", std::string(workload)}, {"pid", 42}};
  }
  absl::StatusOr<int64_t> SaveWarmState(std::string_view workload, std::string_view) override {
    return absl::NotFoundError(core::Cat("no task for ", workload));
  }

 private:
  std::string dir_;
};

#ifdef BERTH_CLIENT_TEST_STORENET
// Storage that keeps volumes in memory and copies nothing.
class MemoryStorageHost : public control::StorageHost {
 public:
  absl::Status Prepare() override { return absl::OkStatus(); }
  absl::StatusOr<control::HostVolume> Create(const control::HostVolumeSpec& spec) override {
    control::HostVolume v{
        .format = spec.format, .size_mib = spec.size_mib, .path = "/pool/" + spec.name};
    volumes_[spec.name] = v;
    return v;
  }
  absl::StatusOr<control::HostVolume> Get(std::string_view name) override { return Find(name); }
  absl::StatusOr<control::HostVolume> Resize(std::string_view name, int64_t size_mib,
                                             std::string_view) override {
    auto v = Find(name);
    if (v.ok()) volumes_[std::string(name)].size_mib = size_mib;
    return Find(name);
  }
  absl::Status Snapshot(std::string_view name, std::string_view snapshot) override {
    if (!volumes_.contains(std::string(name))) return absl::NotFoundError("no volume");
    volumes_[std::string(name)].snapshots.push_back(std::string(snapshot));
    return absl::OkStatus();
  }
  absl::Status Revert(std::string_view, std::string_view, std::string_view) override {
    return absl::OkStatus();
  }
  absl::Status DeleteSnapshot(std::string_view, std::string_view) override {
    return absl::OkStatus();
  }
  absl::StatusOr<control::HostVolume> Clone(std::string_view source, std::string_view,
                                            std::string_view name,
                                            std::string_view format) override {
    auto v = Find(source);
    if (!v.ok()) return v;
    v->format = std::string(format);
    v->snapshots.clear();
    volumes_[std::string(name)] = *v;
    return v;
  }
  absl::StatusOr<control::HostBackup> Backup(std::string_view name, const std::string& file,
                                             const control::Progress& progress) override {
    if (!volumes_.contains(std::string(name))) return absl::NotFoundError("no volume");
    progress(500);
    progress(1000);
    backups_[file] = volumes_[std::string(name)];
    return control::HostBackup{.bytes = 4096, .sha256 = "feed", .path = "/backups/" + file};
  }
  absl::StatusOr<control::HostVolume> Restore(const std::string& file, std::string_view name,
                                              std::string_view,
                                              const control::Progress& progress) override {
    auto it = backups_.find(file);
    if (it == backups_.end()) return absl::NotFoundError("backup \"" + file + "\" not found");
    progress(1000);
    volumes_[std::string(name)] = it->second;
    return it->second;
  }
  absl::Status Delete(std::string_view name, std::string_view) override {
    volumes_.erase(std::string(name));
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<control::HostPool>> Pools() override {
    return std::vector<control::HostPool>{{.name = "default", .capacity_mib = 102400}};
  }

 private:
  absl::StatusOr<control::HostVolume> Find(std::string_view name) {
    auto it = volumes_.find(std::string(name));
    if (it == volumes_.end()) return absl::NotFoundError("no volume");
    return it->second;
  }
  std::map<std::string, control::HostVolume> volumes_;
  std::map<std::string, control::HostVolume> backups_;
};

class OkNetworkHost : public control::NetworkHost {
 public:
  absl::StatusOr<std::string> EnsureNetwork(const control::HostNetwork& n) override {
    return "br-" + n.name;
  }
  absl::Status DeleteNetwork(std::string_view) override { return absl::OkStatus(); }
  absl::Status PutGroup(const control::HostGroup&) override { return absl::OkStatus(); }
  absl::Status DeleteGroup(std::string_view) override { return absl::OkStatus(); }
  absl::Status AddForward(const control::HostForward&) override { return absl::OkStatus(); }
  absl::Status RemoveForward(std::string_view) override { return absl::OkStatus(); }
  absl::Status Cleanup(const control::HostKeep&) override { return absl::OkStatus(); }
  absl::StatusOr<control::HostEndpoint> AttachEndpoint(
      const control::HostEndpointSpec& spec) override {
    return control::HostEndpoint{.host_ifname = "veth-" + spec.owner, .address = spec.address};
  }
  absl::Status DetachEndpoint(std::string_view, std::string_view) override {
    return absl::OkStatus();
  }
};
#endif

// A store snapshot of known bytes: 3 MiB and a bit, so it crosses the route's 1 MiB pieces.
class PatternSnapshotter : public state::Snapshotter {
 public:
  static std::string Bytes() {
    std::string data((3 << 20) + 123, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 4096);
    return data;
  }
  absl::StatusOr<state::SnapshotInfo> SaveSnapshot(const std::string& path,
                                                   const state::SnapshotProgress&) override {
    std::ofstream(path, std::ios::binary) << Bytes();
    return state::SnapshotInfo{.format = state::SnapshotFormat::kSqlite,
                               .bytes = static_cast<int64_t>(Bytes().size()),
                               .revision = 42,
                               .keys = 7};
  }
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("berth-client-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    local_ = std::make_unique<FakeLocalHost>(dir_);
    control_ = std::make_unique<control::ControlPlane>(&store_, control::ControlPlaneOptions{});
    ApiServerOptions o;
    o.admin_token = "admin-secret";
    o.agent_tokens = {"join-secret"};
    server_ = std::make_unique<ApiServer>(o, control_.get(), local_.get());
    AddImageRoutes(server_->router(), control_.get(), /*images=*/nullptr);
    services_ = std::make_unique<control::ServiceController>(control_.get(),
                                                             control::ServiceControllerOptions{});
    AddServiceRoutes(server_->router(), services_.get());
    jobs_ = std::make_unique<control::JobController>(
        control_.get(), control::JobControllerOptions{.port_free = [](int) { return true; }});
    AddJobRoutes(server_->router(), jobs_.get());
    AddAdminRoutes(server_->router(), &snapshots_, dir_);
#ifdef BERTH_CLIENT_TEST_STORENET
    AddStorageRoutes(server_->router(), &storage_);
    AddNetworkRoutes(server_->router(), &networks_);
#endif
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = "http://127.0.0.1:" + std::to_string(*port);
    admin_ = std::make_unique<Client>(url_, ClientOptions{.token = "admin-secret"});
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }
  // Registers host h1 with the join token; returns its credential.
  std::string RegisterH1() {
    Client join(url_, ClientOptions{.token = "join-secret"});
    auto reply = join.RegisterHost({.name = "h1", .inventory = Inventory()});
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? reply->credential : "";
  }

  std::string dir_;
  std::unique_ptr<FakeLocalHost> local_;
  PatternSnapshotter snapshots_;
  state::MemoryStore store_;
  std::unique_ptr<control::ControlPlane> control_;
  std::unique_ptr<control::ServiceController> services_;
  std::unique_ptr<control::JobController> jobs_;
#ifdef BERTH_CLIENT_TEST_STORENET
  core::ManualClock clock_;
  MemoryStorageHost storage_host_;
  OkNetworkHost network_host_;
  control::StorageService storage_{&store_, &clock_, &storage_host_};
  control::NetworkService networks_{&store_, &clock_, &network_host_};
#endif
  std::unique_ptr<ApiServer> server_;
  std::string url_;
  std::unique_ptr<Client> admin_;
};

TEST_F(ClientTest, WorkloadsRoundTrip) {
  Raw raw;
  auto created = admin_->CreateWorkload(Hello(), &raw);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->spec.name, "hello");
  EXPECT_EQ(created->spec.command, Hello().command);
  EXPECT_EQ(created->status.state, core::WorkloadState::kPending);
  EXPECT_EQ(raw.status, 201);
  EXPECT_EQ(raw.body["name"], "hello");  // the server's JSON, for --json output

  auto yaml = admin_->CreateWorkloadFromText(
      "name: from-yaml\nkind: process\ncommand: [\"/bin/true\"]\n", "application/yaml");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  EXPECT_EQ(yaml->spec.name, "from-yaml");

  auto got = admin_->GetWorkload("hello", {}, &raw);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->spec.resources.cpu, core::MilliCpu(500));
  EXPECT_GT(raw.index, 0);

  auto list = admin_->ListWorkloads();
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->items.size(), 2u);
  EXPECT_GT(list->revision, 0);

  auto explained = admin_->Explain("hello");
  ASSERT_TRUE(explained.ok()) << explained.status();
  EXPECT_FALSE(explained->empty());

  auto stopped = admin_->StopWorkload("hello");
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->status.desired, core::DesiredState::kStopped);

  auto deleted = admin_->DeleteWorkload("hello");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->workload.spec.name, "hello");
  EXPECT_TRUE(absl::IsNotFound(admin_->GetWorkload("hello").status()));
}

TEST_F(ClientTest, JobsRoundTrip) {
  const std::string yaml = R"(name: train
kind: job
parallelism: 3
restart: {policy: on-failure, max_retries: 2, backoff: 5s, scope: task}
template:
  kind: process
  command: ["/bin/true"]
)";
  auto created = admin_->CreateJobFromText(yaml, "application/yaml");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->spec.parallelism, 3);
  EXPECT_EQ(created->spec.restart.scope, core::JobRestart::Scope::kTask);
  core::JobSpec typed = created->spec;
  typed.name = "eval";
  ASSERT_TRUE(admin_->CreateJob(typed).ok());
  auto list = admin_->ListJobs();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[0].spec.name, "eval");
  ASSERT_TRUE(jobs_->ReconcileOnce().ok());
  auto got = admin_->GetJob("train");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status.tasks.size(), 3u);
  EXPECT_EQ(got->status.current[2], "train-2");
  // Errors: the field named, a 4xx code, nothing changed.
  auto bad = admin_->CreateJobFromText("name: x\nkind: job\nparallelism: 2\n", "application/yaml");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("job \"x\": template is required"), std::string::npos)
      << bad.status();
  EXPECT_EQ(admin_->GetJob("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(admin_->DeleteJob("nope").status().code(), absl::StatusCode::kNotFound);
  auto dup = admin_->CreateJobFromText(yaml, "application/yaml");
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  // Delete cancels first, then removes.
  auto cancelled = admin_->DeleteJob("eval");
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_FALSE(cancelled->deleted);
  EXPECT_EQ(cancelled->job.status.state, core::JobState::kCancelled);
}

TEST_F(ClientTest, ServicesRoundTrip) {
  const std::string yaml = R"(name: web
kind: service
replicas: 2
port: 8080
template:
  kind: process
  command: ["/bin/sleep", "60"]
)";
  auto created = admin_->CreateServiceFromText(yaml, "application/yaml");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->spec.replicas, 2);
  EXPECT_EQ(created->spec.port, 8080);
  core::ServiceSpec typed = created->spec;
  typed.name = "api";
  typed.replicas = 0;
  ASSERT_TRUE(admin_->CreateService(typed).ok());
  auto list = admin_->ListServices();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 2u);
  EXPECT_EQ(list->items[0].spec.name, "api");
  auto scaled = admin_->ScaleService("web", 3);
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  EXPECT_EQ(admin_->GetService("web")->spec.replicas, 3);
  ASSERT_TRUE(services_->ReconcileOnce().ok());
  auto got = admin_->GetService("web");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->status.replicas.size(), 3u);
  // Errors: the field named, a 4xx code, nothing changed.
  auto bad = admin_->ScaleService("web", -2);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("service \"web\": replicas"), std::string::npos)
      << bad.status();
  Json body = {{"replicas", 1}, {"surge", 2}};
  auto unknown = admin_->Call("POST", "/v1/services/web/scale", &body);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(admin_->GetService("nope").status().code(), absl::StatusCode::kNotFound);
  auto dup = admin_->CreateServiceFromText(yaml, "application/yaml");
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  // Update: a changed template is a new revision; undo goes back; the path names the service.
  std::string changed = yaml;
  changed.replace(changed.find("\"60\""), 4, "\"90\"");
  changed.replace(changed.find("replicas: 2"), 11, "replicas: 3");  // as scaled above
  auto updated = admin_->UpdateServiceFromText("web", changed, "application/yaml");
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->status.rollout.revision, 2);
  EXPECT_EQ(updated->spec.workload_template.command[1], "90");
  auto renamed = admin_->UpdateServiceFromText("api", changed, "application/yaml");
  EXPECT_EQ(renamed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(renamed.status().message().find("service \"api\": name must be the name in the path"),
            std::string::npos)
      << renamed.status();
  auto undone = admin_->UndoServiceRollout("web");
  ASSERT_TRUE(undone.ok()) << undone.status();
  EXPECT_EQ(undone->status.rollout.revision, 1);
  EXPECT_EQ(undone->spec.workload_template.command[1], "60");
  EXPECT_EQ(admin_->UndoServiceRollout("api").status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto bad_spec =
      admin_->CreateServiceFromText("name: x\ntemplate: {kind: process}\n", "application/yaml");
  EXPECT_EQ(bad_spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad_spec.status().message().find("template.command"), std::string::npos)
      << bad_spec.status();
  // Health checks need a prober, which this server lacks: refused, not half made.
  auto probed = admin_->CreateServiceFromText(
      "name: h\nport: 80\nhealth: {tcp: true}\ntemplate: {kind: process, command: [x]}\n",
      "application/yaml");
  EXPECT_EQ(probed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(admin_->GetService("web")->spec.replicas, 3);
  // Delete: the replicas first (they are not placed, so they go at once), then the service.
  auto deleted = admin_->DeleteService("web");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_FALSE(deleted->deleted);
  ASSERT_TRUE(services_->ReconcileOnce().ok());
  ASSERT_TRUE(services_->ReconcileOnce().ok());
  EXPECT_EQ(admin_->GetService("web").status().code(), absl::StatusCode::kNotFound);
  auto gone = admin_->DeleteService("api");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_TRUE(gone->deleted);
}

TEST_F(ClientTest, BlockingListReturnsOnChange) {
  ASSERT_TRUE(admin_->CreateWorkload(Hello("first")).ok());
  auto first = admin_->ListWorkloads();
  ASSERT_TRUE(first.ok());
  std::thread writer([&] {
    Client other(url_, ClientOptions{.token = "admin-secret"});
    EXPECT_TRUE(other.CreateWorkload(Hello("second")).ok());
  });
  auto waited = admin_->ListWorkloads({.index = first->revision, .wait = absl::Seconds(60)});
  writer.join();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_GT(waited->revision, first->revision);
}

TEST_F(ClientTest, HostsRegisterHeartbeatWatchAndReport) {
  std::string credential = RegisterH1();
  ASSERT_FALSE(credential.empty());
  Client host(url_, ClientOptions{.token = credential});
  EXPECT_TRUE(host.Heartbeat("h1").ok());
  // Re-registering with its own credential issues no new one.
  auto again = host.RegisterHost({.name = "h1", .inventory = Inventory()});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->host.name, "h1");
  EXPECT_TRUE(again->credential.empty());

  ASSERT_TRUE(admin_->CreateWorkload(Hello()).ok());
  ASSERT_EQ(*control_->ScheduleOnce(), 1);
  auto assigned = host.Assignments("h1");
  ASSERT_TRUE(assigned.ok()) << assigned.status();
  ASSERT_EQ(assigned->items.size(), 1u);
  const core::Workload& w = assigned->items[0];
  EXPECT_EQ(w.spec.name, "hello");

  auto reported = host.ReportStatus("hello", {.host = "h1",
                                              .generation = w.status.generation,
                                              .state = core::WorkloadState::kRunning,
                                              .reason = "running on h1"});
  ASSERT_TRUE(reported.ok()) << reported.status();
  EXPECT_EQ(reported->status.state, core::WorkloadState::kRunning);

  auto detail = admin_->GetHost("h1");
  ASSERT_TRUE(detail.ok()) << detail.status();
  EXPECT_EQ(detail->host.inventory.capacity.cpu, core::MilliCpu(4000));
  EXPECT_EQ(detail->workloads, std::vector<std::string>{"hello"});
  auto hosts = admin_->ListHosts();
  ASSERT_TRUE(hosts.ok()) << hosts.status();
  ASSERT_EQ(hosts->items.size(), 1u);
  EXPECT_EQ(hosts->items[0].name, "h1");

  // A host credential speaks only for its own host.
  EXPECT_TRUE(absl::IsPermissionDenied(host.Heartbeat("h2")));
  EXPECT_TRUE(absl::IsPermissionDenied(host.ListWorkloads().status()));

  ASSERT_TRUE(admin_->DeleteWorkload("hello").ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(admin_->DeleteHost("h1")) ||
              admin_->DeleteHost("h1").ok());
}

TEST_F(ClientTest, HostsCordonUncordonAndDrainThroughTheAdminOnly) {
  std::string credential = RegisterH1();
  ASSERT_FALSE(credential.empty());
  auto cordoned = admin_->HostAction("h1", "cordon");
  ASSERT_TRUE(cordoned.ok()) << cordoned.status();
  EXPECT_TRUE(cordoned->cordoned);
  EXPECT_TRUE(admin_->GetHost("h1")->host.cordoned);
  auto open = admin_->HostAction("h1", "uncordon");
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_FALSE(open->cordoned);
  auto drain = admin_->HostAction("h1", "drain");
  ASSERT_TRUE(drain.ok()) << drain.status();
  EXPECT_TRUE(drain->cordoned);
  EXPECT_TRUE(drain->draining);
  // The registration reply names the server's TTL and grace, which the agent fences by.
  auto again = Client(url_, ClientOptions{.token = credential})
                   .RegisterHost({.name = "h1", .inventory = Inventory()});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_GT(again->host_ttl, absl::ZeroDuration());
  EXPECT_TRUE(again->host.cordoned);  // a cordon outlives registrations
  // Errors: an unknown host is a 404 naming it; a host credential may not cordon.
  absl::Status missing = admin_->HostAction("nope", "cordon").status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_NE(missing.message().find("nope"), std::string_view::npos) << missing;
  Client host(url_, ClientOptions{.token = credential});
  EXPECT_TRUE(absl::IsPermissionDenied(host.HostAction("h1", "uncordon").status()));
}

TEST_F(ClientTest, LocalTasksExecLogsConsoleAndStats) {
  ASSERT_TRUE(admin_->CreateWorkload(Hello()).ok());
  {
    std::ofstream out(dir_ + "/hello.stdout");
    out << "hello\n";
  }
  auto logs = admin_->Logs("hello");
  ASSERT_TRUE(logs.ok()) << logs.status();
  EXPECT_EQ(*logs, "hello\n");
  std::string streamed;
  ASSERT_TRUE(admin_
                  ->StreamLogs("hello", "stdout", /*follow=*/false,
                               [&](std::string_view chunk) {
                                 streamed += chunk;
                                 return true;
                               })
                  .ok());
  EXPECT_EQ(streamed, "hello\n");
  EXPECT_TRUE(absl::IsNotFound(admin_->Logs("hello", "stderr").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(admin_->Logs("hello", "stdin").status()));
  auto console = admin_->Console("hello");
  ASSERT_TRUE(console.ok()) << console.status();
  EXPECT_EQ(*console, "hello\n");

  auto exec = admin_->Exec("hello", {.argv = {"echo", "hi"}, .timeout = absl::Seconds(5)});
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_EQ(exec->exit_code, 7);
  EXPECT_EQ(exec->stdout_data, "echo hi ");
  EXPECT_EQ(exec->stderr_data, "e");
  auto bad = admin_->Exec("hello", {});
  ASSERT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("argv"), std::string::npos) << bad.status();

  auto stats = admin_->Stats("hello");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ((*stats)["pid"], 42);
  EXPECT_TRUE(absl::IsNotFound(admin_->Stats("nope").status()));
}

TEST_F(ClientTest, EventsTenantsMetricsAndHealth) {
  EXPECT_TRUE(Client(url_).Health().ok());  // no token needed
  ASSERT_TRUE(admin_->CreateWorkload(Hello()).ok());
  auto events = admin_->ListEvents();
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->items.size(), 1u);
  EXPECT_EQ(events->items[0].type, "created");
  EXPECT_EQ(events->items[0].object, "hello");
  auto none = admin_->ListEvents({.index = events->revision, .wait = absl::Milliseconds(100)});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->items.empty());

  auto quota = admin_->SetQuota("team-a", Json{{"cpu", "4"}, {"memory", "8Gi"}});
  ASSERT_TRUE(quota.ok()) << quota.status();
  EXPECT_EQ((*quota)["memory"], "8Gi");
  auto tenants = admin_->ListTenants();
  ASSERT_TRUE(tenants.ok()) << tenants.status();
  EXPECT_EQ((*tenants)["items"].size(), 1u);
  EXPECT_TRUE(admin_->DeleteQuota("team-a").ok());
  EXPECT_TRUE(absl::IsNotFound(admin_->DeleteQuota("team-a")));
  auto badquota = admin_->SetQuota("team-a", Json{{"cpu", "lots"}});
  ASSERT_TRUE(absl::IsInvalidArgument(badquota.status()));
  EXPECT_NE(badquota.status().message().find("cpu"), std::string::npos) << badquota.status();

  auto metrics = admin_->MetricsText();
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_NE(metrics->find("berth_workloads{state=\"pending\"} 1"), std::string::npos);
}

TEST_F(ClientTest, SnapshotDownloadStreamsTheWholeFileToTheAdminOnly) {
  std::string received;
  auto download = admin_->DownloadSnapshot([&](std::string_view chunk) {
    received.append(chunk);
    return true;
  });
  ASSERT_TRUE(download.ok()) << download.status();
  EXPECT_EQ(download->format, "sqlite");
  EXPECT_EQ(download->bytes, static_cast<int64_t>(PatternSnapshotter::Bytes().size()));
  EXPECT_EQ(download->revision, 42);
  EXPECT_EQ(download->keys, 7);
  EXPECT_TRUE(received == PatternSnapshotter::Bytes());
  // The staging file is gone.
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(entry.path().filename().string().find("snapshot"), std::string::npos) << entry.path();
  }
  auto sink = [](std::string_view) { return true; };
  std::string credential = RegisterH1();
  Client host(url_, ClientOptions{.token = credential});
  EXPECT_TRUE(absl::IsPermissionDenied(host.DownloadSnapshot(sink).status()));
  Client join(url_, ClientOptions{.token = "join-secret"});
  EXPECT_TRUE(absl::IsPermissionDenied(join.DownloadSnapshot(sink).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(Client(url_).DownloadSnapshot(sink).status()));
}

TEST_F(ClientTest, ABlockingQueryPastTheStoresRevisionAnswersAtOnce) {
  ASSERT_TRUE(admin_->CreateWorkload(Hello()).ok());
  // An index from another store's history (a restored or migrated one). Were it parked, the
  // 5-minute wait would outlast the client's 30 s timeout.
  Client impatient(url_, ClientOptions{.token = "admin-secret", .timeout = absl::Seconds(30)});
  Raw raw;
  auto list = impatient.ListWorkloads({.index = 1'000'000, .wait = absl::Minutes(5)}, &raw);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->items.size(), 1u);
  EXPECT_GT(raw.index, 0);
  EXPECT_LT(raw.index, 1'000'000);
}

TEST_F(ClientTest, ServerErrorsBecomeMatchingCodesWithTheFieldNamed) {
  // 404
  auto missing = admin_->GetWorkload("nope");
  ASSERT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  // 409
  ASSERT_TRUE(admin_->CreateWorkload(Hello()).ok());
  auto dup = admin_->CreateWorkload(Hello());
  ASSERT_TRUE(absl::IsAlreadyExists(dup.status())) << dup.status();
  EXPECT_NE(dup.status().message().find("hello"), std::string::npos);
  // 400, naming the field
  core::WorkloadSpec bad = Hello("bad");
  bad.user = "a b";
  auto refused = admin_->CreateWorkload(bad);
  ASSERT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("user"), std::string::npos) << refused.status();
  auto bad_action = admin_->Act("hello", "explode");
  ASSERT_TRUE(absl::IsInvalidArgument(bad_action.status()));
  EXPECT_NE(bad_action.status().message().find("action"), std::string::npos);
  auto bad_report = admin_->ReportStatus("hello", {.generation = -1});
  ASSERT_TRUE(absl::IsInvalidArgument(bad_report.status())) << bad_report.status();
  EXPECT_NE(bad_report.status().message().find("generation"), std::string::npos);
  // 401 and 403
  EXPECT_TRUE(absl::IsUnauthenticated(Client(url_).ListWorkloads().status()));
  EXPECT_TRUE(absl::IsUnauthenticated(
      Client(url_, ClientOptions{.token = "wrong"}).ListWorkloads().status()));
  EXPECT_TRUE(absl::IsPermissionDenied(
      Client(url_, ClientOptions{.token = "join-secret"}).CreateWorkload(Hello("x")).status()));
  // Nothing listens: the transport's error, not a server's.
  Client nowhere("http://127.0.0.1:1", ClientOptions{.connect_timeout = absl::Seconds(2)});
  EXPECT_TRUE(absl::IsUnavailable(nowhere.Health()) || absl::IsDeadlineExceeded(nowhere.Health()));
}

TEST_F(ClientTest, ImageCatalogErrorsMapToCodes) {
  // This server reaches no host's catalog: a known host's is out of reach (409), an unknown
  // host is 404.
  RegisterH1();
  auto unreachable = admin_->ListImages("h1");
  EXPECT_TRUE(absl::IsFailedPrecondition(unreachable.status())) << unreachable.status();
  EXPECT_TRUE(absl::IsNotFound(admin_->ListImages("nope").status()));
  auto bad = admin_->ImportImage("h1", {.kernel = "vmlinuz"});
  ASSERT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("name"), std::string::npos) << bad.status();
}

TEST_F(ClientTest, NamesAreEscapedIntoOnePathSegment) {
  // A name with a slash cannot reach another route: it is one (unknown) workload.
  auto r = admin_->GetWorkload("hello/actions/stop");
  EXPECT_TRUE(absl::IsNotFound(r.status()) || absl::IsInvalidArgument(r.status())) << r.status();
}

#ifdef BERTH_CLIENT_TEST_STORENET
TEST_F(ClientTest, DisksRoundTrip) {
  auto disk = admin_->CreateDisk({.name = "data", .size = "1Gi"});
  ASSERT_TRUE(disk.ok()) << disk.status();
  EXPECT_EQ((*disk)["name"], "data");
  auto list = admin_->ListDisks();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->items.size(), 1u);
  EXPECT_EQ(list->items[0]["name"], "data");
  ASSERT_TRUE(admin_->GetDisk("data").ok());
  EXPECT_TRUE(admin_->ResizeDisk("data", "2Gi").ok());
  EXPECT_TRUE(admin_->SnapshotDisk("data", "s1").ok());
  EXPECT_TRUE(admin_->RevertDisk("data", "s1").ok());
  auto clone = admin_->CloneDisk("data", "s1", "copy");
  ASSERT_TRUE(clone.ok()) << clone.status();
  EXPECT_EQ((*clone)["name"], "copy");
  std::vector<int> progress;
  auto backup = admin_->BackupDisk("data", "data.bak", [&](int p) { progress.push_back(p); });
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_FALSE(progress.empty());
  auto restored = admin_->RestoreDisk("data.bak", "again");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)["name"], "again");
  auto pools = admin_->ListPools();
  ASSERT_TRUE(pools.ok()) << pools.status();
  EXPECT_TRUE((*pools)["items"].is_array());
  EXPECT_TRUE(admin_->DeleteDisk("copy").ok());
  EXPECT_TRUE(absl::IsNotFound(admin_->GetDisk("copy").status()));
  // 400 naming the field; 409 for a name taken.
  auto bad = admin_->CreateDisk({.name = "bad", .size = "lots"});
  ASSERT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("size"), std::string::npos) << bad.status();
  EXPECT_TRUE(absl::IsAlreadyExists(admin_->CreateDisk({.name = "data", .size = "1Gi"}).status()));
}

TEST_F(ClientTest, NetworksSecurityGroupsAndForwardsRoundTrip) {
  auto net = admin_->CreateNetwork({.name = "n1", .subnet = "10.88.0.0/24"});
  ASSERT_TRUE(net.ok()) << net.status();
  auto nets = admin_->ListNetworks();
  ASSERT_TRUE(nets.ok()) << nets.status();
  EXPECT_EQ(nets->items.size(), 1u);
  ASSERT_TRUE(admin_->GetNetwork("n1").ok());
  auto address = admin_->AllocateAddress("n1", "w1");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->rfind("10.88.0.", 0), 0u) << *address;
  EXPECT_TRUE(admin_->ReleaseAddress("n1", "w1").ok());

  auto group = admin_->CreateSecurityGroup("web");
  ASSERT_TRUE(group.ok()) << group.status();
  auto ruled = admin_->AddRule("web", {.protocol = "tcp", .ports = "80", .from_cidr = "0.0.0.0/0"});
  ASSERT_TRUE(ruled.ok()) << ruled.status();
  ASSERT_EQ((*ruled)["spec"]["rules"].size(), 1u) << ruled->dump();
  std::string rule_id = (*ruled)["spec"]["rules"][0].value("id", "");
  auto unruled = admin_->RemoveRule("web", rule_id);
  ASSERT_TRUE(unruled.ok()) << unruled.status();
  EXPECT_TRUE((*unruled)["spec"]["rules"].empty()) << unruled->dump();
  auto groups = admin_->ListSecurityGroups();
  ASSERT_TRUE(groups.ok()) << groups.status();
  EXPECT_EQ(groups->items.size(), 1u);
  ASSERT_TRUE(admin_->GetSecurityGroup("web").ok());
  EXPECT_TRUE(admin_->DeleteSecurityGroup("web").ok());

  ASSERT_TRUE(admin_->AllocateAddress("n1", "w1").ok());
  auto forward = admin_->AddPortForward({.host_port = 18080, .workload = "w1", .port = 80});
  ASSERT_TRUE(forward.ok()) << forward.status();
  auto forwards = admin_->ListPortForwards();
  ASSERT_TRUE(forwards.ok()) << forwards.status();
  ASSERT_EQ(forwards->items.size(), 1u);
  EXPECT_TRUE(admin_->RemovePortForward((*forward).value("id", "")).ok());
  auto bad = admin_->AddPortForward({.host_port = 70000, .workload = "w1", .port = 80});
  ASSERT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_NE(bad.status().message().find("host_port"), std::string::npos) << bad.status();

  EXPECT_TRUE(admin_->DeleteNetwork("n1").ok() ||
              absl::IsFailedPrecondition(admin_->DeleteNetwork("n1")));
  EXPECT_TRUE(absl::IsNotFound(admin_->GetNetwork("nope").status()));
}
#endif

}  // namespace
}  // namespace berth::api
