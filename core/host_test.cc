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
