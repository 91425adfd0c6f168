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

absl::Status OptionalString(const JsonContext& ctx, const Json& obj, std::string_view path,
                            const std::string& key, std::string* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_string()) {
    return ctx.Error(JoinPath(path, key), Cat("must be a string, got ", Preview(*it)));
  }
  *out = it->get<std::string>();
  return absl::OkStatus();
}

absl::Status OptionalInt(const JsonContext& ctx, const Json& obj, std::string_view path,
                         const std::string& key, int64_t min, int64_t max, int64_t* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))) {
    return ctx.Error(JoinPath(path, key), Cat("must be an integer, got ", Preview(*it)));
  }
  int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    return ctx.Error(JoinPath(path, key), Cat("must be between ", min, " and ", max, ", got ", v));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status OptionalBool(const JsonContext& ctx, const Json& obj, std::string_view path,
                          const std::string& key, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) {
    return ctx.Error(JoinPath(path, key), Cat("must be true or false, got ", Preview(*it)));
  }
  *out = it->get<bool>();
  return absl::OkStatus();
}

namespace {

constexpr int kPreviewDepth = 4;

// Appends `j` to `out` until `out` holds `limit` bytes; false once it is full.
bool AppendPreview(const Json& j, int depth, size_t limit, std::string& out) {
  if (out.size() >= limit) return false;
  if (j.is_array() || j.is_object()) {
    const bool obj = j.is_object();
    if (depth >= kPreviewDepth) {
      out += obj ? "{...}" : "[...]";
      return out.size() < limit;
    }
    out += obj ? '{' : '[';
    bool first = true;
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!first) out += ',';
      first = false;
      if (obj) {
        out += Json(it.key()).dump(-1, ' ', false, Json::error_handler_t::replace);
        out += ':';
      }
      if (!AppendPreview(*it, depth + 1, limit, out)) return false;
    }
    out += obj ? '}' : ']';
  } else {
    out += j.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  return out.size() < limit;
}

}  // namespace

std::string Preview(const Json& j, size_t max_bytes) {
  std::string out;
  if (!AppendPreview(j, 0, max_bytes, out) || out.size() > max_bytes) {
    out.resize(std::min(out.size(), max_bytes));
    // Never end inside a UTF-8 sequence.
    while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
    if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0) out.pop_back();
    out += "...";
  }
  return out;
}

}  // namespace berth::core
