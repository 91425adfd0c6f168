#include "runtime/qemu/vfio.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/status.h"
#include "core/strings.h"
#include "runtime/host/file.h"

namespace berth::runtime {

namespace fs = std::filesystem;
using core::Cat;

namespace {

constexpr std::string_view kVfioDriver = "vfio-pci";

bool IsPciAddress(std::string_view a) {
  if (a.size() != 12 || a[4] != ':' || a[7] != ':' || a[10] != '.') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11}) {
    if (!std::isxdigit(static_cast<unsigned char>(a[i]))) return false;
  }
  return true;
}

// PCI-to-PCI bridges (class 0x0604) share groups with the devices behind them and need no
// driver of VFIO's.
bool IsBridge(const fs::path& device) {
  auto cls = host::ReadFile((device / "class").string());
  return cls.ok() && cls->rfind("0x0604", 0) == 0;
}

}  // namespace

VfioBinder::VfioBinder(VfioOptions options) : options_(std::move(options)) {}

std::string VfioBinder::Device(std::string_view pci) const {
  return Cat(options_.sysfs_root, "/bus/pci/devices/", pci);
}

std::string VfioBinder::DriverOf(std::string_view pci) const {
  std::error_code ec;
  fs::path link = fs::read_symlink(Device(pci) + "/driver", ec);
  return ec ? "" : link.filename().string();
}

absl::Status VfioBinder::Write(const std::string& path, std::string_view value) const {
  // sysfs attributes take one write(2) of the whole value, in place (no temporary file and
  // rename, as a durable write would make); O_TRUNC is what a shell's `>` does to them.
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC | O_CREAT | O_TRUNC, 0200);
  if (fd < 0) return absl::FailedPreconditionError(Cat(path, ": ", std::strerror(errno)));
  ssize_t n = write(fd, value.data(), value.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(value.size())) {
    return absl::FailedPreconditionError(Cat("write ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<VfioBinding> VfioBinder::Bind(std::string_view pci) {
  absl::MutexLock lock(&mu_);
  if (!IsPciAddress(pci)) {
    return absl::InvalidArgumentError(
        Cat("vfio: \"", pci, "\" is not a PCI address like 0000:3b:00.0"));
  }
  std::error_code ec;
  const std::string device = Device(pci);
  if (!fs::exists(device, ec)) {
    return absl::FailedPreconditionError(Cat("vfio: no PCI device ", pci, " on this host"));
  }
  fs::path group = fs::read_symlink(device + "/iommu_group", ec);
  if (ec) {
    return absl::FailedPreconditionError(
        Cat("vfio: PCI device ", pci,
            " is in no IOMMU group: this host has no IOMMU enabled, so it cannot pass devices "
            "to VMs (enable VT-d or AMD-Vi in the firmware and boot with intel_iommu=on or "
            "amd_iommu=on)"));
  }
  VfioBinding b{.pci_address = std::string(pci), .original_driver = DriverOf(pci)};
  b.iommu_group = std::atoi(group.filename().c_str());
  // Every other endpoint of the group must be free for VFIO: no host driver, or vfio-pci.
  const fs::path members =
      fs::path(Cat(options_.sysfs_root, "/kernel/iommu_groups/", b.iommu_group, "/devices"));
  for (const auto& entry : fs::directory_iterator(members, ec)) {
    const std::string other = entry.path().filename().string();
    if (other == pci) continue;
    const std::string driver = DriverOf(other);
    if (driver.empty() || driver == kVfioDriver || IsBridge(Device(other))) continue;
    return absl::FailedPreconditionError(
        Cat("vfio: PCI device ", pci, " shares IOMMU group ", b.iommu_group, " with ", other,
            ", which the host driver ", driver, " holds; a VM can only have a whole group (bind ",
            other, " to vfio-pci too)"));
  }
  if (b.original_driver == kVfioDriver) return b;
  if (!fs::exists(Cat(options_.sysfs_root, "/bus/pci/drivers/", kVfioDriver), ec)) {
    BERTH_RETURN_IF_ERROR(host::RunOk(host::ExecutorOr(options_.executor),
                                      {"modprobe", std::string(kVfioDriver)},
                                      {.timeout = absl::Seconds(30)})
                              .status());
  }
  BERTH_RETURN_IF_ERROR(Write(device + "/driver_override", kVfioDriver));
  if (!b.original_driver.empty()) BERTH_RETURN_IF_ERROR(Write(device + "/driver/unbind", pci));
  BERTH_RETURN_IF_ERROR(Write(Cat(options_.sysfs_root, "/bus/pci/drivers_probe"), pci));
  const absl::Time deadline = absl::Now() + options_.bind_timeout;
  while (DriverOf(pci) != kVfioDriver) {
    if (absl::Now() >= deadline) {
      absl::Status back = Write(device + "/driver_override", "\n");
      if (back.ok()) back = Write(Cat(options_.sysfs_root, "/bus/pci/drivers_probe"), pci);
      return absl::FailedPreconditionError(
          Cat("vfio: PCI device ", pci, " did not bind to vfio-pci",
              back.ok() ? "" : Cat(" (and giving it back failed: ", back.message(), ")")));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return b;
}

absl::Status VfioBinder::Release(const VfioBinding& b) {
  absl::MutexLock lock(&mu_);
  if (b.original_driver == kVfioDriver || !IsPciAddress(b.pci_address)) return absl::OkStatus();
  const std::string device = Device(b.pci_address);
  std::error_code ec;
  if (!fs::exists(device, ec)) return absl::OkStatus();
  if (DriverOf(b.pci_address) == kVfioDriver) {
    BERTH_RETURN_IF_ERROR(Write(device + "/driver/unbind", b.pci_address));
  }
  BERTH_RETURN_IF_ERROR(Write(device + "/driver_override", "\n"));
  return Write(Cat(options_.sysfs_root, "/bus/pci/drivers_probe"), b.pci_address);
}

}  // namespace berth::runtime
