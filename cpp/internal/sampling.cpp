#include "sampling.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <unordered_set>

namespace benchpq {

std::vector<int64_t> sample_rows(int64_t n, int64_t k, uint64_t seed) {
  if (k > n || k < 0) throw std::invalid_argument("sample_rows: need 0 <= k <= n");
  std::mt19937_64 rng(seed);
  std::vector<int64_t> out;
  if (4 * k >= n) {  // dense: partial Fisher-Yates over all indices
    std::vector<int64_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    for (int64_t i = 0; i < k; ++i)
      std::swap(perm[i], perm[std::uniform_int_distribution<int64_t>(i, n - 1)(rng)]);
    out.assign(perm.begin(), perm.begin() + k);
  } else {  // sparse: Floyd's algorithm, memory O(k)
    std::unordered_set<int64_t> chosen;
    chosen.reserve(2 * k);
    for (int64_t j = n - k; j < n; ++j) {
      const int64_t t = std::uniform_int_distribution<int64_t>(0, j)(rng);
      chosen.insert(chosen.count(t) ? j : t);
    }
    out.assign(chosen.begin(), chosen.end());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<float> gather_rows(const float* x, int64_t n, int64_t d,
                               const std::vector<int64_t>& rows) {
  std::vector<float> out(rows.size() * d);
  const int64_t m = static_cast<int64_t>(rows.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < m; ++i) {
    if (rows[i] < 0 || rows[i] >= n) continue;  // callers pass valid rows
    std::memcpy(out.data() + i * d, x + rows[i] * d, d * sizeof(float));
  }
  return out;
}

}  // namespace benchpq
