// String building that accepts std::string_view. Debian's Abseil is built with its own
// absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), so absl::StrCat and absl::StrFormat do
// not take std::string_view; core::Cat does, along with strings, C strings, chars and integers.
#pragma once

#include <concepts>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace berth::core {

inline void AppendPiece(std::string& out, std::string_view s) { out.append(s); }
inline void AppendPiece(std::string& out, const char* s) { out.append(s); }
inline void AppendPiece(std::string& out, const std::string& s) { out.append(s); }
inline void AppendPiece(std::string& out, absl::string_view s) { out.append(s.data(), s.size()); }
inline void AppendPiece(std::string& out, char c) { out.push_back(c); }
template <std::integral T>
requires(!std::same_as<T, char> && !std::same_as<T, bool>) void AppendPiece(std::string& out, T v) {
  out.append(std::to_string(v));
}
inline void AppendPiece(std::string& out, bool b) { out.append(b ? "true" : "false"); }

template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (AppendPiece(out, args), ...);
  return out;
}

// Views a std::string_view as absl::string_view, for Abseil APIs that want one.
inline absl::string_view AbslView(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace berth::core
