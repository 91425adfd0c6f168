// A guard for code that must survive its own bugs: thread bodies and the passes of background
// loops. Any exception becomes an Internal status and one line on stderr, instead of ending the
// process through std::terminate.
#pragma once

#include <cstdio>
#include <exception>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "core/strings.h"

namespace berth::core {

// Runs `body()`; an exception it throws is logged under `what` and returned as Internal.
template <typename F>
absl::Status RunGuarded(std::string_view what, F&& body) noexcept {
  std::string failure;
  try {
    body();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    failure = Cat(what, " failed: ", e.what());
  } catch (...) {
    failure = Cat(what, " failed: unknown exception");
  }
  std::fprintf(stderr, "berth: bug: %s\n", failure.c_str());
  return absl::InternalError(failure);
}

}  // namespace berth::core
