// Strict JSON decoding helpers. Every decoder reports the first problem as InvalidArgument
// naming the object and the dotted field path (`workload "a": resources.cpu must be ...`), and
// rejects fields it does not know so that typos never pass silently.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"

namespace berth::core {

using Json = nlohmann::json;

// Context for decoding one object: which kind and name errors should mention.
struct JsonContext {
  std::string kind;  // "workload"
  std::string name;  // "train-7" (may be empty before the name is known)

  absl::Status Error(std::string_view field, std::string_view message) const;
};

// Fails if `obj` is not an object or holds a key outside `allowed`; `path` prefixes field names.
absl::Status CheckObject(const JsonContext& ctx, const Json& obj, std::string_view path,
                         std::initializer_list<std::string_view> allowed);

// A short rendering of `j` for error messages: at most `max_bytes` (then "..."), at most a few
// levels deep, invalid UTF-8 replaced. Never throws and never recurses without bound, whatever
// the value holds.
std::string Preview(const Json& j, size_t max_bytes = 64);

// Optional fields of the object `obj`: absent or null leaves *out as it is; a value of another
// type (or an integer outside [min, max]) is an InvalidArgument naming `path.key`.
absl::Status OptionalString(const JsonContext& ctx, const Json& obj, std::string_view path,
                            const std::string& key, std::string* out);
absl::Status OptionalInt(const JsonContext& ctx, const Json& obj, std::string_view path,
                         const std::string& key, int64_t min, int64_t max, int64_t* out);
absl::Status OptionalBool(const JsonContext& ctx, const Json& obj, std::string_view path,
                          const std::string& key, bool* out);

// "a.b" joined, or just "b" when a is empty.
std::string JoinPath(std::string_view a, std::string_view b);

}  // namespace berth::core
