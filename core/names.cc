#include "core/names.h"

#include <cctype>
#include <random>

#include "absl/strings/str_format.h"
#include "core/status.h"
#include "core/strings.h"

namespace berth::core {
namespace {

absl::Status Validate(std::string_view kind, std::string_view name, bool allow_dot,
                      size_t max_len) {
  if (name.empty()) return FieldError(kind, name, "name", "must not be empty");
  if (name.size() > max_len) {
    return FieldError(kind, name, "name",
                      Cat("must be at most ", max_len, " characters, got ", name.size()));
  }
  for (char c : name) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (allow_dot && c == '.');
    if (!ok) {
      return FieldError(kind, name, "name",
                        "must hold only lower-case letters, digits and '-' (like \"train-7\")");
    }
  }
  if (name.front() == '-' || name.back() == '-' || name.front() == '.' || name.back() == '.') {
    return FieldError(kind, name, "name", "must start and end with a letter or digit");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateName(std::string_view kind, std::string_view name) {
  return Validate(kind, name, /*allow_dot=*/false, 63);
}

absl::Status ValidateHostName(std::string_view name) {
  return Validate("host", name, /*allow_dot=*/true, 253);
}

std::string NewId() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("%016x", rng());
}

}  // namespace berth::core
