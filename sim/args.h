// Value parsing for `berth sim`'s flags (the flags themselves are declared with core/flags.h):
// seed lists (`42..51`, `1,5,9`, `1..3,7`) and policy lists (`fgd,binpack`, with
// `+` joining the terms of one weighted policy: `fgd:1+topology:0.2`). Every error names the
// flag. Thread-safety: pure functions and plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace berth::sim {

// "42..51" (inclusive), "1,5,9", "1..3,7", "42". At most 10000 seeds, no repeats.
absl::StatusOr<std::vector<uint64_t>> ParseSeeds(std::string_view text);
// "fgd,binpack" -> {"fgd", "binpack"}; "fgd:1+topology:0.2" stays one policy, spelled as the
// server's --policy spells it (sched::Policy::Parse). No repeats.
absl::StatusOr<std::vector<std::string>> ParsePolicies(std::string_view text);
// A non-negative integer flag value.
absl::StatusOr<int64_t> ParseIntFlag(std::string_view flag, std::string_view text, int64_t min,
                                     int64_t max);
// A percentage with at most one decimal ("12.5") as per-mille (125).
absl::StatusOr<int64_t> ParsePercentFlag(std::string_view flag, std::string_view text);
// "on"/"off" (also true/false, yes/no).
absl::StatusOr<bool> ParseOnOff(std::string_view flag, std::string_view text);

}  // namespace berth::sim
