#include "core/host.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::core {
namespace {

using ::testing::HasSubstr;

Json Inventory() { return {{"cpu", "4"}, {"memory", "8Gi"}}; }

TEST(HostInventoryTest, FingerprintRoundTrips) {
  Json j = Inventory();
  j["fingerprint"] = {{"vm_accel", "tcg"}, {"vm_accel_reason", "cannot open /dev/kvm"}};
  auto inv = DecodeHostInventory("h1", j);
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->fingerprint.at("vm_accel"), "tcg");
  auto again = DecodeHostInventory("h1", EncodeHostInventory(*inv));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->fingerprint, inv->fingerprint);
}

TEST(HostInventoryTest, FingerprintIsOptional) {
  auto inv = DecodeHostInventory("h1", Inventory());
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_TRUE(inv->fingerprint.empty());
}

TEST(HostInventoryTest, BadFingerprintsNameTheField) {
  Json j = Inventory();
  j["fingerprint"] = "kvm";
  auto s = DecodeHostInventory("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("inventory.fingerprint"));

  j["fingerprint"] = {{"vm_accel", 1}};
  s = DecodeHostInventory("h1", j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("inventory.fingerprint.vm_accel"));

  j["fingerprint"] = {{"vm_accel", std::string(2000, 'x')}};
  s = DecodeHostInventory("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("at most 1024 bytes"));

  Json many = Json::object();
  for (int i = 0; i < 65; ++i) many["k" + std::to_string(i)] = "v";
  j["fingerprint"] = many;
  s = DecodeHostInventory("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("at most 64"));
}

TEST(HostTest, CordonAndDrainRoundTripAndOlderObjectsReadAsUncordoned) {
  Host h;
  h.name = "h1";
  h.cordoned = true;
  h.draining = true;
  h.drain_current = "web";
  h.drain_moved = 2;
  auto back = DecodeHost(EncodeHost(h));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->cordoned);
  EXPECT_TRUE(back->draining);
  EXPECT_EQ(back->drain_current, "web");
  EXPECT_EQ(back->drain_moved, 2);
  Json old = EncodeHost(Host{.name = "h2"});
  old.erase("cordoned");
  auto plain = DecodeHost(old);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->cordoned);
  EXPECT_FALSE(plain->draining);
  EXPECT_FALSE(old.contains("drain"));
}

TEST(HostInventoryTest, DevicesOfAClassRoundTripAndBadOnesNameTheField) {
  Json j = Inventory();
  j["devices"] = {{{"class", "xilinx.com/fpga"}, {"id", "u250-0"}},
                  {{"class", "xilinx.com/fpga"},
                   {"id", "u250-1"},
                   {"healthy", false},
                   {"health", "device node /dev/xclmgmt1: No such file or directory"}}};
  auto inv = DecodeHostInventory("h1", j);
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->devices.size(), 2u);
  EXPECT_TRUE(inv->devices[0].healthy);
  EXPECT_FALSE(inv->devices[1].healthy);
  auto again = DecodeHostInventory("h1", EncodeHostInventory(*inv));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->devices, inv->devices);

  j["devices"] = {{{"class", "fpga"}, {"id", "u250-0"}}};
  EXPECT_THAT(std::string(DecodeHostInventory("h1", j).status().message()),
              HasSubstr("inventory.devices[0].class"));
  j["devices"] = {{{"class", "x.com/f"}, {"id", "a"}}, {{"class", "x.com/f"}, {"id", "a"}}};
  EXPECT_THAT(std::string(DecodeHostInventory("h1", j).status().message()),
              HasSubstr("inventory.devices[1].id"));
  j["devices"] = {{{"class", "x.com/f"}, {"id", "a b"}}};
  EXPECT_THAT(std::string(DecodeHostInventory("h1", j).status().message()),
              HasSubstr("inventory.devices[0].id"));
}

