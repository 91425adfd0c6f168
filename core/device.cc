#include "core/device.h"

#include <cctype>

#include "core/strings.h"

namespace berth::core {
namespace {

bool Alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

bool ValidClassPart(std::string_view s, bool vendor) {
  if (s.empty() || !Alnum(s[0])) return false;
  for (char c : s) {
    if (!Alnum(c) && c != '-' && c != '.' && (vendor || c != '_')) return false;
  }
  return true;
}

}  // namespace

absl::Status CheckDeviceClass(std::string_view cls) {
  const size_t slash = cls.find('/');
  if (slash == std::string_view::npos || !ValidClassPart(cls.substr(0, slash), true) ||
      !ValidClassPart(cls.substr(slash + 1), false)) {
    return absl::InvalidArgumentError(
        Cat("must read vendor.com/class (like xilinx.com/fpga), got \"", cls, "\""));
  }
  return absl::OkStatus();
}

absl::Status CheckDeviceId(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 255 && Alnum(id[0]);
  for (char c : id) ok = ok && (Alnum(c) || c == '-' || c == '.' || c == '_' || c == ':');
  if (!ok) {
    return absl::InvalidArgumentError(
        Cat("must be a device name of letters, digits, '-', '.', '_' and ':', got \"", id, "\""));
  }
  return absl::OkStatus();
}

std::string DeviceEnvName(std::string_view cls) {
  std::string out = "BERTH_DEVICES_";
  for (char c : cls) {
    out += Alnum(c) ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : '_';
  }
  return out;
}

}  // namespace berth::core
