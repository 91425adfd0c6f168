#include "agent/xid.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace berth::agent {
namespace {

namespace fs = std::filesystem;

TEST(XidTest, ParsesTheDriversLinesInTheirForms) {
  auto e = ParseXidLine(
      "[ 1234.567890] NVRM: Xid (PCI:0000:3B:00): 79, pid=1234, name=python3, GPU has fallen "
      "off the bus.");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->pci_bus, "0000:3b:00");
  EXPECT_EQ(e->xid, 79);
  EXPECT_EQ(e->message, "GPU has fallen off the bus.");

  // An older driver: no "PCI:", an 8-digit domain, no pid or name.
  e = ParseXidLine("kernel: NVRM: Xid (00000000:07:00): 48, An uncorrectable double bit error");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->pci_bus, "0000:07:00");
  EXPECT_EQ(e->xid, 48);
  EXPECT_EQ(e->message, "An uncorrectable double bit error");

  e = ParseXidLine(
      "NVRM: Xid (PCI:0000:07:00): 13, pid='<unknown>', name=<unknown>, Graphics "
      "Exception: ESR 0x404600=0x80000001");
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->xid, 13);
  EXPECT_EQ(e->message, "Graphics Exception: ESR 0x404600=0x80000001");

  EXPECT_FALSE(ParseXidLine("NVRM: loading NVIDIA UNIX x86_64 Kernel Module").has_value());
  EXPECT_FALSE(ParseXidLine("NVRM: Xid (PCI:0000:07:00): , no code").has_value());
  EXPECT_FALSE(ParseXidLine("NVRM: Xid (PCI:0000:07:00").has_value());
}

TEST(XidTest, ApplicationFaultsLeaveTheDeviceHealthy) {
  for (int xid : {13, 31, 43, 45, 68, 109}) EXPECT_FALSE(XidIsDeviceFault(xid)) << xid;
  for (int xid : {48, 63, 64, 74, 79, 92, 94, 95, 119}) EXPECT_TRUE(XidIsDeviceFault(xid)) << xid;
}

TEST(XidTest, AnEventNamesTheGpuOnItsBus) {
  XidEvent e{.pci_bus = "0000:3b:00", .xid = 79};
  EXPECT_TRUE(XidNamesDevice(e, "0000:3b:00.0"));
  EXPECT_TRUE(XidNamesDevice(e, "00000000:3B:00.0"));
  EXPECT_FALSE(XidNamesDevice(e, "0000:3c:00.0"));
  EXPECT_FALSE(XidNamesDevice(e, ""));
}

class XidLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::path(::testing::TempDir()) / "berth-xid-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/kern.log";
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Append(const std::string& text) { std::ofstream(path_, std::ios::app) << text; }

  std::string dir_;
  std::string path_;
};

TEST_F(XidLogTest, FollowsTheFileFromItsEndAndReadsOnlyCompleteLines) {
  Append("NVRM: Xid (PCI:0000:07:00): 79, from before the agent started\n");
  XidLog log(path_);
  EXPECT_TRUE(log.ReadNew().empty());
  Append("other: line\nNVRM: Xid (PCI:0000:07:00): 48, first\nNVRM: Xid (PCI:0000:08:00): 9");
  std::vector<XidEvent> got = log.ReadNew();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].xid, 48);
  EXPECT_EQ(got[0].message, "first");
  Append("4, second\n");  // the rest of the line begun above
  got = log.ReadNew();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].xid, 94);
  EXPECT_EQ(got[0].pci_bus, "0000:08:00");
  EXPECT_TRUE(log.ReadNew().empty());
}

TEST_F(XidLogTest, StartsOverWhenTheFileIsRotatedAndWaitsForAMissingOne) {
  XidLog log(path_);  // no file yet
  EXPECT_TRUE(log.ReadNew().empty());
  Append("padding that makes the first file longer than the next one\n");
  EXPECT_TRUE(log.ReadNew().empty());
  fs::remove(path_);
  Append("NVRM: Xid (PCI:0000:07:00): 79, x\n");
  std::vector<XidEvent> got = log.ReadNew();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].xid, 79);
}

}  // namespace
}  // namespace berth::agent