TEST(HostAllocationTest, RoundTrips) {
  HostAllocation a;
  a.resources = Resources{MilliCpu(1500), MemoryMiB(2048), DiskMiB(0)};
  a.gpu_milli = 1500;
  a.workloads = 2;
  a.gpus = {{.index = 0, .milli = 1000, .memory_mib = 0, .holders = {"train"}},
            {.index = 1, .milli = 500, .memory_mib = 10240, .holders = {"infer"}}};
  a.devices = {{.cls = "xilinx.com/fpga", .id = "u250-0", .holder = "train"},
               {.cls = "xilinx.com/fpga", .id = "u250-1", .holder = ""}};
  auto back = DecodeHostAllocation("h1", EncodeHostAllocation(a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, a);
}

TEST(HostUsageTest, RoundTripsAndBadFieldsAreNamed) {
  HostUsage u;
  u.cpu = MilliCpu(750);
  u.memory = MemoryMiB(3072);
  u.gpus = {{.index = 0, .utilization_percent = 87, .memory_used_mib = 40960}};
  auto back = DecodeHostUsage("h1", EncodeHostUsage(u));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, u);

  Json j = EncodeHostUsage(u);
  j["gpus"][0]["utilization_percent"] = 101;
  auto s = DecodeHostUsage("h1", j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("usage.gpus[0].utilization_percent"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("host \"h1\""));

  j = EncodeHostUsage(u);
  j["cpu"] = "-1";
  s = DecodeHostUsage("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("usage.cpu"));

  j = EncodeHostUsage(u);
  j["load"] = 1;
  EXPECT_FALSE(DecodeHostUsage("h1", j).ok());

  u.workloads = {{.name = "train", .cpu = MilliCpu(800), .memory = MemoryMiB(512)}};
  back = DecodeHostUsage("h1", EncodeHostUsage(u));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, u);
  j = EncodeHostUsage(u);
  j["workloads"][0]["name"] = "../x";
  s = DecodeHostUsage("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("usage.workloads[0].name"));
  j = EncodeHostUsage(u);
  j["workloads"][0]["memory"] = "lots";
  s = DecodeHostUsage("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("usage.workloads[0].memory"));
  // Device memory travels only where a workload holds some; agents that do not send it still
  // decode.
  EXPECT_FALSE(EncodeHostUsage(u)["workloads"][0].contains("gpu_memory"));
  u.workloads[0].gpu_memory = MemoryMiB(30512);
  j = EncodeHostUsage(u);
  EXPECT_EQ(j["workloads"][0]["gpu_memory"], "30512Mi");
  back = DecodeHostUsage("h1", j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, u);
  j["workloads"][0]["gpu_memory"] = "-1Mi";
  s = DecodeHostUsage("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("usage.workloads[0].gpu_memory"));
  // Throughput travels only where the driver counted it; each figure is bounded.
  EXPECT_FALSE(EncodeHostUsage(u)["workloads"][0].contains("disk_read_per_second"));
  u.workloads[0].disk_read_per_second = 1048576;
  u.workloads[0].disk_write_per_second = 0;
  u.workloads[0].net_rx_per_second = 125000;
  u.workloads[0].net_tx_per_second = 2500;
  j = EncodeHostUsage(u);
  EXPECT_EQ(j["workloads"][0]["disk_read_per_second"], 1048576);
  EXPECT_EQ(j["workloads"][0]["disk_write_per_second"], 0);
  EXPECT_EQ(j["workloads"][0]["net_tx_per_second"], 2500);
  back = DecodeHostUsage("h1", j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, u);
  for (const char* key : {"disk_read_per_second", "net_tx_per_second"}) {
    for (Json bad : {Json(-1), Json(int64_t{1} << 51), Json("fast"), Json(1.5)}) {
      j = EncodeHostUsage(u);
      j["workloads"][0][key] = bad;
      s = DecodeHostUsage("h1", j).status();
      EXPECT_THAT(std::string(s.message()), HasSubstr(std::string("usage.workloads[0].") + key))
          << bad.dump();
    }
  }
  // The time of the last checkpoint travels where the agent found one.
  EXPECT_FALSE(EncodeHostUsage(u)["workloads"][0].contains("checkpoint_at"));
  u.workloads[0].checkpoint_at = absl::FromUnixMillis(1'790'000'000'250);
  j = EncodeHostUsage(u);
  EXPECT_EQ(j["workloads"][0]["checkpoint_at"], "2026-09-21T14:13:20.250Z");
  back = DecodeHostUsage("h1", j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, u);
  for (Json bad : {Json("yesterday"), Json(12), Json::object()}) {
    j["workloads"][0]["checkpoint_at"] = bad;
    s = DecodeHostUsage("h1", j).status();
    EXPECT_THAT(std::string(s.message()), HasSubstr("usage.workloads[0].checkpoint_at"))
        << bad.dump();
  }
  j = EncodeHostUsage(u);
  j["workloads"] = Json::array();
  for (size_t i = 0; i <= kMaxUsageWorkloads; ++i) {
    j["workloads"].push_back({{"name", "w"}, {"cpu", "1"}, {"memory", "1Mi"}});
  }
  s = DecodeHostUsage("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("at most 4096"));
  u.workloads.clear();

  j = EncodeHostUsage(u);
  j["gpus"] = Json::array();
  for (size_t i = 0; i <= kMaxUsageGpus; ++i) j["gpus"].push_back({{"index", 0}});
  s = DecodeHostUsage("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("at most 64"));
}

TEST(HostInventoryTest, MigInstancesRoundTripAndBadOnesNameTheField) {
  Json j = Inventory();
  j["gpus"] =
      Json::array({{{"model", "A100-SXM4-80GB"},
                    {"memory", "80Gi"},
                    {"uuid", "GPU-a"},
                    {"mig_enabled", true},
                    {"mig_instances",
                     Json::array({{{"profile", "3g.40gb"}, {"start_slice", 4}, {"uuid", "MIG-b"}},
                                  {{"profile", "1g.10gb"}, {"uuid", "MIG-c"}}})}}});
  auto inv = DecodeHostInventory("h1", j);
  ASSERT_TRUE(inv.ok()) << inv.status();
  ASSERT_EQ(inv->gpus.size(), 1u);
  ASSERT_EQ(inv->gpus[0].mig_instances.size(), 2u);
  EXPECT_EQ(inv->gpus[0].mig_instances[0],
            (MigInstance{.profile = "3g.40gb", .start_slice = 4, .uuid = "MIG-b"}));
  EXPECT_EQ(inv->gpus[0].mig_instances[1].start_slice, -1);
  auto again = DecodeHostInventory("h1", EncodeHostInventory(*inv));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->gpus[0].mig_instances, inv->gpus[0].mig_instances);

  j["gpus"][0]["mig_instances"][1]["profile"] = "9g.1gb";
  auto s = DecodeHostInventory("h1", j).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("inventory.gpus[0].mig_instances[1].profile"));
  j["gpus"][0]["mig_instances"][1] = {{"profile", "1g.10gb"}, {"start_slice", 9}};
  s = DecodeHostInventory("h1", j).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("mig_instances[1].start_slice"));
}

}  // namespace
}  // namespace berth::core
