#include "control/service_controller.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::WorkloadState;

core::HostInventory Inventory() {
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu("8");
  inv.capacity.memory = *core::ParseMemory("8Gi");
  inv.capacity.disk = core::DiskMiB(10240);
  inv.drivers = {"process", "container"};
  return inv;
}

core::ServiceSpec Spec(int replicas, bool health = true) {
  core::Json j = {{"name", "web"},
                  {"replicas", replicas},
                  {"port", 8080},
                  {"template",
                   {{"kind", "process"},
                    {"command", {"/bin/server"}},
                    {"resources", {{"cpu", "500m"}, {"memory", "64Mi"}}}}}};
  if (health) {
    j["health"] = {{"http", "/healthz"},
                   {"interval", "2s"},
                   {"timeout", "1s"},
                   {"failure_threshold", 2},
                   {"start_period", "10s"}};
  }
  auto spec = core::DecodeServiceSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// Answers by port: a port in `failing` fails, every other one is healthy.
class FakeProber final : public HealthProber {
 public:
  absl::Status Probe(const std::string& address, int port, const core::HealthCheck&) override {
    absl::MutexLock lock(&mu_);
    probes_.push_back({address, port});
    if (failing_.contains(port)) return absl::UnavailableError("status 500");
    return absl::OkStatus();
  }
  void Fail(int port) {
    absl::MutexLock lock(&mu_);
    failing_.insert(port);
  }
  size_t probes() {
    absl::MutexLock lock(&mu_);
    return probes_.size();
  }
  std::pair<std::string, int> last() {
    absl::MutexLock lock(&mu_);
    return probes_.back();
  }

 private:
  absl::Mutex mu_;
  std::set<int> failing_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, int>> probes_ ABSL_GUARDED_BY(mu_);
};

// Endpoints in memory: which are open on which port, their backends, and the connections a
// test says each backend has.
class FakeEndpoints final : public Endpoints {
 public:
  absl::Status Open(const std::string& service, int port, absl::Duration wait) override {
    absl::MutexLock lock(&mu_);
    if (taken_.contains(port)) return absl::UnavailableError("Address already in use");
    open_[service] = port;
    wait_[service] = wait;
    return absl::OkStatus();
  }
  void Close(const std::string& service) override {
    absl::MutexLock lock(&mu_);
    open_.erase(service);
    backends_.erase(service);
  }
  std::vector<std::string> List() override {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const auto& [name, port] : open_) out.push_back(name);
    return out;
  }
  std::string Address(const std::string& service) override {
    absl::MutexLock lock(&mu_);
    auto it = open_.find(service);
    return it == open_.end() ? "" : "127.0.0.1:" + std::to_string(it->second);
  }
  void SetBackends(const std::string& service, std::vector<EndpointBackend> backends) override {
    absl::MutexLock lock(&mu_);
    backends_[service] = std::move(backends);
  }
  int Active(const std::string& service, const EndpointBackend& backend) override {
    absl::MutexLock lock(&mu_);
    auto it = active_.find(backend.port);
    return it == active_.end() ? 0 : it->second;
  }
  EndpointStats Stats(const std::string& service) override {
    absl::MutexLock lock(&mu_);
    return stats_[service];
  }
  void SetDemandHook(std::function<void(const std::string&)> hook) override {
    absl::MutexLock lock(&mu_);
    hook_ = std::move(hook);
  }

  // What the endpoint of `service` measures from now on.
  void SetStats(const std::string& service, EndpointStats stats) {
    absl::MutexLock lock(&mu_);
    stats_[service] = stats;
  }
  // A connection starts waiting for a replica: the hook is called, as the proxy does.
  void Demand(const std::string& service) {
    std::function<void(const std::string&)> hook;
    {
      absl::MutexLock lock(&mu_);
      hook = hook_;
    }
    if (hook) hook(service);
  }
  bool HasHook() {
    absl::MutexLock lock(&mu_);
    return hook_ != nullptr;
  }
  absl::Duration WaitOf(const std::string& service) {
    absl::MutexLock lock(&mu_);
    return wait_[service];
  }

  void Take(int port) {
    absl::MutexLock lock(&mu_);
    taken_.insert(port);
  }
  void Free(int port) {
    absl::MutexLock lock(&mu_);
    taken_.erase(port);
  }
  void SetActive(int backend_port, int connections) {
    absl::MutexLock lock(&mu_);
    active_[backend_port] = connections;
  }
  std::optional<int> PortOf(const std::string& service) {
    absl::MutexLock lock(&mu_);
    auto it = open_.find(service);
    if (it == open_.end()) return std::nullopt;
    return it->second;
  }
  // The backends' ports.
  std::set<int> Backends(const std::string& service) {
    absl::MutexLock lock(&mu_);
    std::set<int> out;
    for (const auto& b : backends_[service]) out.insert(b.port);
    return out;
  }

 private:
  absl::Mutex mu_;
  std::set<int> taken_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> open_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<EndpointBackend>> backends_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> active_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, EndpointStats> stats_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Duration> wait_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> hook_ ABSL_GUARDED_BY(mu_);
};

class ServiceControllerTest : public ::testing::Test {
 protected:
  ServiceControllerTest()
      : store_(state::StoreOptions{.clock = &clock_}),
        cp_(&store_, ControlPlaneOptions{.clock = &clock_, .policy = "binpack"}),
        svc_(&cp_, ServiceControllerOptions{.clock = &clock_,
                                            .prober = &prober_,
                                            .endpoints = &endpoints_,
                                            .port_min = 30000,
                                            .port_max = 30009,
                                            .first_port_offset = 0}) {}
  void SetUp() override {
    ASSERT_TRUE(cp_.RegisterHost("h1", Inventory()).ok());
    ASSERT_TRUE(cp_.RegisterHost("h2", Inventory()).ok());
  }

