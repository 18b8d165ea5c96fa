// Seed derivation shared by every seeded algorithm of the native layer.
#pragma once

#include <cstdint>

namespace benchpq {

/// splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014): a bijective mix of a 64-bit value. Seeds of
/// independent streams (a sub-space, a half, a sample) are splitmix64 of the
/// user's seed plus a small offset, so nearby seeds still give unrelated
/// streams.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace benchpq
