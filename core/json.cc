#include "core/json.h"

#include <algorithm>

#include "core/status.h"
#include "core/strings.h"

namespace berth::core {

absl::Status JsonContext::Error(std::string_view field, std::string_view message) const {
  return FieldError(kind, name, field, message);
}

std::string JoinPath(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  return Cat(a, ".", b);
}

absl::Status CheckObject(const JsonContext& ctx, const Json& obj, std::string_view path,
                         std::initializer_list<std::string_view> allowed) {
  if (!obj.is_object()) {
    if (path.empty()) return FieldError(ctx.kind, ctx.name, "body", "must be a JSON object");
    return ctx.Error(path, "must be an object");
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& key = it.key();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string known;
      for (std::string_view a : allowed)
        known = known.empty() ? std::string(a) : Cat(known, ", ", a);
      return FieldError(ctx.kind, ctx.name, Cat("field \"", JoinPath(path, key), "\""),
                        Cat("is unknown (known fields: ", known, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseJson(std::string_view text, Json* out) {
  try {
    *out = Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    return absl::InvalidArgumentError(Cat("malformed JSON: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace berth::core
