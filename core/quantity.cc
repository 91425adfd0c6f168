#include "core/quantity.h"

#include <cctype>
#include <limits>

#include "absl/status/status.h"
#include "core/strings.h"

namespace berth::core {
namespace {

// Parses "123", "1.5", "0.25" into an integer scaled by 10^decimals, rejecting anything finer.
// Returns false on malformed text or overflow.
bool ParseDecimal(std::string_view text, int decimals, int64_t* out) {
  if (text.empty()) return false;
  int64_t whole = 0;
  size_t i = 0;
  bool digits = false;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    if (whole > (std::numeric_limits<int64_t>::max() / 10) - 10) return false;
    whole = whole * 10 + (text[i] - '0');
    digits = true;
  }
  int64_t frac = 0;
  int frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
      if (frac_digits >= decimals) {
        if (text[i] != '0') return false;  // finer than the unit can hold
        continue;
      }
      frac = frac * 10 + (text[i] - '0');
      ++frac_digits;
      digits = true;
    }
  }
  if (!digits || i != text.size()) return false;
  for (int d = frac_digits; d < decimals; ++d) frac *= 10;
  int64_t scale = 1;
  for (int d = 0; d < decimals; ++d) scale *= 10;
  if (whole > std::numeric_limits<int64_t>::max() / scale - 1) return false;
  *out = whole * scale + frac;
  return true;
}

std::string Quote(std::string_view text) { return Cat("\"", text, "\""); }

}  // namespace

absl::StatusOr<MilliCpu> ParseCpu(std::string_view text) {
  if (!text.empty() && text[0] == '-') {
    return absl::InvalidArgumentError(Cat("must not be negative, got ", Quote(text)));
  }
  int64_t milli = 0;
  if (!text.empty() && text.back() == 'm') {
    if (!ParseDecimal(text.substr(0, text.size() - 1), 0, &milli)) {
      return absl::InvalidArgumentError(
          Cat("must be a CPU amount like 500m or 2, got ", Quote(text)));
    }
    return MilliCpu(milli);
  }
  if (!ParseDecimal(text, 3, &milli)) {
    return absl::InvalidArgumentError(
        Cat("must be a CPU amount like 500m or 2, got ", Quote(text)));
  }
  return MilliCpu(milli);
}

absl::StatusOr<int64_t> ParseSizeMiB(std::string_view text) {
  if (!text.empty() && text[0] == '-') {
    return absl::InvalidArgumentError(Cat("must not be negative, got ", Quote(text)));
  }
  struct Suffix {
    std::string_view text;
    // Bytes per unit, as numerator over 2^20 to keep MiB exact for binary units.
    int64_t bytes;
  };
  static constexpr Suffix kSuffixes[] = {
      {"Ki", int64_t{1} << 10},
      {"Mi", int64_t{1} << 20},
      {"Gi", int64_t{1} << 30},
      {"Ti", int64_t{1} << 40},
      {"Pi", int64_t{1} << 50},
      {"k", 1000},
      {"K", 1000},
      {"M", 1000000},
      {"G", 1000000000},
      {"T", 1000000000000},
      {"P", 1000000000000000},
  };
  std::string_view number = text;
  int64_t unit = 1;
  for (const Suffix& s : kSuffixes) {
    if (text.size() > s.text.size() && text.substr(text.size() - s.text.size()) == s.text) {
      number = text.substr(0, text.size() - s.text.size());
      unit = s.bytes;
      break;
    }
  }
  // Three decimals allow "1.5Gi"; the value is computed in thousandths of a unit.
  int64_t thousandths = 0;
  if (!ParseDecimal(number, 3, &thousandths)) {
    return absl::InvalidArgumentError(Cat("must be a size like 64Mi or 40Gi, got ", Quote(text)));
  }
  // bytes = thousandths * unit / 1000, computed in 128 bits to avoid overflow.
  __int128 bytes = static_cast<__int128>(thousandths) * unit;
  __int128 mib_x1000 = (int64_t{1} << 20) * static_cast<__int128>(1000);
  __int128 mib = (bytes + mib_x1000 - 1) / mib_x1000;
  if (mib > std::numeric_limits<int64_t>::max() / 2) {
    return absl::InvalidArgumentError(Cat("is too large, got ", Quote(text)));
  }
  return static_cast<int64_t>(mib);
}

absl::StatusOr<MemoryMiB> ParseMemory(std::string_view text) {
  auto mib = ParseSizeMiB(text);
  if (!mib.ok()) return mib.status();
  return MemoryMiB(*mib);
}

absl::StatusOr<DiskMiB> ParseDisk(std::string_view text) {
  auto mib = ParseSizeMiB(text);
  if (!mib.ok()) return mib.status();
  return DiskMiB(*mib);
}

std::string FormatCpu(MilliCpu cpu) {
  if (cpu.value() % 1000 == 0) return Cat(cpu.value() / 1000);
  return Cat(cpu.value(), "m");
}

std::string FormatMiB(int64_t mib) {
  if (mib != 0 && mib % (1024 * 1024) == 0) return Cat(mib / (1024 * 1024), "Ti");
  if (mib != 0 && mib % 1024 == 0) return Cat(mib / 1024, "Gi");
  return Cat(mib, "Mi");
}

}  // namespace berth::core
