// A vector of host-level resources (CPU, memory, disk) in fixed-point units, with the arithmetic
// the scheduler and the accounting code need. GPUs are not here: they are devices, see gpu.h.
#pragma once

#include "core/quantity.h"

namespace berth::core {

struct Resources {
  MilliCpu cpu;
  MemoryMiB memory;
  DiskMiB disk;

  Resources& operator+=(const Resources& o) {
    cpu += o.cpu;
    memory += o.memory;
    disk += o.disk;
    return *this;
  }
  Resources& operator-=(const Resources& o) {
    cpu -= o.cpu;
    memory -= o.memory;
    disk -= o.disk;
    return *this;
  }
  Resources operator+(const Resources& o) const { return Resources(*this) += o; }
  Resources operator-(const Resources& o) const { return Resources(*this) -= o; }
  bool operator==(const Resources&) const = default;

  // True when every dimension of `request` is at most this one's.
  bool Fits(const Resources& request) const {
    return request.cpu <= cpu && request.memory <= memory && request.disk <= disk;
  }
  bool AnyNegative() const { return cpu.value() < 0 || memory.value() < 0 || disk.value() < 0; }
};

}  // namespace berth::core
