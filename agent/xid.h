// GPU faults from the kernel's log: the NVIDIA driver writes an "Xid" line for each error it
// sees on a device ("NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen off the bus."). The
// agent follows a log file its config names (a kernel log such as /var/log/kern.log, or a file a
// `journalctl -k -f` writes) and marks the GPU at that PCI address unhealthy on a fault that is
// the device's, not an application's.
//
// Thread-safety: XidLog is used by one thread (the agent's loop).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::agent {

struct XidEvent {
  std::string pci_bus;  // "0000:3b:00", lower case, 4-digit domain
  int xid = 0;
  std::string message;  // what the driver said after the code, "GPU has fallen off the bus."
};

// The event of one log line, or nullopt when the line is not an Xid report.
std::optional<XidEvent> ParseXidLine(std::string_view line);

// Whether `xid` says the device itself is in trouble. Codes that report an application's own
// fault (13 graphics engine exception, 31 MMU fault, 43 channel stopped, 45 preemptive cleanup,
// 68 video decoder exception, 109 context switch timeout) leave the device healthy.
bool XidIsDeviceFault(int xid);

// Whether the GPU at `pci_address` ("0000:3b:00.0", any case, 4- or 8-digit domain) is the one
// on `pci_bus` ("0000:3b:00").
bool XidNamesDevice(const XidEvent& event, std::string_view pci_address);

// Follows a log file: each ReadNew returns the Xid events of the complete lines written since
// the last call. It starts at the file's end (faults from before the agent started were the
// previous run's to see), starts over when the file shrinks (rotated or truncated), and reads at
// most kMaxReadBytes a call. A missing file yields nothing until it appears.
class XidLog {
 public:
  static constexpr int64_t kMaxReadBytes = 1 << 20;
  explicit XidLog(std::string path);
  std::vector<XidEvent> ReadNew();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int64_t offset_ = 0;
  std::string partial_;  // the start of a line not yet complete
};

}  // namespace berth::agent
