// An upgraded server reads the store an earlier one wrote: the objects below are in the exact
// shape servers stored before disks, networks, groups and forwards were typed.
#include "control/object_store.h"

#include "control/network_service.h"
#include "control/storage_service.h"
#include "gtest/gtest.h"
#include "state/memory_store.h"

namespace berth::control {
namespace {

using core::Json;

constexpr char kOldDisk[] = R"({"created_at":"2026-01-02T03:04:05.000Z","kind":"disk",
  "name":"data","spec":{"filesystem":"ext4","format":"qcow2","from_image":"","size":"1Gi"},
  "status":{"allocated_bytes":196608,"attached_to":"","backing_file":"",
  "path":"/var/lib/berth/pool/data.qcow2","size":"1Gi","size_mib":1024,"snapshots":["s1"],
  "state":"ready"},"updated_at":"2026-01-02T03:04:05.000Z"})";
constexpr char kOldNetwork[] = R"({"created_at":"2026-01-02T03:04:05.000Z","kind":"network",
  "name":"lan","spec":{"gateway":"10.77.0.1","nat":true,"subnet":"10.77.0.0/24"},
  "status":{"bridge":"brb-lan","state":"ready"},"updated_at":"2026-01-02T03:04:05.000Z"})";
constexpr char kOldGroup[] = R"({"created_at":"2026-01-02T03:04:05.000Z","kind":"secgroup",
  "name":"web","spec":{"rules":[{"from":"10.0.0.0/8","from_group":"","id":"r1","port_from":80,
  "port_to":80,"ports":"80","protocol":"tcp"}]},"status":{"next_rule":2},
  "updated_at":"2026-01-02T03:04:05.000Z"})";
constexpr char kOldForward[] = R"({"created_at":"2026-01-02T03:04:05.000Z","id":"tcp-8080",
  "kind":"portforward","spec":{"host_port":8080,"network":"lan","port":80,"protocol":"tcp",
  "target_address":"10.77.0.2","workload":"web-1"},"updated_at":"2026-01-02T03:04:05.000Z"})";

class StoredShapesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(store_.Put("/disks/data", Json::parse(kOldDisk).dump()).ok());
    ASSERT_TRUE(store_.Put("/networks/lan", Json::parse(kOldNetwork).dump()).ok());
    ASSERT_TRUE(store_.Put("/secgroups/web", Json::parse(kOldGroup).dump()).ok());
    ASSERT_TRUE(store_.Put("/portforwards/tcp-8080", Json::parse(kOldForward).dump()).ok());
  }
  Json Stored(const std::string& key) { return Json::parse(store_.Get(key).value().kv->value); }
  int64_t ModRevision(const std::string& key) { return store_.Get(key).value().kv->mod_revision; }

  core::ManualClock clock_{absl::FromUnixSeconds(1'800'000'000)};
  state::MemoryStore store_{
      state::StoreOptions{.clock = &clock_, .lease_tick_interval = absl::ZeroDuration()}};
};

TEST_F(StoredShapesTest, AnEarlierDiskLoadsAndKeepsItsShapeWhenWritten) {
  // Reads and this write never reach the host.
  StorageService disks(&store_, &clock_, static_cast<StorageHost*>(nullptr));
  auto got = disks.Get("data");
  ASSERT_TRUE(got.ok()) << got.status();
  Json expected = Json::parse(kOldDisk);
  expected["revision"] = ModRevision("/disks/data");
  EXPECT_EQ(*got, expected);
  auto listed = disks.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0], expected);

  ASSERT_TRUE(store_.Put("/workloads/vm-1", R"({"name":"vm-1"})").ok());
  auto attached = disks.Attach("data", "vm-1");
  ASSERT_TRUE(attached.ok()) << attached.status();
  Json after = Json::parse(kOldDisk);
  after["status"]["attached_to"] = "vm-1";
  after["updated_at"] = "2027-01-15T08:00:00.000Z";
  EXPECT_EQ(Stored("/disks/data"), after);
}

TEST_F(StoredShapesTest, EarlierNetworksGroupsAndForwardsLoad) {
  // Reads never reach the host.
  NetworkService nets(&store_, &clock_, nullptr);
  auto networks = nets.ListNetworks();
  ASSERT_TRUE(networks.ok()) << networks.status();
  ASSERT_EQ(networks->size(), 1u);
  Json network = Json::parse(kOldNetwork);
  network["revision"] = ModRevision("/networks/lan");
  EXPECT_EQ((*networks)[0], network);

  auto group = nets.GetGroup("web");
  ASSERT_TRUE(group.ok()) << group.status();
  Json expected_group = Json::parse(kOldGroup);
  expected_group["revision"] = ModRevision("/secgroups/web");
  EXPECT_EQ(*group, expected_group);

  auto forwards = nets.ListPortForwards();
  ASSERT_TRUE(forwards.ok()) << forwards.status();
  ASSERT_EQ(forwards->size(), 1u);
  Json forward = Json::parse(kOldForward);
  forward["revision"] = ModRevision("/portforwards/tcp-8080");
  EXPECT_EQ((*forwards)[0], forward);
}

TEST_F(StoredShapesTest, ADamagedEntryIsSkippedInListsAndNamedOnGet) {
  ASSERT_TRUE(store_
                  .Put("/disks/broken", R"({"kind":"disk","name":"broken",
      "status":{"size_mib":"lots"}})")
                  .ok());
  StorageService disks(&store_, &clock_, static_cast<StorageHost*>(nullptr));
  auto listed = disks.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0]["name"], "data");
  auto broken = disks.Get("broken");
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(broken.status().message().find("status.size_mib"), std::string::npos)
      << broken.status();
}

}  // namespace
}  // namespace berth::control