  std::vector<core::Workload> Replicas() {
    std::vector<core::Workload> out;
    auto all = cp_.ListWorkloads();
    EXPECT_TRUE(all.ok()) << all.status();
    if (!all.ok()) return out;
    for (auto& w : *all) {
      if (w.spec.labels.count("berth.service")) out.push_back(w);
    }
    return out;
  }
  // Places what is pending and has every placed replica's agent say it runs.
  void RunAll() {
    ASSERT_TRUE(cp_.ScheduleOnce().ok());
    for (const auto& w : Replicas()) {
      if (w.status.state != WorkloadState::kScheduled) continue;
      auto r =
          cp_.ReportStatus(w.status.host, w.spec.name,
                           {.generation = w.status.generation, .state = WorkloadState::kRunning});
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }
  // Has the agents stop what the controller deleted, so the replicas go with their ports.
  void StopDeleted() {
    for (const auto& w : Replicas()) {
      if (w.status.desired != core::DesiredState::kDeleted) continue;
      auto r =
          cp_.ReportStatus(w.status.host, w.spec.name,
                           {.generation = w.status.generation, .state = WorkloadState::kStopped});
      ASSERT_TRUE(r.ok()) << r.status();
    }
  }
  int Port(const core::Workload& w) { return std::stoi(w.spec.labels.at("berth.port")); }
  std::vector<std::string> EventTypes() {
    std::vector<std::string> out;
    auto events = cp_.ListEvents(0, 1000);
    EXPECT_TRUE(events.ok()) << events.status();
    if (!events.ok()) return out;
    for (const auto& e : *events) {
      if (e.kind == "service") out.push_back(e.type);
    }
    return out;
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
  FakeProber prober_;
  FakeEndpoints endpoints_;
  ServiceController svc_;
};

core::ServiceSpec WithEndpoint(core::ServiceSpec spec, int host_port) {
  spec.endpoint.host_port = host_port;
  spec.endpoint.drain_timeout = absl::Seconds(10);
  return spec;
}

TEST_F(ServiceControllerTest, TheEndpointForwardsToReadyReplicasOnly) {
  ASSERT_TRUE(svc_.Create(WithEndpoint(Spec(2), 18080)).ok());
  EXPECT_EQ(endpoints_.PortOf("web"), 18080);  // open from the start
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_TRUE(endpoints_.Backends("web").empty());  // nothing runs yet
  RunAll();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  const int p0 = Port(*cp_.GetWorkload("web-0")), p1 = Port(*cp_.GetWorkload("web-1"));
  EXPECT_EQ(endpoints_.Backends("web"), (std::set<int>{p0, p1}));
  auto s = *svc_.Get("web");
  EXPECT_TRUE(s.status.endpoint.serving);
  EXPECT_EQ(s.status.endpoint.address, "127.0.0.1:18080");
  EXPECT_EQ(s.status.endpoint.backends, 2);

  // An unhealthy replica leaves the endpoint once it is not ready, and drains before it goes.
  prober_.Fail(p1);
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(endpoints_.Backends("web"), (std::set<int>{p0, p1}));  // one failure of two
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(endpoints_.Backends("web"), (std::set<int>{p0}));
  EXPECT_TRUE(cp_.GetWorkload("web-2").ok());  // its replacement comes at once

  // Deleting the service closes the endpoint.
  ASSERT_TRUE(svc_.Delete("web").ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_FALSE(endpoints_.PortOf("web").has_value());
}

TEST_F(ServiceControllerTest, AReplicaLeavingDrainsItsConnectionsBeforeItStops) {
  ASSERT_TRUE(svc_.Create(WithEndpoint(Spec(3, /*health=*/false), 18080)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  const int p1 = Port(*cp_.GetWorkload("web-1")), p2 = Port(*cp_.GetWorkload("web-2"));
  endpoints_.SetActive(p1, 1);
  endpoints_.SetActive(p2, 2);
  ASSERT_TRUE(svc_.Scale("web", 1).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  // The newest two leave the endpoint at once, but run while connections to them are open.
  EXPECT_EQ(endpoints_.Backends("web").size(), 1u);
  EXPECT_FALSE(endpoints_.Backends("web").contains(p1));
  EXPECT_EQ(cp_.GetWorkload("web-1")->status.desired, core::DesiredState::kRunning);
  EXPECT_EQ(cp_.GetWorkload("web-2")->status.desired, core::DesiredState::kRunning);
  auto s = *svc_.Get("web");
  EXPECT_EQ(s.status.ready, 1);
  ASSERT_EQ(s.status.replicas.size(), 3u);
  EXPECT_TRUE(s.status.replicas[1].draining);
  EXPECT_FALSE(s.status.replicas[1].ready);
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(cp_.GetWorkload("web-1")->status.desired, core::DesiredState::kRunning);
  // web-1's last connection ends: it is stopped; web-2 is stopped at its drain deadline.
  endpoints_.SetActive(p1, 0);
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(cp_.GetWorkload("web-1")->status.desired, core::DesiredState::kDeleted);
  EXPECT_EQ(cp_.GetWorkload("web-2")->status.desired, core::DesiredState::kRunning);
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(cp_.GetWorkload("web-2")->status.desired, core::DesiredState::kDeleted);
  EXPECT_EQ(cp_.GetWorkload("web-0")->status.desired, core::DesiredState::kRunning);
  auto types = EventTypes();
  EXPECT_EQ(std::count(types.begin(), types.end(), "replica-drained"), 2);
  // No replacement was made: the service wanted 1.
  EXPECT_FALSE(cp_.GetWorkload("web-3").ok());
}

// The replicas not being deleted, by name, with their revision.
std::map<std::string, std::string> Revisions(const std::vector<core::Workload>& replicas) {
  std::map<std::string, std::string> out;
  for (const auto& w : replicas) {
    if (w.status.desired != core::DesiredState::kDeleted) {
      out[w.spec.name] = w.spec.labels.at("berth.revision");
    }
  }
  return out;
}

core::ServiceSpec NewTemplate(core::ServiceSpec spec) {
  spec.workload_template.command = {"/bin/server", "--v2"};
  return spec;
}

TEST_F(ServiceControllerTest, ARollingUpdateStaysWithinSurgeAndUnavailable) {
  core::ServiceSpec spec = Spec(3, /*health=*/false);
  ASSERT_TRUE(svc_.Create(spec).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  for (const auto& [name, revision] : Revisions(Replicas())) EXPECT_EQ(revision, "1") << name;

  for (auto [surge, unavailable] : {std::pair{1, 0}, std::pair{0, 1}, std::pair{2, 1}}) {
    spec = NewTemplate(spec);
    spec.workload_template.command.push_back(std::to_string(surge * 10 + unavailable));
    spec.update.max_surge = surge;
    spec.update.max_unavailable = unavailable;
    auto updated = svc_.Update(spec);
    ASSERT_TRUE(updated.ok()) << updated.status();
    const int64_t revision = updated->status.rollout.revision;
    EXPECT_EQ(updated->status.rollout.state, core::RolloutStatus::State::kProgressing);
    const std::string rev = std::to_string(revision);
    int passes = 0;
    while (svc_.Get("web")->status.rollout.state != core::RolloutStatus::State::kComplete) {
      ASSERT_LT(++passes, 20) << "the rollout never completed";
      ASSERT_TRUE(svc_.ReconcileOnce().ok());
      // Within the bounds after every pass: at most 3 + surge replicas, and at least
      // 3 - unavailable of them running (ready, without a health check).
      int running = 0;
      auto live = Revisions(Replicas());
      for (const auto& w : Replicas()) {
        running += w.status.desired != core::DesiredState::kDeleted &&
                   w.status.state == WorkloadState::kRunning;
      }
      EXPECT_LE(live.size(), static_cast<size_t>(3 + surge)) << "pass " << passes;
      EXPECT_GE(running, 3 - unavailable) << "pass " << passes;
      StopDeleted();
      RunAll();
    }
    auto live = Revisions(Replicas());
    EXPECT_EQ(live.size(), 3u);
    for (const auto& [name, r] : live) EXPECT_EQ(r, rev) << name;
    auto done = *svc_.Get("web");
    EXPECT_EQ(done.status.rollout.updated_ready, 3);
    EXPECT_EQ(done.spec.workload_template.command, spec.workload_template.command);
  }
  auto types = EventTypes();
  EXPECT_EQ(std::count(types.begin(), types.end(), "rollout-complete"), 3);
  EXPECT_EQ(std::count(types.begin(), types.end(), "updated"), 3);
  // A spec without changes starts nothing.
  EXPECT_EQ(svc_.Update(spec)->status.rollout.state, core::RolloutStatus::State::kComplete);
}

TEST_F(ServiceControllerTest, ARevisionThatNeverBecomesReadyIsRolledBack) {
  core::ServiceSpec spec = Spec(2);
  spec.update.progress_deadline = absl::Seconds(30);
  spec.health.start_period = absl::Minutes(5);  // the unready replica is not replaced meanwhile
  ASSERT_TRUE(svc_.Create(spec).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  ASSERT_EQ(svc_.Get("web")->status.ready, 2);
  const auto before = Revisions(Replicas());

  ASSERT_TRUE(svc_.Update(NewTemplate(spec)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  auto during = Revisions(Replicas());
  ASSERT_EQ(during.size(), 3u);  // one surge replica of revision 2; both old ones stay
  ASSERT_EQ(during.at("web-2"), "2");
  prober_.Fail(Port(*cp_.GetWorkload("web-2")));
  RunAll();
  for (int i = 0; i < 14; ++i) {  // 28 s: the new replica never answers
    clock_.Advance(absl::Seconds(2));
    ASSERT_TRUE(svc_.ReconcileOnce().ok());
    RunAll();
    EXPECT_EQ(svc_.Get("web")->status.ready, 2) << "the old replicas keep serving";
  }
  EXPECT_EQ(svc_.Get("web")->status.rollout.state, core::RolloutStatus::State::kProgressing);
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  auto s = *svc_.Get("web");
  EXPECT_EQ(s.status.rollout.state, core::RolloutStatus::State::kRolledBack);
  EXPECT_EQ(s.status.rollout.revision, 1);
  EXPECT_EQ(s.status.rollout.previous_revision, 2);
  EXPECT_NE(s.status.rollout.message.find("revision 2 was not ready within 30s"), std::string::npos)
      << s.status.rollout.message;
  EXPECT_EQ(s.spec.workload_template, spec.workload_template);
  // Revision 2's replica goes; the old ones stay.
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(Revisions(Replicas()), before);
  auto types = EventTypes();
  EXPECT_NE(std::find(types.begin(), types.end(), "rolled-back"), types.end());
  // Undo takes the failed revision up again, on purpose.
  auto undone = svc_.Undo("web");
  ASSERT_TRUE(undone.ok()) << undone.status();
  EXPECT_EQ(undone->status.rollout.revision, 2);
  EXPECT_EQ(undone->spec.workload_template, NewTemplate(spec).workload_template);
}

TEST_F(ServiceControllerTest, UndoGoesBackToThePreviousRevision) {
  core::ServiceSpec spec = Spec(2, /*health=*/false);
  ASSERT_TRUE(svc_.Create(spec).ok());
  auto none = svc_.Undo("web");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(none.status().message(), "service \"web\": has no previous revision to go back to");
  EXPECT_EQ(svc_.Undo("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(svc_.Update(Spec(1, false)).ok(), true);
  core::ServiceSpec other = Spec(1, false);
  other.name = "nope";
  EXPECT_EQ(svc_.Update(other).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(svc_.Update(spec).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  ASSERT_TRUE(svc_.Update(NewTemplate(spec)).ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(svc_.ReconcileOnce().ok());
    RunAll();
  }
  ASSERT_EQ(svc_.Get("web")->status.rollout.state, core::RolloutStatus::State::kComplete);
  for (const auto& [name, r] : Revisions(Replicas())) EXPECT_EQ(r, "2") << name;
  auto undone = svc_.Undo("web");
  ASSERT_TRUE(undone.ok()) << undone.status();
  EXPECT_EQ(undone->status.rollout.revision, 1);
  EXPECT_EQ(undone->spec.workload_template, spec.workload_template);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(svc_.ReconcileOnce().ok());
    RunAll();
  }
  auto live = Revisions(Replicas());
  EXPECT_EQ(live.size(), 2u);
  for (const auto& [name, r] : live) EXPECT_EQ(r, "1") << name;
  EXPECT_EQ(svc_.Get("web")->status.rollout.state, core::RolloutStatus::State::kComplete);
  // The next change is a new revision: numbers are never reused.
  auto again = svc_.Update(NewTemplate(spec));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status.rollout.revision, 3);
}

TEST_F(ServiceControllerTest, AnEndpointWhosePortIsTakenLaterIsRetriedEveryPass) {
  ASSERT_TRUE(svc_.Create(WithEndpoint(Spec(1, false), 18080)).ok());
  // As after a restart: the endpoint is not open, and something else holds its port.
  endpoints_.Close("web");
  endpoints_.Take(18080);
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  auto s = *svc_.Get("web");
  EXPECT_FALSE(s.status.endpoint.serving);
  EXPECT_EQ(s.status.endpoint.message, "Address already in use");
  EXPECT_NE(s.status.message.find("endpoint not serving: Address already in use"),
            std::string::npos)
      << s.status.message;
  endpoints_.Free(18080);
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_TRUE(svc_.Get("web")->status.endpoint.serving);
  EXPECT_EQ(endpoints_.PortOf("web"), 18080);
}

TEST_F(ServiceControllerTest, AServerThatDoesNotLeadServesNoEndpoint) {
  std::atomic<bool> leads{true};
  ServiceController follower(&cp_,
                             ServiceControllerOptions{.clock = &clock_,
                                                      .prober = &prober_,
                                                      .endpoints = &endpoints_,
                                                      .port_min = 30000,
                                                      .port_max = 30009,
                                                      .period = absl::Milliseconds(10),
                                                      .active = [&] { return leads.load(); }});
  ASSERT_TRUE(follower.Create(WithEndpoint(Spec(1, false), 18080)).ok());
  follower.Start();
  leads = false;
  for (int i = 0; i < 400 && endpoints_.PortOf("web").has_value(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  follower.Stop();
  EXPECT_FALSE(endpoints_.PortOf("web").has_value());
}

TEST_F(ServiceControllerTest, BadEndpointPortsAreRefusedNamingTheField) {
  ASSERT_TRUE(svc_.Create(WithEndpoint(Spec(1), 18080)).ok());
  const int64_t rev = *store_.Revision();
  auto other = WithEndpoint(Spec(1), 18080);
  other.name = "api";
  auto taken = svc_.Create(other);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(taken.status().message(),
            "service \"api\": endpoint.host_port port 18080 is the endpoint of service \"web\"");
  other.endpoint.host_port = 30005;
  auto in_range = svc_.Create(other);
  EXPECT_EQ(in_range.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(in_range.status().message().find("endpoint.host_port must be outside the range of "
                                             "replica ports (30000-30009)"),
            std::string::npos)
      << in_range.status();
  endpoints_.Take(18081);
  other.endpoint.host_port = 18081;
  auto busy = svc_.Create(other);
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(busy.status().message().find("endpoint.host_port port 18081 cannot be used on the "
                                         "server's host: Address already in use"),
            std::string::npos)
      << busy.status();
  auto again = WithEndpoint(Spec(1), 18082);
  EXPECT_EQ(svc_.Create(again).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(*store_.Revision(), rev);
  EXPECT_FALSE(endpoints_.PortOf("api").has_value());
  EXPECT_EQ(endpoints_.PortOf("web"), 18080);  // the failed create left web's endpoint alone
}

TEST_F(ServiceControllerTest, KeepsReplicasWithPortsSpreadAcrossHosts) {
  ASSERT_TRUE(svc_.Create(Spec(2)).ok());
  EXPECT_EQ(*svc_.ReconcileOnce(), 2);
  auto replicas = Replicas();
  ASSERT_EQ(replicas.size(), 2u);
  std::set<int> ports;
  for (const auto& w : replicas) {
    EXPECT_EQ(w.spec.labels.at("berth.service"), "web");
    int port = Port(w);
    EXPECT_GE(port, 30000);
    EXPECT_LE(port, 30009);
    EXPECT_EQ(w.spec.env.at("PORT"), std::to_string(port));
    EXPECT_EQ(w.spec.env.at("BERTH_PORT"), std::to_string(port));
    ports.insert(port);
  }
  EXPECT_EQ(ports.size(), 2u);
  EXPECT_EQ(replicas[0].spec.name, "web-0");
  EXPECT_EQ(replicas[1].spec.name, "web-1");
  // binpack alone would put both on one host; a service's replicas spread.
  RunAll();
  std::set<std::string> hosts;
  for (const auto& w : Replicas()) hosts.insert(w.status.host);
  EXPECT_EQ(hosts, (std::set<std::string>{"h1", "h2"}));
  // Steady state: a pass changes no workload.
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(*svc_.ReconcileOnce(), 0);
  auto s = *svc_.Get("web");
  EXPECT_EQ(s.status.ready, 2);
  ASSERT_EQ(s.status.replicas.size(), 2u);
  EXPECT_TRUE(s.status.replicas[0].ready);
  EXPECT_EQ(s.status.replicas[0].state, "running");
  EXPECT_FALSE(s.status.replicas[0].host.empty());
  EXPECT_EQ(prober_.last().first, "127.0.0.1");
}

TEST_F(ServiceControllerTest, AReplicaThatEndsIsReplaced) {
  ASSERT_TRUE(svc_.Create(Spec(2, /*health=*/false)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(svc_.Get("web")->status.ready, 2);  // without a health check: ready while running
  auto victim = *cp_.GetWorkload("web-0");
  ASSERT_TRUE(cp_.ReportStatus(victim.status.host, "web-0",
                               {.generation = victim.status.generation,
                                .state = WorkloadState::kFailed,
                                .reason = "killed by signal 9",
                                .exit_code = 137})
                  .ok());
  EXPECT_EQ(*svc_.ReconcileOnce(), 2);  // one removed, one created
  std::set<std::string> names;
  for (const auto& w : Replicas()) names.insert(w.spec.name);
  EXPECT_EQ(names, (std::set<std::string>{"web-1", "web-2"}));
  auto types = EventTypes();
  EXPECT_NE(std::find(types.begin(), types.end(), "replica-replaced"), types.end());
  RunAll();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(svc_.Get("web")->status.ready, 2);
}

TEST_F(ServiceControllerTest, HealthDecidesReadinessAndAnUnhealthyReplicaIsReplaced) {
  ASSERT_TRUE(svc_.Create(Spec(2)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(prober_.probes(), 0u);  // nothing runs yet
  RunAll();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(prober_.probes(), 2u);
  EXPECT_EQ(svc_.Get("web")->status.ready, 2);
  // Probes follow the injected clock: none before the interval has passed.
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(prober_.probes(), 2u);

  const int bad = Port(*cp_.GetWorkload("web-1"));
  prober_.Fail(bad);
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  auto s = *svc_.Get("web");
  EXPECT_EQ(s.status.ready, 2);  // one failure is below the threshold of 2
  EXPECT_EQ(s.status.replicas[1].failures, 1);
  EXPECT_NE(s.status.replicas[1].reason.find("status 500"), std::string::npos);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(*svc_.ReconcileOnce(), 2);  // the second failure: removed and replaced
  std::set<std::string> names;
  for (const auto& w : Replicas()) {
    if (w.status.desired != core::DesiredState::kDeleted) names.insert(w.spec.name);
  }
  EXPECT_EQ(names, (std::set<std::string>{"web-0", "web-2"}));
  EXPECT_NE(Port(*cp_.GetWorkload("web-2")), bad);  // a fresh port, not the one just freed
  auto types = EventTypes();
  EXPECT_NE(std::find(types.begin(), types.end(), "replica-unhealthy"), types.end());
}

TEST_F(ServiceControllerTest, TheStartPeriodSparesAReplicaThatWasNeverReady) {
  ASSERT_TRUE(svc_.Create(Spec(1)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  prober_.Fail(Port(*cp_.GetWorkload("web-0")));
  RunAll();
  for (int i = 0; i < 4; ++i) {  // 8 s of failures, within the 10 s start period
    ASSERT_TRUE(svc_.ReconcileOnce().ok());
    clock_.Advance(absl::Seconds(2));
  }
  EXPECT_EQ(cp_.GetWorkload("web-0")->status.desired, core::DesiredState::kRunning);
  EXPECT_EQ(svc_.Get("web")->status.ready, 0);
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(cp_.GetWorkload("web-0")->status.desired, core::DesiredState::kDeleted);
}

TEST_F(ServiceControllerTest, ScalingDownRemovesUnreadyReplicasFirst) {
  ASSERT_TRUE(svc_.Create(Spec(3)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  prober_.Fail(Port(*cp_.GetWorkload("web-0")));
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(svc_.ReconcileOnce().ok());  // web-0 failed twice but is within its start period
  ASSERT_TRUE(svc_.Scale("web", 2).ok());
  EXPECT_EQ(*svc_.ReconcileOnce(), 1);
  EXPECT_EQ(cp_.GetWorkload("web-0")->status.desired, core::DesiredState::kDeleted);
  ASSERT_TRUE(svc_.Scale("web", 4).ok());
  EXPECT_EQ(*svc_.ReconcileOnce(), 2);
  EXPECT_TRUE(cp_.GetWorkload("web-3").ok());
  EXPECT_TRUE(cp_.GetWorkload("web-4").ok());
}

TEST_F(ServiceControllerTest, BadInputChangesNothing) {
  ASSERT_TRUE(svc_.Create(Spec(1)).ok());
  const int64_t rev = *store_.Revision();
  auto scaled = svc_.Scale("web", -1);
  EXPECT_EQ(scaled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(scaled.status().message(),
            "service \"web\": replicas must be between 0 and 100, got -1");
  EXPECT_EQ(svc_.Scale("web", 101).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(svc_.Scale("nope", 1).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(svc_.Create(Spec(1)).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(svc_.Delete("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store_.Revision(), rev);
}

TEST_F(ServiceControllerTest, DeleteRemovesTheReplicasThenTheService) {
  ASSERT_TRUE(svc_.Create(Spec(2, false)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  auto deletion = svc_.Delete("web");
  ASSERT_TRUE(deletion.ok()) << deletion.status();
  EXPECT_FALSE(deletion->deleted);
  EXPECT_TRUE(deletion->service.status.deleting);
  EXPECT_EQ(svc_.Scale("web", 3).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*svc_.ReconcileOnce(), 2);
  // The agents stop the replicas and say so; then the service goes.
  for (const auto& w : Replicas()) {
    EXPECT_EQ(w.status.desired, core::DesiredState::kDeleted);
    ASSERT_TRUE(
        cp_.ReportStatus(w.status.host, w.spec.name,
                         {.generation = w.status.generation, .state = WorkloadState::kStopped})
            .ok());
  }
  EXPECT_TRUE(Replicas().empty());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(svc_.Get("web").status().code(), absl::StatusCode::kNotFound);
  // With nothing to remove, delete is at once.
  ASSERT_TRUE(svc_.Create(Spec(0)).ok());
  EXPECT_TRUE(svc_.Delete("web")->deleted);
}

// A container with ports shares its host's network (runc maps no port there), so a replica
// listens on a host port of its own, as a process does; a VM's user-mode NIC forwards one to the
// service's port.
TEST_F(ServiceControllerTest, ContainersListenOnAHostPortOfTheirOwnAndVmsGetOneForwarded) {
  core::ServiceSpec spec = Spec(1, false);
  spec.workload_template.kind = core::WorkloadKind::kContainer;
  spec.workload_template.command.clear();
  spec.workload_template.image = "model-server";
  ASSERT_TRUE(svc_.Create(spec).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  auto w = *cp_.GetWorkload("web-0");
  EXPECT_EQ(w.spec.env.at("PORT"), std::to_string(Port(w)));
  EXPECT_EQ(w.spec.env.at("BERTH_PORT"), std::to_string(Port(w)));
  ASSERT_EQ(w.spec.ports.size(), 1u);
  EXPECT_EQ(w.spec.ports[0].guest_port, Port(w));
  EXPECT_EQ(w.spec.ports[0].host_port, Port(w));

  spec.name = "vm";
  spec.workload_template.kind = core::WorkloadKind::kVm;
  spec.workload_template.resources.memory = core::MemoryMiB(256);
  ASSERT_TRUE(svc_.Create(spec).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  w = *cp_.GetWorkload("vm-0");
  EXPECT_EQ(w.spec.env.at("PORT"), "8080");
  EXPECT_EQ(w.spec.env.at("BERTH_PORT"), std::to_string(Port(w)));
  ASSERT_EQ(w.spec.ports.size(), 1u);
  EXPECT_EQ(w.spec.ports[0].guest_port, 8080);
  EXPECT_EQ(w.spec.ports[0].host_port, Port(w));
}

TEST_F(ServiceControllerTest, RunsOnItsOwnThreadUntilStopped) {
  ASSERT_TRUE(svc_.Create(Spec(2, false)).ok());
  svc_.Start();
  for (int i = 0; i < 400 && Replicas().size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  svc_.Stop();
  EXPECT_EQ(Replicas().size(), 2u);
  EXPECT_EQ(svc_.loop_failures(), 0);
}

// A service of process replicas without health checks, with an endpoint and an autoscaler:
// target 1 open connection per replica, 6 s windows, to zero after 3 s without a request.
core::ServiceSpec Autoscaled(int min = 0) {
  core::Json j = {
      {"name", "web"},
      {"port", 8080},
      {"endpoint", {{"host_port", 18080}, {"wait_timeout", "20s"}}},
      {"autoscale",
       {{"min", min}, {"max", 4}, {"target", 1}, {"stable_window", "6s"}, {"panic_window", "6s"}}},
      {"template",
       {{"kind", "process"},
        {"command", {"/bin/server"}},
        {"resources", {{"cpu", "500m"}, {"memory", "64Mi"}}}}}};
  if (min == 0) j["autoscale"]["idle_to_zero"] = "3s";
  auto spec = core::DecodeServiceSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

class AutoscaleControllerTest : public ServiceControllerTest {
 protected:
  // `step` of the clock in which the endpoint had `open` connections open throughout and
  // `arrived` new ones, then a pass.
  void Load(int open, int arrived, absl::Duration step = absl::Seconds(1), int waiting = 0) {
    clock_.Advance(step);
    load_.busy_seconds += open * absl::ToDoubleSeconds(step);
    load_.accepted += arrived;
    load_.open = open;
    load_.waiting = waiting;
    endpoints_.SetStats("web", load_);
    ASSERT_TRUE(svc_.ReconcileOnce().ok());
  }
  // The live replicas (not being deleted).
  int Live() {
    int n = 0;
    for (const auto& w : Replicas()) n += w.status.desired != core::DesiredState::kDeleted;
    return n;
  }
  core::AutoscaleStatus Status() {
    auto s = svc_.Get("web");
    EXPECT_TRUE(s.ok()) << s.status();
    EXPECT_TRUE(s.ok() && s->status.autoscale.has_value());
    return s.ok() && s->status.autoscale ? *s->status.autoscale : core::AutoscaleStatus{};
  }

  EndpointStats load_;
};

TEST_F(AutoscaleControllerTest, FollowsTheEndpointsLoadDownToZeroAndBack) {
  ASSERT_TRUE(svc_.Create(Autoscaled()).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(endpoints_.WaitOf("web"), absl::Seconds(20));
  EXPECT_EQ(Live(), 1);  // it starts with one replica
  EXPECT_EQ(Status().desired, 1);
  RunAll();
  // Three connections open against one replica meant to take one: 3x the target, so the
  // autoscaler panics and asks for three at once.
  Load(3, 3);
  EXPECT_EQ(Status().desired, 3);
  EXPECT_TRUE(Status().panic);
  EXPECT_NE(Status().decision.find("panic"), std::string::npos) << Status().decision;
  EXPECT_DOUBLE_EQ(Status().panic_value, 3);
  EXPECT_EQ(Live(), 3);
  auto types = EventTypes();
  EXPECT_NE(std::find(types.begin(), types.end(), "autoscaled"), types.end());
  RunAll();
  for (int i = 0; i < 8; ++i) Load(3, 3);
  EXPECT_EQ(Status().desired, 3);
  EXPECT_FALSE(Status().panic);  // three ready replicas take the load at the target
  EXPECT_EQ(svc_.Get("web")->status.ready, 3);
  // The autoscaler owns the count.
  absl::Status scaled = svc_.Scale("web", 2).status();
  EXPECT_EQ(scaled.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(scaled.message().find("set by its autoscaler"), std::string::npos) << scaled;

  // No request for 3 s: every replica leaves, and the endpoint stays open. Before that the
  // stable window's average falls (2.5, then 2).
  Load(0, 0);
  EXPECT_EQ(Status().desired, 3);
  Load(0, 0);
  EXPECT_EQ(Status().desired, 2);
  Load(0, 0);
  EXPECT_EQ(Status().desired, 0);
  EXPECT_NE(Status().decision.find("scaled to zero"), std::string::npos) << Status().decision;
  ASSERT_TRUE(svc_.ReconcileOnce().ok());  // drained (no connection open): deleted
  StopDeleted();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(Live(), 0);
  auto s = svc_.Get("web");
  EXPECT_EQ(s->status.message,
            "scaled to zero: the endpoint holds the next request while a replica starts");
  EXPECT_EQ(endpoints_.PortOf("web"), 18080);
  // Idle, once the windows forgot the load: more passes write nothing.
  for (int i = 0; i < 6; ++i) Load(0, 0);
  const int64_t revision = svc_.Get("web")->revision;
  for (int i = 0; i < 10; ++i) Load(0, 0);
  EXPECT_EQ(svc_.Get("web")->revision, revision);

  // A request arrives and is held: a replica at once; it is ready 300 ms later.
  Load(1, 1, absl::Milliseconds(100), /*waiting=*/1);
  EXPECT_EQ(Status().desired, 1);
  EXPECT_EQ(Status().waiting, 1);
  EXPECT_NE(Status().activating_since, absl::InfinitePast());
  EXPECT_EQ(Live(), 1);
  RunAll();
  Load(1, 0, absl::Milliseconds(300));
  core::AutoscaleStatus a = Status();
  EXPECT_EQ(a.activations, 1);
  EXPECT_EQ(a.last_activation, absl::Milliseconds(300));
  EXPECT_EQ(a.activating_since, absl::InfinitePast());
  types = EventTypes();
  EXPECT_NE(std::find(types.begin(), types.end(), "scaled-from-zero"), types.end());
}

TEST_F(AutoscaleControllerTest, AServiceCreatedAtZeroStaysThereUntilARequest) {
  core::ServiceSpec spec = Autoscaled();
  spec.replicas = 0;
  ASSERT_TRUE(svc_.Create(spec).ok());
  for (int i = 0; i < 5; ++i) Load(0, 0);
  EXPECT_EQ(Live(), 0);
  EXPECT_EQ(Status().desired, 0);
  Load(1, 1, absl::Milliseconds(50), /*waiting=*/1);
  EXPECT_EQ(Live(), 1);
  EXPECT_EQ(Status().desired, 1);
}

TEST_F(AutoscaleControllerTest, AMinAboveZeroKeepsThatManyAndChangingTheBoundsClampsAtOnce) {
  ASSERT_TRUE(svc_.Create(Autoscaled(/*min=*/2)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_EQ(Live(), 2);  // left out, replicas start at min
  RunAll();
  for (int i = 0; i < 20; ++i) Load(0, 0);
  EXPECT_EQ(Status().desired, 2);
  core::ServiceSpec spec = Autoscaled(/*min=*/3);
  spec.replicas = 3;
  ASSERT_TRUE(svc_.Update(spec).ok());
  Load(0, 0);
  EXPECT_EQ(Status().desired, 3);
  EXPECT_EQ(Live(), 3);
  // Without autoscale, `replicas` rules again.
  spec.autoscale.reset();
  spec.replicas = 1;
  ASSERT_TRUE(svc_.Update(spec).ok());
  Load(0, 0);
  EXPECT_FALSE(svc_.Get("web")->status.autoscale.has_value());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());  // the two leaving drained: deleted
  EXPECT_EQ(Live(), 1);
}

TEST_F(ServiceControllerTest, AHeldRequestStartsAPassAtOnce) {
  core::ServiceSpec spec = Autoscaled();
  spec.replicas = 0;
  ASSERT_TRUE(svc_.Create(spec).ok());
  {
    ServiceController slow(&cp_, ServiceControllerOptions{.clock = &clock_,
                                                          .prober = &prober_,
                                                          .endpoints = &endpoints_,
                                                          .port_min = 30000,
                                                          .port_max = 30009,
                                                          .period = absl::Hours(1)});
    slow.Start();
    EXPECT_EQ(Replicas().size(), 0u);
    endpoints_.SetStats("web", {.accepted = 1, .open = 1, .waiting = 1});
    endpoints_.Demand("web");
    for (int i = 0; i < 400 && Replicas().empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    EXPECT_EQ(Replicas().size(), 1u) << "the held request did not start a pass";
  }
  EXPECT_FALSE(endpoints_.HasHook());  // a controller that is gone is not called
}

// The socket prober against a real listener on loopback.
class Listener {
 public:
  explicit Listener(std::string answer) : answer_(std::move(answer)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(fd_, 8), 0);
    socklen_t len = sizeof a;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      char buf[1024];
      ssize_t n = recv(c, buf, sizeof buf, 0);
      request_.assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
      if (!answer_.empty()) {
        EXPECT_GT(send(c, answer_.data(), answer_.size(), 0), 0);
      }
      close(c);
    });
  }
  ~Listener() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  std::string request() { return request_; }

 private:
  std::string answer_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string request_;
};

TEST(SocketProberTest, HttpAndTcpAgainstRealSockets) {
  auto prober = NewSocketProber();
  core::HealthCheck http{
      .type = core::HealthCheck::Type::kHttp, .http_path = "/healthz", .timeout = absl::Seconds(5)};
  {
    Listener ok("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    EXPECT_TRUE(prober->Probe("127.0.0.1", ok.port(), http).ok());
  }
  {
    Listener bad("HTTP/1.1 503 Service Unavailable\r\n\r\n");
    absl::Status s = prober->Probe("127.0.0.1", bad.port(), http);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("503"), std::string::npos) << s;
  }
  {
    Listener silent("");
    core::HealthCheck tcp{.type = core::HealthCheck::Type::kTcp, .timeout = absl::Seconds(5)};
    EXPECT_TRUE(prober->Probe("127.0.0.1", silent.port(), tcp).ok());
  }
  int closed_port = 0;
  {
    Listener gone("");
    closed_port = gone.port();
    core::HealthCheck tcp{.type = core::HealthCheck::Type::kTcp, .timeout = absl::Seconds(5)};
    ASSERT_TRUE(prober->Probe("127.0.0.1", gone.port(), tcp).ok());
  }
  EXPECT_FALSE(prober->Probe("127.0.0.1", closed_port, http).ok());
}

}  // namespace
}  // namespace berth::control

namespace berth::control {
namespace {

core::ServiceSpec WarmSpec(int replicas) {
  core::Json j = {{"name", "web"},
                  {"replicas", replicas},
                  {"port", 8080},
                  {"warm_start", "snapshot"},
                  {"template",
                   {{"kind", "vm"},
                    {"image", "tiny-vm"},
                    {"command", {"/bin/server"}},
                    {"resources", {{"cpu", "1"}, {"memory", "256Mi"}}}}},
                  {"health", {{"http", "/healthz"}, {"interval", "2s"}, {"timeout", "1s"}}}};
  auto spec = core::DecodeServiceSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

TEST_F(ServiceControllerTest, AWarmStartSavesTheFirstReadyReplicaOncePerRevision) {
  core::HostInventory vm_host = Inventory();
  vm_host.drivers = {"vm"};
  ASSERT_TRUE(cp_.RegisterHost("h3", vm_host).ok());
  std::vector<std::pair<std::string, std::string>> saves;  // workload, key
  bool fail = true;
  ServiceController warm(
      &cp_, ServiceControllerOptions{
                .clock = &clock_,
                .prober = &prober_,
                .endpoints = &endpoints_,
                .port_min = 30000,
                .port_max = 30009,
                .first_port_offset = 0,
                .save_warm_state = [&](const std::string& workload,
                                       const std::string& key) -> absl::StatusOr<int64_t> {
                  saves.emplace_back(workload, key);
                  if (fail) return absl::UnavailableError("the agent is busy");
                  return int64_t{64} << 20;
                }});
  ASSERT_TRUE(warm.Create(WarmSpec(1)).ok());
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  // Nothing to resume from yet: the first replica boots.
  EXPECT_FALSE(cp_.GetWorkload("web-0")->spec.labels.contains("berth.warm-state"));
  RunAll();
  EXPECT_EQ(cp_.GetWorkload("web-0")->status.host, "h3");
  EXPECT_TRUE(saves.empty());  // not ready before a probe passed

  // Ready: its state is saved. A failure is said and tried again after 30 s, not every pass.
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  ASSERT_EQ(saves.size(), 1u);
  EXPECT_EQ(saves[0], (std::pair<std::string, std::string>{"web-0", "web.r1"}));
  core::Service s = *warm.Get("web");
  ASSERT_TRUE(s.status.warm.has_value());
  EXPECT_EQ(s.status.warm->revision, 0);
  EXPECT_NE(s.status.warm->error.find("saving replica web-0 on host h3: the agent is busy"),
            std::string::npos)
      << s.status.warm->error;
  EXPECT_TRUE(cp_.WarmStates().empty()) << "a failed save holds nothing";
  clock_.Advance(absl::Seconds(20));
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  EXPECT_EQ(saves.size(), 1u);
  fail = false;
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  ASSERT_EQ(saves.size(), 2u);
  s = *warm.Get("web");
  ASSERT_TRUE(s.status.warm.has_value());
  EXPECT_EQ(s.status.warm->revision, 1);
  EXPECT_EQ(s.status.warm->key, "web.r1");
  EXPECT_EQ(s.status.warm->host, "h3");
  EXPECT_EQ(s.status.warm->replica, "web-0");
  EXPECT_EQ(s.status.warm->bytes, int64_t{64} << 20);
  EXPECT_EQ(s.status.warm->taken_at, clock_.Now());
  // The host holds it from now on, before its agent's next heartbeat says so: replicas made at
  // once are placed there, or copy it from there.
  EXPECT_EQ(cp_.WarmStates(),
            (std::map<std::string, std::set<std::string>, std::less<>>{{"h3", {"web.r1"}}}));
  const std::vector<std::string> types = EventTypes();
  EXPECT_NE(std::find(types.begin(), types.end(), "warm-state-failed"), types.end());
  EXPECT_NE(std::find(types.begin(), types.end(), "warm-state-saved"), types.end());

  // Later replicas carry the key; the saved revision is not saved again.
  ASSERT_TRUE(warm.Scale("web", 2).ok());
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  auto second = cp_.GetWorkload("web-1");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->spec.labels.at("berth.warm-state"), "web.r1");
  EXPECT_EQ(warm.Get("web")->status.warm->restores, 1);
  RunAll();
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  EXPECT_EQ(saves.size(), 2u);

  // A new revision boots until one of its replicas is ready, and that one is saved.
  ASSERT_TRUE(warm.Update(NewTemplate(WarmSpec(2))).ok());
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  auto third = cp_.GetWorkload("web-2");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->spec.labels.at("berth.revision"), "2");
  EXPECT_FALSE(third->spec.labels.contains("berth.warm-state"));
  RunAll();
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  ASSERT_EQ(saves.size(), 3u);
  EXPECT_EQ(saves[2], (std::pair<std::string, std::string>{"web-2", "web.r2"}));
  // The rollout goes on in the same pass: the next replica of revision 2 resumes from it.
  s = *warm.Get("web");
  EXPECT_EQ(s.status.warm->key, "web.r2");
  EXPECT_TRUE(s.status.warm->error.empty());
  auto fourth = cp_.GetWorkload("web-3");
  ASSERT_TRUE(fourth.ok()) << fourth.status();
  EXPECT_EQ(fourth->spec.labels.at("berth.warm-state"), "web.r2");
  EXPECT_EQ(s.status.warm->restores, 1);
}

TEST_F(ServiceControllerTest, AWarmStateIsUnwantedOnceNoRevisionOfItsServiceCanUseIt) {
  core::HostInventory vm_host = Inventory();
  vm_host.drivers = {"vm"};
  ASSERT_TRUE(cp_.RegisterHost("h3", vm_host).ok());
  auto unwanted = [&](const std::vector<std::string>& keys) {
    absl::StatusOr<std::vector<std::string>> u = UnwantedWarmStates(cp_.store(), keys);
    EXPECT_TRUE(u.ok()) << u.status();
    return u.ok() ? *u : std::vector<std::string>{"error"};
  };
  // What a host holding the state would be told while the save has ended there and the
  // service's status does not say so yet.
  std::vector<std::vector<std::string>> while_saving;
  ServiceController warm(
      &cp_, ServiceControllerOptions{
                .clock = &clock_,
                .prober = &prober_,
                .endpoints = &endpoints_,
                .port_min = 30000,
                .port_max = 30009,
                .first_port_offset = 0,
                .save_warm_state = [&](const std::string&,
                                       const std::string& key) -> absl::StatusOr<int64_t> {
                  while_saving.push_back(unwanted({key}));
                  return int64_t{64} << 20;
                }});
  ASSERT_TRUE(warm.Create(WarmSpec(1)).ok());
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  RunAll();
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  ASSERT_EQ(while_saving, (std::vector<std::vector<std::string>>{{}}));
  ASSERT_EQ(warm.Get("web")->status.warm->key, "web.r1");
  // Of another revision, or of a service that does not exist: unwanted.
  EXPECT_EQ(unwanted({"api.r1", "web.r0", "web.r1"}),
            (std::vector<std::string>{"api.r1", "web.r0"}));

  // A rollout: the state saved stays wanted until one of the new revision replaces it.
  ASSERT_TRUE(warm.Update(NewTemplate(WarmSpec(1))).ok());
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  EXPECT_TRUE(unwanted({"web.r1", "web.r2"}).empty());
  RunAll();
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  ASSERT_EQ(while_saving.size(), 2u);
  EXPECT_TRUE(while_saving[1].empty());
  ASSERT_EQ(warm.Get("web")->status.warm->key, "web.r2");
  EXPECT_EQ(unwanted({"web.r1", "web.r2"}), std::vector<std::string>{"web.r1"});

  // Deleted: none of its states is wanted.
  ASSERT_TRUE(warm.Delete("web").ok());
  EXPECT_TRUE(unwanted({"web.r2"}).empty());  // while its replicas are being deleted
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  for (const auto& w : Replicas()) {
    ASSERT_TRUE(
        cp_.ReportStatus(w.status.host, w.spec.name,
                         {.generation = w.status.generation, .state = WorkloadState::kStopped})
            .ok());
  }
  ASSERT_TRUE(warm.ReconcileOnce().ok());
  ASSERT_EQ(warm.Get("web").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(unwanted({"web.r2"}), std::vector<std::string>{"web.r2"});
}

TEST_F(ServiceControllerTest, AServerThatCannotSaveStatesSaysSoAndBootsEveryReplica) {
  core::HostInventory vm_host = Inventory();
  vm_host.drivers = {"vm"};
  ASSERT_TRUE(cp_.RegisterHost("h3", vm_host).ok());
  ASSERT_TRUE(svc_.Create(WarmSpec(1)).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  core::Service s = *svc_.Get("web");
  ASSERT_TRUE(s.status.warm.has_value());
  EXPECT_NE(s.status.warm->error.find("cannot save replicas' state"), std::string::npos);
  ASSERT_TRUE(svc_.Scale("web", 2).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  EXPECT_FALSE(cp_.GetWorkload("web-1")->spec.labels.contains("berth.warm-state"));
}

TEST_F(ServiceControllerTest, CpuAutoscalingFollowsTheReplicasReportedUsage) {
  core::ServiceSpec spec = WithEndpoint(Spec(2, /*health=*/false), 18080);
  spec.autoscale = core::AutoscaleSpec{.min = 1,
                                       .max = 6,
                                       .metric = core::AutoscaleSpec::Metric::kCpu,
                                       .target = 0.5,
                                       .stable_window = absl::Seconds(6),
                                       .panic_window = absl::Seconds(6)};
  ASSERT_TRUE(svc_.Create(spec).ok());
  ASSERT_TRUE(svc_.ReconcileOnce().ok());
  RunAll();
  // Each replica requested 500m; the agents report each using 450m: 0.9 of its CPU, 1.8 in all,
  // which at 0.5 per replica wants 4.
  auto report = [&](int64_t milli) {
    std::map<std::string, core::HostUsage> by_host;
    for (const auto& w : Replicas()) {
      if (w.status.state != WorkloadState::kRunning) continue;
      by_host[w.status.host].workloads.push_back(
          {.name = w.spec.name, .cpu = core::MilliCpu(milli), .memory = core::MemoryMiB(10)});
    }
    for (const auto& [host, usage] : by_host) ASSERT_TRUE(cp_.Heartbeat(host, usage).ok());
  };
  report(450);
  for (int i = 0; i < 8; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(svc_.ReconcileOnce().ok());
  }
  core::Service s = *svc_.Get("web");
  ASSERT_TRUE(s.status.autoscale.has_value());
  EXPECT_NEAR(s.status.autoscale->stable_value, 1.8, 1e-6);
  EXPECT_EQ(s.status.autoscale->desired, 4) << s.status.autoscale->decision;
  EXPECT_EQ(Replicas().size(), 4u);
  // Idle replicas give the room back (no scale-down delay here).
  RunAll();
  report(20);
  for (int i = 0; i < 8; ++i) {
    clock_.Advance(absl::Seconds(1));
    ASSERT_TRUE(svc_.ReconcileOnce().ok());
  }
  s = *svc_.Get("web");
  EXPECT_EQ(s.status.autoscale->desired, 1) << s.status.autoscale->decision;
}

}  // namespace
}  // namespace berth::control
