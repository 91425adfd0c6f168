#include "runtime/qemu/vfio.h"

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/host/fake_executor.h"
#include "runtime/qemu/qemu_argv.h"
#include "runtime/qemu/qemu_driver.h"

namespace berth::runtime {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kGpu[] = "0000:3b:00.0";
constexpr char kAudio[] = "0000:3b:00.1";

std::string Read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A fake sysfs tree: PCI devices with their drivers and IOMMU groups, and a stand-in for the
// kernel that binds a device to the driver its driver_override names once drivers_probe is
// written.
class VfioTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "berth-vfio-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    sys_ = tmpl;
    for (const char* d : {"nvidia", "snd_hda_intel", "vfio-pci"}) {
      fs::create_directories(sys_ / "bus/pci/drivers" / d);
    }
  }
  void TearDown() override {
    stop_ = true;
    if (kernel_.joinable()) kernel_.join();
    fs::remove_all(sys_);
  }
  fs::path Dev(const std::string& pci) { return sys_ / "bus/pci/devices" / pci; }
  void AddDevice(const std::string& pci, const std::string& driver, int group) {
    fs::create_directories(Dev(pci));
    if (!driver.empty())
      fs::create_directory_symlink(sys_ / "bus/pci/drivers" / driver, Dev(pci) / "driver");
    if (group >= 0) {
      fs::path g = sys_ / "kernel/iommu_groups" / std::to_string(group);
      fs::create_directories(g / "devices");
      fs::create_directory_symlink(Dev(pci), g / "devices" / pci);
      fs::create_directory_symlink(g, Dev(pci) / "iommu_group");
    }
  }
  void SetDriver(const std::string& pci, const std::string& driver) {
    fs::remove(Dev(pci) / "driver");
    if (!driver.empty())
      fs::create_directory_symlink(sys_ / "bus/pci/drivers" / driver, Dev(pci) / "driver");
  }
  // The driver a device is bound to; empty while it has none (the fake kernel below replaces the
  // link by removing it first, as the real one unbinds before it binds).
  std::string DriverName(const std::string& pci) {
    std::error_code ec;
    fs::path link = fs::read_symlink(Dev(pci) / "driver", ec);
    return ec ? std::string() : link.filename().string();
  }
  // Binds as the kernel would: after each write to drivers_probe, the device goes to its
  // driver_override (or back to `home` when the override is cleared).
  void RunKernel(const std::string& pci, const std::string& home) {
    kernel_ = std::thread([this, pci, home] {
      std::string seen;
      while (!stop_) {
        std::string probe = Read(sys_ / "bus/pci/drivers_probe");
        if (probe != seen) {
          seen = probe;
          std::string override_to = Read(Dev(pci) / "driver_override");
          SetDriver(pci, override_to.empty() || override_to == "\n" ? home : override_to);
          fs::remove(sys_ / "bus/pci/drivers_probe");
          seen.clear();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  VfioBinder Binder(absl::Duration timeout = absl::Seconds(60)) {
    return VfioBinder({.sysfs_root = sys_.string(), .executor = &exec_, .bind_timeout = timeout});
  }

  fs::path sys_;
  host::FakeExecutor exec_;
  std::thread kernel_;
  std::atomic<bool> stop_{false};
};

TEST_F(VfioTest, BindsToVfioPciAndGivesTheDeviceBack) {
  AddDevice(kGpu, "nvidia", 17);
  AddDevice("0000:3a:00.0", "pcieport", 17);
  { std::ofstream(Dev("0000:3a:00.0") / "class") << "0x060400\n"; }  // a bridge may share it
  RunKernel(kGpu, "nvidia");
  VfioBinder binder = Binder();
  auto b = binder.Bind(kGpu);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, (VfioBinding{.pci_address = kGpu, .original_driver = "nvidia", .iommu_group = 17}));
  EXPECT_EQ(DriverName(kGpu), "vfio-pci");
  EXPECT_EQ(Read(sys_ / "bus/pci/drivers/nvidia/unbind"), kGpu);
  EXPECT_TRUE(exec_.Commands().empty());  // vfio-pci was loaded already
  ASSERT_TRUE(binder.Release(*b).ok());
  EXPECT_EQ(Read(sys_ / "bus/pci/drivers/vfio-pci/unbind"), kGpu);
  for (int i = 0; i < 12000 && DriverName(kGpu) != "nvidia"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(DriverName(kGpu), "nvidia");
}

TEST_F(VfioTest, LoadsTheModuleWhenVfioPciIsMissing) {
  fs::remove(sys_ / "bus/pci/drivers/vfio-pci");
  AddDevice(kGpu, "", 3);
  auto b = Binder(absl::ZeroDuration()).Bind(kGpu);
  ASSERT_FALSE(b.ok());  // nothing binds in this fake without a kernel
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("did not bind to vfio-pci"));
  ASSERT_EQ(exec_.Commands().size(), 1u);
  EXPECT_EQ(exec_.Commands()[0], (std::vector<std::string>{"modprobe", "vfio-pci"}));
  // The failed bind gave the device back: its override is cleared.
  EXPECT_EQ(Read(Dev(kGpu) / "driver_override"), "\n");
}

TEST_F(VfioTest, RefusesWithoutAnIommu) {
  AddDevice(kGpu, "nvidia", -1);
  auto b = Binder().Bind(kGpu);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("no IOMMU"));
  EXPECT_FALSE(fs::exists(Dev(kGpu) / "driver_override"));  // nothing was touched
}

TEST_F(VfioTest, RefusesAGroupSharedWithADeviceTheHostStillDrives) {
  AddDevice(kGpu, "nvidia", 5);
  AddDevice(kAudio, "snd_hda_intel", 5);
  auto b = Binder().Bind(kGpu);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(b.status().message()), HasSubstr(kAudio));
  EXPECT_THAT(std::string(b.status().message()), HasSubstr("snd_hda_intel"));
  EXPECT_FALSE(fs::exists(Dev(kGpu) / "driver_override"));
  // Once the audio function is on vfio-pci too, the GPU may go.
  SetDriver(kAudio, "vfio-pci");
  RunKernel(kGpu, "nvidia");
  EXPECT_TRUE(Binder().Bind(kGpu).ok());
}

TEST_F(VfioTest, ADeviceOnVfioAlreadyIsLeftAsItIs) {
  AddDevice(kGpu, "vfio-pci", 9);
  VfioBinder binder = Binder();
  auto b = binder.Bind(kGpu);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->original_driver, "vfio-pci");
  EXPECT_TRUE(binder.Release(*b).ok());
  EXPECT_FALSE(fs::exists(Dev(kGpu) / "driver_override"));
  EXPECT_EQ(Binder().Bind("0000:3b:00").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Binder().Bind("0000:99:00.0").status().code(), absl::StatusCode::kFailedPrecondition);
}

