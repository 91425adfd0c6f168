// Accelerators other than GPUs (FPGAs, NPUs, video encoders, ...) as device classes. A class is
// a CDI kind, "vendor.com/class" (xilinx.com/fpga); a host offers devices of a class, each with
// an id unique within the class (the CDI device name, "u250-0"); a workload asks for a count of
// devices of a class and is granted that many ids, which are then its alone. GPUs keep their own
// model (gpu.h): shares, MIG and topology do not apply to these devices.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace berth::core {

// One device a host offers.
struct Device {
  std::string cls;  // "xilinx.com/fpga"
  std::string id;   // "u250-0": unique among the host's devices of the class
  bool healthy = true;
  std::string health;  // why it is not healthy
  bool operator==(const Device&) const = default;
};

// What a workload asks of one class.
struct DeviceRequest {
  std::string cls;
  int count = 0;
  bool operator==(const DeviceRequest&) const = default;
};

// One device granted to a workload.
struct DeviceAssignment {
  std::string cls;
  std::string id;
  bool operator==(const DeviceAssignment&) const = default;
};

// At most this many device requests per workload, and devices per host.
inline constexpr size_t kMaxDeviceRequests = 16;
inline constexpr size_t kMaxHostDevices = 1024;

// OK when `cls` reads vendor.com/class as CDI names kinds: the vendor of letters, digits, '-'
// and '.', the class of those and '_', each starting with a letter or digit. InvalidArgument
// (without object context) otherwise.
absl::Status CheckDeviceClass(std::string_view cls);
// OK when `id` can name a device of a class (CDI device names: letters, digits, '-', '.', '_',
// ':', starting with a letter or digit, at most 255 bytes).
absl::Status CheckDeviceId(std::string_view id);

// The variable that hands a process the ids of its devices of class `cls`:
// "BERTH_DEVICES_" and the class in upper case with every other character an underscore
// (xilinx.com/fpga -> BERTH_DEVICES_XILINX_COM_FPGA).
std::string DeviceEnvName(std::string_view cls);

}  // namespace berth::core
