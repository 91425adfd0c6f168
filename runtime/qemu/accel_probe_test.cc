#include "runtime/qemu/accel_probe.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace berth::runtime {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Stand-in QEMU binaries: each behaves like the real one except under accel=kvm, where it does
// what a broken (or, for `works`, a working) KVM does.
class AccelProbeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "berth-accel-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    // The probe writes its firmware under TMPDIR; keep it in our directory to check it cleans up.
    fs::create_directories(dir_ + "/tmp");
    const char* old = getenv("TMPDIR");
    old_tmpdir_ = old == nullptr ? "" : old;
    had_tmpdir_ = old != nullptr;
    setenv("TMPDIR", (dir_ + "/tmp").c_str(), 1);
    // A device node stand-in that opens read-write.
    std::ofstream(dir_ + "/kvm") << "";
  }
  void TearDown() override {
    if (had_tmpdir_) {
      setenv("TMPDIR", old_tmpdir_.c_str(), 1);
    } else {
      unsetenv("TMPDIR");
    }
    fs::remove_all(dir_);
  }

  // Writes an executable script DIR/NAME whose kvm branch is `on_kvm`; other runs go to QEMU.
  std::string StandIn(const std::string& name, const std::string& on_kvm) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n"
                        << "case \"$*\" in *accel=kvm*)\n"
                        << on_kvm << "\n;; esac\n"
                        << "exec qemu-system-x86_64 \"$@\"\n";
    chmod(path.c_str(), 0755);
    return path;
  }

  AccelProbeOptions Options(const std::string& binary) {
    AccelProbeOptions o;
    o.qemu_binary = binary;
    o.kvm_device = dir_ + "/kvm";
    o.timeout = absl::Seconds(20);
    return o;
  }

  bool TmpIsEmpty() { return fs::is_empty(dir_ + "/tmp"); }

  std::string dir_;
  std::string old_tmpdir_;
  bool had_tmpdir_ = false;
};

TEST(AccelModeTest, ParsesTheThreeModesAndNamesTheAcceptedOnes) {
  EXPECT_EQ(*ParseVmAccelMode("auto"), VmAccelMode::kAuto);
  EXPECT_EQ(*ParseVmAccelMode("kvm"), VmAccelMode::kKvm);
  EXPECT_EQ(*ParseVmAccelMode("tcg"), VmAccelMode::kTcg);
  auto bad = ParseVmAccelMode("hvf");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("auto, kvm or tcg"));
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("hvf"));
  for (auto m : {VmAccelMode::kAuto, VmAccelMode::kKvm, VmAccelMode::kTcg}) {
    EXPECT_EQ(*ParseVmAccelMode(VmAccelModeName(m)), m);
  }
}

// The probe guest itself must be right, or every KVM host would fall back: under TCG it reaches
// its exit port.
TEST_F(AccelProbeTest, ProbeGuestReachesItsExitPortUnderTcg) {
  absl::Status s = RunProbeGuest(Options("qemu-system-x86_64"), VmAccel::kTcg);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(TmpIsEmpty());
}

TEST_F(AccelProbeTest, AutoUsesKvmWhenTheProbeGuestRuns) {
  // Runs the guest for real (under TCG) when asked for KVM: the probe sees a working KVM.
  std::string qemu =
      StandIn("works",
              "for a in \"$@\"; do\n"
              "  case \"$a\" in *accel=kvm*) a=$(echo \"$a\" | sed s/accel=kvm/accel=tcg/);;"
              " host) a=max;; esac\n"
              "  set -- \"$@\" \"$a\"; shift\n"
              "done\n"
              "exec qemu-system-x86_64 \"$@\"");
  AccelChoice c = ChooseAccel(VmAccelMode::kAuto, Options(qemu));
  EXPECT_EQ(c.accel, VmAccel::kKvm) << c.reason;
  EXPECT_FALSE(c.fallback);
  EXPECT_THAT(c.reason, HasSubstr("probe guest ran"));
  EXPECT_TRUE(TmpIsEmpty());
}

TEST_F(AccelProbeTest, AutoFallsBackWhenQemuDiesSettingMsrs) {
  std::string qemu =
      StandIn("msr",
              "echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x2000000000' >&2\n"
              "echo 'qemu-system-x86_64: ../target/i386/kvm/kvm.c:2893: kvm_buf_set_msrs: "
              "Assertion failed.' >&2\nkill -ABRT $$");
  AccelChoice c = ChooseAccel(VmAccelMode::kAuto, Options(qemu));
  EXPECT_EQ(c.accel, VmAccel::kTcg);
  EXPECT_TRUE(c.fallback);
  EXPECT_THAT(c.reason, HasSubstr("kvm probe failed"));
  EXPECT_THAT(c.reason, HasSubstr("failed to set MSR 0x10a"));
  EXPECT_THAT(c.reason, HasSubstr("using tcg"));
  EXPECT_TRUE(TmpIsEmpty());
}

TEST_F(AccelProbeTest, AutoFallsBackWhenTheGuestHangs) {
  std::string qemu = StandIn("hang", "exec sleep 60");
  AccelProbeOptions o = Options(qemu);
  o.timeout = absl::Seconds(1);
  AccelChoice c = ChooseAccel(VmAccelMode::kAuto, o);
  EXPECT_EQ(c.accel, VmAccel::kTcg);
  EXPECT_TRUE(c.fallback);
  EXPECT_THAT(c.reason, HasSubstr("did not finish within 1s"));
  EXPECT_TRUE(TmpIsEmpty());
}

TEST_F(AccelProbeTest, AQemuThatExitsWithoutRunningTheGuestIsAFailure) {
  std::string qemu = StandIn("exit0", "exit 0");
  AccelChoice c = ChooseAccel(VmAccelMode::kAuto, Options(qemu));
  EXPECT_EQ(c.accel, VmAccel::kTcg);
  EXPECT_THAT(c.reason, HasSubstr("exited with status 0"));
}

TEST_F(AccelProbeTest, AutoUsesTcgWithoutTheDevice) {
  AccelProbeOptions o = Options("qemu-system-x86_64");
  o.kvm_device = dir_ + "/no-such-kvm";
  AccelChoice c = ChooseAccel(VmAccelMode::kAuto, o);
  EXPECT_EQ(c.accel, VmAccel::kTcg);
  EXPECT_TRUE(c.fallback);
  EXPECT_THAT(c.reason, HasSubstr("cannot open " + o.kvm_device));
}

TEST_F(AccelProbeTest, ForcedModesDoNotProbe) {
  // This stand-in would fail any probe; the forced modes never run it.
  std::string qemu = StandIn("never", "exit 3");
  AccelChoice kvm = ChooseAccel(VmAccelMode::kKvm, Options(qemu));
  EXPECT_EQ(kvm.accel, VmAccel::kKvm);
  EXPECT_FALSE(kvm.fallback);
  EXPECT_THAT(kvm.reason, HasSubstr("set by the operator"));
  AccelChoice tcg = ChooseAccel(VmAccelMode::kTcg, Options(qemu));
  EXPECT_EQ(tcg.accel, VmAccel::kTcg);
  EXPECT_FALSE(tcg.fallback);
}

}  // namespace
}  // namespace berth::runtime
