// Gang placement in the control plane's scheduling pass: the members of a gang are placed all at
// once or none, only once every member exists, with the reason while they wait, and are told
// their rendezvous (MASTER_ADDR, LOCAL_RANK) when placed.
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "control/control_plane.h"
#include "core/job.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::Cat;
using core::WorkloadState;

core::HostInventory Inventory(int cpus, std::string address = "") {
  core::HostInventory inv;
  inv.capacity.cpu = core::MilliCpu(cpus * 1000);
  inv.capacity.memory = *core::ParseMemory("64Gi");
  inv.capacity.disk = core::DiskMiB(10240);
  inv.address = std::move(address);
  return inv;
}

core::WorkloadSpec Member(const std::string& gang, int index, int size, int cpus) {
  core::WorkloadSpec w;
  w.name = Cat(gang, "-", index);
  w.command = {"/bin/train"};
  w.resources.cpu = core::MilliCpu(cpus * 1000);
  w.resources.memory = *core::ParseMemory("64Mi");
  w.labels[std::string(core::kGangLabel)] = gang;
  w.labels[std::string(core::kGangSizeLabel)] = Cat(size);
  w.labels[std::string(core::kTaskLabel)] = Cat(index);
  return w;
}

class GangPlacementTest : public ::testing::Test {
 protected:
  GangPlacementTest()
      : store_(state::StoreOptions{.clock = &clock_}),
        cp_(&store_, ControlPlaneOptions{.clock = &clock_, .policy = "binpack"}) {}

  std::map<std::string, core::Workload> All() {
    std::map<std::string, core::Workload> out;
    auto all = cp_.ListWorkloads();
    EXPECT_TRUE(all.ok()) << all.status();
    if (all.ok()) {
      for (auto& w : *all) out[w.spec.name] = w;
    }
    return out;
  }
  int Placed(const std::string& prefix) {
    int n = 0;
    for (const auto& [name, w] : All()) {
      if (name.rfind(prefix, 0) == 0 && w.status.state == WorkloadState::kScheduled) ++n;
    }
    return n;
  }

  core::ManualClock clock_;
  state::MemoryStore store_;
  ControlPlane cp_;
};

TEST_F(GangPlacementTest, WaitsUntilEveryMemberExists) {
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory(8)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(cp_.CreateWorkload(Member("g", i, 4, 1)).ok());
  ASSERT_TRUE(cp_.ScheduleOnce().ok());
  EXPECT_EQ(Placed("g-"), 0);
  EXPECT_EQ(All().at("g-0").status.explanation, "gang g: waiting for its members: 3 of 4 exist");
  ASSERT_TRUE(cp_.CreateWorkload(Member("g", 3, 4, 1)).ok());
  ASSERT_TRUE(cp_.ScheduleOnce().ok());
  EXPECT_EQ(Placed("g-"), 4);
  // On one host, the rendezvous is loopback; each member has its own rank there.
  std::set<std::string> ranks;
  for (const auto& [name, w] : All()) {
    EXPECT_EQ(w.spec.env.at("MASTER_ADDR"), "127.0.0.1");
    ranks.insert(w.spec.env.at("LOCAL_RANK"));
    EXPECT_TRUE(w.status.explanation.empty());
  }
  EXPECT_EQ(ranks.size(), 4u);
}

