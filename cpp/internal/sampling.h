// Seeded random row sampling, used for k-means subsampling and initialisation.
#pragma once

#include <cstdint>
#include <vector>

namespace benchpq {

/// k distinct indices drawn uniformly from [0, n), sorted ascending; k <= n.
/// Deterministic for a given seed (std::mt19937_64).
std::vector<int64_t> sample_rows(int64_t n, int64_t k, uint64_t seed);

/// The rows of x (n, d) float32 listed in rows, copied into a (rows.size(), d) array.
std::vector<float> gather_rows(const float* x, int64_t n, int64_t d,
                               const std::vector<int64_t>& rows);

}  // namespace benchpq
