#include "core/device.h"

#include "gtest/gtest.h"

namespace berth::core {
namespace {

TEST(DeviceClass, ReadsVendorSlashClassAsCdiNamesKinds) {
  EXPECT_TRUE(CheckDeviceClass("xilinx.com/fpga").ok());
  EXPECT_TRUE(CheckDeviceClass("acme-ai.io/npu_v2").ok());
  for (const char* bad : {"", "fpga", "xilinx.com/", "/fpga", "xilinx_com/fpga", "x/fp ga",
                          "-x.com/fpga", "x.com/fpga/extra"}) {
    absl::Status s = CheckDeviceClass(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("vendor.com/class"), std::string_view::npos) << s;
  }
}

TEST(DeviceClass, IdsAreCdiDeviceNames) {
  EXPECT_TRUE(CheckDeviceId("u250-0").ok());
  EXPECT_TRUE(CheckDeviceId("0000:3b:00.0").ok());
  EXPECT_FALSE(CheckDeviceId("").ok());
  EXPECT_FALSE(CheckDeviceId("-0").ok());
  EXPECT_FALSE(CheckDeviceId("a/b").ok());
  EXPECT_FALSE(CheckDeviceId(std::string(256, 'a')).ok());
}

TEST(DeviceClass, EnvNameIsTheClassInUpperCaseWithUnderscores) {
  EXPECT_EQ(DeviceEnvName("xilinx.com/fpga"), "BERTH_DEVICES_XILINX_COM_FPGA");
  EXPECT_EQ(DeviceEnvName("acme-ai.io/npu_v2"), "BERTH_DEVICES_ACME_AI_IO_NPU_V2");
}

}  // namespace
}  // namespace berth::core
