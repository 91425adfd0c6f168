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

}  // namespace
}  // namespace berth::core
