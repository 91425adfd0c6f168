#include "control/fleet_storage.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "control/fake_storage_host.h"
#include "core/disk.h"
#include "core/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::Cat;
using core::Json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

core::HostInventory Inventory(bool shared) {
  core::HostInventory inv;
  inv.capacity.cpu = *core::ParseCpu("8");
  inv.capacity.memory = *core::ParseMemory("8Gi");
  inv.capacity.disk = core::DiskMiB(10240);
  inv.drivers = {"container", "vm"};
  if (shared) inv.labels[std::string(core::kSharedPoolLabel)] = "true";
  return inv;
}

core::WorkloadSpec WithDisks(const std::string& name, const std::vector<std::string>& disks,
                             const char* kind = "vm") {
  Json ds = Json::array();
  for (const auto& d : disks) {
    Json a = {{"disk", d}};
    if (std::string(kind) == "container") a["mount"] = "/mnt/" + d;
    ds.push_back(a);
  }
  Json j = {{"name", name},
            {"kind", kind},
            {"image", "tiny"},
            {"resources", {{"cpu", "100m"}, {"memory", "32Mi"}}},
            {"disks", ds}};
  if (std::string(kind) == "container") j["command"] = {"/bin/sleep", "60"};
  auto spec = core::DecodeWorkloadSpec(j);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// Three hosts, each with a task API; h2 and h3 mount the shared pool. Every host's pools are
// fakes, kept by "HOST/POOL".
class FleetStorageTest : public ::testing::Test {
 protected:
  FleetStorageTest()
      : store_(state::StoreOptions{.clock = &clock_, .lease_tick_interval = absl::ZeroDuration()}),
        cp_(&store_, Options()),
        fleet_(&store_, &clock_, &cp_, [this](const std::string& host, const std::string& pool) {
          std::shared_ptr<FakeStorageHost>& h = hosts_[Cat(host, "/", pool)];
          // The shared pool is one directory, whichever host reaches it.
          if (pool == core::kSharedPool) {
            std::shared_ptr<FakeStorageHost>& shared = hosts_["shared"];
            if (!shared) shared = std::make_shared<FakeStorageHost>();
            h = shared;
          }
          if (!h) h = std::make_shared<FakeStorageHost>();
          via_.push_back(Cat(host, "/", pool));
          return h;
        }) {}
  ControlPlaneOptions Options() {
    ControlPlaneOptions o;
    o.clock = &clock_;
    o.host_ttl = absl::Seconds(10);
    return o;
  }
  void SetUp() override {
    for (const char* h : {"h1", "h2", "h3"}) {
      ASSERT_TRUE(cp_.RegisterHost(h, Inventory(std::string(h) != "h1")).ok());
      ASSERT_TRUE(cp_.Heartbeat(h, std::nullopt,
                                TaskApiEndpoint{.address = "192.0.2.1", .port = 7000, .token = "t"})
                      .ok());
    }
    ASSERT_TRUE(fleet_.Start().ok());
  }
  absl::StatusOr<Json> Create(const std::string& name, DiskPlace place = {},
                              const std::string& format = "qcow2") {
    DiskCreateOptions o;
    o.name = name;
    o.size = "1Gi";
    o.format = format;
    if (format == "raw") o.filesystem = "ext4";
    o.place = std::move(place);
    return fleet_.service().Create(o);
  }
  FakeStorageHost& Pool(const std::string& key) {
    auto& h = hosts_[key];
    if (!h) h = std::make_shared<FakeStorageHost>();
    return *h;
  }
  // Creates and places `spec`, answering the host it went to ("" when pending).
  std::string Place(core::WorkloadSpec spec) {
    auto w = cp_.CreateWorkload(spec);
    EXPECT_TRUE(w.ok()) << w.status();
    EXPECT_TRUE(cp_.ScheduleOnce().ok());
    auto got = cp_.GetWorkload(spec.name);
    EXPECT_TRUE(got.ok());
    return got.ok() ? got->status.host : "";
  }
  void SetPin() {
    cp_.SetReferenceCheck([this](core::WorkloadSpec* spec) { return fleet_.CheckAndPin(spec); });
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
  std::map<std::string, std::shared_ptr<FakeStorageHost>> hosts_;
  std::vector<std::string> via_;
  FleetStorage fleet_;
};

TEST_F(FleetStorageTest, ADiskGoesToTheHostWithFewestOrTheOneNamedAndItsOperationsFollowIt) {
  for (const char* d : {"a", "b", "c", "d"}) ASSERT_TRUE(Create(d).ok()) << d;
  std::map<std::string, std::string> host_of;
  auto disks = fleet_.service().Disks();
  ASSERT_TRUE(disks.ok()) << disks.status();
  for (const auto& d : *disks) host_of[d.name] = d.spec.host;
  EXPECT_EQ(host_of["a"], "h1");
  EXPECT_EQ(host_of["b"], "h2");
  EXPECT_EQ(host_of["c"], "h3");
  EXPECT_EQ(host_of["d"], "h1");
  auto named = Create("e", {.host = "h3"});
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ((*named)["spec"]["host"], "h3");
  EXPECT_FALSE((*named)["spec"].contains("pool"));
  EXPECT_EQ(Pool("h3/default").volumes.count("e"), 1u);
  EXPECT_EQ(Pool("h1/default").volumes.count("e"), 0u);

  // Resize, snapshot, clone and delete reach b's host and no other.
  via_.clear();
  ASSERT_TRUE(fleet_.service().Resize("b", "2Gi").ok());
  ASSERT_TRUE(fleet_.service().Snapshot("b", "s1").ok());
  auto clone = fleet_.service().Clone("b", "s1", "b2");
  ASSERT_TRUE(clone.ok()) << clone.status();
  EXPECT_EQ((*clone)["spec"]["host"], "h2");  // a clone lives beside its source
  ASSERT_TRUE(fleet_.service().Delete("b2").ok());
  for (const std::string& v : via_) EXPECT_EQ(v, "h2/default");
  EXPECT_EQ(Pool("h2/default").CallsOf("Resize"), 1);
  EXPECT_EQ(Pool("h2/default").CallsOf("Clone"), 1);
  EXPECT_EQ(Pool("h2/default").volumes.count("b2"), 0u);
}

TEST_F(FleetStorageTest, APlaceThatCannotBeIsRefusedNamingTheFieldAndChangesNothing) {
  auto unknown = Create("x", {.host = "nosuch"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("host no host named \"nosuch\""));
  auto pool = Create("x", {.pool = "nfs9"});
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pool.status().message(), HasSubstr("pool must be empty"));
  auto unshared = Create("x", {.host = "h1", .pool = "shared"});
  EXPECT_EQ(unshared.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unshared.status().message(), HasSubstr("does not mount the shared pool"));
  // A host that stopped heartbeating makes no disk.
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(cp_.Heartbeat("h1", std::nullopt,
                            TaskApiEndpoint{.address = "192.0.2.1", .port = 7000, .token = "t"})
                  .ok());
  ASSERT_TRUE(cp_.CheckHostsOnce().ok());
  auto down = Create("x", {.host = "h2"});
  EXPECT_EQ(down.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(down.status().message(), HasSubstr("is down"));
  auto none_shared = Create("x", {.pool = "shared"});
  EXPECT_EQ(none_shared.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none_shared.status().message(), HasSubstr("shared pool"));
  EXPECT_TRUE(fleet_.service().Disks()->empty());
  for (const auto& [key, host] : hosts_) EXPECT_TRUE(host->volumes.empty()) << key;
  // And the disk of a down host says so instead of waiting on it.
  auto on_h1 = Create("y");
  ASSERT_TRUE(on_h1.ok()) << on_h1.status();
  EXPECT_EQ((*on_h1)["spec"]["host"], "h1");
}

TEST_F(FleetStorageTest, SharedDisksLiveInOnePoolReachedThroughAHostThatMountsIt) {
  auto s = Create("data", {.pool = "shared"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)["spec"]["pool"], "shared");
  EXPECT_EQ((*s)["spec"]["host"], "h2");  // h1 does not mount it
  EXPECT_EQ(Pool("shared").volumes.count("data"), 1u);
  // Its host down, another that mounts the pool carries on.
  clock_.Advance(absl::Seconds(30));
  for (const char* h : {"h1", "h3"}) {
    ASSERT_TRUE(cp_.Heartbeat(h, std::nullopt,
                              TaskApiEndpoint{.address = "192.0.2.1", .port = 7000, .token = "t"})
                    .ok());
  }
  ASSERT_TRUE(cp_.CheckHostsOnce().ok());
  via_.clear();
  ASSERT_TRUE(fleet_.service().Resize("data", "3Gi").ok());
  EXPECT_THAT(via_, ElementsAre("h3/shared"));
  // The pools: each host's own, and the shared one once.
  auto pools = fleet_.service().Pools();
  ASSERT_TRUE(pools.ok()) << pools.status();
  std::vector<std::string> names;
  for (const auto& p : *pools) names.push_back(p["name"]);
  EXPECT_THAT(names, ElementsAre("h1/default", "h3/default", "shared"));
}

TEST_F(FleetStorageTest, AWorkloadIsPinnedWhereItsDisksAre) {
  SetPin();
  ASSERT_TRUE(Create("local", {.host = "h2"}).ok());
  ASSERT_TRUE(Create("other", {.host = "h3"}).ok());
  ASSERT_TRUE(Create("data", {.pool = "shared"}).ok());
  EXPECT_EQ(Place(WithDisks("vm1", {"local"})), "h2");
  auto w = cp_.GetWorkload("vm1");
  ASSERT_EQ(w->spec.constraints.size(), 1u);
  EXPECT_EQ(w->spec.constraints[0].label, core::kHostNameLabel);
  EXPECT_THAT(w->spec.constraints[0].values, ElementsAre("h2"));
  // A shared disk goes to a host that mounts the pool: never h1.
  ASSERT_TRUE(cp_.CordonHost("h2", true).ok());
  EXPECT_EQ(Place(WithDisks("vm2", {"data"})), "h3");
  ASSERT_TRUE(cp_.CordonHost("h3", true).ok());
  EXPECT_EQ(Place(WithDisks("vm3", {"data"})), "");
  EXPECT_THAT(cp_.GetWorkload("vm3")->status.explanation,
              HasSubstr("host labels: 1 host (its constraints: berth.shared-pool = true)"));
  // `berth workload explain` names the label too.
  auto explained = cp_.Explain("vm3");
  ASSERT_TRUE(explained.ok()) << explained.status();
  EXPECT_THAT((*explained)["explanation"].get<std::string>(),
              HasSubstr("host_selector berth.shared-pool=true does not match; 1 of 3 hosts"));

  // Disks on two hosts cannot be held by one workload.
  auto split = cp_.CreateWorkload(WithDisks("vm4", {"local", "other"}));
  EXPECT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(split.status().message(), HasSubstr("disks[1].disk"));
  EXPECT_THAT(split.status().message(), HasSubstr("must share a host"));
  // A container mounts only a raw disk with a filesystem; a disk must exist.
  auto qcow = cp_.CreateWorkload(WithDisks("c1", {"local"}, "container"));
  EXPECT_THAT(qcow.status().message(), HasSubstr("disks[0].disk"));
  auto missing = cp_.CreateWorkload(WithDisks("vm5", {"nosuch"}));
  EXPECT_THAT(missing.status().message(), HasSubstr("does not exist"));
  EXPECT_EQ(cp_.GetWorkload("vm4").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(FleetStorageTest, AnAgentGetsItsWorkloadsDisksAndTheWorkloadHoldsThem) {
  SetPin();
  ASSERT_TRUE(Create("fs", {.host = "h2"}, "raw").ok());
  core::WorkloadSpec c = WithDisks("c1", {"fs"}, "container");
  c.disks[0].read_only = true;
  EXPECT_EQ(Place(c), "h2");
  auto wrong = fleet_.AttachFor("h1", "c1");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(wrong.status().message(), HasSubstr("not placed on host \"h1\""));
  auto got = fleet_.AttachFor("h2", "c1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(HostDisk{.name = "fs",
                                         .pool = "",
                                         .format = "raw",
                                         .filesystem = "ext4",
                                         .read_only = true,
                                         .mount = "/mnt/fs"}));
  EXPECT_EQ(fleet_.service().GetDisk("fs")->status.attached_to, "c1");
  // Asking again (an agent restarted) changes nothing.
  EXPECT_TRUE(fleet_.AttachFor("h2", "c1").ok());
  // One holder at a time: a second workload on the same disk is refused at its start.
  EXPECT_EQ(Place(WithDisks("c2", {"fs"}, "container")), "h2");
  auto second = fleet_.AttachFor("h2", "c2");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("disks[0].disk"));
  EXPECT_THAT(second.status().message(), HasSubstr("attached_to is \"c1\""));

  // While its task may run, the disk stays with it.
  StatusReport running{.generation = 1, .state = core::WorkloadState::kRunning};
  ASSERT_TRUE(cp_.ReportStatus("h2", "c1", running).ok());
  auto detach = fleet_.service().Detach("fs");
  EXPECT_EQ(detach.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(detach.status().message(), HasSubstr("berth workload stop c1"));
  auto snap = fleet_.service().Snapshot("fs", "s1");
  EXPECT_EQ(snap.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(fleet_.service().GetDisk("fs")->status.attached_to, "c1");
  StatusReport stopped{.generation = 1, .state = core::WorkloadState::kStopped};
  ASSERT_TRUE(cp_.ReportStatus("h2", "c1", stopped).ok());
  EXPECT_TRUE(fleet_.service().Snapshot("fs", "s1").ok());

  // Deleting the workload gives the disk back.
  fleet_.Release("c1");
  EXPECT_EQ(fleet_.service().GetDisk("fs")->status.attached_to, "");
}

// With its hosts' running tasks within reach, a running VM gets a disk plugged in on its host.
TEST(FleetStorageLiveTest, ARunningVmsDisksArePluggedPulledAndSnapshottedOnItsHost) {
  core::ManualClock clock;
  state::MemoryStore store(state::StoreOptions{.clock = &clock});
  ControlPlane cp(&store, ControlPlaneOptions{.clock = &clock});
  std::vector<std::string> calls;
  absl::Status answer;
  auto fake = std::make_shared<FakeStorageHost>();
  FleetStorage fleet(
      &store, &clock, &cp, [fake](const std::string&, const std::string&) { return fake; },
      [&](const std::string& host) {
        return TaskDisks{
            .plug =
                [&, host](std::string_view w, std::string_view d, std::string_view pool) {
                  calls.push_back(Cat("plug ", host, " ", w, " ", d, " ", pool));
                  return answer;
                },
            .unplug =
                [&, host](std::string_view w, std::string_view d, std::string_view pool) {
                  calls.push_back(Cat("unplug ", host, " ", w, " ", d, " ", pool));
                  return answer;
                },
            .snapshot =
                [&, host](std::string_view w, std::string_view d, std::string_view pool,
                          std::string_view s) {
                  calls.push_back(Cat("snapshot ", host, " ", w, " ", d, " ", pool, " ", s));
                  return answer;
                }};
      });
  for (const char* h : {"h1", "h2"}) {
    ASSERT_TRUE(cp.RegisterHost(h, Inventory(true)).ok());
    ASSERT_TRUE(cp.Heartbeat(h, std::nullopt,
                             TaskApiEndpoint{.address = "192.0.2.1", .port = 7000, .token = "t"})
                    .ok());
  }
  cp.SetReferenceCheck([&](core::WorkloadSpec* spec) { return fleet.CheckAndPin(spec); });
  auto create = [&](const std::string& name, DiskPlace place) {
    DiskCreateOptions o{.name = name, .size = "1Gi", .place = std::move(place)};
    ASSERT_TRUE(fleet.service().Create(o).ok()) << name;
  };
  create("boot", {.host = "h2"});
  create("more", {.pool = "shared"});
  create("far", {.host = "h1"});
  ASSERT_TRUE(cp.CreateWorkload(WithDisks("vm1", {"boot"})).ok());
  ASSERT_TRUE(cp.ScheduleOnce().ok());
  ASSERT_EQ(cp.GetWorkload("vm1")->status.host, "h2");
  ASSERT_TRUE(fleet.AttachFor("h2", "vm1").ok());  // its agent starts it with its boot disk
  // Not running yet: recorded only, seen at its start.
  ASSERT_TRUE(fleet.service().Attach("more", "vm1").ok());
  EXPECT_TRUE(calls.empty());
  ASSERT_TRUE(fleet.service().Detach("more").ok());
  StatusReport running{.generation = 1, .state = core::WorkloadState::kRunning};
  ASSERT_TRUE(cp.ReportStatus("h2", "vm1", running).ok());
  ASSERT_TRUE(fleet.service().Attach("more", "vm1").ok());
  ASSERT_TRUE(fleet.service().Snapshot("more", "s1").ok());
  ASSERT_TRUE(fleet.service().Detach("more").ok());
  EXPECT_THAT(calls, ElementsAre("plug h2 vm1 more shared", "snapshot h2 vm1 more shared s1",
                                 "unplug h2 vm1 more shared"));
  // A disk of another host's pool cannot reach it.
  auto far = fleet.service().Attach("far", "vm1");
  EXPECT_EQ(far.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(far.status().message(), HasSubstr("host \"h1\"'s pool"));
  EXPECT_EQ(fleet.service().GetDisk("far")->status.attached_to, "");
  // A container's task keeps what it mounted: its driver cannot pull it out.
  answer = absl::UnimplementedError("the container driver takes disks only at start");
  auto held = fleet.service().Detach("boot");
  EXPECT_EQ(held.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(fleet.service().GetDisk("boot")->status.attached_to, "vm1");
}

TEST_F(FleetStorageTest, StartReleasesTheDisksOfWorkloadsDeletedWhileTheServerWasDown) {
  SetPin();
  ASSERT_TRUE(Create("d1", {.host = "h1"}).ok());
  EXPECT_EQ(Place(WithDisks("vm1", {"d1"})), "h1");
  ASSERT_TRUE(fleet_.AttachFor("h1", "vm1").ok());
  ASSERT_TRUE(store_.Delete(WorkloadKey("vm1")).ok());
  EXPECT_EQ(fleet_.service().GetDisk("d1")->status.attached_to, "vm1");
  ASSERT_TRUE(fleet_.Start().ok());
  EXPECT_EQ(fleet_.service().GetDisk("d1")->status.attached_to, "");
}

}  // namespace
}  // namespace berth::control