// The QEMU driver hands a VM's GPU over through the binder before QEMU runs, refuses clearly
// where the host cannot, and gives the device back when the VM does not come up.
class QemuVfioTest : public VfioTest {
 protected:
  TaskConfig GpuVm() {
    fs::create_directories(sys_ / "image");
    std::ofstream(sys_ / "image/vmlinuz") << "kernel";
    TaskConfig c;
    c.task_id = "gpu-vm-g1";
    c.workload = "gpu-vm";
    c.kind = "vm";
    c.image_path = (sys_ / "image").string();
    c.task_dir = (sys_ / "task").string();
    c.gpus = {{.index = 0, .milli = 1000, .device_id = "GPU-a"}};
    c.gpu_device_ids = {"GPU-a"};
    c.gpu_pci_addresses = {kGpu};
    return c;
  }
  std::unique_ptr<QemuDriver> Driver(VfioBinder* binder) {
    return std::make_unique<QemuDriver>(
        QemuDriverOptions{.accel = VmAccelMode::kTcg, .executor = &exec_, .vfio = binder});
  }
};

TEST_F(QemuVfioTest, TheGpusPciAddressBecomesAVfioDevice) {
  VfioBinder binder = Binder();
  auto driver = Driver(&binder);
  auto spec = driver->LaunchSpecFor(GpuVm());
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->vfio_pci, std::vector<std::string>{kGpu});
  auto argv = BuildQemuArgv(*spec);
  ASSERT_TRUE(argv.ok()) << argv.status();
  EXPECT_NE(std::find(argv->begin(), argv->end(), std::string("vfio-pci,host=") + kGpu),
            argv->end());
  TaskConfig unknown = GpuVm();
  unknown.gpu_pci_addresses = {""};
  auto refused = driver->LaunchSpecFor(unknown);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("gpus[0]"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("no PCI address"));
}

TEST_F(QemuVfioTest, WithoutAnIommuTheVmIsRefusedBeforeQemuRuns) {
  AddDevice(kGpu, "nvidia", -1);
  VfioBinder binder = Binder();
  auto started = Driver(&binder)->Start(GpuVm());
  EXPECT_EQ(started.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(started.status().message()), HasSubstr("gpu-vm"));
  EXPECT_THAT(std::string(started.status().message()), HasSubstr("no IOMMU"));
  EXPECT_TRUE(exec_.Commands().empty());
}

TEST_F(QemuVfioTest, AVmThatDoesNotComeUpGivesItsGpuBack) {
  AddDevice(kGpu, "nvidia", 17);
  RunKernel(kGpu, "nvidia");
  VfioBinder binder = Binder();
  // The fake QEMU "starts" but writes no pid file: the start fails after the bind.
  auto started = Driver(&binder)->Start(GpuVm());
  EXPECT_FALSE(started.ok());
  ASSERT_EQ(exec_.Commands().size(), 1u);
  EXPECT_EQ(exec_.Commands()[0][0], "qemu-system-x86_64");
  EXPECT_EQ(Read(sys_ / "bus/pci/drivers/vfio-pci/unbind"), kGpu);
  for (int i = 0; i < 12000 && DriverName(kGpu) != "nvidia"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(DriverName(kGpu), "nvidia");
}

}  // namespace
}  // namespace berth::runtime