TEST_F(GangPlacementTest, AGangThatDoesNotFitIsNotPlacedAtAllAndOthersStillAre) {
  // Two hosts of 8 CPUs: each member (5 CPUs) fits somewhere alone, the gang of 4 does not.
  ASSERT_TRUE(cp_.RegisterHost("h1", Inventory(8, "10.0.0.1")).ok());
  ASSERT_TRUE(cp_.RegisterHost("h2", Inventory(8, "10.0.0.2")).ok());
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cp_.CreateWorkload(Member("big", i, 4, 5)).ok());
  core::WorkloadSpec solo;
  solo.name = "solo";
  solo.command = {"/bin/serve"};
  solo.resources.cpu = core::MilliCpu(2000);
  clock_.Advance(absl::Seconds(1));  // younger than the gang: planned after it
  ASSERT_TRUE(cp_.CreateWorkload(solo).ok());
  ASSERT_TRUE(cp_.ScheduleOnce().ok());
  EXPECT_EQ(Placed("big-"), 0);
  EXPECT_EQ(All().at("solo").status.state, WorkloadState::kScheduled);
  const std::string why = All().at("big-2").status.explanation;
  EXPECT_NE(why.find("gang big: its 4 waiting members are placed all at once or not at all"),
            std::string::npos)
      << why;
  EXPECT_NE(why.find("fits no host: cpu"), std::string::npos) << why;
  // Room on two more hosts: one member each, and task 0's host is the rendezvous by address.
  ASSERT_TRUE(cp_.RegisterHost("h3", Inventory(8, "10.0.0.3")).ok());
  ASSERT_TRUE(cp_.RegisterHost("h4", Inventory(8, "10.0.0.4")).ok());
  ASSERT_TRUE(cp_.ScheduleOnce().ok());
  ASSERT_EQ(Placed("big-"), 4);
  auto all = All();
  const std::string host0 = all.at("big-0").status.host;
  const std::string addr0 = Cat("10.0.0.", host0.substr(1));
  std::set<std::string> hosts;
  for (int i = 0; i < 4; ++i) {
    const core::Workload& w = all.at(Cat("big-", i));
    hosts.insert(w.status.host);
    EXPECT_EQ(w.spec.env.at("MASTER_ADDR"), addr0);
    EXPECT_EQ(w.spec.env.at("LOCAL_RANK"), "0");
  }
  EXPECT_EQ(hosts.size(), 4u);
}

// On random clusters with too little room for some gangs: after a pass, every gang is placed
// whole or not at all, and no host holds more than it has.
TEST_F(GangPlacementTest, RandomGangsArePlacedAllOrNone) {
  std::mt19937 rng(20261202);
  int whole = 0, none = 0;  // gangs placed, and left out, over every round
  for (int round = 0; round < 12; ++round) {
    core::ManualClock clock;
    state::MemoryStore store(state::StoreOptions{.clock = &clock});
    ControlPlane cp(&store, ControlPlaneOptions{.clock = &clock, .policy = "binpack"});
    const int hosts = 1 + static_cast<int>(rng() % 4);
    std::map<std::string, int64_t> capacity;
    for (int h = 0; h < hosts; ++h) {
      const int cpus = 2 + static_cast<int>(rng() % 7);
      ASSERT_TRUE(cp.RegisterHost(Cat("h", h), Inventory(cpus)).ok());
      capacity[Cat("h", h)] = cpus * 1000;
    }
    std::map<std::string, int> sizes;
    for (int g = 0; g < 4; ++g) {
      const std::string gang = Cat("g", g);
      const int size = 1 + static_cast<int>(rng() % 5);
      const int cpus = 1 + static_cast<int>(rng() % 4);
      sizes[gang] = size;
      for (int i = 0; i < size; ++i) {
        ASSERT_TRUE(cp.CreateWorkload(Member(gang, i, size, cpus)).ok());
      }
      clock.Advance(absl::Seconds(1));
    }
    ASSERT_TRUE(cp.ScheduleOnce().ok());
    auto all = cp.ListWorkloads();
    ASSERT_TRUE(all.ok());
    std::map<std::string, int> placed;
    std::map<std::string, int64_t> used;
    for (const auto& w : *all) {
      if (w.status.state != WorkloadState::kScheduled) continue;
      ++placed[w.spec.labels.at(std::string(core::kGangLabel))];
      used[w.status.host] += w.spec.resources.cpu.value();
    }
    for (const auto& [gang, size] : sizes) {
      EXPECT_TRUE(placed[gang] == 0 || placed[gang] == size)
          << "round " << round << ": gang " << gang << " has " << placed[gang] << " of " << size
          << " placed";
      ++(placed[gang] == 0 ? none : whole);
    }
    for (const auto& [host, milli] : used) EXPECT_LE(milli, capacity[host]) << host;
  }
  // The rounds hold both outcomes, so the check above saw gangs that did not fit.
  EXPECT_GT(whole, 0);
  EXPECT_GT(none, 0);
}

}  // namespace
}  // namespace berth::control
