// Strict JSON decoding helpers. Every decoder reports the first problem as InvalidArgument
// naming the object and the dotted field path (`workload "a": resources.cpu must be ...`), and
// rejects fields it does not know so that typos never pass silently.
#pragma once

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

// Parses text as JSON, mapping parse errors to InvalidArgument with the position.
absl::Status ParseJson(std::string_view text, Json* out);

// "a.b" joined, or just "b" when a is empty.
std::string JoinPath(std::string_view a, std::string_view b);

}  // namespace berth::core
