#include "runtime/qemu/qemu_argv.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/golden_test_util.h"

namespace berth::runtime {
namespace {

using ::testing::HasSubstr;

void ExpectGolden(const std::string& name, const std::string& actual) {
  golden::ExpectGolden(BERTH_QEMU_TESTDATA, name, actual);
}

std::string Lines(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) out += a + "\n";
  return out;
}

VmLaunchSpec Tiny() {
  VmLaunchSpec s;
  s.name = "tiny";
  s.vcpus = 1;
  SetDefaultTopology(s);
  s.memory_mib = 256;
  s.kernel = "/var/lib/berth/images/tiny-vm/vmlinuz";
  s.initrd = "/var/lib/berth/images/tiny-vm/initrd.img";
  s.cmdline = "console=ttyS0 quiet panic=-1";
  s.serial_log = "/var/lib/berth/tasks/tiny/stdout.log";
  s.qmp_socket = "/var/lib/berth/tasks/tiny/qmp.sock";
  s.pidfile = "/var/lib/berth/tasks/tiny/qemu.pid";
  return s;
}

TEST(QemuArgvTest, TinyKernelBootGolden) {
  auto argv = BuildQemuArgv(Tiny());
  ASSERT_TRUE(argv.ok()) << argv.status();
  ExpectGolden("tiny_kernel_boot.argv", Lines(*argv));
}

TEST(QemuArgvTest, DiskBootKvmUserNetGolden) {
  VmLaunchSpec s;
  s.name = "train-7";
  s.accel = VmAccel::kKvm;
  s.vcpus = 8;
  s.sockets = 2;
  s.cores = 2;
  s.threads = 2;
  s.memory_mib = 16384;
  s.disks = {
      {.id = "root", .path = "/pool/train-7/root.qcow2", .format = "qcow2"},
      {.id = "data", .path = "/pool/datasets/imagenet.raw", .format = "raw", .read_only = true}};
  s.nics = {
      {.id = "net0",
       .mode = VmNic::Mode::kUser,
       .mac = "52:54:00:12:34:56",
       .forwards = {
           {.host_port = 2222, .guest_port = 22},
           {.host_port = 8080, .guest_port = 80, .protocol = "tcp", .host_address = "0.0.0.0"}}}};
  s.serial_log = "/run/berth/train-7/stdout.log";
  s.qmp_socket = "/run/berth/train-7/qmp.sock";
  s.pidfile = "/run/berth/train-7/qemu.pid";
  auto argv = BuildQemuArgv(s);
  ASSERT_TRUE(argv.ok()) << argv.status();
  ExpectGolden("disk_boot_kvm_user_net.argv", Lines(*argv));
}

TEST(QemuArgvTest, TapAndVfioGpusGolden) {
  VmLaunchSpec s = Tiny();
  s.name = "gpu-vm";
  s.accel = VmAccel::kKvm;
  s.vcpus = 4;
  SetDefaultTopology(s);
  s.memory_mib = 65536;
  s.nics = {{.id = "net0",
             .mode = VmNic::Mode::kTap,
             .mac = "52:54:00:aa:bb:cc",
             .tap_device = "bt-gpu-vm0"}};
  s.vfio_pci = {"0000:3b:00.0", "0000:86:00.0"};
  auto argv = BuildQemuArgv(s);
  ASSERT_TRUE(argv.ok()) << argv.status();
  ExpectGolden("tap_vfio_gpus.argv", Lines(*argv));
}

TEST(QemuArgvTest, RestoreFromSnapshotGolden) {
  VmLaunchSpec s = Tiny();
  s.incoming_file = "/var/lib/berth/snapshots/tiny it's.state";
  auto argv = BuildQemuArgv(s);
  ASSERT_TRUE(argv.ok()) << argv.status();
  ExpectGolden("restore_incoming.argv", Lines(*argv));
}

TEST(QemuArgvTest, EscapesCommasInPaths) {
  VmLaunchSpec s = Tiny();
  s.serial_log = "/tmp/a,b/stdout.log";
  auto argv = BuildQemuArgv(s);
  ASSERT_TRUE(argv.ok());
  EXPECT_THAT(Lines(*argv), HasSubstr("path=/tmp/a,,b/stdout.log"));
}

TEST(QemuArgvTest, RejectsBadSpecsNamingTheField) {
  struct Case {
    std::function<void(VmLaunchSpec&)> mutate;
    std::string want;
  };
  std::vector<Case> cases = {
      {[](VmLaunchSpec& s) { s.vcpus = 0; }, "vm \"tiny\": vcpus must be >= 1, got 0"},
      {[](VmLaunchSpec& s) { s.vcpus = 4; }, "topology"},
      {[](VmLaunchSpec& s) { s.memory_mib = 8; }, "memory must be >= 16Mi, got 8Mi"},
      {[](VmLaunchSpec& s) {
         s.kernel.clear();
         s.disks = {{.id = "root", .path = "/x.qcow2"}};
       },
       "kernel must be set"},
      {[](VmLaunchSpec& s) {
         s.kernel.clear();
         s.initrd.clear();
         s.cmdline.clear();
       },
       "boot needs a kernel or at least one disk"},
      {[](VmLaunchSpec& s) { s.disks = {{.id = "d", .path = "/x", .format = "vmdk"}}; },
       "disks[0].format must be qcow2 or raw"},
      {[](VmLaunchSpec& s) { s.nics = {{.id = "n", .mac = "zz"}}; }, "nics[0].mac"},
      {[](VmLaunchSpec& s) { s.nics = {{.id = "n", .mode = VmNic::Mode::kTap}}; },
       "nics[0].tap_device"},
      {[](VmLaunchSpec& s) {
         s.nics = {{.id = "n", .forwards = {{.host_port = 70000, .guest_port = 1}}}};
       },
       "nics[0].forwards"},
      {[](VmLaunchSpec& s) { s.vfio_pci = {"3b:00.0"}; }, "vfio_pci[0]"},
      {[](VmLaunchSpec& s) { s.qmp_socket.clear(); }, "qmp_socket"},
  };
  for (const Case& c : cases) {
    VmLaunchSpec s = Tiny();
    c.mutate(s);
    auto argv = BuildQemuArgv(s);
    EXPECT_EQ(argv.status().code(), absl::StatusCode::kInvalidArgument) << c.want;
    EXPECT_THAT(std::string(argv.status().message()), HasSubstr(c.want));
  }
}

TEST(QemuArgvTest, ShellQuoteSurvivesQuotes) {
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
}

}  // namespace
}  // namespace berth::runtime
