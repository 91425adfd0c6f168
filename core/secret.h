// Secrets: random tokens, their SHA-256 digests (what a server keeps instead of the token) and
// comparison in constant time (so a guess learns nothing from how long the check took).
//
// Thread-safety: every function is thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace berth::core {

// `bytes` random bytes from the kernel's CSPRNG, as 2*bytes lower-case hex digits. Internal when
// the kernel gives none.
absl::StatusOr<std::string> RandomHexToken(size_t bytes = 24);

// The SHA-256 digest of `data` as 64 lower-case hex digits.
std::string Sha256Hex(std::string_view data);

// a == b, taking the same time for every a and b of one length.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace berth::core
