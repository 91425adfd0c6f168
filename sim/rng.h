// Seeded randomness whose output is the same on every platform and standard library: a
// std::mt19937_64 engine (fully specified by the standard) with Berth's own mappings to ranges,
// since std::uniform_int_distribution's output is implementation-defined. Not thread-safe: each
// simulation run owns its Rng.
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace berth::sim {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  uint64_t Next() { return engine_(); }

  // Uniform integer in [lo, hi] (inclusive), by rejection so no value is favoured.
  int64_t UniformInt(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo) + 1;
    if (span == 0) return static_cast<int64_t>(Next());  // the full 64-bit range
    const uint64_t limit = UINT64_MAX - (UINT64_MAX % span);
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return static_cast<int64_t>(static_cast<uint64_t>(lo) + x % span);
  }

  // True with probability `permille` / 1000.
  bool Chance(int64_t permille) { return UniformInt(0, 999) < permille; }

  // Index drawn with probability proportional to `weights` (non-negative, not all zero).
  size_t Weighted(const std::vector<int64_t>& weights) {
    int64_t total = 0;
    for (int64_t w : weights) total += w;
    int64_t pick = UniformInt(0, total - 1);
    for (size_t i = 0; i < weights.size(); ++i) {
      if (pick < weights[i]) return i;
      pick -= weights[i];
    }
    return weights.size() - 1;
  }

  // Fisher-Yates shuffle.
  template <typename T>
  void Shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) {
      size_t j = static_cast<size_t>(UniformInt(0, static_cast<int64_t>(i) - 1));
      std::swap(v[i - 1], v[j]);
    }
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace berth::sim
