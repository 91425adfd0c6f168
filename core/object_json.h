// Decoding helpers shared by the codecs of stored objects (disks, networks, security groups,
// port forwards), in the style of core/json.h: absent or null leaves the output as it is, a
// value of the wrong shape is an InvalidArgument naming the object and the dotted field.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/json.h"

namespace berth::core {

// A list of strings at `path.key`; an element of another type is named with its index.
absl::Status OptionalStringList(const JsonContext& ctx, const Json& obj, std::string_view path,
                                const std::string& key, std::vector<std::string>* out);
// A time as EncodeTime writes it (RFC 3339, UTC).
absl::Status OptionalTime(const JsonContext& ctx, const Json& obj, std::string_view path,
                          const std::string& key, absl::Time* out);

}  // namespace berth::core
