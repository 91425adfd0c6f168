// Thousandths as people read them: a milli-GPU count or a milli-CPU figure shown as a decimal.
#pragma once

#include <cstdint>
#include <string>

#include "core/strings.h"

namespace berth::core {

// 2000 → "2", 1500 → "1.5", 250 → "0.25", -1500 → "-1.5"; no trailing zeros.
inline std::string MilliText(int64_t milli) {
  uint64_t magnitude = milli < 0 ? 0 - static_cast<uint64_t>(milli) : static_cast<uint64_t>(milli);
  std::string out = Cat(milli < 0 ? "-" : "", magnitude / 1000);
  if (uint64_t frac = magnitude % 1000; frac != 0) {
    std::string digits = Cat(1000 + frac).substr(1);
    while (digits.back() == '0') digits.pop_back();
    out += "." + digits;
  }
  return out;
}

}  // namespace berth::core
