// Names of user-visible objects (workloads, hosts, disks, networks). A name is a DNS label:
// 1-63 characters of lower-case letters, digits and '-', starting with a letter or digit and
// not ending with '-'. Host names may also hold '.' (they often are FQDNs).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace berth::core {

// OK, or InvalidArgument "<kind> \"<name>\": name must be ..." naming what is wrong.
absl::Status ValidateName(std::string_view kind, std::string_view name);
absl::Status ValidateHostName(std::string_view name);

// A random 16-hex-digit id ("a3f09c...") for objects that need one apart from their name.
std::string NewId();

}  // namespace berth::core
