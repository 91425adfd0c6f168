// Fixed-point resource quantities. Accounting never uses floating point: CPU is counted in
// milli-CPUs, memory and disk in MiB, GPU shares in milli-GPUs (1000 = one whole device).
// Each unit is its own type so a MiB can never be added to a milli-CPU by mistake.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace berth::core {

template <typename Tag>
class Quantity {
 public:
  constexpr Quantity() = default;
  constexpr explicit Quantity(int64_t value) : value_(value) {}
  constexpr int64_t value() const { return value_; }

  constexpr Quantity operator+(Quantity o) const { return Quantity(value_ + o.value_); }
  constexpr Quantity operator-(Quantity o) const { return Quantity(value_ - o.value_); }
  constexpr Quantity& operator+=(Quantity o) {
    value_ += o.value_;
    return *this;
  }
  constexpr Quantity& operator-=(Quantity o) {
    value_ -= o.value_;
    return *this;
  }
  constexpr Quantity operator*(int64_t k) const { return Quantity(value_ * k); }
  constexpr auto operator<=>(const Quantity&) const = default;
  constexpr bool operator==(const Quantity&) const = default;

 private:
  int64_t value_ = 0;
};

struct MilliCpuTag {};
struct MemoryMiBTag {};
struct DiskMiBTag {};
struct MilliGpuTag {};

using MilliCpu = Quantity<MilliCpuTag>;
using MemoryMiB = Quantity<MemoryMiBTag>;
using DiskMiB = Quantity<DiskMiBTag>;
using MilliGpu = Quantity<MilliGpuTag>;

// Parses a CPU amount as people write it: "500m", "2", "1.5". Negative or malformed input is
// InvalidArgument with a message meant to follow a field name ("must be ..., got ...").
absl::StatusOr<MilliCpu> ParseCpu(std::string_view text);
// Parses a byte size ("64Mi", "40Gi", "1G", "512Ki", "1073741824") and rounds up to whole MiB.
absl::StatusOr<int64_t> ParseSizeMiB(std::string_view text);
absl::StatusOr<MemoryMiB> ParseMemory(std::string_view text);
absl::StatusOr<DiskMiB> ParseDisk(std::string_view text);

// Canonical text forms, parseable by the functions above: "500m"/"2", "64Mi"/"40Gi".
std::string FormatCpu(MilliCpu cpu);
std::string FormatMiB(int64_t mib);

}  // namespace berth::core
