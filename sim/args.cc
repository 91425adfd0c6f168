#include "sim/args.h"

#include <algorithm>
#include <charconv>
#include <set>

#include "core/strings.h"

namespace berth::sim {
namespace {

using core::Cat;

std::vector<std::string_view> SplitComma(std::string_view text) {
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (true) {
    size_t end = text.find(',', pos);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(pos));
      return parts;
    }
    parts.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
}

bool ParseU64(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

absl::StatusOr<std::vector<uint64_t>> ParseSeeds(std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        Cat("--seeds must be N, A..B or a comma-separated list of those, got \"", text, "\""));
  };
  std::vector<uint64_t> seeds;
  std::set<uint64_t> seen;
  for (std::string_view part : SplitComma(text)) {
    uint64_t lo = 0, hi = 0;
    if (size_t dots = part.find(".."); dots != std::string_view::npos) {
      if (!ParseU64(part.substr(0, dots), &lo) || !ParseU64(part.substr(dots + 2), &hi)) {
        return bad();
      }
      if (hi < lo) {
        return absl::InvalidArgumentError(
            Cat("--seeds range \"", part, "\" must not end before it starts"));
      }
    } else {
      if (!ParseU64(part, &lo)) return bad();
      hi = lo;
    }
    if (hi - lo >= 10000 || seeds.size() + (hi - lo + 1) > 10000) {
      return absl::InvalidArgumentError(Cat("--seeds names more than 10000 seeds: \"", text, "\""));
    }
    for (uint64_t s = lo;; ++s) {
      if (!seen.insert(s).second) {
        return absl::InvalidArgumentError(Cat("--seeds repeats seed ", s));
      }
      seeds.push_back(s);
      if (s == hi) break;
    }
  }
  return seeds;
}

absl::StatusOr<std::vector<std::string>> ParsePolicies(std::string_view text) {
  std::vector<std::string> policies;
  for (std::string_view part : SplitComma(text)) {
    if (part.empty()) {
      return absl::InvalidArgumentError(
          Cat("--policy must be a comma-separated list of policies, got \"", text, "\""));
    }
    if (std::find(policies.begin(), policies.end(), part) != policies.end()) {
      return absl::InvalidArgumentError(Cat("--policy repeats \"", part, "\""));
    }
    policies.emplace_back(part);
  }
  return policies;
}

absl::StatusOr<int64_t> ParseIntFlag(std::string_view flag, std::string_view text, int64_t min,
                                     int64_t max) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < min || v > max) {
    return absl::InvalidArgumentError(
        Cat("--", flag, " must be an integer between ", min, " and ", max, ", got \"", text, "\""));
  }
  return v;
}

absl::StatusOr<int64_t> ParsePercentFlag(std::string_view flag, std::string_view text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        Cat("--", flag, " must be a percentage between 0 and 100 (at most one decimal), got \"",
            text, "\""));
  };
  std::string_view whole = text, frac;
  if (size_t dot = text.find('.'); dot != std::string_view::npos) {
    whole = text.substr(0, dot);
    frac = text.substr(dot + 1);
    if (frac.size() != 1) return bad();
  }
  uint64_t w = 0, f = 0;
  if (!ParseU64(whole, &w) || (!frac.empty() && !ParseU64(frac, &f))) return bad();
  if (w > 100 || (w == 100 && f > 0)) return bad();
  return static_cast<int64_t>(w * 10 + f);
}

absl::StatusOr<bool> ParseOnOff(std::string_view flag, std::string_view text) {
  if (text == "on" || text == "true" || text == "yes") return true;
  if (text == "off" || text == "false" || text == "no") return false;
  return absl::InvalidArgumentError(Cat("--", flag, " must be on or off, got \"", text, "\""));
}

}  // namespace berth::sim
