// Hands a host PCI device (a GPU) to a VM through VFIO: checks that the host has an IOMMU and that
// the device's IOMMU group holds nothing a host driver still uses, binds the device to vfio-pci
// (driver_override, unbind, reprobe, through sysfs) and gives it back to its own driver when the
// VM is gone. Every path is under a configurable sysfs root, and module loading goes through the
// host::Executor, so tests run against a fake sysfs tree and a FakeExecutor.
//
// Thread-safety: thread-safe; binding and releasing are serialized.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "runtime/host/executor.h"

namespace berth::runtime {

struct VfioOptions {
  std::string sysfs_root = "/sys";
  host::Executor* executor = nullptr;               // runs `modprobe vfio-pci`; null = the host
  absl::Duration bind_timeout = absl::Seconds(10);  // for the kernel to bind after the probe
};

// A device handed to vfio-pci, and the driver to give it back to ("" = none; "vfio-pci" when it
// was on vfio-pci already, so nothing is given back).
struct VfioBinding {
  std::string pci_address;  // "0000:3b:00.0"
  std::string original_driver;
  int iommu_group = -1;
  bool operator==(const VfioBinding&) const = default;
};

class VfioBinder {
 public:
  explicit VfioBinder(VfioOptions options = {});

  // Binds `pci_address` to vfio-pci. FailedPrecondition with the reason when the host has no
  // IOMMU, the device does not exist, another device of its IOMMU group is held by a host
  // driver, or the kernel did not bind it (the device is then given back).
  absl::StatusOr<VfioBinding> Bind(std::string_view pci_address);

  // Gives the device back to its original driver. OK when there is nothing to give back.
  absl::Status Release(const VfioBinding& binding);

 private:
  std::string Device(std::string_view pci) const;
  std::string DriverOf(std::string_view pci) const;
  absl::Status Write(const std::string& path, std::string_view value) const;

  const VfioOptions options_;
  absl::Mutex mu_;
};

}  // namespace berth::runtime
