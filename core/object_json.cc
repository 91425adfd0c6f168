#include "core/object_json.h"

#include "core/strings.h"
#include "core/workload.h"

namespace berth::core {

absl::Status OptionalStringList(const JsonContext& ctx, const Json& obj, std::string_view path,
                                const std::string& key, std::vector<std::string>* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  const std::string field = JoinPath(path, key);
  if (!it->is_array()) return ctx.Error(field, Cat("must be a list, got ", Preview(*it)));
  std::vector<std::string> values;
  for (size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    if (!v.is_string()) {
      return ctx.Error(Cat(field, "[", i, "]"), Cat("must be a string, got ", Preview(v)));
    }
    values.push_back(v.get<std::string>());
  }
  *out = std::move(values);
  return absl::OkStatus();
}

absl::Status OptionalTime(const JsonContext& ctx, const Json& obj, std::string_view path,
                          const std::string& key, absl::Time* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  absl::Time t = DecodeTime(*it);
  if (t == absl::InfinitePast()) {
    return ctx.Error(JoinPath(path, key),
                     Cat("must be a time like 2026-01-02T03:04:05.000Z, got ", Preview(*it)));
  }
  *out = t;
  return absl::OkStatus();
}

}  // namespace berth::core
