// Status helpers shared by every layer: early-return macros over absl::Status / StatusOr, and
// constructors for the canonical error codes that carry the object and field that is wrong.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/strings.h"

#define BERTH_CONCAT_INNER_(a, b) a##b
#define BERTH_CONCAT_(a, b) BERTH_CONCAT_INNER_(a, b)

// Returns from the current function when `expr` yields a non-OK status.
#define BERTH_RETURN_IF_ERROR(expr)                               \
  do {                                                            \
    ::absl::Status berth_status_ = ::berth::core::ToStatus(expr); \
    if (!berth_status_.ok()) return berth_status_;                \
  } while (0)

// BERTH_ASSIGN_OR_RETURN(auto x, MakeX()) binds the value or returns the error.
#define BERTH_ASSIGN_OR_RETURN(lhs, expr) \
  BERTH_ASSIGN_OR_RETURN_IMPL_(BERTH_CONCAT_(berth_statusor_, __LINE__), lhs, expr)
#define BERTH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

namespace berth::core {

inline absl::Status ToStatus(absl::Status s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// `kind "name": field message`, the shape every validation error takes.
inline absl::Status FieldError(std::string_view kind, std::string_view name, std::string_view field,
                               std::string_view message) {
  if (name.empty()) {
    return absl::InvalidArgumentError(Cat(kind, ": ", field, " ", message));
  }
  return absl::InvalidArgumentError(Cat(kind, " \"", name, "\": ", field, " ", message));
}

}  // namespace berth::core
